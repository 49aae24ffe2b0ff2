"""Export PyTorch models that use DySample to ONNX.

Every submodule that behaves like the authors' DySample (it has ``scale``, ``style``, ``groups``,
a 1x1 ``offset`` conv with bias and an optional 1x1 ``scope`` conv without bias, whatever its
class name or path) becomes one ``ai.dysample::DySample`` node that carries the submodule's
weights as initializers. With ``dysample_as="standard"`` the model is exported with plain ONNX
ops instead (GridSample, opset >= 16), for runtimes without the DySample custom op.

    from dysample_export import export
    export(model.eval(), (x,), "model.onnx")
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, List, Tuple

import torch
import torch.nn as nn

__all__ = ["export", "find_dysample_modules", "DOMAIN", "OP_TYPE", "MAX_IR_VERSION"]

DOMAIN = "ai.dysample"
OP_TYPE = "DySample"
# ONNX Runtime 1.31 loads IR version <= 10 (onnx >= 1.19 writes newer ones by default).
MAX_IR_VERSION = 10


def _is_1x1_conv(m: Any, bias: bool) -> bool:
    return (
        isinstance(m, nn.Conv2d)
        and tuple(m.kernel_size) == (1, 1)
        and tuple(m.stride) == (1, 1)
        and tuple(m.dilation) == (1, 1)
        and m.groups == 1
        and (m.bias is not None) == bias
        and all(p == 0 for p in (m.padding if isinstance(m.padding, tuple) else (m.padding,)) if not isinstance(p, str))
    )


def _config(m: nn.Module):
    """The (scale, style, groups, dyscope) of a DySample-like module, or None."""
    s, style, g = getattr(m, "scale", None), getattr(m, "style", None), getattr(m, "groups", None)
    if not isinstance(s, int) or isinstance(s, bool) or not isinstance(g, int) or isinstance(g, bool):
        return None
    if style not in ("lp", "pl") or s < 2 or g < 1:
        return None
    if not _is_1x1_conv(getattr(m, "offset", None), bias=True):
        return None
    scope = getattr(m, "scope", None)
    if scope is not None and not _is_1x1_conv(scope, bias=False):
        return None
    return s, style, g, scope is not None


def find_dysample_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """(path, module) of every submodule that behaves like the authors' DySample.

    Modules inside a matched module are skipped: the outer one becomes the node."""
    found = []
    for name, m in model.named_modules():
        if any(name.startswith(p + ".") or p == "" for p, _ in found):
            continue
        if _config(m) is not None:
            found.append((name, m))
    return found


def _init_pos(scale: int, groups: int) -> torch.Tensor:
    # Same values as the authors' _init_pos (arange/meshgrid/transpose/repeat), written directly.
    h = (torch.arange(scale, dtype=torch.float32) - (scale - 1) / 2) / scale
    hx = h.view(1, scale).expand(scale, scale)
    hy = h.view(scale, 1).expand(scale, scale)
    pos = torch.stack([hx, hy]).unsqueeze(1).expand(2, groups, scale, scale)
    return pos.reshape(1, -1, 1, 1)


# The traced autograd.Function may only take tensors and plain scalars, so the module's own
# forward is looked up by key while tracing.
_FORWARDS = {}


def _run_untraced(key, x):
    # The layer's own forward calls submodules; the tracer must not see them (they become
    # the one custom node), and recording them inside an autograd.Function breaks the trace.
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        return _FORWARDS[key](x)
    finally:
        torch._C._set_tracing_state(state)


def _symbolic(g, x, weights, key, scale, pl, groups):
    y = g.op(
        f"{DOMAIN}::{OP_TYPE}",
        x,
        *weights,
        scale_i=scale,
        style_s="pl" if pl else "lp",
        groups_i=groups,
        dyscope_i=int(len(weights) == 3),
    )
    # Give the output the input's dtype and the upsampled shape where it is known.
    xt = x.type()
    sizes = xt.varyingSizes() if hasattr(xt, "varyingSizes") else None
    if sizes is not None and len(sizes) == 4:
        out = [sizes[0], sizes[1]] + [None if d is None else d * scale for d in sizes[2:]]
        y.setType(xt.with_sizes(out))
    return y


class _DySampleOp(torch.autograd.Function):
    """Runs the module's own forward while tracing; exports as one ai.dysample::DySample node."""

    @staticmethod
    def forward(ctx, x, offset_weight, offset_bias, key, scale, pl, groups):  # noqa: ARG004
        return _run_untraced(key, x)

    @staticmethod
    def symbolic(g, x, offset_weight, offset_bias, key, scale, pl, groups):
        return _symbolic(g, x, [offset_weight, offset_bias], key, scale, pl, groups)


