#!/usr/bin/env python3
"""Makes the small frames the video crate's conversion tests decode (apps/video/tests/data/):

- `yuyv_WxH.yuyv`: packed YUYV 4:2:2 (BT.601 limited range, what USB cameras send), encoded
  with numpy from crops of real photos; `yuyv_WxH.rgb`: OpenCV's own YUY2 -> RGB conversion of
  those bytes, the reference.
- `jpeg_WxH_SS.jpg`: baseline JPEGs (libjpeg through OpenCV, chroma 4:2:0 or 4:4:4) of crops,
  as an MJPEG camera sends them; `jpeg_WxH_SS.rgb`: libjpeg's decode of the same file.
- `corrupt.jpg`: a JPEG cut off after its first scan bytes and filled with garbage.

Odd sizes on purpose (YUYV needs an even width). Run by hand:

    python3 tools/demo/make_test_frames.py [--cache .cache/data]
"""
import argparse
import os

import cv2
import numpy as np

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ap = argparse.ArgumentParser()
ap.add_argument("--cache", default=os.path.join(root, ".cache", "data"))
a = ap.parse_args()
out = os.path.join(root, "apps", "video", "tests", "data")
os.makedirs(out, exist_ok=True)

def photo(name, x, y, w, h):
    bgr = cv2.imread(os.path.join(a.cache, "opencv", name), cv2.IMREAD_COLOR)
    assert bgr is not None, name
    return np.ascontiguousarray(bgr[y:y + h, x:x + w])

def yuyv_from_bgr(bgr):
    f = bgr[:, :, ::-1].astype(np.float64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    u = (u[:, 0::2] + u[:, 1::2]) / 2
    v = (v[:, 0::2] + v[:, 1::2]) / 2
    h, w = y.shape
    p = np.empty((h, w // 2, 4))
    p[..., 0], p[..., 1], p[..., 2], p[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    return np.clip(np.rint(p), 0, 255).astype(np.uint8).reshape(h, w * 2)

for (name, x, y, w, h) in [("baboon.jpg", 100, 90, 34, 25), ("fruits.jpg", 200, 150, 18, 7), ("building.jpg", 200, 200, 64, 48)]:
    yuyv = yuyv_from_bgr(photo(name, x, y, w, h))
    open(os.path.join(out, f"yuyv_{w}x{h}.yuyv"), "wb").write(yuyv.tobytes())
    rgb = cv2.cvtColor(yuyv.reshape(h, w, 2), cv2.COLOR_YUV2RGB_YUY2)
    open(os.path.join(out, f"yuyv_{w}x{h}.rgb"), "wb").write(rgb.tobytes())

for (name, x, y, w, h, ss) in [("baboon.jpg", 10, 20, 33, 21, "420"), ("fruits.jpg", 40, 30, 31, 17, "444"), ("building.jpg", 0, 0, 97, 61, "420")]:
    sampling = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420 if ss == "420" else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444
    ok, jpg = cv2.imencode(".jpg", photo(name, x, y, w, h), [cv2.IMWRITE_JPEG_QUALITY, 85, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])
    assert ok
    path = os.path.join(out, f"jpeg_{w}x{h}_{ss}.jpg")
    open(path, "wb").write(jpg.tobytes())
    rgb = cv2.imread(path, cv2.IMREAD_COLOR)[:, :, ::-1]
    open(os.path.join(out, f"jpeg_{w}x{h}_{ss}.rgb"), "wb").write(np.ascontiguousarray(rgb).tobytes())

ok, jpg = cv2.imencode(".jpg", photo("baboon.jpg", 0, 0, 64, 48), [cv2.IMWRITE_JPEG_QUALITY, 85])
b = bytearray(jpg.tobytes())
cut = len(b) // 3
b = b[:cut] + bytes((i * 37 + 11) & 0xFF for i in range(200))
open(os.path.join(out, "corrupt.jpg"), "wb").write(bytes(b))
for f in sorted(os.listdir(out)):
    print(f, os.path.getsize(os.path.join(out, f)))
