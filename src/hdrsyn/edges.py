"""Canny edge maps: the local net's input and its training target (σ = 2, as the paper)."""

from __future__ import annotations

import kornia
import torch
from torch import Tensor

CANNY_SIGMA = 2.0
CANNY_KERNEL = 13  # 2·⌈3σ⌉ + 1


@torch.no_grad()
def canny_edges(image: Tensor, sigma: float = CANNY_SIGMA) -> Tensor:
    """Binary Canny edges of the luminance of an RGB image (kornia, thresholds 0.1 / 0.2).

    Args:
        image: :math:`(B, 3, H, W)` in [0, 1].

    Returns:
        :math:`(B, 1, H, W)` in {0, 1}, no gradient.
    """
    grey = kornia.color.rgb_to_grayscale(image.clamp(0, 1))
    _, edges = kornia.filters.canny(grey, kernel_size=CANNY_KERNEL, sigma=(sigma, sigma))
    return edges
