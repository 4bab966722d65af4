"""ExpandNet (Marnerides et al. 2018), the published single-image HDR peer, as a baseline.

Three branches over the display-referred photo ``x`` (RGB in [0, 1]), fused per pixel: a local
branch (two 3×3 convs, 128 channels), a dilated branch (four 3×3 convs, dilation 2, 64
channels) and a global branch (six stride-2 3×3 convs and a 4×4 conv on ``x`` resized to
256², a 64-vector broadcast to every pixel); 1×1 convs fuse the 256 channels to RGB through a
sigmoid. SELU after every conv but the last of each branch. As released, the input is min-max
normalised to [0, 1] and so is the output: relative radiance, whose scale the evaluation
protocol aligns like every other method's.

The weights are the authors' (dmarnerides/hdr-expandnet, weights.pth at commit 2b47572),
converted to safetensors with the same tensor names and values and shipped in
``hdrsyn/peers/`` with their licence (BSD-3-Clause-Clear, ``peers/LICENSE-expandnet``). The
authors tile large photos (256-pixel tiles, 20 px overlap) to bound memory; the whole photo
in one pass is the same network without seams, and evaluation images are small.

Reference:
    D. Marnerides, T. Bashford-Rogers, J. Hatchett, K. Debattista. ExpandNet: A Deep
    Convolutional Neural Network for High Dynamic Range Expansion from Low Dynamic Range
    Content. Computer Graphics Forum 37(2), Eurographics 2018.
"""

from __future__ import annotations

import functools
from importlib import resources

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

WEIGHTS = "peers/expandnet.safetensors"  # in the package, with peers/LICENSE-expandnet
GLOBAL_SIDE = 256  # the global branch sees the photo resized to this square


def _conv_selu(inputs: int, outputs: int, kernel: int, stride: int = 1, padding: int = 0,
               dilation: int = 1) -> nn.Sequential:  # fmt: skip
    return nn.Sequential(nn.Conv2d(inputs, outputs, kernel, stride, padding, dilation), nn.SELU())


class ExpandNet(nn.Module):
    """The network of the module doc; the tensor names match the released weights."""

    def __init__(self):
        super().__init__()
        self.local_net = nn.Sequential(_conv_selu(3, 64, 3, padding=1),
                                       _conv_selu(64, 128, 3, padding=1))  # fmt: skip
        self.mid_net = nn.Sequential(
            _conv_selu(3, 64, 3, padding=2, dilation=2),
            _conv_selu(64, 64, 3, padding=2, dilation=2),
            _conv_selu(64, 64, 3, padding=2, dilation=2),
            nn.Conv2d(64, 64, 3, padding=2, dilation=2),
        )
        self.glob_net = nn.Sequential(
            _conv_selu(3, 64, 3, stride=2, padding=1),
            *(_conv_selu(64, 64, 3, stride=2, padding=1) for _ in range(5)),
            nn.Conv2d(64, 64, 4),
        )
        self.end_net = nn.Sequential(_conv_selu(256, 64, 1), nn.Conv2d(64, 3, 1), nn.Sigmoid())

    def forward(self, photo: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [0, 1] → ``(B, 3, H, W)`` in [0, 1] (relative radiance)."""
        local, mid = self.local_net(photo), self.mid_net(photo)
        small = F.interpolate(photo, (GLOBAL_SIDE, GLOBAL_SIDE), mode="bilinear",
                              align_corners=False)  # fmt: skip
        glob = self.glob_net(small).expand(-1, -1, *local.shape[-2:])
        return self.end_net(torch.cat([local, mid, glob], dim=1))


@functools.lru_cache(maxsize=1)
def load_expandnet() -> ExpandNet:
    """The shipped weights in an eval-mode :class:`ExpandNet` (float32, CPU, offline)."""
    network = ExpandNet()
    state = load_file(str(resources.files("hdrsyn") / WEIGHTS))
    network.load_state_dict(state, strict=True)
    return network.eval()


def _min_max(x: Tensor) -> Tensor:
    low, high = x.amin(dim=(-3, -2, -1), keepdim=True), x.amax(dim=(-3, -2, -1), keepdim=True)
    return (x - low) / (high - low).clamp_min(1e-8)


@torch.no_grad()
def expandnet(photo: Tensor) -> Tensor:
    """ExpandNet as released (module doc): ``(3, H, W)`` photo in [0, 1] → ``(3, H, W)``
    relative radiance."""
    output = load_expandnet()(_min_max(photo.float())[None])[0]
    return _min_max(output)
