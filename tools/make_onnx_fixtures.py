#!/usr/bin/env python3
"""Writes the committed ONNX fixtures under tests/fixtures/onnx/ (CI has no PyTorch).

Re-run with:  python3 tools/make_onnx_fixtures.py   (needs torch, onnx, numpy; deterministic seeds)

For each of the four DySample variants (lp/pl x static/dyscope), with different scales and groups:
  layer_<v>.onnx                  the layer exported by dysample_export (one ai.dysample::DySample node)
  layer_<v>_plain_opset<N>.onnx   torch.onnx.export(dynamo=False) of tools/dysample_torch.py, for `fuse`
  layer_<v>_authors_opset17.onnx  the same through a transcription of the authors' module, for `fuse`
  layer_<v>_input.npy / _expected.npy   input and PyTorch's output
A small network nesting two DySample layers (net*.onnx, custom and plain), an f16 layer, and broken
files for the error tests (bad_*.onnx, truncated.onnx, not_onnx.onnx).
"""
import json
import pathlib
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import helper

TOOLS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(TOOLS / "python" / "dysample_export" / "src"))

from dysample_export import MAX_IR_VERSION, export  # noqa: E402
from dysample_torch import DySample, randomize  # noqa: E402

OUT = TOOLS.parent / "tests" / "fixtures" / "onnx"


class AuthorsDySample(nn.Module):
    """The authors' DySample (tiny-smart/dysample), transcribed op for op: its ONNX export differs
    from tools/dysample_torch.py in how the base grid and init_pos are built."""

    def __init__(self, in_channels, scale=2, style="lp", groups=4, dyscope=False):
        super().__init__()
        self.scale = scale
        self.style = style
        self.groups = groups
        if style == "pl":
            in_channels = in_channels // scale**2
            out_channels = 2 * groups
        else:
            out_channels = 2 * groups * scale**2
        self.offset = nn.Conv2d(in_channels, out_channels, 1)
        if dyscope:
            self.scope = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.register_buffer("init_pos", self._init_pos())

    def _init_pos(self):
        h = torch.arange((-self.scale + 1) / 2, (self.scale - 1) / 2 + 1) / self.scale
        return torch.stack(torch.meshgrid([h, h], indexing="ij")).transpose(1, 2).repeat(1, self.groups, 1).reshape(1, -1, 1, 1)

    def sample(self, x, offset):
        B, _, H, W = offset.shape
        offset = offset.view(B, 2, -1, H, W)
        coords_h = torch.arange(H) + 0.5
        coords_w = torch.arange(W) + 0.5
        coords = (
            torch.stack(torch.meshgrid([coords_w, coords_h], indexing="ij"))
            .transpose(1, 2)
            .unsqueeze(1)
            .unsqueeze(0)
            .type(x.dtype)
            .to(x.device)
        )
        normalizer = torch.tensor([W, H], dtype=x.dtype, device=x.device).view(1, 2, 1, 1, 1)
        coords = 2 * (coords + offset) / normalizer - 1
        coords = (
            F.pixel_shuffle(coords.view(B, -1, H, W), self.scale)
            .view(B, 2, -1, self.scale * H, self.scale * W)
            .permute(0, 2, 3, 4, 1)
            .contiguous()
            .flatten(0, 1)
        )
        return F.grid_sample(
            x.reshape(B * self.groups, -1, H, W), coords, mode="bilinear", align_corners=False, padding_mode="border"
        ).view(B, -1, self.scale * H, self.scale * W)

    def forward_lp(self, x):
        if hasattr(self, "scope"):
            offset = self.offset(x) * self.scope(x).sigmoid() * 0.5 + self.init_pos
        else:
            offset = self.offset(x) * 0.25 + self.init_pos
        return self.sample(x, offset)

    def forward_pl(self, x):
        x_ = F.pixel_shuffle(x, self.scale)
        if hasattr(self, "scope"):
            offset = F.pixel_unshuffle(self.offset(x_) * self.scope(x_).sigmoid(), self.scale) * 0.5 + self.init_pos
        else:
            offset = F.pixel_unshuffle(self.offset(x_), self.scale) * 0.25 + self.init_pos
        return self.sample(x, offset)

    def forward(self, x):
        return self.forward_pl(x) if self.style == "pl" else self.forward_lp(x)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.up = randomize(DySample(c, 2, "pl", 2, True), generator=torch.Generator().manual_seed(11))

    def forward(self, x):
        return self.up(torch.relu(self.conv(x)))


