"""Image-quality measures for validation and ``hdrsyn evaluate`` (docs/results.md says how each
is computed and why).

HDR measures take a prediction of unknown absolute scale. Evaluation follows the protocol this
project is judged by (DESIGN.md §6, issue 11): :func:`protocol_align` multiplies the prediction
by ``exp(median ln(L_ref / L_pred))`` over the photo's well-exposed pixels (Rec. 709 luminance),
and :func:`display_referred` scales both so the reference's 99.9th luminance percentile is
1000 cd/m²; PU21 then encodes each RGB channel, and PSNR is taken against PU21(1000). The
training loss aligns with :func:`align_scale` (the mean log ratio per channel: smooth, so it
passes gradients to every pixel). Stack measures compare LDR images in [0, 1].
"""

from __future__ import annotations

import math

import torch
from pytorch_msssim import ms_ssim as _ms_ssim
from pytorch_msssim import ssim as _ssim
from torch import Tensor

from hdrsyn.tonemap import luminance

# PU21 "banding + glare" encoding, Mantiuk & Azimi 2021, Table 1 (the authors' recommended set)
PU21_PARAMETERS = (
    0.353487901, 0.3734658629, 8.277049286e-05, 0.9062562627, 0.09150303166, 0.9099517204,
    596.3148142,
)  # fmt: skip
PU21_RANGE = (0.005, 10000.0)  # cd/m², the encoding's domain
PEAK_LUMINANCE = 1000.0  # cd/m²: the reference's 99.9th luminance percentile is shown here
PEAK_PERCENTILE = 0.999
LOG_FLOOR = 1e-5  # log-PSNR floor, relative to the reference's maximum
ALIGN_RANGE = (0.05, 0.95)  # photo values whose pixels set the scale alignment (all channels)
ALIGN_MIN_PIXELS = 100  # fewer such pixels: align over all pixels


def mu_law(radiance: Tensor, mu: float = 5000.0) -> Tensor:
    r"""μ-law range compression :math:`\log(1 + μH) / \log(1 + μ)` of radiance in [0, 1]
    (the paper's Eq. 7), any shape."""
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
    """MS-SSIM (Wang et al. 2003; 5 scales, the published weights) of two :math:`(B, C, H, W)`
    images, per image :math:`(B,)`; both sides must exceed 160 pixels, else NaN."""
    if min(prediction.shape[-2:]) <= 160:
        return prediction.new_full((prediction.shape[0],), math.nan)
    return _ms_ssim(prediction, target, data_range=peak, size_average=False)


def well_exposed(
    photo: Tensor, low: float = ALIGN_RANGE[0], high: float = ALIGN_RANGE[1]
) -> Tensor:
    """Mask (B, 1, H, W) of pixels of (B, 3, H, W) photos neither dark nor clipped anywhere."""
    return ((photo > low) & (photo < high)).all(dim=1, keepdim=True)


def align_scale(prediction: Tensor, reference: Tensor, mask: Tensor) -> Tensor:
    """Scale each predicted radiance map by the one scalar that best matches the reference in
    log space over ``mask`` (least squares: the mean log ratio), DESIGN.md §6.
    ``prediction``, ``reference`` :math:`(B, 3, H, W)`, ``mask`` :math:`(B, 1, H, W)`; returns
    the scaled prediction :math:`(B, 3, H, W)`."""
    ratio = torch.log(reference.clamp_min(1e-8)) - torch.log(prediction.clamp_min(1e-8))
    weights = mask.expand_as(ratio).to(ratio.dtype)
    count = weights.flatten(1).sum(dim=1).clamp_min(1)
    mean = (ratio * weights).flatten(1).sum(dim=1) / count
    # with no well-exposed pixel, fall back to all pixels
    fallback = ratio.flatten(1).mean(dim=1)
    mean = torch.where(weights.flatten(1).sum(dim=1) > 0, mean, fallback)
    return prediction * mean.exp().view(-1, 1, 1, 1)


def alignment_mask(photo: Tensor) -> Tensor:
    """Pixels of (B, 3, H, W) photos that set the protocol's scale: every channel in
    (0.05, 0.95); all pixels of an image with fewer than 100 such. (B, 1, H, W) bool."""
    mask = well_exposed(photo, *ALIGN_RANGE)
    few = mask.flatten(1).sum(dim=1) < ALIGN_MIN_PIXELS
    return mask | few.view(-1, 1, 1, 1)


def protocol_align(prediction: Tensor, reference: Tensor, photo: Tensor) -> Tensor:
    """The protocol's alignment: ``prediction`` (B, 3, H, W) times ``exp(median ln(L_ref /
    L_pred))`` over :func:`alignment_mask` of the photo, L = Rec. 709 luminance."""
    mask = alignment_mask(photo)
    ratio = torch.log(luminance(reference).clamp_min(1e-12)) - torch.log(
        luminance(prediction).clamp_min(1e-12)
    )
    scales = [r[m].median() for r, m in zip(ratio, mask, strict=True)]
    return prediction * torch.stack(scales).exp().view(-1, 1, 1, 1)


