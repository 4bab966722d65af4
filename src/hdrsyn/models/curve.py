"""The camera-response estimator: one photo → the log inverse response ``g`` of its camera.

A single photo fixes its curve only through statistics: how its histogram piles up below white
(a hard clip or a roll-off over several stops), how the texture of the scene flattens or
steepens with level. :class:`CurveNet` reads level statistics of a fixed-size copy of the
photo (:func:`_statistics`) and predicts the coefficients of ``g`` in a
basis fitted to the training family of curves (:func:`hdrsyn.curves.fit_basis`, an EMoR-like
PCA; Grossberg & Nayar 2003). It is supervised by the known curve of every synthetic sample
(docs/losses.md).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hdrsyn.curves import LEVELS, fit_basis, normalised

INPUT_SIZE = 128  # the texture statistics see a copy of INPUT_SIZE² (statistics, not detail)
HISTOGRAM_PIXELS = 512 * 512  # the level histograms see at most this many of the photo's pixels
BINS = 32  # level bins of the statistics
_QUANTUM = 1 / 255  # one 8-bit level: the gradient floor of a flat region


def _level_statistics(image: Tensor) -> list[Tensor]:
    """Per plane of (B, C, H, W) and level bin: the square-rooted share of pixels, the mean
    and the spread of ln |∇Z| (the mean centred over the image), and which bins hold pixels.

    Why the gradient: a local radiance contrast ``d ln E`` shows up as ``dZ = s(Z) d ln E``,
    ``s = dZ/d ln E`` the curve's slope in log exposure, so the mean ln |∇Z| at level Z is
    ln s(Z) plus the scene's typical log contrast: the curve's shape, seen through the texture
    of the scene (a highlight roll-off flattens the top levels' texture). Each (B, C·BINS).
    """
    batch, planes = image.shape[:2]
    dx = image[..., :-1, 1:] - image[..., :-1, :-1]
    dy = image[..., 1:, :-1] - image[..., :-1, :-1]
    log_gradient = (dx.square() + dy.square()).sqrt().add(_QUANTUM).log().flatten(2)
    centre = image[..., :-1, :-1].clamp(0, 1).flatten(2)
    bins = (centre * (BINS - 1e-4)).long()
    zeros = image.new_zeros(batch, planes, BINS)
    count = zeros.scatter_add(2, bins, torch.ones_like(centre))
    total = zeros.scatter_add(2, bins, log_gradient)
    square = zeros.scatter_add(2, bins, log_gradient.square())
    present = (count > 0).to(image.dtype)
    mean = total / count.clamp_min(1)
    spread = (square / count.clamp_min(1) - mean.square()).clamp_min(0).sqrt() * present
    image_mean = total.sum(2, keepdim=True) / count.sum(2, keepdim=True)
    share = (count / count.sum(2, keepdim=True)).sqrt()
    return [x.flatten(1) for x in (share, (mean - image_mean) * present, spread, present)]


def _level_histograms(image: Tensor) -> list[Tensor]:
    """Square-rooted shares of the 256 levels of the per-pixel maximum, minimum and of every
    channel, (B, 256) each: whether white is a hard clip (a spike at 255 with little just
    below, as sRGB) or a roll-off (pixels piling up over the last tens of levels) shows only
    at single-level resolution."""
    levels = (image * 255).round().clamp(0, 255).long()
    histograms = []
    for plane in (levels.amax(dim=1), levels.amin(dim=1), levels):
        flat = plane.flatten(1)
        count = image.new_zeros(image.shape[0], 256).scatter_add_(
            1, flat, torch.ones_like(flat, dtype=image.dtype)
        )
        histograms.append((count / count.sum(1, keepdim=True)).sqrt())
    return histograms


def _statistics(photo: Tensor) -> Tensor:
    """:func:`_level_statistics` of R, G, B and the per-pixel maximum of a 128² copy, at full
    and half resolution (texture at two scales), and :func:`_level_histograms` of the photo's
    own levels (every ``stride``-th pixel, at most HISTOGRAM_PIXELS; resizing would blend
    them); (B, FEATURES)."""
    image = nn.functional.interpolate(photo, size=(INPUT_SIZE, INPUT_SIZE), mode="area")
    planes = torch.cat([image, image.amax(dim=1, keepdim=True)], dim=1).clamp(0, 1)
    half = nn.functional.avg_pool2d(planes, 2)
    stride = max(1, math.ceil((photo.shape[-2] * photo.shape[-1] / HISTOGRAM_PIXELS) ** 0.5))
    sampled = photo[..., ::stride, ::stride].clamp(0, 1)
    parts = _level_statistics(planes) + _level_statistics(half) + _level_histograms(sampled)
    return torch.cat(parts, dim=1)


FEATURES = 2 * 4 * 4 * BINS + 3 * 256


class CurveNet(nn.Module):
    """Estimate ``g = ln f⁻¹`` (normalised ``g(128) = 0``, non-decreasing) from a photo.

    The statistics of :func:`_statistics` (how the curve shapes the photo's levels and
    texture) feed an MLP, with dropout, that outputs the basis coefficients; its last layer
    starts at zero, so an untrained net answers the mean curve. No convolutional view of the
    scene: with fifteen training scenes, a CNN learnt the scenes rather than the curves (ln f⁻¹
    RMSE 0.33 on held-out scenes, against 0.30 for the statistics alone; docs/models.md).

    Args:
        components: basis size (8 fit every training curve to 0.003 RMSE, the held-out
            ``aces`` kind to 0.02; docs/data.md).
        hidden: width of the MLP's two hidden layers.
        dropout: on the statistics and the first hidden layer, in training.
        fit: fit the basis (about a second); False leaves zeros, for weights that bring their
            own (:func:`hdrsyn.load_model`).
    """

    def __init__(
        self, components: int = 8, hidden: int = 256, dropout: float = 0.3, fit: bool = True
    ):
        super().__init__()
        if fit:
            mean, basis = fit_basis(components)
        else:
            mean, basis = torch.zeros(LEVELS), torch.zeros(components, LEVELS)
        self.register_buffer("mean", mean)
        self.register_buffer("basis", basis)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(FEATURES, hidden),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, components),
        )
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, photo: Tensor) -> Tensor:
        """``photo``: (B, 3, H, W) in [0, 1], any size. Returns ``g``: (B, 256)."""
        with torch.no_grad():  # statistics of the input: constants
            statistics = _statistics(photo.float())
        g = self.mean + self.head(statistics) @ self.basis
        g = g.cummax(dim=1).values  # a response is monotone
        return normalised(g)