class Net(nn.Module):
    """A small decoder: DySample layers at two depths with different configs."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.up1 = randomize(DySample(16, 2, "lp", 4, False), generator=torch.Generator().manual_seed(10))
        self.stage = nn.Sequential(nn.Conv2d(16, 16, 1), Block(16))
        self.head = nn.Conv2d(16, 3, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = self.up1(x)
        x = self.stage(x)
        return self.head(x)


VARIANTS = [
    # name, style, dyscope, scale, groups, channels, input dims, opset of the plain export
    ("lp_static", "lp", False, 2, 4, 16, (1, 16, 6, 8), 16),
    ("lp_dyscope", "lp", True, 3, 2, 8, (2, 8, 5, 4), 17),
    ("pl_static", "pl", False, 2, 2, 8, (1, 8, 6, 5), 18),
    ("pl_dyscope", "pl", True, 3, 1, 18, (1, 18, 4, 4), 20),
]


def cap_ir(path):
    m = onnx.load(str(path))
    m.ir_version = min(m.ir_version, MAX_IR_VERSION)
    onnx.save(m, str(path))


def plain_export(model, x, path, opset):
    with torch.no_grad():
        torch.onnx.export(model, (x,), str(path), opset_version=opset, dynamo=False, input_names=["input"], output_names=["output"])
    cap_ir(path)


def save_npy(name, a):
    np.save(OUT / name, np.ascontiguousarray(a))


def make_bad(src):
    """Broken copies of a custom-op model, one flaw each, for the error tests."""
    base = onnx.load(str(OUT / src))

    def node_of(m):
        return next(n for n in m.graph.node if n.op_type == "DySample")

    def set_attr(m, name, value):
        n = node_of(m)
        kept = [a for a in n.attribute if a.name != name]
        del n.attribute[:]
        n.attribute.extend(kept + [helper.make_attribute(name, value)])

    m = onnx.ModelProto()
    m.CopyFrom(base)
    set_attr(m, "scale", 1)
    onnx.save(m, str(OUT / "bad_attr_scale.onnx"))

    m.CopyFrom(base)
    set_attr(m, "style", "xy")
    onnx.save(m, str(OUT / "bad_attr_style.onnx"))

    m.CopyFrom(base)
    set_attr(m, "groups", 3)  # 16 channels are not divisible by 3 groups
    onnx.save(m, str(OUT / "bad_attr_groups.onnx"))

    # offset_weight is no longer an initializer but a second graph input.
    m.CopyFrom(base)
    w = next(i for i in m.graph.initializer if i.name == node_of(m).input[1])
    m.graph.input.append(helper.make_tensor_value_info(w.name, w.data_type, list(w.dims)))
    kept = [i for i in m.graph.initializer if i.name != w.name]
    del m.graph.initializer[:]
    m.graph.initializer.extend(kept)
    onnx.save(m, str(OUT / "bad_missing_initializer.onnx"))

    data = (OUT / src).read_bytes()
    (OUT / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (OUT / "not_onnx.onnx").write_bytes(b"this is not an ONNX model\n")


class NearMiss(DySample):
    """DySample with a different offset factor: `fuse` must leave it alone."""

    def forward(self, x):
        return self.sample(x, self.offset(x) * 0.3 + self.init_pos)


class WarpZeros(nn.Module):
    """A GridSample that is not DySample (zeros padding): `fuse` must leave it alone."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        grid = torch.tanh(self.conv(x)).permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {"layers": [], "tolerance_rel_f32": 1e-5, "tolerance_rel_f16": 1e-3}
    for i, (name, style, dyscope, s, g, c, dims, opset) in enumerate(VARIANTS):
        gen = torch.Generator().manual_seed(100 + i)
        layer = randomize(DySample(c, s, style, g, dyscope), generator=gen).eval()
        x = torch.randn(*dims, generator=gen)
        with torch.no_grad():
            y = layer(x)
        export(layer, (x,), OUT / f"layer_{name}.onnx", input_names=["input"], output_names=["output"])
        plain_export(layer, x, OUT / f"layer_{name}_plain_opset{opset}.onnx", opset)
        authors = AuthorsDySample(c, s, style, g, dyscope).eval()
        authors.load_state_dict(layer.state_dict())
        with torch.no_grad():
            ya = authors(x)
        assert torch.allclose(ya, y, atol=1e-5), f"{name}: authors' module disagrees"
        plain_export(authors, x, OUT / f"layer_{name}_authors_opset17.onnx", 17)
        save_npy(f"layer_{name}_input.npy", x.numpy())
        save_npy(f"layer_{name}_expected.npy", y.numpy())
        manifest["layers"].append(
            dict(name=name, style=style, dyscope=dyscope, scale=s, groups=g, channels=c, input=list(dims), plain_opset=opset)
        )

    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = net(x)
    dyn = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "h4", 3: "w4"}}
    found = export(net, (x,), OUT / "net.onnx", input_names=["input"], output_names=["output"], dynamic_axes=dyn)
    assert found == ["up1", "stage.1.up"], found
    plain_export(net, x, OUT / "net_plain.onnx", 17)
    save_npy("net_input.npy", x.numpy())
    save_npy("net_expected.npy", y.numpy())
    # A second input size for the dynamic-shape model (the custom op handles any H, W).
    x2 = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        save_npy("net_input2.npy", x2.numpy())
        save_npy("net_expected2.npy", net(x2).numpy())

    # f16: the layer and its input stored in half precision; the reference is PyTorch in f32 on
    # the same (f16-rounded) values, so the test measures our kernel, not PyTorch's f16 rounding.
    gen = torch.Generator().manual_seed(7)
    layer = randomize(DySample(8, 2, "lp", 2, True), generator=gen).eval().half()
    x = torch.randn(1, 8, 5, 6, generator=gen).half()
    export(layer, (x,), OUT / "layer_f16.onnx", input_names=["input"], output_names=["output"])
    with torch.no_grad():
        y = layer.float()(x.float())
    # Stored as float32 (exact: the values are f16); `dysample onnx run` converts to the model type.
    save_npy("layer_f16_input.npy", x.float().numpy())
    save_npy("layer_f16_expected.npy", y.numpy())

    # Non-matches for `fuse`, each next to a real DySample layer that must still be fused.
    gen = torch.Generator().manual_seed(8)
    near = nn.Sequential(
        randomize(NearMiss(8, 2, "lp", 2, False), generator=gen),
        nn.Conv2d(8, 4, 1),
        WarpZeros(),
        nn.Conv2d(4, 4, 1),
        randomize(DySample(4, 2, "lp", 1, False), generator=gen),
    ).eval()
    x = torch.randn(1, 8, 3, 4, generator=gen)
    plain_export(near, x, OUT / "partial_match_plain_opset17.onnx", 17)
    with torch.no_grad():
        save_npy("partial_match_input.npy", x.numpy())
        save_npy("partial_match_expected.npy", near(x).numpy())

    make_bad("layer_lp_static.onnx")
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1024:.0f} KiB, to {OUT}")


if __name__ == "__main__":
    main()
