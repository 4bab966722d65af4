"""Image-quality measures used in validation (the evaluation issue adds the perceptual ones)."""

from __future__ import annotations

import torch
from torch import Tensor

from hdrsyn.losses import mu_law
from hdrsyn.tonemap import srgb_decode


def psnr(prediction: Tensor, target: Tensor, peak: float = 1.0) -> Tensor:
    """PSNR in dB per image of :math:`(B, *)` tensors with values up to ``peak``."""
    error = (prediction - target).pow(2).flatten(1).mean(dim=1).clamp_min(1e-12)
    return 10 * torch.log10(peak**2 / error)


def well_exposed(photo: Tensor, low: float = 0.05, high: float = 0.95) -> Tensor:
    """Mask (B, 1, H, W) of pixels of (B, 3, H, W) photos neither dark nor clipped anywhere."""
    return ((photo > low) & (photo < high)).all(dim=1, keepdim=True)


def align_scale(prediction: Tensor, reference: Tensor, mask: Tensor) -> Tensor:
    """Scale each predicted radiance map by the one scalar that best matches the reference in
    log space over ``mask`` (least squares: the mean log ratio), DESIGN.md §6."""
    ratio = torch.log(reference.clamp_min(1e-8)) - torch.log(prediction.clamp_min(1e-8))
    weights = mask.expand_as(ratio).to(ratio.dtype)
    count = weights.flatten(1).sum(dim=1).clamp_min(1)
    mean = (ratio * weights).flatten(1).sum(dim=1) / count
    # with no well-exposed pixel, fall back to all pixels
    fallback = ratio.flatten(1).mean(dim=1)
    mean = torch.where(weights.flatten(1).sum(dim=1) > 0, mean, fallback)
    return prediction * mean.exp().view(-1, 1, 1, 1)


def hdr_psnr(prediction: Tensor, reference: Tensor, photo: Tensor) -> Tensor:
    """μ-law PSNR (μ = 5000) of scale-aligned HDR, both divided by the reference's maximum."""
    aligned = align_scale(prediction, reference, well_exposed(photo))
    peak = reference.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    return psnr(mu_law((aligned / peak).clamp(0, 1)), mu_law(reference / peak))


def linearised_input(photo: Tensor) -> Tensor:
    """The naive baseline: inverse sRGB of the photo (scale fixed later by alignment)."""
    return srgb_decode(photo)