def _relative(prediction: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """Both maps divided by the reference's maximum (per image)."""
    peak = reference.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    return prediction / peak, reference / peak


def mu_psnr(aligned: Tensor, reference: Tensor, mu: float = 5000.0) -> Tensor:
    """μ-law PSNR (μ = 5000): both divided by the reference's maximum, the prediction clipped
    to [0, 1], then PSNR of the μ-law codes (the paper's HDR loss, Eq. 7, as a score).
    :math:`(B, 3, H, W)` each; :math:`(B,)` dB."""
    prediction, target = _relative(aligned, reference)
    return psnr(mu_law(prediction.clamp(0, 1), mu), mu_law(target, mu))


def log_psnr(aligned: Tensor, reference: Tensor) -> Tensor:
    """PSNR of log10 radiance: both divided by the reference's maximum and floored at
    :data:`LOG_FLOOR`, peak = the 5 decades between floor and maximum. :math:`(B, 3, H, W)`
    each; :math:`(B,)` dB."""
    prediction, target = _relative(aligned, reference)
    floor = LOG_FLOOR
    return psnr(
        torch.log10(prediction.clamp_min(floor)),
        torch.log10(target.clamp_min(floor)),
        peak=-math.log10(floor),
    )


def pu21_encode(luminance_cd: Tensor) -> Tensor:
    """PU21 code of absolute luminance (cd/m², clamped to [0.005, 10000]), floored at 0:
    about 0–600, with 100 cd/m² (SDR white) near 256 (Mantiuk & Azimi 2021, with
    Table 1's parameters). Any shape, elementwise."""
    p1, p2, p3, p4, p5, p6, p7 = PU21_PARAMETERS
    powered = luminance_cd.clamp(*PU21_RANGE).pow(p4)
    return (p7 * (((p1 + p2 * powered) / (1 + p3 * powered)).pow(p5) - p6)).clamp_min(0)


def display_referred(aligned: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """Display-referred cd/m²: both scaled so that the reference's 99.9th luminance
    percentile is :data:`PEAK_LUMINANCE` (per image). :math:`(B, 3, H, W)` each, returned
    in the same shapes."""
    level = luminance(reference).flatten(1).quantile(PEAK_PERCENTILE, dim=1)
    scale = (PEAK_LUMINANCE / level.clamp_min(1e-12)).view(-1, 1, 1, 1)
    return aligned * scale, reference * scale


def pu21_peak() -> float:
    """PU21(1000 cd/m²): the peak the protocol's PSNR is taken against."""
    return float(pu21_encode(torch.tensor(PEAK_LUMINANCE, dtype=torch.float64)))


def pu21_psnr(aligned: Tensor, reference: Tensor, mask: Tensor | None = None) -> Tensor:
    """PSNR of PU21-encoded RGB against PU21(1000), per image; over ``mask`` (B, 1, H, W)
    only when given (NaN for an image with no pixel in it)."""
    prediction, target = (pu21_encode(x) for x in display_referred(aligned, reference))
    if mask is None:
        return psnr(prediction, target, peak=pu21_peak())
    weights = mask.expand_as(prediction).to(prediction.dtype).flatten(1)
    error = ((prediction - target).pow(2).flatten(1) * weights).sum(1) / weights.sum(1)
    return 10 * torch.log10(pu21_peak() ** 2 / error.clamp_min(1e-12))


def pu21_ssim(aligned: Tensor, reference: Tensor) -> Tensor:
    """SSIM of PU21-encoded luminance, dynamic range PU21(1000). :math:`(B, 3, H, W)` each;
    :math:`(B,)`."""
    prediction, target = display_referred(aligned, reference)
    codes = [pu21_encode(luminance(x)) for x in (prediction, target)]
    return ssim(*codes, peak=pu21_peak())


def regions(photo: Tensor) -> dict[str, Tensor]:
    """Masks (B, 1, H, W) of a photo's regions: ``clipped`` (a channel above 0.95), ``dark``
    (not clipped, a channel below 0.05) and ``well exposed`` (the rest)."""
    low, high = ALIGN_RANGE
    clipped = (photo > high).any(dim=1, keepdim=True)
    dark = (photo < low).any(dim=1, keepdim=True) & ~clipped
    return {"well": ~(clipped | dark), "clipped": clipped, "dark": dark}


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
    """Every HDR measure of (B, 3, H, W) radiance maps after :func:`protocol_align`, and
    PU21-PSNR per region of the photo (:func:`regions`)."""
    aligned = protocol_align(prediction, reference, photo)
    scores = aligned_metrics(aligned, reference)
    for name, mask in regions(photo).items():
        scores[f"pu21_psnr_{name}"] = pu21_psnr(aligned, reference, mask)
    return scores


def hdr_psnr(prediction: Tensor, reference: Tensor, photo: Tensor) -> Tensor:
    """PU21-PSNR under the protocol: the validation score of training. ``prediction``,
    ``reference`` and ``photo`` :math:`(B, 3, H, W)`; :math:`(B,)` dB."""
    return pu21_psnr(protocol_align(prediction, reference, photo), reference)
