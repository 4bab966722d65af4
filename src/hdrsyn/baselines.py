"""Classical single-image baselines ("inverse tone mapping operators") for ``hdrsyn evaluate``.

Each takes a photo ``(3, H, W)`` in [0, 1] (display-encoded) and returns relative radiance
``(3, H, W)``; evaluation aligns the scale. All linearise the photo with the inverse sRGB curve
first (the camera's real curve is unknown to a single-image method).

* ``linearised``: the inverse sRGB curve alone.
* ``akyuz``: Akyüz, Fleming, Riecke, Reinhard, Bülthoff, "Do HDR displays support LDR content?
  A psychophysical evaluation", ACM SIGGRAPH 2007: ``L = k ((L_d − L_min) / (L_max − L_min))^γ``
  with γ = 1 (the paper found the simple linear expansion did best), colour ratios kept.
* ``huo``: Huo, Yang, Dong, Brost, "Physiological inverse tone mapping based on retina
  response", The Visual Computer 30(5), 2014: the inverse of a Naka–Rushton retina response with
  local adaptation from two passes of a bilateral filter,
  ``L = (L_d / L_max) (L_s^n + σ^n)^{1/n}``, ``L_s = k · bilateral(L_d)``, ``σ = k · logmean(L_d)``,
  ``n = 0.86`` (the paper's value).

* ``expandnet``: the published learned peer, Marnerides et al. 2018, with its authors' weights
  (:mod:`hdrsyn.expandnet`).

``k`` is the peak display luminance (3000 cd/m², the papers' setting); it only matters to Huo,
whose expansion is not a pure scaling.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from hdrsyn.expandnet import expandnet
from hdrsyn.tonemap import luminance, srgb_decode

PEAK = 3000.0
_DELTA = 1e-6


def _with_luminance(linear: Tensor, old: Tensor, new: Tensor) -> Tensor:
    """Scale RGB so that its luminance goes from ``old`` to ``new`` (hue and saturation kept)."""
    return linear * (new / old.clamp_min(_DELTA))


def linearised(photo: Tensor) -> Tensor:
    """The linearised photo: inverse sRGB (the scale is fixed later by alignment); the
    baseline every evaluation and validation compares against. ``(3, H, W)`` → ``(3, H, W)``."""
    return srgb_decode(photo)


def akyuz(photo: Tensor, peak: float = PEAK, gamma: float = 1.0) -> Tensor:
    """Akyüz et al. 2007 (module doc): ``(3, H, W)`` photo → ``(3, H, W)`` radiance."""
    linear = srgb_decode(photo)
    lum = luminance(linear)
    low, high = lum.min(), lum.max()
    expanded = peak * ((lum - low) / (high - low).clamp_min(_DELTA)).pow(gamma)
    return _with_luminance(linear, lum, expanded)


def _bilateral(image: np.ndarray, sigma_space: float, sigma_range: float) -> np.ndarray:
    return cv2.bilateralFilter(image, -1, sigma_range, sigma_space)


def huo(photo: Tensor, peak: float = PEAK, n: float = 0.86) -> Tensor:
    """Huo et al. 2014 (module doc): ``(3, H, W)`` photo → ``(3, H, W)`` radiance."""
    linear = srgb_decode(photo)
    lum = luminance(linear)
    plane = lum[0].double().cpu().numpy().astype(np.float32)
    # two bilateral passes as in the paper (σ_s 16 then 10, σ_r 0.3 then 0.1, on [0, 1] luminance)
    smooth = _bilateral(_bilateral(plane, 16.0, 0.3), 10.0, 0.1)
    local = peak * torch.from_numpy(smooth).to(lum)[None].clamp_min(0)
    sigma = peak * torch.log(lum + _DELTA).mean().exp()
    expanded = lum / lum.max().clamp_min(_DELTA) * (local.pow(n) + sigma.pow(n)).pow(1 / n)
    return _with_luminance(linear, lum, expanded)


BASELINES = {"linearised": linearised, "akyuz": akyuz, "huo": huo, "expandnet": expandnet}
