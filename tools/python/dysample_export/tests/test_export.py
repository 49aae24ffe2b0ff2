"""Exporter tests (need torch, onnx, onnxruntime; not run in CI).

    pip install -e tools/python/dysample_export[test] && pytest tools/python/dysample_export/tests
"""
import pathlib
import sys

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tools" / "python" / "dysample_export" / "src"))

from dysample_export import DOMAIN, MAX_IR_VERSION, OP_TYPE, export, find_dysample_modules  # noqa: E402
from dysample_torch import DySample, randomize  # noqa: E402


class Upsampler(nn.Module):
    """Same structure as DySample under another class name, with its own forward code."""

    def __init__(self, c, scale, groups):
        super().__init__()
        self.scale, self.style, self.groups = scale, "lp", groups
        self.offset = nn.Conv2d(c, 2 * groups * scale * scale, 1)
        self.ref = randomize(DySample(c, scale, "lp", groups, False), generator=torch.Generator().manual_seed(3))
        self.offset.load_state_dict(self.ref.offset.state_dict())

    def forward(self, x):
        return self.ref.sample(x, self.offset(x) * 0.25 + self.ref.init_pos)


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = nn.Conv2d(18, 18, 1)
        self.deep = nn.ModuleDict({"up": randomize(DySample(18, 3, "pl", 2, True), generator=torch.Generator().manual_seed(2))})

    def forward(self, x):
        return self.deep["up"](F.relu(self.pre(x)))


class Nested(nn.Module):
    """DySample layers at depths 1, 2 and 3, with all four variants' features mixed."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.up1 = randomize(DySample(8, 2, "lp", 4, True), generator=torch.Generator().manual_seed(1))
        self.mid = nn.Sequential(nn.Conv2d(8, 8, 1), Upsampler(8, 2, 2))
        self.to18 = nn.Conv2d(8, 18, 1)
        self.block = nn.Sequential(Inner())
        self.to12 = nn.Conv2d(18, 12, 1)
        self.pl = randomize(DySample(12, 2, "pl", 3, False), generator=torch.Generator().manual_seed(4))
        self.head = nn.Conv2d(12, 2, 1)

    def forward(self, x):
        x = self.up1(F.relu(self.stem(x)))
        x = self.mid(x)
        x = self.to12(self.block(self.to18(x)))
        x = self.pl(x)
        return self.head(x)


def _dysample_nodes(path):
    m = onnx.load(str(path))
    return m, [n for n in m.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE]


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def test_finds_layers_by_structure_not_name():
    names = [n for n, _ in find_dysample_modules(Nested())]
    assert names == ["up1", "mid.1", "block.0.deep.up", "pl"]


def test_custom_export_nested(tmp_path):
    model = Nested().eval()
    x = torch.randn(1, 3, 4, 5)
    path = tmp_path / "nested.onnx"
    found = export(model, (x,), path, input_names=["input"])
    assert found == ["up1", "mid.1", "block.0.deep.up", "pl"]
    m, nodes = _dysample_nodes(path)
    assert m.ir_version <= MAX_IR_VERSION
    assert any(o.domain == DOMAIN for o in m.opset_import)
    got = [(n.name, _attrs(n)) for n in nodes]
    want = [
        ("up1", dict(scale=2, style=b"lp", groups=4, dyscope=1)),
        ("mid.1", dict(scale=2, style=b"lp", groups=2, dyscope=0)),
        ("block.0.deep.up", dict(scale=3, style=b"pl", groups=2, dyscope=1)),
        ("pl", dict(scale=2, style=b"pl", groups=3, dyscope=0)),
    ]
    assert got == want
    # Weights travel as initializers with the submodule's values.
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    for node, (name, mod) in zip(nodes, find_dysample_modules(model)):
        assert len(node.input) == (4 if hasattr(mod, "scope") else 3)
        np.testing.assert_array_equal(inits[node.input[1]], mod.offset.weight.detach().numpy())
        np.testing.assert_array_equal(inits[node.input[2]], mod.offset.bias.detach().numpy())
        if hasattr(mod, "scope"):
            np.testing.assert_array_equal(inits[node.input[3]], mod.scope.weight.detach().numpy())
    # No GridSample left: every layer became one node.
    assert not [n for n in m.graph.node if n.op_type == "GridSample"]
    # The model is unchanged afterwards.
    assert "forward" not in model.up1.__dict__


def test_standard_export_runs_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = Nested().eval()
    x = torch.randn(2, 3, 4, 5)
    path = tmp_path / "nested_std.onnx"
    export(model, (x,), path, dysample_as="standard", opset=17, input_names=["input"])
    m = onnx.load(str(path))
    assert m.ir_version <= MAX_IR_VERSION
    assert not [n for n in m.graph.node if n.domain == DOMAIN]
    assert len([n for n in m.graph.node if n.op_type == "GridSample"]) == 4
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(y - ref).max() <= 1e-5 * np.abs(ref).max()


def test_rejects_bad_arguments(tmp_path):
    model = Nested().eval()
    x = torch.randn(1, 3, 4, 5)
    with pytest.raises(ValueError, match="dysample_as"):
        export(model, (x,), tmp_path / "a.onnx", dysample_as="fast")
    with pytest.raises(ValueError, match="opset >= 16"):
        export(model, (x,), tmp_path / "a.onnx", dysample_as="standard", opset=15)


def test_rejects_foreign_init_pos(tmp_path):
    model = randomize(DySample(8, 2, "lp", 2, False)).eval()
    model.init_pos.add_(0.1)
    with pytest.raises(ValueError, match="init_pos"):
        export(model, (torch.randn(1, 8, 3, 3),), tmp_path / "a.onnx")
