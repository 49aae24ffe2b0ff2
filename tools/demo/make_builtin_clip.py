#!/usr/bin/env python3
"""Makes the demo's `builtin://` clip: frames of OpenCV's vtest.avi (pedestrians, 768x576,
MS-MPEG4v3, from the Debian package opencv-doc, Apache-2.0/BSD-3; fetched into the data cache by
tools/data/fetch.py) resized to 640x480 and stored as an MJPEG AVI the demo reads natively.

    python3 tools/demo/make_builtin_clip.py [--cache .cache/data] [--out apps/video/assets/builtin.avi]

Needs numpy and opencv-python-headless (its bundled ffmpeg decodes MS-MPEG4v3). Deterministic
for one OpenCV build; the committed file is what the tests use.
"""
import argparse
import os
import sys

import cv2

ap = argparse.ArgumentParser()
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ap.add_argument("--cache", default=os.path.join(root, ".cache", "data"))
ap.add_argument("--out", default=os.path.join(root, "apps", "video", "assets", "builtin.avi"))
ap.add_argument("--start", type=int, default=100, help="first source frame")
ap.add_argument("--frames", type=int, default=56)
ap.add_argument("--quality", type=int, default=70)
a = ap.parse_args()

src = os.path.join(a.cache, "opencv", "vtest.avi")
cap = cv2.VideoCapture(src)
if not cap.isOpened():
    sys.exit(f"cannot open {src} (run tools/data/fetch.py first)")
fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
tmp = a.out + ".tmp.avi"
os.makedirs(os.path.dirname(a.out), exist_ok=True)
w = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
w.set(cv2.VIDEOWRITER_PROP_QUALITY, a.quality)
i = n = 0
while n < a.frames:
    ok, frame = cap.read()
    if not ok:
        sys.exit(f"{src}: only {i} frames")
    if i >= a.start:
        w.write(cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA))
        n += 1
    i += 1
w.release()
os.replace(tmp, a.out)
print(f"{a.out}: {n} frames 640x480 at {fps:g} fps, {os.path.getsize(a.out) / 1e6:.2f} MB")
