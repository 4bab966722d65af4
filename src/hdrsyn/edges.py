"""Canny edge maps: the local net's input and its training target (σ = 2, as the paper)."""

from __future__ import annotations

import kornia
import torch
from torch import Tensor

CANNY_SIGMA = 2.0
CANNY_KERNEL = 13  # 2·⌈3σ⌉ + 1
HYSTERESIS_STEPS = 16


@torch.no_grad()
def canny_edges(image: Tensor, sigma: float = CANNY_SIGMA) -> Tensor:
    """Binary Canny edges of the luminance of an RGB image (kornia, thresholds 0.1 / 0.2).

    Hysteresis is bounded: weak edges join when they touch a strong edge within
    ``HYSTERESIS_STEPS`` pixels. kornia's own hysteresis iterates to convergence, which costs
    20× more (and a GPU sync per iteration) for a visually identical map.

    Args:
        image: :math:`(B, 3, H, W)` in [0, 1].

    Returns:
        :math:`(B, 1, H, W)` in {0, 1}, no gradient.
    """
    grey = kornia.color.rgb_to_grayscale(image.clamp(0, 1))
    _, edges = kornia.filters.canny(
        grey, kernel_size=CANNY_KERNEL, sigma=(sigma, sigma), hysteresis=False
    )
    strong, weak = edges == 1, edges == 0.5
    for _ in range(HYSTERESIS_STEPS):
        strong = strong | (weak & _dilated(strong))
    return strong.to(image.dtype)


def _dilated(mask: Tensor) -> Tensor:
    """3 × 3 dilation of a boolean mask (..., H, W), as two shifted ORs per axis: the same as
    a 3 × 3 max pool, 10–60× faster on the CPU (no float copy, no pooling indices)."""
    rows = mask.clone()
    rows[..., 1:, :] |= mask[..., :-1, :]
    rows[..., :-1, :] |= mask[..., 1:, :]
    out = rows.clone()
    out[..., :, 1:] |= rows[..., :, :-1]
    out[..., :, :-1] |= rows[..., :, 1:]
    return out
