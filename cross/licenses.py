#!/usr/bin/env python3
"""Collects the licences of every third-party Rust crate linked into the shipped artefacts.

    python3 cross/licenses.py --triple aarch64-unknown-linux-gnu --out DIR PKG [PKG...]

Reads `cargo metadata --filter-platform TRIPLE` (the dependency graph resolved for that target
with the workspace's default features), walks the normal dependencies from the shipped workspace
packages (build-dependencies and dev-dependencies are not linked into the artefacts; proc-macro
crates are normal dependencies and included), and for each crate copies the licence files its
published source carries (LICENSE*, LICENCE*, COPYING*, NOTICE*, COPYRIGHT*, UNLICENSE, and a
`license-file` named in its Cargo.toml) into DIR/<name>-<version>/. DIR/README.md lists every
crate with its declared SPDX expression, repository and the files copied.

A crate whose published source has no licence file is listed as such; the expression it
declares then refers to the standard texts in DIR/standard/ (cross/licenses/standard/: Apache-2.0,
MIT, MPL-2.0; the copyright holders are the authors in the crate's Cargo.toml). The script fails
when such a crate declares a licence we carry no text for, so nothing ships without its text.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

LICENSE_NAME = re.compile(r"^(licen[cs]e|copying|notice|copyright|unlicense)([-_.].*)?$", re.I)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--triple", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--standard-dir", type=Path, default=Path(__file__).parent / "licenses" / "standard")
    ap.add_argument("packages", nargs="+", help="shipped workspace packages")
    a = ap.parse_args()
    standard = {f.stem for f in a.standard_dir.iterdir() if f.suffix == ".txt"}

    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--filter-platform", a.triple],
        check=True, capture_output=True, text=True).stdout)
    pkgs = {p["id"]: p for p in meta["packages"]}
    members = set(meta["workspace_members"])
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    by_name = {pkgs[i]["name"]: i for i in members}
    missing = [p for p in a.packages if p not in by_name]
    if missing:
        sys.exit(f"licenses.py: not workspace packages: {', '.join(missing)}")

    # Normal-dependency closure of the shipped packages.
    todo = [by_name[p] for p in a.packages]
    seen = set(todo)
    while todo:
        node = nodes[todo.pop()]
        for d in node["deps"]:
            if any(k["kind"] is None for k in d["dep_kinds"]) and d["pkg"] not in seen:
                seen.add(d["pkg"])
                todo.append(d["pkg"])
    third = sorted((pkgs[i] for i in seen if i not in members), key=lambda p: (p["name"], p["version"]))

    a.out.mkdir(parents=True, exist_ok=True)
    rows, no_file, bad = [], [], []
    for p in third:
        root = Path(p["manifest_path"]).parent
        files = sorted(f for f in root.iterdir() if f.is_file() and LICENSE_NAME.match(f.name))
        if p.get("license_file"):
            lf = (root / p["license_file"]).resolve()
            if lf.is_file() and lf not in [f.resolve() for f in files]:
                files.append(lf)
        spdx = p.get("license") or "(none declared)"
        dest = a.out / f"{p['name']}-{p['version']}"
        copied = []
        if files:
            dest.mkdir(exist_ok=True)
            for f in files:
                shutil.copyfile(f, dest / f.name)
                copied.append(f.name)
        else:
            no_file.append(p)
            ids = set(re.findall(r"[A-Za-z0-9.+-]+", spdx)) - {"OR", "AND", "WITH"}
            # An OR choice is satisfied by any one standard text we carry.
            ok = (bool(ids & standard) if " OR " in spdx or "/" in spdx else ids <= standard and ids)
            if not ok:
                bad.append(f"{p['name']} {p['version']} ({spdx})")
        rows.append((p["name"], p["version"], spdx, p.get("repository") or "",
                     ", ".join(copied) if copied else "no licence file in the published crate: see standard/",
                     ", ".join(p.get("authors") or [])))
    if bad:
        sys.exit("licenses.py: crates without a licence file and with a licence we carry no text for: "
                 + "; ".join(bad))

    std_out = a.out / "standard"
    std_out.mkdir(exist_ok=True)
    for f in sorted(a.standard_dir.iterdir()):
        shutil.copyfile(f, std_out / f.name)

    with open(a.out / "README.md", "w") as fh:
        fh.write(f"# Third-party Rust crates in these binaries ({a.triple})\n\n")
        fh.write(f"{len(rows)} crates: the normal-dependency closure of {', '.join(a.packages)} "
                 "resolved by `cargo metadata --filter-platform` with the default features. Each "
                 "crate's licence files, as published on crates.io, are in `<name>-<version>/`.")
        if no_file:
            fh.write(f" {len(no_file)} crates publish no licence file; their declared licence's "
                     "standard text is in `standard/`, and their copyright holders are the authors "
                     "listed below.")
        fh.write("\n\n| crate | version | licence (SPDX) | repository | files | authors |\n|---|---|---|---|---|---|\n")
        for r in rows:
            fh.write("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |\n")
    print(f"licenses.py: {len(rows)} crates, {len(no_file)} without a licence file", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
