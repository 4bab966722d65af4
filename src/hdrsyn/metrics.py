"""Image-quality measures for validation and ``hdrsyn evaluate`` (docs/results.md says how each
is computed and why).

HDR measures take a prediction of unknown absolute scale: :func:`align_scale` first multiplies it
by the one scalar that best matches the reference in log space over the photo's well-exposed
pixels (DESIGN.md §6). Stack measures compare LDR images in [0, 1].
"""

from __future__ import annotations

import math

import torch
from pytorch_msssim import ms_ssim as _ms_ssim
from pytorch_msssim import ssim as _ssim
from torch import Tensor

from hdrsyn.tonemap import luminance, srgb_decode

# PU21 "banding + glare" encoding, Mantiuk & Azimi 2021, Table 1 (the authors' recommended set)
PU21_PARAMETERS = (
    0.353487901, 0.3734658629, 8.277049286e-05, 0.9062562627, 0.09150303166, 0.9099517204,
    596.3148142,
)  # fmt: skip
PU21_RANGE = (0.005, 10000.0)  # cd/m², the encoding's domain
PU21_PEAK = 256.0  # the PU value range the authors pass to PSNR and SSIM (pu21_metric.m)
DISPLAY_PEAK = 4000.0  # cd/m²: the reference's maximum is shown at this luminance
LOG_FLOOR = 1e-5  # log-PSNR floor, relative to the reference's maximum


def mu_law(radiance: Tensor, mu: float = 5000.0) -> Tensor:
    r"""μ-law range compression :math:`\log(1 + μH) / \log(1 + μ)` of radiance in [0, 1]."""
    return torch.log1p(mu * radiance) / math.log1p(mu)


def psnr(prediction: Tensor, target: Tensor, peak: float = 1.0) -> Tensor:
    """PSNR in dB per image of :math:`(B, *)` tensors with values up to ``peak``."""
    error = (prediction - target).pow(2).flatten(1).mean(dim=1).clamp_min(1e-12)
    return 10 * torch.log10(peak**2 / error)


def ssim(prediction: Tensor, target: Tensor, peak: float = 1.0) -> Tensor:
    """SSIM (Wang et al. 2004; 11 × 11 Gaussian window, σ = 1.5, valid region) per image of
    :math:`(B, C, H, W)`, averaged over channels (pytorch-msssim)."""
    return _ssim(prediction, target, data_range=peak, size_average=False)


def ms_ssim(prediction: Tensor, target: Tensor, peak: float = 1.0) -> Tensor:
    """MS-SSIM (Wang et al. 2003; 5 scales, the published weights) per image; both sides must
    exceed 160 pixels, else NaN."""
    if min(prediction.shape[-2:]) <= 160:
        return prediction.new_full((prediction.shape[0],), math.nan)
    return _ms_ssim(prediction, target, data_range=peak, size_average=False)


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


def _relative(prediction: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """Both maps divided by the reference's maximum (per image)."""
    peak = reference.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    return prediction / peak, reference / peak


def mu_psnr(aligned: Tensor, reference: Tensor, mu: float = 5000.0) -> Tensor:
    """μ-law PSNR (μ = 5000): both divided by the reference's maximum, the prediction clipped
    to [0, 1], then PSNR of the μ-law codes (the paper's HDR loss, as a score)."""
    prediction, target = _relative(aligned, reference)
    return psnr(mu_law(prediction.clamp(0, 1), mu), mu_law(target, mu))


def log_psnr(aligned: Tensor, reference: Tensor) -> Tensor:
    """PSNR of log10 radiance: both divided by the reference's maximum and floored at
    :data:`LOG_FLOOR`, peak = the 5 decades between floor and maximum."""
    prediction, target = _relative(aligned, reference)
    floor = LOG_FLOOR
    return psnr(
        torch.log10(prediction.clamp_min(floor)),
        torch.log10(target.clamp_min(floor)),
        peak=-math.log10(floor),
    )


def pu21_encode(luminance_cd: Tensor) -> Tensor:
    """PU21 code of absolute luminance (cd/m², clamped to [0.005, 10000]), floored at 0:
    about 0–600, with 100 cd/m² (SDR white) near 256."""
    p1, p2, p3, p4, p5, p6, p7 = PU21_PARAMETERS
    powered = luminance_cd.clamp(*PU21_RANGE).pow(p4)
    return (p7 * (((p1 + p2 * powered) / (1 + p3 * powered)).pow(p5) - p6)).clamp_min(0)


def display_referred(aligned: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """Display-referred cd/m²: the reference's maximum at :data:`DISPLAY_PEAK`."""
    prediction, target = _relative(aligned, reference)
    return prediction * DISPLAY_PEAK, target * DISPLAY_PEAK


def pu21_psnr(aligned: Tensor, reference: Tensor) -> Tensor:
    """PSNR of PU21-encoded RGB, peak 256 (as the PU21 authors' ``pu21_metric``)."""
    prediction, target = display_referred(aligned, reference)
    return psnr(pu21_encode(prediction), pu21_encode(target), peak=PU21_PEAK)


def pu21_ssim(aligned: Tensor, reference: Tensor) -> Tensor:
    """SSIM of PU21-encoded luminance, dynamic range 256 (as ``pu21_metric``)."""
    prediction, target = display_referred(aligned, reference)
    return ssim(pu21_encode(luminance(prediction)), pu21_encode(luminance(target)), peak=PU21_PEAK)


HDR_METRICS = {
    "pu21_psnr": pu21_psnr,
    "pu21_ssim": pu21_ssim,
    "log_psnr": log_psnr,
    "mu_psnr": mu_psnr,
}


def aligned_metrics(aligned: Tensor, reference: Tensor) -> dict[str, Tensor]:
    """Every HDR measure of (B, 3, H, W) radiance maps already scale-aligned to the reference."""
    return {name: metric(aligned, reference) for name, metric in HDR_METRICS.items()}


def hdr_metrics(prediction: Tensor, reference: Tensor, photo: Tensor) -> dict[str, Tensor]:
    """Every HDR measure of (B, 3, H, W) radiance maps, after :func:`align_scale`."""
    return aligned_metrics(align_scale(prediction, reference, well_exposed(photo)), reference)


def hdr_psnr(prediction: Tensor, reference: Tensor, photo: Tensor) -> Tensor:
    """μ-law PSNR of scale-aligned HDR: the validation score of training."""
    return mu_psnr(align_scale(prediction, reference, well_exposed(photo)), reference)


def linearised_input(photo: Tensor) -> Tensor:
    """The naive baseline: inverse sRGB of the photo (scale fixed later by alignment)."""
    return srgb_decode(photo)
