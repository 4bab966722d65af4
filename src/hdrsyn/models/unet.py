"""A U-Net with Swish conv blocks, CIN on the decoder and an optional Conv-GRU at the bottleneck."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hdrsyn.models.blocks import ConvBlock, ConvGRU


class UNet(nn.Module):
    """Encoder of ``levels`` poolings (widths ``base·2^i``, capped at ``max_width``), decoder with
    bilinear upsampling, skip concatenation and CIN on every conv.

    Input sides must be multiples of ``2**levels`` (see :func:`hdrsyn.models.stacknet.pad_to`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        base: int,
        levels: int,
        *,
        max_width: int = 1024,
        gru: bool = False,
        cin_mode: str = "discrete",
    ):
        super().__init__()
        widths = [min(base * 2**i, max_width) for i in range(levels + 1)]
        self.levels = levels
        self.encoder = nn.ModuleList()
        channels = in_channels
        for width in widths[:-1]:
            self.encoder.append(ConvBlock(channels, width))
            channels = width
        self.bottleneck = ConvBlock(channels, widths[-1])
        self.gru = ConvGRU(widths[-1]) if gru else None
        self.decoder = nn.ModuleList()
        channels = widths[-1]
        for width in reversed(widths[:-1]):
            self.decoder.append(ConvBlock(channels + width, width, cin_mode))
            channels = width
        self.head = nn.Conv2d(channels, out_channels, 1)

    def forward(
        self, x: Tensor, condition: Tensor, hidden: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``x`` (B, in_channels, H, W), ``condition`` (B, 2), ``hidden`` (B, C, H/2^L, W/2^L)
        or None. Returns ``(output logits (B, out_channels, H, W), new GRU hidden state or
        None)``."""
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = nn.functional.avg_pool2d(x, 2)
        x = self.bottleneck(x)
        if self.gru is not None:
            hidden = self.gru(x, hidden)
            x = hidden
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            x = block(upsampled(x, skip.shape[-2:]), condition, skip=skip)  # conv of [x, skip]
        return self.head(x), hidden if self.gru is not None else None


_BILINEAR_TAPS = (0.25, 0.75, 0.75, 0.25)  # weights of bilinear ×2 (pixel centres aligned)
_LARGE = 1 << 18  # elements from which the transposed conv is the faster (docs/performance.md)


def upsampled(x: Tensor, size) -> Tensor:
    """Bilinear upsampling of (B, C, H, W) to ``size``, pixel centres aligned
    (``align_corners=False``, edges replicated). A large map doubled in size goes through a
    per-channel transposed convolution of stride 2 with the 4 × 4 bilinear kernel over the
    edge-padded map: the same values within 1e-6, and 1.5× (forward) to 2.5× (forward and
    backward) faster than ``interpolate`` on the CPU at the full-resolution level of a
    reconstruction; other maps, bf16 maps (oneDNN's bf16 grouped transposed conv is 6× slower
    than ``interpolate``) and maps on other devices go through ``interpolate``."""
    height, width = x.shape[-2:]
    doubled = tuple(size) == (2 * height, 2 * width)
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.numel() < _LARGE or not doubled:
        return nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    taps = x.new_tensor(_BILINEAR_TAPS)
    kernel = (taps[:, None] * taps[None, :]).expand(x.shape[1], 1, 4, 4)
    # channels_last for the transposed conv, so that its output is too: the pad's output
    # format follows x's strides, and a NCHW output would be copied by the next conv
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    padded = padded.contiguous(memory_format=torch.channels_last)
    return nn.functional.conv_transpose2d(padded, kernel, stride=2, padding=3, groups=x.shape[1])
