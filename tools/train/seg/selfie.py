"""The MediaPipe selfie-segmentation network (general 256x256 model) as a PyTorch module.

The architecture is the TFLite graph itself, read once by ``port.py`` into
``selfie_graph.json`` (committed next to this file): a list of ops over numbered tensors in the
order the TFLite interpreter runs them. ``SelfieSeg`` builds one ``nn.Conv2d`` per CONV_2D /
DEPTHWISE_CONV_2D (named after the TFLite tensor, e.g. ``conv2d_5``, ``depthwise_conv2d_1``),
one ``nn.ConvTranspose2d`` for MediaPipe's ``Convolution2DTransposeBias`` (``segment``), and one
upsampler per RESIZE_BILINEAR (``up1``, ``up2``, ``up3``):

- ``upsampler="bilinear"``: ``F.interpolate(..., mode="bilinear", align_corners=False)``, which is
  TFLite's RESIZE_BILINEAR with ``half_pixel_centers=True`` (the teacher, and the bilinear twin);
- ``upsampler="dysample"``: ``DySample(C, scale=2, style="lp", groups=4)`` from
  ``tools/dysample_torch.py`` with its offset conv zeroed, so that it starts by sampling exactly at
  the bilinear positions (with border clamping, like the resize).

Tensors are NCHW; input 1x3x256x256 RGB in [0, 1]; output 1x1x256x256 P(person).
TFLite's SAME padding is asymmetric for stride 2 (0 before, 1 after for 3x3 on even sizes), so
every conv pads explicitly with ``F.pad`` when the two sides differ.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tools"))
from dysample_torch import DySample  # noqa: E402

GRAPH_JSON = HERE / "selfie_graph.json"
UP_NAMES = ("up1", "up2", "up3")


def load_graph(path: Path = GRAPH_JSON) -> dict:
    return json.loads(Path(path).read_text())


class SelfieSeg(nn.Module):
    def __init__(self, graph: dict | None = None, upsampler: str = "bilinear", groups: int = 4,
                 dyscope: bool = False):
        super().__init__()
        assert upsampler in ("bilinear", "dysample")
        self.graph = graph if graph is not None else load_graph()
        self.upsampler = upsampler
        self.ops = self.graph["ops"]
        self.input_id = self.graph["input"]
        self.output_id = self.graph["output"]
        for op in self.ops:
            if op["op"] == "conv":
                conv = nn.Conv2d(op["cin"], op["cout"], op["k"], stride=op["stride"],
                                 groups=op["groups"], bias=True)
                self.add_module(op["name"], conv)
            elif op["op"] == "tconv":
                self.add_module(op["name"], nn.ConvTranspose2d(op["cin"], op["cout"], op["k"],
                                                               stride=op["stride"], bias=True))
            elif op["op"] == "up" and upsampler == "dysample":
                ds = DySample(op["channels"], scale=2, style="lp", groups=groups, dyscope=dyscope)
                nn.init.zeros_(ds.offset.weight)
                nn.init.zeros_(ds.offset.bias)
                self.add_module(op["name"], ds)

    def dysample_layers(self) -> list[str]:
        return [op["name"] for op in self.ops if op["op"] == "up"] if self.upsampler == "dysample" else []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = {self.input_id: x.contiguous()}
        for op in self.ops:
            kind = op["op"]
            a = t[op["in"][0]]
            if kind == "conv":
                p = op["pad"]  # [top, bottom, left, right]
                if p[0] == p[1] == p[2] == p[3]:
                    y = F.conv2d(a, getattr(self, op["name"]).weight, getattr(self, op["name"]).bias,
                                 stride=op["stride"], padding=p[0], groups=op["groups"])
                else:
                    a = F.pad(a, (p[2], p[3], p[0], p[1]))
                    y = getattr(self, op["name"])(a)
            elif kind == "relu":
                y = F.relu(a)
            elif kind == "hswish":
                y = F.hardswish(a)
            elif kind == "sigmoid":
                y = torch.sigmoid(a)
            elif kind == "gap":
                y = a.mean(dim=(2, 3), keepdim=True)
            elif kind == "add":
                y = a + t[op["in"][1]]
            elif kind == "mul":
                y = a * t[op["in"][1]]
            elif kind == "up":
                if self.upsampler == "dysample":
                    y = getattr(self, op["name"])(a)
                else:
                    y = F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=False)
            elif kind == "tconv":
                y = getattr(self, op["name"])(a)
            else:
                raise ValueError(f"unknown op {kind}")
            t[op["out"]] = y
        return t[self.output_id]


def build(variant: str, teacher_state: dict | None = None, **kw) -> SelfieSeg:
    """variant: 'teacher' / 'bilinear' (bilinear resizes) or 'dysample'; loads the teacher's
    weights into every layer the two share (the DySample offset convs stay zero)."""
    m = SelfieSeg(upsampler="dysample" if variant == "dysample" else "bilinear", **kw)
    if teacher_state is not None:
        missing, unexpected = m.load_state_dict(teacher_state, strict=False)
        assert not unexpected, unexpected
        assert all(k.split(".")[0] in UP_NAMES for k in missing), missing
    return m
