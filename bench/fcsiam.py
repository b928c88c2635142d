"""Plain FC-Siam-diff (Daudt, Le Saux, Boulch, ICIP 2018), written from the paper as a speed reference.

Four-level U-Net encoder (16-32-64-128 channels, 2-3 3x3 convs per level), shared between dates;
the decoder concatenates the upsampled features with ``|f1 - f2|`` at each level. One logit channel
instead of the paper's two-class log-softmax. Shapes: two ``(N, C, H, W)`` -> ``(N, 1, H, W)``,
H and W multiples of 16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _cbr(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.Dropout2d(0.2)]


class FCSiamDiff(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.enc = nn.ModuleList(
            [
                nn.Sequential(*_cbr(in_channels, 16), *_cbr(16, 16)),
                nn.Sequential(*_cbr(16, 32), *_cbr(32, 32)),
                nn.Sequential(*_cbr(32, 64), *_cbr(64, 64), *_cbr(64, 64)),
                nn.Sequential(*_cbr(64, 128), *_cbr(128, 128), *_cbr(128, 128)),
            ]
        )
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1) for c in (128, 64, 32, 16)]
        )
        self.dec = nn.ModuleList(
            [
                nn.Sequential(*_cbr(256, 128), *_cbr(128, 128), *_cbr(128, 64)),
                nn.Sequential(*_cbr(128, 64), *_cbr(64, 64), *_cbr(64, 32)),
                nn.Sequential(*_cbr(64, 32), *_cbr(32, 16)),
                nn.Sequential(*_cbr(32, 16)),
            ]
        )
        self.out = nn.Conv2d(16, 1, 3, padding=1)

    def _encode(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        return skips, x

    def forward(self, before: Tensor, after: Tensor) -> Tensor:
        skips1, _ = self._encode(before)
        skips2, x = self._encode(after)
        for up, dec, s1, s2 in zip(self.up, self.dec, reversed(skips1), reversed(skips2), strict=True):
            x = up(x)
            x = dec(torch.cat([x, (s1 - s2).abs()], dim=1))
        out: Tensor = self.out(x)
        return out
