r"""The photo's response curve from its colour edges: physics a single photo gives away.

Where the lens and the pixel grid blur an edge between two colours, the pixels across it mix
the two radiances linearly, so in linear RGB they lie on the segment between the two colours;
the camera's nonlinear response bends that segment (Lin, Gu, Yamazaki & Shum 2004). The
inverse curve that straightens the edges is the camera's, whatever the scene shows: this
estimate is not learnt from our training scenes, so it does not overfit them as
:class:`~hdrsyn.models.curve.CurveNet` does (docs/models.md).

Triplets ``(A, M, B)`` of neighbouring pixels along rows and columns are kept where every
channel of ``M`` lies between those of ``A`` and ``B`` (a mixture), the two ends differ by at
least :data:`EDGE_LEVELS` levels in some channel and in colour, not only in brightness
(:data:`COLOUR_COS`: grey mixtures stay straight under any curve), and no pixel is near black
or white. A curve ``g`` (log inverse, the layer's convention) scores the mean over triplets of
``ln(FLOOR + |(M − A) × (B − A)| / |B − A|²)`` with ``A, M, B`` linearised by ``exp(g)``: the
log distance of ``M`` from the line ``AB``, relative to the edge's length.

The estimate: the best of a bank of curves of the training family
(:func:`hdrsyn.curves.sample_curve`), refined by gradient descent on its coefficients in the
curve basis (:func:`hdrsyn.curves.fit_basis`) with a penalty ``STRENGTH · mean (g − g_bank)²``
that keeps it near the family; sRGB wins when it scores within :data:`SRGB_MARGIN` of the
estimate (the commonest camera needs less evidence). There is no estimate from fewer than
:data:`MIN_TRIPLETS` triplets, or from triplets in fewer than :data:`MIN_CELLS` of the photo's
GRID × GRID cells: one or two edges are too little to go on (a single long edge of a held-out
view bent the estimate; docs/results/archive.md). ``STRENGTH`` and ``SRGB_MARGIN`` were chosen
on views of the training scenes, ``MIN_CELLS`` after that held-out failure.

Not the default, and not to be trusted on camera photos: a camera's demosaicing, sharpening in
the encoded domain and JPEG compression bend the edge colours themselves, and on
camera-realistic held-out photos the estimate is worse than assuming sRGB on every kind of
camera (ln f⁻¹ RMSE 0.94 on PNGs and 0.63 on JPEGs, against 0.37; docs/results.md). It looked
good only on test views that bilinear upsampling had made exact radiance mixtures.

Reference:
    S. Lin, J. Gu, S. Yamazaki, H.-Y. Shum. Radiometric Calibration from a Single Image.
    CVPR 2004.
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor

from hdrsyn.curves import fit_basis, normalised, sample_curve, srgb_log_inverse

EDGE_LEVELS = 40  # the ends of a triplet differ by this many levels in some channel
MARGIN_LEVELS = 8  # no channel of a triplet within this many levels of black or white
COLOUR_COS = 0.98  # the ends' colours (linearised as sRGB) differ by more than ≈ 11°
MAX_TRIPLETS = 4000  # a random subset beyond this (the estimate settles well before)
MIN_TRIPLETS = 30  # fewer: no estimate
GRID = 16  # the photo is cut into GRID × GRID cells to count where the edges are
MIN_CELLS = 12  # triplets from fewer cells (one or two edges of the scene): no estimate
MAX_SIDE = 2048  # larger photos give their central MAX_SIDE² crop (never resized: resizing
# averages gamma-encoded values and bends the edges)
FLOOR = 1e-3  # of the relative distance inside the log: 8-bit quantisation leaves ~1e-3
BANK_SIZE = 600  # training-family curves the search starts from
STEPS = 100  # Adam steps of the refinement
LEARNING_RATE = 0.05
STRENGTH = 1.0  # weight of mean (g − g_bank)², per squared unit of ln f⁻¹
SRGB_MARGIN = 0.1  # sRGB is kept when its score is within this of the estimate's
_MAX_COEFFICIENT = 20.0  # coefficients are clamped here: the family's span several units


def edge_triplets(levels: np.ndarray, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Colour-edge triplets of an 8-bit photo, and where they are.

    Args:
        levels: ``(H, W, 3)`` integer levels 0…255.

    Returns:
        ``(N, 3, 3)`` long: ``[A, M, B]`` × RGB, and ``(N,)`` long: the cell of a
        GRID × GRID grid over the photo that holds each middle pixel; at most
        :data:`MAX_TRIPLETS` (a subset drawn with ``seed``); N may be 0.
    """
    height, width = levels.shape[:2]
    top, left = max(0, (height - MAX_SIDE) // 2), max(0, (width - MAX_SIDE) // 2)
    z = np.asarray(levels[top : top + MAX_SIDE, left : left + MAX_SIDE], dtype=np.int16)
    rows, columns = np.indices(z.shape[:2])
    cell = (rows * GRID // z.shape[0]) * GRID + columns * GRID // z.shape[1]
    found, cells = [], []
    for a, m, b, where in ((z[:-2], z[1:-1], z[2:], cell[1:-1]),
                           (z[:, :-2], z[:, 1:-1], z[:, 2:], cell[:, 1:-1])):  # fmt: skip
        a, m, b = (x.reshape(-1, 3) for x in (a, m, b))
        low, high = np.minimum(a, b), np.maximum(a, b)
        keep = ((m >= low) & (m <= high)).all(1) & ((high - low).max(1) >= EDGE_LEVELS)
        keep &= low.min(1) >= MARGIN_LEVELS
        keep &= high.max(1) <= 255 - MARGIN_LEVELS
        found.append(np.stack([a[keep], m[keep], b[keep]], axis=1))
        cells.append(where.reshape(-1)[keep])
    triplets, cells = np.concatenate(found), np.concatenate(cells)
    srgb = np.exp(srgb_log_inverse().numpy())
    ends_a, ends_b = srgb[triplets[:, 0]], srgb[triplets[:, 2]]
    cos = (ends_a * ends_b).sum(1) / (
        np.linalg.norm(ends_a, axis=1) * np.linalg.norm(ends_b, axis=1)
    )
    colour = cos < COLOUR_COS
    triplets, cells = triplets[colour], cells[colour]
    if len(triplets) > MAX_TRIPLETS:
        chosen = np.sort(np.random.default_rng(seed).choice(len(triplets), MAX_TRIPLETS,
                                                            replace=False))  # fmt: skip
        triplets, cells = triplets[chosen], cells[chosen]
    return torch.from_numpy(triplets.astype(np.int64)), torch.from_numpy(cells.astype(np.int64))


def bend(g: Tensor, triplets: Tensor) -> Tensor:
    """How far curves ``g`` (K, 256) leave the triplets' middles off their edges: the mean
    log relative distance (module doc), (K,). Lower is straighter."""
    a, m, b = (g[:, triplets[:, i]].exp() for i in range(3))  # (K, N, 3) each
    edge, middle = b - a, m - a
    distance = torch.linalg.cross(middle, edge, dim=-1).norm(dim=-1)
    return (distance / edge.square().sum(-1) + FLOOR).log().mean(dim=1)


BANK_FILE = "tables/calibration-bank.safetensors"  # in the package: build_bank()'s output


def build_bank() -> dict[str, Tensor]:
    """The curve bank: ``mean`` (256,) and ``basis`` (C, 256) of :func:`fit_basis`, ``curves``
    (K, 256) of the training family, sRGB first, and their ``coefficients`` (K, C). Computing
    it takes about 1 s (thousands of curves inverted numerically), so the package ships it
    (``python scripts/make_calibration_bank.py``; a test checks the two agree)."""
    mean, basis = fit_basis()
    rng = np.random.default_rng(0)
    curves = [srgb_log_inverse().numpy()] + [
        sample_curve(rng, "train").log_inverse() for _ in range(BANK_SIZE)
    ]
    curves = normalised(torch.from_numpy(np.stack(curves)).float())
    coefficients = (curves - mean) @ basis.T  # the basis rows are orthonormal
    return {"mean": mean, "basis": basis, "curves": curves, "coefficients": coefficients}


@functools.lru_cache(maxsize=1)
def _bank() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(mean, basis, curves, coefficients) of the shipped :func:`build_bank` file."""
    bank = load_file(str(resources.files("hdrsyn") / BANK_FILE))
    # copies in freshly allocated memory: matrix products on the loaded buffers round
    # differently (alignment), which moved measured curves by up to 0.02 on some photos
    return tuple(bank[k].clone() for k in ("mean", "basis", "curves", "coefficients"))


def _curve(mean: Tensor, basis: Tensor, coefficients: Tensor) -> Tensor:
    g = (mean + coefficients @ basis).cummax(dim=-1).values
    return normalised(g)


class _Adam:
    """Adam (Kingma & Ba 2015) as ``torch.optim.Adam`` computes it (β = 0.9, 0.999, ε = 1e-8,
    no weight decay), for the one small tensor of :func:`calibrate`: ``torch.optim`` imports
    torch._dynamo on first use, 1.5 s of every process that measures a curve. Tested against
    ``torch.optim.Adam``."""

    def __init__(self, like: Tensor, lr: float = LEARNING_RATE):
        self.lr, self.t = lr, 0
        self.m, self.v = torch.zeros_like(like), torch.zeros_like(like)

    def step(self, value: Tensor, gradient: Tensor) -> Tensor:
        self.t += 1
        self.m.lerp_(gradient, 0.1)
        self.v.mul_(0.999).addcmul_(gradient, gradient, value=0.001)
        denominator = (self.v.sqrt() / math.sqrt(1 - 0.999**self.t)).add_(1e-8)
        return value.addcdiv(self.m, denominator, value=-self.lr / (1 - 0.9**self.t))


def calibrate(levels: np.ndarray) -> Tensor | None:
    """The photo's log inverse response from its colour edges (module doc).

    Args:
        levels: ``(H, W, 3)`` integer levels 0…255 of a losslessly stored photo.

    Returns:
        ``g`` (256,) normalised to ``g(128) = 0``, or None when the photo has fewer than
        :data:`MIN_TRIPLETS` colour-edge triplets or they lie in fewer than :data:`MIN_CELLS`
        cells of a GRID × GRID grid (one or two edges: too little to go on).
    """
    triplets, cells = edge_triplets(levels)
    if len(triplets) < MIN_TRIPLETS or len(cells.unique()) < MIN_CELLS:
        return None
    mean, basis, curves, coefficients = _bank()
    with torch.no_grad():
        best = int(bend(curves, triplets).argmin())
    anchor = curves[best]
    found = coefficients[best].clone()
    adam = _Adam(found)
    for _ in range(STEPS):
        with torch.enable_grad():
            found.requires_grad_(True)
            g = _curve(mean, basis, found)
            loss = bend(g[None], triplets)[0] + STRENGTH * (g - anchor).square().mean()
            (gradient,) = torch.autograd.grad(loss, found)
        found = adam.step(found.detach(), gradient).clamp_(-_MAX_COEFFICIENT, _MAX_COEFFICIENT)
    with torch.no_grad():
        g = _curve(mean, basis, found)
        if not torch.isfinite(g).all():
            g = anchor
        refined, srgb = bend(torch.stack([g, curves[0]]), triplets)
    return curves[0].clone() if srgb - refined < SRGB_MARGIN else g
