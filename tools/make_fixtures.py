#!/usr/bin/env python3
"""Writes the committed golden fixtures under tests/fixtures/ from tools/dysample_torch.py.

Re-run with:  python3 tools/make_fixtures.py   (needs torch, safetensors, numpy)

golden/<case>.safetensors holds one layer's state_dict under a prefix, plus `input` and
`output` tensors in the case's layout; the config is in the safetensors metadata.
module/ holds a state_dict saved from a real nested nn.Module, and the input and output
of one of its DySample layers as .npy files.
"""
import itertools
import json
import pathlib

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

from dysample_torch import DySample, randomize

ROOT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def cases():
    shapes = [(5, 7), (1, 1), (1, 6), (4, 1), (3, 3)]
    n = 0
    for style, dyscope, s, g in itertools.product(("lp", "pl"), (False, True), (2, 3, 4), (1, 2, 4, 8)):
        s2 = s * s
        # Channels must be divisible by g and, for pl, a multiple of s²; keep them odd-ish where allowed.
        if style == "pl":
            c = s2 * g
        else:
            c = 3 * g
        h, w = shapes[n % len(shapes)]
        b = 3 if n % 3 == 0 else 1
        layout = "nhwc" if n % 2 else "nchw"
        n += 1
        yield dict(style=style, dyscope=dyscope, scale=s, groups=g, channels=c, batch=b, height=h, width=w, layout=layout)


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    golden = ROOT / "golden"
    golden.mkdir(parents=True, exist_ok=True)
    for old in golden.glob("*.safetensors"):
        old.unlink()
    names = []
    for k, case in enumerate(cases()):
        layer = randomize(DySample(case["channels"], case["scale"], case["style"], case["groups"], case["dyscope"]), 0.3, gen)
        x = torch.randn(case["batch"], case["channels"], case["height"], case["width"], generator=gen) * 2.0
        with torch.no_grad():
            y = layer(x)
        prefix = "head.up." if k % 2 == 0 else ""
        tensors = {prefix + key: v.contiguous() for key, v in layer.state_dict().items()}
        if case["layout"] == "nhwc":
            tensors["input"] = x.permute(0, 2, 3, 1).contiguous()
            tensors["output"] = y.permute(0, 2, 3, 1).contiguous()
        else:
            tensors["input"] = x.contiguous()
            tensors["output"] = y.contiguous()
        meta = {key: str(v).lower() if isinstance(v, bool) else str(v) for key, v in case.items()}
        meta["prefix"] = prefix
        name = "{style}_{ds}_s{scale}_g{groups}_c{channels}_b{batch}_{height}x{width}_{layout}".format(
            ds="dyscope" if case["dyscope"] else "static", **case
        )
        save_file(tensors, str(golden / f"{name}.safetensors"), metadata=meta)
        names.append(name)
    (golden / "manifest.json").write_text(json.dumps(sorted(names), indent=1) + "\n")
    print(f"wrote {len(names)} golden cases to {golden}")

    # A real nested model: the SDK must load one of its layers by prefix from the full state_dict.
    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(8, 16, 1)
            self.stage2 = nn.Module()
            self.stage2.up = DySample(16, scale=2, style="lp", groups=4, dyscope=True)
            self.stage3 = nn.Module()
            self.stage3.up = DySample(16, scale=2, style="pl", groups=2, dyscope=False)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Conv2d(3, 8, 3, padding=1)
            self.decoder = Decoder()

    net = Net()
    for m in (net.decoder.stage2.up, net.decoder.stage3.up):
        randomize(m, 0.3, gen)
    module_dir = ROOT / "module"
    module_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(module_dir / "net.safetensors"))
    x = torch.randn(2, 16, 6, 5, generator=gen)
    with torch.no_grad():
        y2 = net.decoder.stage2.up(x)
        y3 = net.decoder.stage3.up(x)
    np.save(module_dir / "input.npy", x.numpy())
    np.save(module_dir / "stage2_up_output.npy", y2.numpy())
    np.save(module_dir / "stage3_up_output.npy", y3.numpy())
    # The same state_dict in half precision: loaders must convert on load.
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(module_dir / "net_f16.safetensors"))
    save_file({k: v.bfloat16().contiguous() for k, v in net.state_dict().items()}, str(module_dir / "net_bf16.safetensors"))
    print(f"wrote nested-module fixtures to {module_dir}")


if __name__ == "__main__":
    main()