class _DySampleScopeOp(torch.autograd.Function):
    """Same as _DySampleOp for layers with a dynamic scope conv."""

    @staticmethod
    def forward(ctx, x, offset_weight, offset_bias, scope_weight, key, scale, pl, groups):  # noqa: ARG004
        return _run_untraced(key, x)

    @staticmethod
    def symbolic(g, x, offset_weight, offset_bias, scope_weight, key, scale, pl, groups):
        return _symbolic(g, x, [offset_weight, offset_bias, scope_weight], key, scale, pl, groups)


@contextlib.contextmanager
def _as_custom_ops(model: nn.Module) -> Iterator[List[str]]:
    """Temporarily routes every DySample-like submodule through _DySampleOp."""
    patched = []
    keys = []
    try:
        for name, m in find_dysample_modules(model):
            cfg = _config(m)
            scale, _, groups, _ = cfg
            pos = getattr(m, "init_pos", None)
            if isinstance(pos, torch.Tensor):
                want = _init_pos(scale, groups).to(pos.device, pos.dtype)
                if pos.shape != want.shape or not torch.allclose(pos, want, atol=1e-6):
                    raise ValueError(
                        f"{name or '<root>'}: init_pos does not match scale={scale}, groups={groups}; "
                        "this module is not the authors' DySample"
                    )
            original = m.forward  # bound method of the class (or a user override)

            key = len(_FORWARDS)
            _FORWARDS[key] = original
            keys.append(key)

            # A closure, not default arguments: torch.onnx fills a forward's defaults in as inputs.
            def make_forward(mod, k, c):
                s, style, g, dyscope = c
                pl = int(style == "pl")

                def forward(x):
                    if dyscope:
                        return _DySampleScopeOp.apply(
                            x, mod.offset.weight, mod.offset.bias, mod.scope.weight, k, s, pl, g
                        )
                    return _DySampleOp.apply(x, mod.offset.weight, mod.offset.bias, k, s, pl, g)

                return forward

            fwd = make_forward(m, key, cfg)

            had_instance_forward = "forward" in m.__dict__
            patched.append((m, had_instance_forward, m.__dict__.get("forward")))
            m.forward = fwd
        yield [name for name, _ in find_dysample_modules(model)]
    finally:
        for k in keys:
            _FORWARDS.pop(k, None)
        for m, had, old in reversed(patched):
            if had:
                m.forward = old
            else:
                del m.forward


def export(model: nn.Module, args, f, *, dysample_as: str = "custom", opset: int = 17, **torch_export_kwargs):
    """Exports ``model`` to ONNX file ``f`` (a path).

    dysample_as="custom": each DySample-like submodule becomes one ai.dysample::DySample node
    (attributes scale, style, groups, dyscope; inputs X, offset_weight, offset_bias[, scope_weight]).
    dysample_as="standard": plain ONNX ops (needs opset >= 16 for GridSample).
    Extra keyword arguments go to torch.onnx.export (e.g. input_names, dynamic_axes).
    Returns the paths of the DySample submodules that were found.
    """
    import onnx

    if dysample_as not in ("custom", "standard"):
        raise ValueError(f"dysample_as must be 'custom' or 'standard', got {dysample_as!r}")
    if dysample_as == "standard" and opset < 16:
        raise ValueError(f"dysample_as='standard' needs opset >= 16 (GridSample), got {opset}")
    if torch_export_kwargs.pop("dynamo", False):
        raise ValueError("only the TorchScript exporter (dynamo=False) is supported")
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError("f must be a file path")
    if not isinstance(args, tuple):
        args = (args,)

    kwargs = dict(torch_export_kwargs)
    found = [name for name, _ in find_dysample_modules(model)]
    with torch.no_grad():
        if dysample_as == "custom":
            custom = dict(kwargs.pop("custom_opsets", None) or {})
            custom[DOMAIN] = 1
            with _as_custom_ops(model):
                torch.onnx.export(model, args, f, opset_version=opset, dynamo=False, custom_opsets=custom, **kwargs)
        else:
            torch.onnx.export(model, args, f, opset_version=opset, dynamo=False, **kwargs)

    proto = onnx.load(os.fspath(f))
    if proto.ir_version > MAX_IR_VERSION:
        proto.ir_version = MAX_IR_VERSION
    # Name DySample nodes after their module path so errors and `dysample onnx info` can name them.
    if dysample_as == "custom":
        nodes = [n for n in proto.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE]
        for node in nodes:
            w = node.input[1]
            if w.endswith(".offset.weight"):
                node.name = w[: -len(".offset.weight")]
            elif w == "offset.weight":
                node.name = "dysample"
    onnx.save(proto, os.fspath(f))
    return found
