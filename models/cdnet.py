"""SiteNet: a small bitemporal Siamese change-detection network that runs fast on a CPU.

Design (written from scratch, informed by FC-Siam-diff, BIT and TinyCD):

* one shared-weight encoder of depthwise-separable (MobileNet-style) blocks, applied to both dates,
  giving features at 1/2, 1/4, 1/8 and 1/16 of the input resolution;
* at every scale a *symmetric* fusion ``[|a - b|, (a + b) / 2] -> 1x1 conv -> squeeze-excitation``,
  so the network's output does not change when the two dates are swapped (see ``DESIGN.md`` in
  ``models``: a symmetric model answers "did this pixel change?", the direction of change is left
  to spectral indices);
* a light top-down decoder that adds each coarser map to the next finer fused map (FPN style),
  mixing early high-resolution features back in;
* a full-resolution per-pixel head (1x1 convolutions only, for speed) that sees the upsampled
  decoder features together with the raw band difference, so one-pixel-wide 10 m structures are
  not blurred away.

All tensors are ``(batch, channel, y, x)``; the input height and width must be multiples of 16
(``ChangeDetector`` pads tiles for you).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation

logger = logging.getLogger(__name__)

#: Input height and width must be a multiple of this (four stride-2 stages).
STRIDE = 16


@dataclass(frozen=True, slots=True)
class SiteNetConfig:
    """Hyperparameters of ``SiteNet``; stored in the checkpoint card.

    Attributes:
        in_channels: Number of bands per date.
        widths: Encoder widths at 1/2, 1/4, 1/8 and 1/16 resolution.
        decoder_width: Channels of the decoder at 1/4 .. 1/16.
        head_width: Channels of the full-resolution head.
    """

    in_channels: int
    widths: tuple[int, int, int, int] = (16, 32, 64, 128)
    decoder_width: int = 48
    head_width: int = 8

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SiteNetConfig:
        """Inverse of ``to_dict``."""
        return cls(
            in_channels=int(d["in_channels"]),
            widths=tuple(int(w) for w in d.get("widths", (16, 32, 64, 128))),  # type: ignore[arg-type]
            decoder_width=int(d.get("decoder_width", 48)),
            head_width=int(d.get("head_width", 8)),
        )


class SeparableBlock(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 convolution, with a residual when shapes allow.

    Shapes: ``(N, c_in, H, W) -> (N, c_out, H / stride, W / stride)``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.depthwise = Conv2dNormActivation(
            c_in, c_in, 3, stride=stride, padding=dilation, dilation=dilation, groups=c_in, activation_layer=nn.ReLU
        )
        self.pointwise = Conv2dNormActivation(c_in, c_out, 1, activation_layer=None)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        y = self.pointwise(self.depthwise(x))
        if self.residual:
            y = y + x
        return F.relu(y)


class SiameseEncoder(nn.Module):
    """Shared encoder: ``(N, C, H, W)`` -> features at H/2, H/4, H/8, H/16."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = Conv2dNormActivation(in_channels, w0, 3, stride=2, activation_layer=nn.ReLU)
        self.stage1 = nn.Sequential(SeparableBlock(w0, w1, stride=2), SeparableBlock(w1, w1))
        self.stage2 = nn.Sequential(SeparableBlock(w1, w2, stride=2), SeparableBlock(w2, w2))
        # The dilated block widens the receptive field at 1/16 without another downsampling.
        self.stage3 = nn.Sequential(SeparableBlock(w2, w3, stride=2), SeparableBlock(w3, w3, dilation=2))

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the four feature maps, finest first."""
        f0 = self.stem(x)
        f1 = self.stage1(f0)
        f2 = self.stage2(f1)
        f3 = self.stage3(f2)
        return [f0, f1, f2, f3]


class DifferenceFusion(nn.Module):
    """Symmetric fusion of two same-scale feature maps with a per-pixel attention gate.

    ``[|a - b|, (a + b) / 2]`` is unchanged when a and b swap; a 1x1 convolution mixes it and a
    sigmoid gate (1x1 convolution) re-weights each channel at each pixel: which differences matter
    here. The gate is deliberately local: a global squeeze-excitation pool would make a tile's
    output depend on the whole tile, so tiled inference could never match untiled inference.
    Shapes: two ``(N, c_in, h, w)`` -> ``(N, c_out, h, w)``.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.mix = Conv2dNormActivation(2 * c_in, c_out, 1, activation_layer=nn.ReLU)
        self.gate = nn.Conv2d(c_out, c_out, 1)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """Fuse the two dates."""
        x: Tensor = self.mix(torch.cat([(a - b).abs(), (a + b) * 0.5], dim=1))
        gated: Tensor = x * torch.sigmoid(self.gate(x))
        return gated


