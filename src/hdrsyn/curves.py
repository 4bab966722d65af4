r"""Camera response curves: the synthetic families, their low-dimensional basis, and the
differentiable lookups that decode a photo through a curve and encode radiance back.

A response ``f`` maps linear exposure ``x`` in [0, 1] (1 = the sensor's clipping point) to a
display value in [0, 1]; ``g(Z) = ln f⁻¹(Z/255)`` is its log inverse over the 256 levels, the
quantity of Debevec & Malik's Eq. 1 and of our HDR layer. A curve's own table is in its
exposure units (``g(255) ≈ 0``: white is exposure 1); estimates and the basis are normalised to
``g(128) = 0`` (the layer's convention: a level-128 pixel has radiance 1). Curves compare by
shape (:func:`curve_rmse` removes the offset), which is all a single photo can tell: its
absolute exposure is unknown.

Kinds (all monotone, ``f(0) = 0``, ``f(1) = 1``):

* ``srgb``: IEC 61966-2-1.
* ``gamma``: ``x^{1/γ}``.
* ``sigmoid``: an S-curve, the logistic ``σ(k(t − ½))`` of ``t = x^{1/γ}`` rescaled to [0, 1].
* ``shoulder``: a camera-like knee ``x(1 + b)/(x + b)``, then ``^{1/γ}`` (the shape of measured
  curves in DoRF/EMoR; Grossberg & Nayar 2003).
* Highlight roll-off, the tone curves of phones and JPEG engines, each ``T(Wx)/T(W)`` with the
  clipping point ``W`` (linear units of the scene, several stops above mid-grey), then sRGB:

  - ``reinhard``: extended Reinhard, ``T(y) = y(1 + y/W²)/(1 + y)`` (Reinhard et al. 2002, Eq. 4);
  - ``hable``: Hable's filmic curve (Uncharted 2, GDC 2010), ``A…F`` constants below;
  - ``aces``: Narkowicz's fit of the ACES reference rendering transform (2016),
    ``T(y) = y(2.51y + 0.03)/(y(2.43y + 0.59) + 0.14)``;
  - ``log``: a log picture profile, ``ln(1 + Kx)/ln(1 + K)`` (no display encoding).

Families: ``train`` and ``test`` draw disjoint parameters, and ``aces`` is in ``test`` only, so
the test family holds a kind of curve that training never saw (docs/data.md).

References:
    M. D. Grossberg, S. K. Nayar. What is the Space of Camera Response Functions? CVPR 2003.
    J. Hable. Uncharted 2: HDR Lighting. GDC 2010.
    K. Narkowicz. ACES Filmic Tone Mapping Curve. 2016 (blog post).
    E. Reinhard, M. Stark, P. Shirley, J. Ferwerda. Photographic Tone Reproduction. SIGGRAPH 2002.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

LEVELS = 256
MID_LEVEL = LEVELS // 2  # g(128) = 0 fixes the unknown scale of E (Debevec & Malik 1997)
G_FLOOR = -10.0  # g is floored at e^-10 of mid-grey (14 stops below): the sensor's noise floor
CURVE_RMSE_LEVELS = (5, 250)  # levels over which curve errors are measured (issue 11)
MID_GREY_DISPLAY = 0.461  # sRGB of 18 % grey: where auto-exposure puts a scene's log average
_DENSE = np.concatenate([[0.0], np.geomspace(1e-8, 1.0, 40000)])  # grid for inverting curves
_HABLE = (0.15, 0.50, 0.10, 0.20, 0.02, 0.30)  # Hable 2010: A, B, C, D, E, F


def _srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _hable(y: np.ndarray) -> np.ndarray:
    a, b, c, d, e, f = _HABLE
    return (y * (a * y + c * b) + d * e) / (y * (a * y + b) + d * f) - e / f


def _aces(y: np.ndarray) -> np.ndarray:
    return y * (2.51 * y + 0.03) / (y * (2.43 * y + 0.59) + 0.14)


def _reinhard(y: np.ndarray, white: float) -> np.ndarray:
    return y * (1 + y / white**2) / (1 + y)


ROLL_OFF = ("reinhard", "hable", "aces", "log")
KINDS = ("srgb", "gamma", "sigmoid", "shoulder", *ROLL_OFF)


@dataclass(frozen=True)
class ResponseCurve:
    """A camera response ``f`` of one of the :data:`KINDS` (module doc). ``gamma`` is the
    display gamma of ``gamma``/``sigmoid``/``shoulder``, ``contrast`` the S-curve's ``k``,
    ``shoulder`` the knee's ``b``, ``white`` the roll-off curves' clipping point ``W`` (or the
    log curve's ``K``)."""

    kind: str
    gamma: float = 2.2
    contrast: float = 0.0
    shoulder: float = 0.0
    white: float = 0.0

    def __call__(self, exposure: np.ndarray) -> np.ndarray:
        x = np.clip(exposure, 0.0, 1.0)
        kind = self.kind
        if kind == "srgb":
            return _srgb(x)
        if kind == "log":
            return np.log1p(self.white * x) / np.log1p(self.white)
        if kind in ("reinhard", "hable", "aces"):
            w = self.white
            if kind == "reinhard":
                return _srgb(_reinhard(w * x, w) / _reinhard(np.float64(w), w))
            tone = _hable if kind == "hable" else _aces
            return _srgb(tone(w * x) / tone(np.float64(w)))
        if kind == "shoulder":
            x = x * (1 + self.shoulder) / (x + self.shoulder)
        t = np.power(x, 1 / self.gamma)
        if kind == "sigmoid":
            k = self.contrast
            low, high = _sigmoid(-k / 2), _sigmoid(k / 2)
            return (_sigmoid(k * (t - 0.5)) - low) / (high - low)
        return t

    def inverse(self, display: np.ndarray) -> np.ndarray:
        """``f⁻¹`` of display values in [0, 1] (any shape; numerically, on a dense log grid)."""
        return np.interp(display, self(_DENSE), _DENSE)

    def log_inverse(self) -> np.ndarray:
        """``g(Z) = ln f⁻¹(Z/255)`` for Z = 0…255, floored :data:`G_FLOOR` below ``g(128)``,
        float32 (256,). Level 255 is read at 254.5, the least a clipped pixel holds. Level 0
        is the floor itself: black pixels of sRGB views of the training scenes hold a median
        1 % of the exposure at level 0.5 (7 stops below; 47 060 pixels of 172 views), below
        the floor, so the floor is the closest to what they hold (docs/data.md)."""
        levels = np.clip(np.arange(LEVELS) / 255.0, 0.5 / 255, 254.5 / 255)
        g = np.log(np.maximum(self.inverse(levels), 1e-30))
        g[0] = -np.inf  # black: at the floor
        return np.maximum(g, g[MID_LEVEL] + G_FLOOR).astype(np.float32)

    @property
    def group(self) -> str:
        """``srgb``, ``roll-off`` (highlights compressed over several stops) or ``other``."""
        return "srgb" if self.kind == "srgb" else "roll-off" if self.kind in ROLL_OFF else "other"

    def describe(self) -> str:
        if self.kind == "srgb":
            return "sRGB"
        if self.kind in ROLL_OFF:
            return f"{self.kind} {'K' if self.kind == 'log' else 'W'}={self.white:.1f}"
        text = f"{self.kind} g={self.gamma:.2f}"
        if self.kind == "sigmoid":
            text += f" k={self.contrast:.1f}"
        if self.kind == "shoulder":
            text += f" b={self.shoulder:.2f}"
        return text


# The two families. Each parameter that shapes a kind has one realistic range, cut into seven
# equal bands (in log for the scale-like W, K, b): training draws from bands 1, 3, 5, 7, testing
# from bands 2, 4, 6, so test curves are new in every parameter yet inside the range that real
# cameras span; and ``aces`` is in ``test`` only, a kind of curve that training never sees.
# Training draws sRGB a third of the time (the commonest camera, and the costliest to mistake:
# read through a roll-off curve, an sRGB photo loses more than a roll-off photo read as sRGB
# gains), the other kinds evenly;
# evaluation cycles through the test kinds in this order.
PARAMETER_RANGES = {
    "gamma": (1.5, 3.0, False),  # (low, high, log scale)
    "contrast": (2.0, 7.0, False),
    "shoulder": (0.08, 3.0, True),
    "reinhard": (2.0, 24.0, True),
    "hable": (3.0, 20.0, True),
    "log": (10.0, 600.0, True),
    "aces": (2.0, 16.0, True),
}
_BANDS = 7
CURVE_FAMILIES = {
    "train": {
        "kinds": ("srgb", "gamma", "sigmoid", "shoulder", "reinhard", "hable", "log"),
        "bands": (0, 2, 4, 6),
    },
    "test": {
        "kinds": ("srgb", "gamma", "sigmoid", "shoulder", "reinhard", "hable", "log", "aces"),
        "bands": (1, 3, 5),
    },
}
_SRGB_SHARE = 1 / 3  # of training curves


def parameter_bands(name: str, family: str) -> list[tuple[float, float]]:
    """The intervals ``family`` draws parameter ``name`` from (see :data:`PARAMETER_RANGES`)."""
    low, high, logarithmic = PARAMETER_RANGES[name]
    if name == "aces":  # held out as a whole kind: its full range, test only
        return [(low, high)]
    if logarithmic:
        low, high = np.log(low), np.log(high)
    edges = np.linspace(low, high, _BANDS + 1)
    bands = [(edges[b], edges[b + 1]) for b in CURVE_FAMILIES[family]["bands"]]
    return [(float(np.exp(a)), float(np.exp(b))) if logarithmic else (a, b) for a, b in bands]


def _draw(rng: np.random.Generator, name: str, family: str) -> float:
    bands = parameter_bands(name, family)
    low, high = bands[rng.integers(len(bands))]
    if PARAMETER_RANGES[name][2]:
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return float(rng.uniform(low, high))


def sample_curve(
    rng: np.random.Generator,
    family: str = "train",
    kind: str | None = None,
    srgb_share: float | None = None,
) -> ResponseCurve:
    """Draw a response curve from the ``train`` or ``test`` family; ``kind`` fixes the kind;
    ``srgb_share`` is the probability of sRGB (default: a third in training, one kind in
    eight in testing)."""
    kinds = CURVE_FAMILIES[family]["kinds"]
    if kind is None:
        others = [k for k in kinds if k != "srgb"]
        share = _SRGB_SHARE if family == "train" else 1 / len(kinds)
        share = share if srgb_share is None else srgb_share
        kind = "srgb" if rng.random() < share else others[rng.integers(len(others))]
    if kind == "srgb":
        return ResponseCurve("srgb")
    if kind in ROLL_OFF:
        return ResponseCurve(kind, white=_draw(rng, kind, family))
    gamma = _draw(rng, "gamma", family)
    if kind == "gamma":
        return ResponseCurve("gamma", gamma)
    if kind == "sigmoid":
        return ResponseCurve("sigmoid", gamma, contrast=_draw(rng, "contrast", family))
    return ResponseCurve("shoulder", gamma, shoulder=_draw(rng, "shoulder", family))


@functools.lru_cache(maxsize=4)
def _fitted_basis(components: int, samples: int, seed: int) -> tuple[Tensor, Tensor]:
    rng = np.random.default_rng(seed)
    curves = np.stack([sample_curve(rng, "train").log_inverse() for _ in range(samples)])
    curves = normalised(curves.astype(np.float64))
    mean = curves.mean(axis=0)
    _, _, rows = np.linalg.svd(curves - mean, full_matrices=False)
    return torch.from_numpy(mean).float(), torch.from_numpy(rows[:components]).float()


def fit_basis(components: int = 8, samples: int = 3000, seed: int = 0) -> tuple[Tensor, Tensor]:
    """PCA of ``g − g(128)`` over curves of the training family (Grossberg & Nayar's EMoR,
    made from our family): ``g ≈ mean + coefficients @ basis``.

    Returns:
        ``(mean (256,), basis (components, 256))``, float32, rows orthonormal.
    """
    mean, basis = _fitted_basis(components, samples, seed)
    return mean.clone(), basis.clone()


def curve_rmse(estimate: Tensor, truth: Tensor) -> Tensor:
    """RMSE of ``g = ln f⁻¹`` over levels 5…250 after removing the best constant offset (a
    single photo fixes the curve's shape, not its exposure scale).

    Args:
        estimate, truth: :math:`(*, 256)`.

    Returns:
        :math:`(*)`.
    """
    low, high = CURVE_RMSE_LEVELS
    difference = (estimate - truth)[..., low : high + 1]
    difference = difference - difference.mean(dim=-1, keepdim=True)
    return difference.pow(2).mean(dim=-1).sqrt()


def normalised(g):
    """``g − g(128)`` over the last axis (tensor or array, any leading shape): log inverse
    responses are known up to a constant (an exposure scale); fixed here as ``g(128) = 0``."""
    return g - g[..., MID_LEVEL : MID_LEVEL + 1]


def srgb_log_inverse() -> Tensor:
    """``g`` of the sRGB curve, (256,) float32, ``g(255) ≈ 0``: what assuming sRGB means."""
    return torch.from_numpy(ResponseCurve("srgb").log_inverse())


# ---------------------------------------------------------------------------------------------
# Differentiable lookups through a table g
# ---------------------------------------------------------------------------------------------
def decode(image: Tensor, g: Tensor) -> Tensor:
    r"""Linear exposure ``f⁻¹(z) = exp ĝ(255 z)`` of an image, ``ĝ`` the piecewise-linear
    curve through the table (exact at integer levels; differentiable in ``z``).

    Args:
        image: :math:`(B, C, H, W)` in [0, 1].
        g: :math:`(B, 256)` log inverse responses (one curve for all channels).

    Returns:
        :math:`(B, C, H, W)` linear exposure, 1 at level 128.
    """
    batch = image.shape[0]
    position = image.clamp(0, 1).reshape(batch, -1) * (LEVELS - 1)
    lower = position.detach().floor().clamp(max=LEVELS - 2).long()
    fraction = position - lower
    g = g.to(image.dtype)
    low, high = g.gather(1, lower), g.gather(1, lower + 1)
    return (low + fraction * (high - low)).exp().view_as(image)


def encode(exposure: Tensor, g: Tensor) -> Tensor:
    r"""The inverse of :func:`decode`: display values in [0, 1] of linear exposure, clipped at
    the curve's white (level 255) and black (level 0). Differentiable in ``exposure``.

    Args:
        exposure: :math:`(B, C, H, W)`, linear, 1 at level 128.
        g: :math:`(B, 256)` non-decreasing log inverse responses.

    Returns:
        :math:`(B, C, H, W)` in [0, 1].
    """
    batch = exposure.shape[0]
    g = g.to(exposure.dtype)
    g = g.cummax(dim=1).values.contiguous()
    log_exposure = exposure.clamp_min(1e-30).log().reshape(batch, -1)
    upper = torch.searchsorted(g, log_exposure.detach().contiguous()).clamp(1, LEVELS - 1)
    low, high = g.gather(1, upper - 1), g.gather(1, upper)
    fraction = (log_exposure - low) / (high - low).clamp_min(1e-8)
    level = (upper - 1).to(exposure.dtype) + fraction.clamp(0, 1)
    return (level / (LEVELS - 1)).view_as(exposure)


CELLS_PER_LEVEL = 16  # reexpose's table: cells per level step of the input


def reexpose(image: Tensor, stops: Tensor, g: Tensor) -> Tensor:
    """``f(2^stops · f⁻¹(image))``: the photo as its camera (response ``g``) would have taken it
    ``stops`` brighter. Right wherever the photo is well exposed; clipped stays clipped.

    The same values as :func:`decode` then :func:`encode` (within 1e-6, float32 rounding), about
    3× faster on the CPU: in the log domain both are piecewise linear and the exposure change is
    a shift, so the whole map is piecewise linear in the input. It is tabulated on a grid of
    :data:`CELLS_PER_LEVEL` cells per level (the decoding's knots fall on cell edges) and read by
    linear interpolation; the few pixels in cells that hold a knot of the encoding (about 6 %)
    take the two-step path. Other devices take the two-step path everywhere (finding those
    pixels would wait on the device).

    Args:
        image: :math:`(B, C, H, W)` in [0, 1]; stops: :math:`(B,)`; g: :math:`(B, 256)`.
    """
    if image.device.type != "cpu":
        return _reexpose_pointwise(image, stops, g)
    rows, unflatten = _rows(image)
    batch, cells = rows.shape[0], (LEVELS - 1) * CELLS_PER_LEVEL
    grid = torch.arange(cells + 1, device=image.device, dtype=image.dtype) / cells
    grid = grid.expand(batch, 1, 1, cells + 1)
    exposure = decode(grid, g) * torch.exp2(stops).view(-1, 1, 1, 1).to(image.dtype)
    table = encode(exposure, g).view(batch, cells + 1)
    # a cell is one linear piece unless the encoding's segment changes across it
    knots = g.to(image.dtype).cummax(dim=1).values.contiguous()
    segment = torch.searchsorted(knots, exposure.detach().clamp_min(1e-30).log().view(batch, -1))
    kinked = segment[:, 1:] != segment[:, :-1]
    # (value, slope) per cell; a last cell past 1 so that the input 1 needs no clamp of the cell
    slope = torch.cat([table.diff(dim=1), table.new_zeros(batch, 1)], dim=1)
    kinked = torch.cat([kinked, kinked.new_zeros(batch, 1)], dim=1)
    position = rows.clamp(0, 1) * cells
    cell = position.detach().long()  # floor: positions are not negative
    out = torch.addcmul(table.gather(1, cell), position.frac(), slope.gather(1, cell))
    flagged = kinked.gather(1, cell)
    for index in range(batch):
        which = flagged[index].nonzero()[:, 0]
        if len(which):
            values = rows[index, which].view(1, 1, 1, -1)
            exact = _reexpose_pointwise(values, stops[index : index + 1], g[index : index + 1])
            out[index].index_copy_(0, which, exact.view(-1))
    return unflatten(out)


def _reexpose_pointwise(image: Tensor, stops: Tensor, g: Tensor) -> Tensor:
    """:func:`reexpose` by its definition, pixel by pixel: decode, scale, encode."""
    scale = torch.exp2(stops).view(-1, 1, 1, 1).to(image.dtype)
    return encode(decode(image, g) * scale, g)


def _rows(image: Tensor):
    """``image`` (B, …) as rows (B, N) in its memory order (no copy for a contiguous or a
    channels_last image), and the function that turns rows back into the image's shape."""
    if image.dim() == 4 and not image.is_contiguous():
        if image.is_contiguous(memory_format=torch.channels_last):
            nhwc = image.permute(0, 2, 3, 1)
            return nhwc.reshape(len(image), -1), lambda rows: rows.view(nhwc.shape).permute(
                0, 3, 1, 2
            )
    return image.reshape(len(image), -1), lambda rows: rows.view(image.shape)
