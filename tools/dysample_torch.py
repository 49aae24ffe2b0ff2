"""An independent PyTorch implementation of DySample, written from the layer's definition.

It is the source of every golden fixture in this repository and of the speed comparison
(tools/compare_speed.py). It uses only F.pixel_shuffle, F.pixel_unshuffle and F.grid_sample,
like the authors' module, and keeps the authors' state_dict names (offset, scope, init_pos)
so checkpoints of real models load into the SDK unchanged.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def init_pos(scale: int, groups: int) -> torch.Tensor:
    h = (torch.arange(scale, dtype=torch.float32) - (scale - 1) / 2) / scale
    # [2, s, s]: channel 0 holds h[j] (x), channel 1 holds h[i] (y)
    hx = h.view(1, scale).expand(scale, scale)
    hy = h.view(scale, 1).expand(scale, scale)
    pos = torch.stack([hx, hy])  # [2, s, s]
    pos = pos.unsqueeze(1).expand(2, groups, scale, scale)
    return pos.reshape(1, -1, 1, 1).contiguous()


class DySample(nn.Module):
    def __init__(self, in_channels, scale=2, style="lp", groups=4, dyscope=False):
        super().__init__()
        assert style in ("lp", "pl")
        self.scale = scale
        self.style = style
        self.groups = groups
        if style == "pl":
            assert in_channels >= scale**2 and in_channels % scale**2 == 0
        assert in_channels % groups == 0
        if style == "pl":
            cin = in_channels // scale**2
            out = 2 * groups
        else:
            cin = in_channels
            out = 2 * groups * scale**2
        self.offset = nn.Conv2d(cin, out, 1)
        nn.init.normal_(self.offset.weight, std=0.001)
        nn.init.zeros_(self.offset.bias)
        if dyscope:
            self.scope = nn.Conv2d(cin, out, 1, bias=False)
            nn.init.zeros_(self.scope.weight)
        self.register_buffer("init_pos", init_pos(scale, groups))

    def sample(self, x, offset):
        B, _, H, W = offset.shape
        s, g = self.scale, self.groups
        offset = offset.view(B, 2, -1, H, W)  # [B, 2, g*s*s, H, W]
        cy = torch.arange(H, dtype=x.dtype, device=x.device) + 0.5
        cx = torch.arange(W, dtype=x.dtype, device=x.device) + 0.5
        base = torch.stack(torch.meshgrid([cx, cy], indexing="xy")).unsqueeze(1).unsqueeze(0)
        normalizer = torch.tensor([W, H], dtype=x.dtype, device=x.device).view(1, 2, 1, 1, 1)
        coords = 2 * (base + offset) / normalizer - 1
        coords = F.pixel_shuffle(coords.view(B, -1, H, W), s)  # [B, 2*g, sH, sW]
        coords = coords.view(B, 2, -1, s * H, s * W).permute(0, 2, 3, 4, 1).contiguous().flatten(0, 1)
        out = F.grid_sample(
            x.reshape(B * g, -1, H, W), coords, mode="bilinear", align_corners=False, padding_mode="border"
        )
        return out.view(B, -1, s * H, s * W)

    def forward(self, x):
        if self.style == "pl":
            xs = F.pixel_shuffle(x, self.scale)
            if hasattr(self, "scope"):
                t = self.offset(xs) * self.scope(xs).sigmoid()
                off = F.pixel_unshuffle(t, self.scale) * 0.5 + self.init_pos
            else:
                off = F.pixel_unshuffle(self.offset(xs), self.scale) * 0.25 + self.init_pos
        else:
            if hasattr(self, "scope"):
                off = self.offset(x) * self.scope(x).sigmoid() * 0.5 + self.init_pos
            else:
                off = self.offset(x) * 0.25 + self.init_pos
        return self.sample(x, off)


def randomize(layer: DySample, std: float = 0.3, generator=None):
    """Weights like a trained model's: large enough to push many sample points past the border."""
    with torch.no_grad():
        layer.offset.weight.normal_(0, std, generator=generator)
        layer.offset.bias.normal_(0, std, generator=generator)
        if hasattr(layer, "scope"):
            layer.scope.weight.normal_(0, std, generator=generator)
    return layer