class SiteNet(nn.Module):
    """Bitemporal Siamese change-detection network (default SiteWatch model).

    ``forward(before, after)``: two ``(N, C, H, W)`` float tensors (normalised reflectance,
    H and W multiples of 16) -> ``(N, 1, H, W)`` change logits.
    """

    def __init__(self, config: SiteNetConfig) -> None:
        super().__init__()
        self.config = config
        w0, w1, w2, w3 = config.widths
        d, h = config.decoder_width, config.head_width
        self.encoder = SiameseEncoder(config.in_channels, config.widths)
        self.fuse = nn.ModuleList(
            [DifferenceFusion(w0, w0), DifferenceFusion(w1, d), DifferenceFusion(w2, d), DifferenceFusion(w3, d)]
        )
        self.decode2 = SeparableBlock(d, d)
        self.decode1 = SeparableBlock(d, d)
        self.reduce0 = Conv2dNormActivation(d, w0, 1, activation_layer=None)
        self.decode0 = SeparableBlock(w0, w0)
        self.squeeze0 = Conv2dNormActivation(w0, h, 1, activation_layer=nn.ReLU)
        # Per-pixel MLP at full resolution: cheap (1x1 only), sharpens edges using the raw band difference.
        self.head = nn.Sequential(nn.Conv2d(h + config.in_channels, h, 1), nn.ReLU(inplace=True), nn.Conv2d(h, 1, 1))

    def forward(self, before: Tensor, after: Tensor) -> Tensor:
        """Change logits ``(N, 1, H, W)`` for a batch of ``(N, C, H, W)`` pairs."""
        n = before.shape[0]
        # Run both dates through the shared encoder as one batch: one pass, better CPU utilisation.
        feats = self.encoder(torch.cat([before, after], dim=0))
        fused = [fuse(f[:n], f[n:]) for fuse, f in zip(self.fuse, feats, strict=True)]
        x = fused[3]
        x = self.decode2(_up_to(x, fused[2]) + fused[2])
        x = self.decode1(_up_to(x, fused[1]) + fused[1])
        # reduce0 (1x1 conv + BN, no activation) is affine per pixel and bilinear upsampling is a
        # convex combination, so they commute: reducing first does the 1x1 at a quarter of the pixels.
        x = self.squeeze0(self.decode0(_up_to(self.reduce0(x), fused[0]) + fused[0]))
        x = F.interpolate(x, size=before.shape[-2:], mode="bilinear", align_corners=False)
        logits: Tensor = self.head(torch.cat([x, (after - before).abs()], dim=1))
        return logits


def _up_to(x: Tensor, ref: Tensor) -> Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


@dataclass(slots=True)
class ArchitectureSpec:
    """Name plus hyperparameters of a network, as written into a checkpoint card."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


#: Architectures that can be rebuilt from a card.
ARCHITECTURES = ("sitenet",)


def build_network(spec: ArchitectureSpec) -> nn.Module:
    """Instantiate the network named in ``spec`` (weights left at their initial values).

    Raises:
        ValueError: Unknown architecture name.
    """
    if spec.name == "sitenet":
        return SiteNet(SiteNetConfig.from_dict(spec.params))
    raise ValueError(f"unknown architecture {spec.name!r}; known: {', '.join(ARCHITECTURES)}")


def fuse_conv_bn(net: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d (inside a Sequential) into the convolution.

    Inference-only optimisation (same outputs up to float rounding, fewer passes over memory);
    works on any network built from Sequential conv-BN blocks, ours and the FC-Siam-diff
    reference alike. Modifies ``net`` in place (switching it to eval mode) and returns it.
    """
    net.eval()
    for module in net.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (conv_name, conv), (bn_name, bn) in itertools.pairwise(children):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
    return net


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
