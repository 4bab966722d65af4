r"""Tone mapping for display: Reinhard et al. 2002 (global operator) and sRGB encoding.

References:
    E. Reinhard, M. Stark, P. Shirley, J. Ferwerda. Photographic Tone Reproduction for Digital
    Images. SIGGRAPH 2002. — Eq. 1 (log-average luminance), Eq. 2 (key scaling), Eq. 4
    (compression with a white point).
    IEC 61966-2-1:1999 (sRGB transfer function).
"""

from __future__ import annotations

import torch
from kornia.color import linear_rgb_to_rgb, rgb_to_linear_rgb
from torch import Tensor

from hdrsyn.errors import HdrsynError

REC709_LUMA = (0.2126, 0.7152, 0.0722)  # luminance of linear Rec. 709 / sRGB primaries
_DELTA = 1e-6  # Reinhard's δ: keeps log() finite on black pixels


def luminance(image: Tensor) -> Tensor:
    """Luminance of linear RGB.

    Args:
        image: :math:`(*, 3, H, W)` linear RGB.

    Returns:
        :math:`(*, 1, H, W)`.
    """
    coefficients = image.new_tensor(REC709_LUMA).view(3, 1, 1)
    return (image * coefficients).sum(dim=-3, keepdim=True)


def tonemap_reinhard(
    radiance: Tensor, key: float = 0.18, white: float | None = None, like: Tensor | None = None
) -> Tensor:
    r"""Reinhard et al. 2002 global operator, applied to luminance; colour ratios kept.

    .. math::
        \bar L_w = \exp\big(\tfrac1N \sum \ln(δ + L_w)\big)            \quad (Eq. 1)
        L = \tfrac{a}{\bar L_w} L_w                                      \quad (Eq. 2)
        L_d = \frac{L\,(1 + L / L_{white}^2)}{1 + L}                      \quad (Eq. 4)

    and each channel is scaled by ``L_d / L_w``. The log average is taken per image.

    Args:
        radiance: linear radiance :math:`(*, 3, H, W)`, non-negative.
        key: the key ``a`` (0.18 is middle grey; larger is brighter).
        white: ``L_white`` in scaled units; default the largest scaled luminance, so only the
            brightest pixel reaches white.
        like: take the log average and the default white from this radiance instead (same
            shape), so that several estimates of one scene are tone-mapped the same way.

    Returns:
        display-linear RGB :math:`(*, 3, H, W)` in [0, 1] (apply :func:`srgb_encode` to view).
    """
    if radiance.dim() < 3 or radiance.shape[-3] != 3:
        raise HdrsynError(f"radiance: expected shape (*, 3, H, W), got {tuple(radiance.shape)}")
    if key <= 0:
        raise HdrsynError(f"key: must be positive, got {key}")
    world = luminance(radiance.clamp_min(0))
    statistics = world if like is None else luminance(like.clamp_min(0))
    log_average = torch.log(_DELTA + statistics).mean(dim=(-2, -1), keepdim=True).exp()  # Eq. 1
    scaled = key / log_average * world  # Eq. 2
    if white is None:
        brightest = (key / log_average * statistics).amax(dim=(-2, -1), keepdim=True)
        white_sq = brightest.clamp_min(_DELTA) ** 2
    else:
        if white <= 0:
            raise HdrsynError(f"white: must be positive, got {white}")
        white_sq = torch.as_tensor(white, dtype=radiance.dtype, device=radiance.device) ** 2
    display = scaled * (1 + scaled / white_sq) / (1 + scaled)  # Eq. 4
    ratio = display / world.clamp_min(_DELTA)
    return (radiance.clamp_min(0) * ratio).clamp(0, 1)


def display(
    radiance: Tensor, key: float = 0.18, white: float | None = None, like: Tensor | None = None
) -> Tensor:
    """What a person sees: :func:`tonemap_reinhard`, then :func:`srgb_encode`; (*, 3, H, W)."""
    return srgb_encode(tonemap_reinhard(radiance, key=key, white=white, like=like))


def srgb_encode(linear: Tensor) -> Tensor:
    """sRGB transfer function (IEC 61966-2-1) of linear RGB :math:`(*, 3, H, W)` in [0, 1]."""
    return linear_rgb_to_rgb(linear.clamp(0, 1))


def srgb_decode(encoded: Tensor) -> Tensor:
    """Inverse sRGB transfer function of :math:`(*, 3, H, W)` in [0, 1]."""
    return rgb_to_linear_rgb(encoded.clamp(0, 1))
