#!/usr/bin/env bash
# Fails when any ELF file (binary or shared library) under the given paths needs a GLIBC_ symbol
# version newer than the baseline.
#
#   cross/check-glibc.sh 2.31 dist/stage/dysample-0.1.0-raspberry-pi [more paths...]
#
# Prints, for every ELF file, its NEEDED libraries and `readelf -V`'s version-needs section (what
# the dynamic loader checks at start-up), then one verdict line per file. Reads the files only:
# GNU readelf handles every architecture's ELF.
set -euo pipefail
max="${1:?usage: check-glibc.sh MAX_GLIBC PATH...}"
shift
[ $# -ge 1 ] || { echo "usage: check-glibc.sh MAX_GLIBC PATH..." >&2; exit 2; }
command -v readelf >/dev/null || { echo "check-glibc: readelf not found (apt-get install binutils)" >&2; exit 2; }

newer() { # 0 when $1 > $2 as versions
    [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1)" = "$1" ]
}

n=0 bad=0
while IFS= read -r -d '' f; do
    [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || continue
    n=$((n + 1))
    echo "== ${f}"
    readelf -h "$f" | awk -F: '/Machine/ {gsub(/^ +/, "", $2); print "machine: " $2}'
    readelf -d "$f" | awk '/NEEDED/ {print "needed:  " $NF}'
    vers=$(readelf -V --wide "$f" | awk '/^Version needs section/ {p=1} p && /^$/ {p=0} p')
    printf '%s\n' "$vers"
    top=$(printf '%s\n' "$vers" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1 || true)
    if [ -z "$top" ]; then
        echo "glibc:   no GLIBC_ versions needed (static or libc-free)"
    elif newer "$top" "$max"; then
        echo "glibc:   FAIL needs GLIBC_${top} > baseline ${max}:" \
            "$(printf '%s\n' "$vers" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV |
                while read -r v; do newer "$v" "$max" && printf 'GLIBC_%s ' "$v"; done)"
        bad=$((bad + 1))
    else
        echo "glibc:   ok, newest needed GLIBC_${top} <= ${max}"
    fi
    cxx=$(printf '%s\n' "$vers" | grep -o 'GLIBCXX_[0-9][0-9.]*' | sort -uV | tail -1 || true)
    [ -z "$cxx" ] || echo "libstdc++: newest needed ${cxx} (for information: Ubuntu 20.04's libstdc++6 has GLIBCXX_3.4.28)"
    echo
done < <(find "$@" -type f -print0 | sort -z)

if [ "$n" -eq 0 ]; then
    echo "check-glibc: no ELF files under $*" >&2
    exit 1
fi
if [ "$bad" -gt 0 ]; then
    echo "check-glibc: FAIL: ${bad} of ${n} ELF files need a glibc newer than ${max}" >&2
    exit 1
fi
echo "check-glibc: ok: ${n} ELF files, none needs a glibc newer than ${max}" >&2
