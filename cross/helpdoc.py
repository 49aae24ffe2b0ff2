#!/usr/bin/env python3
"""Writes each program's `--help` (and every subcommand's, recursively) as a man page and as
Markdown, so packages carry the exact text of the binaries they ship.

    python3 cross/helpdoc.py --out DIR [--runner "cross/qemu-run.sh"] BINARY [BINARY...]

DIR/man1/<name>.1 (roff: NAME, SYNOPSIS, DESCRIPTION from the top-level help, one SUBCOMMAND
section per subcommand with its help verbatim) and DIR/<name>.md. The runner prefix runs a
foreign-architecture binary (qemu). Subcommands are read from clap's "Commands:" block.
"""
import argparse
import datetime
import re
import shlex
import subprocess
import sys
from pathlib import Path


def run(cmd: list[str]) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit(f"helpdoc.py: {' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[:300]}")
    return p.stdout


def subcommands(text: str) -> list[str]:
    out, inside = [], False
    for line in text.splitlines():
        if line.strip() == "Commands:":
            inside = True
            continue
        if inside:
            if not line.startswith("  "):
                break
            m = re.match(r"^  ([A-Za-z0-9][\w-]*)", line)
            if m and m.group(1) != "help":
                out.append(m.group(1))
    return out


def collect(prefix: list[str], path: list[str], depth: int = 0) -> list[tuple[list[str], str]]:
    text = run(prefix + path[1:] + ["--help"])
    pages = [(path, text)]
    if depth < 3:
        for sub in subcommands(text):
            pages += collect(prefix, path + [sub], depth + 1)
    return pages


def roff_escape(line: str) -> str:
    line = line.replace("\\", "\\e")
    return ("\\&" + line) if line.startswith((".", "'")) else line


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--runner", default="")
    ap.add_argument("binaries", nargs="+", type=Path)
    a = ap.parse_args()
    (a.out / "man1").mkdir(parents=True, exist_ok=True)
    date = datetime.date.today().isoformat()
    for b in a.binaries:
        name = b.name
        prefix = shlex.split(a.runner) + [str(b)]
        version = run(prefix + ["--version"]).strip()
        pages = collect(prefix, [name])
        top = pages[0][1]
        summary = top.splitlines()[0].strip() if top.strip() else name
        man = [f'.TH "{name.upper()}" 1 "{date}" "{version}" "User Commands"',
               ".SH NAME", f"{name} \\- {roff_escape(summary)}",
               ".SH SYNOPSIS", f".B {name}", ".RI [ OPTIONS ]"]
        if len(pages) > 1:
            man.append(".RI [ COMMAND ]")
        man += [".SH DESCRIPTION", ".nf"] + [roff_escape(l) for l in top.splitlines()] + [".fi"]
        for path, text in pages[1:]:
            man += [f'.SH "{" ".join(path).upper()}"', ".nf"] + [roff_escape(l) for l in text.splitlines()] + [".fi"]
        man += [".SH VERSION", version]
        (a.out / "man1" / f"{name}.1").write_text("\n".join(man) + "\n")
        md = [f"# `{name}` command-line reference", "",
              f"Generated from `--help` of {version}.", ""]
        for path, text in pages:
            md += [f"## `{' '.join(path)}`", "", "```text", text.rstrip(), "```", ""]
        (a.out / f"{name}.md").write_text("\n".join(md))
        print(f"helpdoc.py: {name}: {len(pages)} pages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
