#!/usr/bin/env bash
# Runs an aarch64 Linux program under qemu-user the way ONNX Runtime's aarch64 library needs:
#
#   QEMU_CPU=cortex-a72 cross/qemu-run.sh ./dysample info
#
# Why: qemu-user passes the host's /proc/cpuinfo through, and ORT's cpuinfo library parses the
# x86 text as ARM, finds no cores and segfaults at start-up. So the program runs in a private
# mount namespace (`unshare -m`, nothing leaks to the host) with an ARM-format /proc/cpuinfo
# bind-mounted over the real one, describing the core that QEMU_CPU emulates:
#   cortex-a72  Raspberry Pi 4 (MIDR part 0xd08, NEON only)
#   max         a dotprod + fp16 core, described as a Cortex-A76 (Raspberry Pi 5, part 0xd0b)
# ORT reads the ISA features from the auxiliary vector (qemu fills it for QEMU_CPU); the text
# only has to parse and agree with it.
#
# The dynamic loader and libc come from $QEMU_LD_PREFIX (default /usr/aarch64-linux-gnu,
# Debian's arm64 cross libc). Needs root or unprivileged user namespaces (`unshare -rm`).
set -euo pipefail

export QEMU_CPU="${QEMU_CPU:-max}"
export QEMU_LD_PREFIX="${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}"
[ $# -ge 1 ] || { echo "usage: QEMU_CPU=cortex-a72|max $0 PROGRAM [ARGS...]" >&2; exit 2; }

case "$QEMU_CPU" in
    cortex-a72) part=0xd08 variant=0x0 rev=3
        features="fp asimd evtstrm crc32 cpuid" ;;
    cortex-a76) part=0xd0b variant=0x4 rev=1
        features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
    max|*) part=0xd0b variant=0x4 rev=1
        features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
esac

fake=$(mktemp "${TMPDIR:-/tmp}/cpuinfo.XXXXXX")
trap 'rm -f "$fake"' EXIT
ncpu=$(nproc --all 2>/dev/null || echo 1)
for ((i = 0; i < ncpu; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %d\n\n' \
        "$i" "$features" "$variant" "$part" "$rev"
done > "$fake"

# The inner shell mounts, then execs qemu: the program's exit status is ours.
inner='mount --bind "$0" /proc/cpuinfo && exec qemu-aarch64 "$@"'
if [ "$(id -u)" -eq 0 ]; then
    unshare -m -- sh -c "$inner" "$fake" "$@"
else
    unshare -r -m -- sh -c "$inner" "$fake" "$@"
fi
