r"""The differentiable HDR synthesis layer: Debevec–Malik response recovery and merge.

Notation follows Kim et al. 2021 (arXiv 2006.15833), which follows Debevec & Malik 1997:
``Z`` is a pixel level in 0…255, ``g(Z) = ln f^{-1}(Z)`` the log inverse camera response
(256 entries per colour channel, ``g(128) = 0``), ``EV_j`` the exposure of image ``j`` in stops
(exposure time ``Δt_j = 2^{EV_j}``), ``E`` the scene radiance on a relative scale.

How a continuous image maps to the 256 levels. Networks output ``z`` in [0, 1]; its real-valued
level is ``Z = 255·z``. The layer reads ``g`` as the piecewise-linear curve through the 256 points
``(k, g(k))``, so ``ĝ(Z)`` is exact at integer levels (8-bit inputs give exactly the table values)
and continuous between them. Its derivative is Eq. 3: on the segment ``(k−1, k]`` it is
``g(k) − g(k−1)``; at ``Z = 0`` it is the one-sided right derivative ``g(1) − g(0)`` (the
paper writes ``g(0)``, whose sign is wrong for every increasing curve); times 255 for the
``z`` scale.
Levels within 10⁻³ of an integer count as that integer, so float images made from 8-bit files
get the one-sided slope of Eq. 3 exactly. Outside [0, 1] the input is clamped and gets no
gradient. The weights ``w(Z)`` use the nearest integer level and are constants (no gradient),
and so is the solved ``g``: the gradient flows through ``ĝ`` only, as in the paper.

References:
    P. E. Debevec, J. Malik. Recovering High Dynamic Range Radiance Maps from Photographs.
    SIGGRAPH 1997. — Eq. (1), (2) below are its Eq. 3 and Eq. 6.
    J. H. Kim, S. Lee, S. Jo, S.-J. Kang. End-to-End Differentiable Learning to HDR Image
    Synthesis for Multi-exposure Images. AAAI 2021, arXiv 2006.15833. — Eq. (1)–(3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import torch
from torch import Tensor

from hdrsyn.curves import LEVELS, MID_LEVEL, normalised
from hdrsyn.errors import HdrsynError

LN2 = math.log(2.0)
DEFAULT_SMOOTHNESS = 100.0  # λ of Eq. 1 per 70 samples: chosen on realistic brackets (hdr-layer.md)
REFERENCE_SAMPLES = 70  # OpenCV's CalibrateDebevec samples: λ means what it means there
MONOTONE_STEP = 1e-3  # the smallest rise of g per level after the monotone fit (ln exposure)
_SNAP = 1e-3  # levels this close to an integer count as that integer


def hat_weights(dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    r"""The Debevec–Malik hat weight ``w(Z) = Z`` for ``Z ≤ 127``, ``255 − Z`` above.

    Zero at 0 and 255, so clipped pixels carry no information; the same table as OpenCV's
    ``MergeDebevec``.

    Returns:
        ``(256,)`` tensor.
    """
    levels = torch.arange(LEVELS, device=device)
    return torch.where(levels <= 127, levels, 255 - levels).to(dtype)


def _segments(z: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
    """Split images into Eq. 3 segments.

    Returns:
        ``(upper, fraction, nearest)``: the uint8 level ``k`` whose segment ``(k − 1, k]`` holds
        ``Z = 255·z`` (clamped to [0, 255]), ``Z − k`` in (−1, 0] (``None`` for uint8 input,
        whose levels are exact), and the nearest uint8 level for the weights; tables are read
        at these levels with :func:`look_up`.
    """
    if z.dtype == torch.uint8:
        return z, None, z
    position = (z * 255).clamp_(0, 255)
    upper = (position - _SNAP).ceil_().clamp_(min=0)
    nearest = position.round().to(torch.uint8)
    return upper.to(torch.uint8), position.sub_(upper), nearest


_LUT_DTYPES = (torch.float32, torch.float64)  # what OpenCV's LUT takes of ours


def look_up(table: Tensor, levels: Tensor, out: Tensor | None = None) -> Tensor:
    """``table[levels]`` for a (256,) table and uint8 levels (any shape), written into ``out``
    if given: OpenCV's LUT on the CPU for float32/float64 tables and levels of at most two
    dimensions (3–10× torch's indexing; the merge's hot loop, reconstruct's full-size prior),
    ``take`` elsewhere. No gradient flows to ``table`` (the merge's backward differentiates
    with respect to the images only)."""
    table = table.detach() if out is None else table.detach().to(out.dtype)
    if levels.device.type == "cpu" and levels.dim() <= 2 and table.dtype in _LUT_DTYPES:
        table = table.contiguous()
        if out is None:
            return torch.from_numpy(cv2.LUT(levels.numpy(), table.numpy()))
        cv2.LUT(levels.numpy(), table.numpy(), dst=out.numpy())  # dst: same type and shape
        return out
    values = table.take(levels.long())
    return values if out is None else out.copy_(values)


class _MergeDebevec(torch.autograd.Function):
    """ln E of Eq. 2 from ĝ of Eq. 3, in chunks of pixels so that memory and time stay low.

    Backward recomputes each chunk: ∂ln E/∂z_j = 255 · w(Z_j)/Σw · (g(k_j) − g(k_j − 1)).
    With ``pixel_weights`` every channel of a pixel takes the same weight per exposure, the
    smallest of its channels' ``w(Z)`` (the weights are constants of the levels either way).
    """

    @staticmethod
    def forward(ctx, stack, inverse_crf, log_time, weights, fallback_index, exposure_weights,
                pixel_weights):  # fmt: skip
        # stack (B, P, C, H, W); inverse_crf (B, C, 256); log_time (B, P); weights (256,);
        # fallback_index (B, 2): shortest and longest exposure; exposure_weights (B, P).
        ctx.save_for_backward(
            stack, inverse_crf, log_time, weights, fallback_index, exposure_weights
        )
        ctx.pixel_weights = pixel_weights
        batch, exposures, channels, height, width = stack.shape
        dtype = inverse_crf.dtype
        log_radiance = torch.empty(
            batch, channels, height * width, dtype=dtype, device=stack.device
        )
        for b, part, levels, channel_weights in _chunks(stack, weights, pixel_weights):
            for c in range(channels):
                upper, fraction, nearest = _segments(levels[:, c])
                table = inverse_crf[b, c]
                log_exposure = look_up(table, upper)
                if fraction is not None:
                    log_exposure.addcmul_(fraction, look_up(_slopes(table), upper))
                log_exposure.sub_(log_time[b].view(exposures, 1))
                shared = look_up(weights, nearest) if channel_weights is None else channel_weights
                weight = shared * exposure_weights[b].view(exposures, 1)
                total = weight.sum(dim=0)
                merged = (weight * log_exposure).sum(dim=0).div_(total)
                clipped = total == 0
                if _may_hold(clipped):
                    choice = _fallback_choice(nearest, fallback_index[b])
                    fallback = log_exposure.gather(0, choice.unsqueeze(0))[0]
                    merged = torch.where(clipped, fallback, merged)
                log_radiance[b, c, part] = merged
        return log_radiance.view(batch, channels, height, width)

    @staticmethod
    def backward(ctx, grad_output):
        stack, inverse_crf, log_time, weights, fallback_index, exposure_weights = ctx.saved_tensors
        if stack.dtype == torch.uint8 or not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None, None
        batch, exposures, channels, height, width = stack.shape
        grad_stack = torch.zeros_like(stack)
        grad_view = grad_stack.view(batch, exposures, channels, height * width)
        grad_flat = grad_output.reshape(batch, channels, height * width)
        for b, part, levels, channel_weights in _chunks(stack, weights, ctx.pixel_weights):
            for c in range(channels):
                z = levels[:, c]
                upper, _, nearest = _segments(z)
                shared = look_up(weights, nearest) if channel_weights is None else channel_weights
                weight = shared * exposure_weights[b].view(exposures, 1)
                total = weight.sum(dim=0)
                clipped = total == 0
                share = weight / torch.where(clipped, torch.ones_like(total), total)
                if _may_hold(clipped):  # the fallback exposure takes the whole gradient
                    choice = _fallback_choice(nearest, fallback_index[b])
                    chosen = torch.arange(exposures, device=upper.device).unsqueeze(1) == choice
                    share = torch.where(clipped, chosen.to(share.dtype), share)
                inside = (z >= 0) & (z <= 1)  # clamped inputs get no gradient
                slope = look_up(_slopes(inverse_crf[b, c]), upper)  # Eq. 3
                grad_view[b, :, c, part] = grad_flat[b, c, part] * share * slope * 255 * inside
        return grad_stack, None, None, None, None, None, None


_CHUNK = 1 << 16  # pixels per chunk: the working set of one chunk stays in cache


def _chunks(stack: Tensor, weights: Tensor, pixel_weights: bool):
    """Yield ``(b, pixel slice, (P, C, n) view, weight)`` over the stack, a chunk of pixels at
    a time; with ``pixel_weights`` the (P, n) weight every channel takes, the smallest of the
    channels' ``w(Z)`` (else None: each channel reads its own, one channel at a time, which
    keeps the working set in cache)."""
    batch, exposures, channels, height, width = stack.shape
    flat = stack.reshape(batch, exposures, channels, height * width)
    for b in range(batch):
        for start in range(0, height * width, _CHUNK):
            part = slice(start, min(start + _CHUNK, height * width))
            smallest = None
            if pixel_weights:
                for c in range(channels):
                    weight = look_up(weights, _levels(flat[b, :, c, part]))
                    smallest = weight if smallest is None else torch.minimum(smallest, weight)
            yield b, part, flat[b, :, :, part], smallest


def _slopes(table: Tensor) -> Tensor:
    """Eq. 3 per level: g(k) − g(k − 1), and at level 0 the one-sided right derivative
    g(1) − g(0). (The paper writes g(0) there, which is negative for any curve with
    f⁻¹(0) < f⁻¹(128): it would make a brighter pixel darker.)"""
    slopes = table.diff(prepend=table[:1])
    slopes[0] = slopes[1]
    return slopes


def _may_hold(mask: Tensor) -> bool:
    """Whether a boolean mask may hold a True: read on the CPU, where that costs nothing, and
    assumed elsewhere, where reading it would wait for the device (and cannot be captured in a
    CUDA graph); the code it guards must then be right for an all-False mask too."""
    return mask.device.type != "cpu" or bool(mask.any())


def _fallback_choice(nearest: Tensor, shortest_longest: Tensor) -> Tensor:
    """Exposure used where all are clipped: the shortest if it is bright, else the longest
    (per pixel; ``nearest`` (P, n) levels, ``shortest_longest`` (2,) exposure indices)."""
    bright = nearest.index_select(0, shortest_longest[:1])[0] >= MID_LEVEL
    return torch.where(bright, shortest_longest[0], shortest_longest[1])


def _levels(z: Tensor) -> Tensor:
    """Nearest 8-bit level of an image in [0, 1] (uint8 images pass through) as uint8."""
    if z.dtype == torch.uint8:
        return z
    return (z.detach() * 255).round_().clamp_(0, 255).to(torch.uint8)


def _sample_pixels(reference: Tensor, n_samples: int) -> Tensor:
    """Pick ``n_samples`` pixel indices per image and channel, deterministically.

    Half lie on a regular spatial grid; half are stratified over intensity: for levels evenly
    spaced between the darkest and brightest grid pixel of the reference exposure, the grid
    pixel nearest in level. So the samples cover both the image and the tonal range.

    Args:
        reference: levels of the reference exposure, :math:`(B, C, H, W)`.

    Returns:
        flat pixel indices :math:`(B, C, N)`.
    """
    batch, channels, height, width = reference.shape
    device = reference.device
    rows, cols = min(height, 64), min(width, 64)
    ys = ((torch.arange(rows, device=device) + 0.5) * height / rows).long()
    xs = ((torch.arange(cols, device=device) + 0.5) * width / cols).long()
    grid = (ys[:, None] * width + xs[None, :]).reshape(-1)
    n_grid = n_samples // 2
    n_tonal = n_samples - n_grid
    spatial = grid[torch.linspace(0, grid.numel() - 1, n_grid, device=device).round().long()]
    spatial = spatial.expand(batch, channels, n_grid)

    values = reference.reshape(batch, channels, -1)[:, :, grid].double()  # (B, C, grid)
    sorted_values, order = values.sort(dim=-1, stable=True)
    fractions = torch.linspace(0, 1, n_tonal, device=device, dtype=torch.float64)
    low, high = sorted_values[..., :1], sorted_values[..., -1:]
    targets = low + (high - low) * fractions
    rank = torch.searchsorted(sorted_values.contiguous(), targets.contiguous())
    tonal = grid[order.gather(-1, rank.clamp_(max=grid.numel() - 1))]
    return torch.cat([spatial, tonal], dim=-1)


def default_sample_count(n_exposures: int) -> int:
    """Samples per channel: twice Debevec & Malik's minimum ``N(P − 1) > 255``, at least 128."""
    return max(128, math.ceil(2 * 256 / (n_exposures - 1)))


@torch.no_grad()
def solve_inverse_crf(
    stack: Tensor,
    evs: Tensor,
    *,
    smoothness: float = DEFAULT_SMOOTHNESS,
    weights: Tensor | None = None,
    n_samples: int | None = None,
    sample_index: Tensor | None = None,
    monotone: bool = True,
) -> Tensor:
    r"""Recover the log inverse response ``g`` per channel by least squares (Eq. 1).

    .. math::
        O = \sum_i \sum_j \{w(Z_{ij})[g(Z_{ij}) - \ln E_i - EV_j \ln 2]\}^2
            + λ^2 \frac{N}{70} \sum_{z=1}^{254} [w(z)\, g''(z)]^2, \qquad g(128) = 0

    with ``g''(z) = g(z−1) − 2g(z) + g(z+1)`` and ``N`` samples per channel. The factor
    ``N / 70`` keeps the balance of data and smoothness independent of the sample count: λ
    weighs as it does in OpenCV's ``CalibrateDebevec`` (70 samples), whatever ``N`` is (the
    data term grows with ``N``; unscaled, the 128 samples of a bracket of 8 smoothed less than
    OpenCV at the same λ). Solved in float64 from the normal equations (Cholesky, least squares
    if that fails; ``torch.linalg``, batched, any device); a 10⁻¹⁰ relative ridge keeps samples
    that are clipped in every exposure from making the system singular. With ``monotone`` the
    solution is then fitted by :func:`monotone_fit` (docs/hdr-layer.md).

    Args:
        stack: :math:`(B, P, C, H, W)`, uint8 levels or floats in [0, 1] (rounded to levels).
        evs: exposures in stops :math:`(B, P)`.
        smoothness: λ.
        weights: ``(256,)`` weight table, default :func:`hat_weights`.
        n_samples: pixels per channel; default :func:`default_sample_count`.
        sample_index: flat pixel indices :math:`(B, C, N)` to use instead of choosing them.
        monotone: make ``g`` rise with the level (:func:`monotone_fit`); False: Eq. 1 alone.

    Returns:
        ``g`` of shape :math:`(B, C, 256)`, float64.
    """
    return solve_response(stack, evs, smoothness=smoothness, weights=weights,
                          n_samples=n_samples, sample_index=sample_index,
                          monotone=monotone).inverse_crf  # fmt: skip


@dataclass
class ResponseSolve:
    """What :func:`solve_response` found, per stack and channel: ``inverse_crf`` the ``g`` to
    merge with :math:`(B, C, 256)`; ``least_squares`` Eq. 1's own solution before the monotone
    fit (the same when not fitted); ``support`` the samples per channel seen well exposed
    (level 16…239) in at least two exposures :math:`(B, C)`, the data that pins the curve's
    shape down."""

    inverse_crf: Tensor
    least_squares: Tensor
    support: Tensor

    def warnings(self, names: Sequence[str] = ("red", "green", "blue")) -> list[str]:
        """One line per channel of the first stack whose curve looks unreliable: Eq. 1's
        solution fell by more than :data:`UNRELIABLE_DROP` somewhere (noise or JPEG error the
        smoothness did not absorb; the monotone fit hides it but cannot repair it), or fewer
        than :data:`MIN_SUPPORT` samples pin it down."""
        lines = []
        for c, name in enumerate(names):
            drop = largest_drop(self.least_squares[0, c]).item()
            support = int(self.support[0, c])
            if drop > UNRELIABLE_DROP:
                lines.append(
                    f"{name}: the response solve fell by {drop:.2f} in ln exposure before the "
                    "monotone fit (frames noisy, compressed or not aligned); try --align if the "
                    "camera moved, else a larger --smoothness"
                )
            if support < MIN_SUPPORT:
                lines.append(
                    f"{name}: only {support} samples are well exposed in two or more frames "
                    f"(want {MIN_SUPPORT}); the curve is mostly the smoothness prior"
                )
        return lines


UNRELIABLE_DROP = 0.05  # ln exposure: a fall of g this large is an error, not rounding
MIN_SUPPORT = 32  # samples well exposed in ≥ 2 frames, per channel
_WELL_EXPOSED = (16, 239)


@torch.no_grad()
def solve_response(
    stack: Tensor,
    evs: Tensor,
    *,
    smoothness: float = DEFAULT_SMOOTHNESS,
    weights: Tensor | None = None,
    n_samples: int | None = None,
    sample_index: Tensor | None = None,
    monotone: bool = True,
) -> ResponseSolve:
    """:func:`solve_inverse_crf` with what a report needs (:class:`ResponseSolve`); same
    arguments."""
    batch, exposures, channels, height, width = stack.shape
    device = stack.device
    weights = hat_weights(device=device) if weights is None else weights
    weights = weights.to(device, torch.float64)
    evs = evs.to(device, torch.float64)
    if sample_index is None:
        reference = evs.argsort(dim=1)[:, exposures // 2]
        reference_levels = _levels(stack[torch.arange(batch, device=device), reference])
        sample_index = _sample_pixels(
            reference_levels, n_samples or default_sample_count(exposures)
        )
    n = sample_index.shape[-1]
    systems = batch * channels
    unknowns = LEVELS + n

    flat = stack.reshape(batch, exposures, channels, height * width)
    index = sample_index.view(batch, 1, channels, n).expand(batch, exposures, channels, n)
    z = _levels(flat.gather(-1, index)).long()  # (B, P, C, N)
    z = z.permute(0, 2, 3, 1).reshape(systems, n * exposures)  # row r = sample r // P, image r % P
    # The data rows of Eq. 1: row r (sample s = r // P, image j = r % P) holds w at column z_r
    # (g of its level) and −w at column 256 + s (ln E_s), right-hand side w·EV_j·ln 2. Their
    # normal equations AᵀA, Aᵀb are sums of w² over the rows, built by scatter-adds instead of
    # materialising A (two nonzeros per row): a diagonal level block, a diagonal sample block
    # and the level × sample block between them.
    squared = weights[z].square()  # (S, R)
    sample = torch.arange(n * exposures, device=device) // exposures
    log_time = (evs * LN2).repeat_interleave(channels, dim=0).repeat(1, n)  # (S, R): EV_j ln 2
    zeros = torch.zeros(systems, LEVELS, dtype=torch.float64, device=device)
    cross = torch.zeros(systems, LEVELS * n, dtype=torch.float64, device=device)
    cross = cross.scatter_add_(1, z * n + sample, -squared).view(systems, LEVELS, n)
    normal = torch.zeros(systems, unknowns, unknowns, dtype=torch.float64, device=device)
    scaled = smoothness * math.sqrt(n / REFERENCE_SAMPLES)  # rows squared: λ² N / 70
    normal[:, :LEVELS, :LEVELS] = _smoothness_normal(weights, scaled)
    normal[:, :LEVELS, :LEVELS].diagonal(dim1=1, dim2=2).add_(zeros.scatter_add(1, z, squared))
    normal[:, :LEVELS, LEVELS:] = cross
    normal[:, LEVELS:, :LEVELS] = cross.transpose(1, 2)
    normal[:, LEVELS:, LEVELS:].diagonal(dim1=1, dim2=2).copy_(
        squared.view(systems, n, exposures).sum(dim=2)
    )
    weighted = squared * log_time
    target = torch.cat(
        [zeros.scatter_add(1, z, weighted), -weighted.view(systems, n, exposures).sum(dim=2)],
        dim=1,
    )
    ridge = 1e-10 * normal.diagonal(dim1=1, dim2=2).amax(dim=1).clamp_min(1.0)
    normal = normal + ridge.view(-1, 1, 1) * torch.eye(unknowns, dtype=torch.float64, device=device)
    solution = _solve_normal_equations(normal, target)[:, :LEVELS]
    # g + c, ln E + c leave every other term unchanged, so the single g(128) = 0 row only picks
    # the constant, and only softly (its weight 1 is tiny next to λ·w): make it exact.
    least_squares = normalised(solution).reshape(batch, channels, LEVELS)
    inverse_crf = least_squares
    if monotone:
        confidence = zeros.scatter_add(1, z, squared).view(batch, channels, LEVELS)
        inverse_crf = monotone_fit(least_squares, confidence)
    well = (z >= _WELL_EXPOSED[0]) & (z <= _WELL_EXPOSED[1])
    support = (well.view(systems, n, exposures).sum(dim=2) >= 2).sum(dim=1)
    return ResponseSolve(inverse_crf, least_squares, support.view(batch, channels))


def monotone_fit(g: Tensor, confidence: Tensor, step: float = MONOTONE_STEP) -> Tensor:
    r"""The curve nearest to ``g`` that rises by at least ``step`` per level: weighted least
    squares (isotonic regression of ``g(k) − step·k``), weights ``confidence`` per level plus
    10⁻⁶ of their mean, so that levels without data follow their neighbours; then
    ``g(128) = 0`` again.

    Computed by the max–min formula of isotonic regression,
    :math:`\hat y_k = \max_{i \le k} \min_{j \ge k} \bar y_{i..j}` (the weighted means of
    every run of levels, from cumulative sums): a fixed number of tensor operations on
    :math:`(…, 256, 256)`, batched, on any device, no data-dependent loop.

    Args:
        g: :math:`(…, 256)`; confidence: non-negative, same shape (Eq. 1's data weight
            :math:`\sum w^2` per level).
    """
    levels = g.shape[-1]
    ramp = step * torch.arange(levels, dtype=g.dtype, device=g.device)
    y = g - ramp
    weight = confidence.to(g.dtype)
    weight = weight + 1e-6 * weight.mean(dim=-1, keepdim=True).clamp_min(1e-12)
    zero = torch.zeros_like(weight[..., :1])
    total_w = torch.cat([zero, weight.cumsum(-1)], dim=-1)  # (…, 257)
    total_wy = torch.cat([zero, (weight * y).cumsum(-1)], dim=-1)
    # mean[i, j] of levels i…j: (S[j + 1] − S[i]) / (W[j + 1] − W[i])
    mean = (total_wy[..., None, 1:] - total_wy[..., :-1, None]) / (
        total_w[..., None, 1:] - total_w[..., :-1, None]
    )
    upper = torch.ones(levels, levels, dtype=torch.bool, device=g.device).triu()
    mean = mean.masked_fill(~upper, math.inf)  # j < i: no run
    # min over j ≥ k, for each i: a running minimum from the right
    right = mean.flip(-1).cummin(-1).values.flip(-1)
    fitted = right.masked_fill(~upper, -math.inf).amax(dim=-2)  # max over i ≤ k
    return normalised(fitted + ramp)


def largest_drop(g: Tensor) -> Tensor:
    """The largest fall of ``g`` (…, 256) from any level to a higher one, 0 if it never falls:
    how far a curve is from monotone."""
    return (g.cummax(dim=-1).values - g).amax(dim=-1)


def _smoothness_normal(weights: Tensor, smoothness: float) -> Tensor:
    """``PᵀP`` (256, 256) of Eq. 1's rows without data: ``g(128) = 0`` (weight 1) and
    ``λ w(z) g''(z)`` for z = 1…254; their right-hand side is zero."""
    inner = torch.arange(1, LEVELS - 1, device=weights.device)
    rows = torch.zeros(LEVELS - 1, LEVELS, dtype=torch.float64, device=weights.device)
    rows[0, MID_LEVEL].fill_(1.0)  # not `= 1.0`: that copies from the host
    scale = smoothness * weights[inner]
    rows[inner, inner - 1] = scale
    rows[inner, inner] = -2 * scale
    rows[inner, inner + 1] = scale
    return rows.T @ rows


def _solve_normal_equations(normal: Tensor, target: Tensor) -> Tensor:
    """Solve the batched symmetric positive definite systems ``normal x = target`` by Cholesky
    factorisation; a system whose factorisation fails (not numerically positive definite) is
    solved by least squares instead. (A general LU solve raised "pivots must be ≥ 1" once on
    CPU with two threads, issue 12.) While a CUDA graph is being captured the choice cannot
    depend on the values: a failed system's solution is NaN there, so that the loss shows it.

    Args:
        normal: :math:`(S, N, N)`; target: :math:`(S, N)`.
    """
    factor, info = torch.linalg.cholesky_ex(normal)
    # L Lᵀ x = b as two triangular solves: cholesky_solve runs batches through MAGMA on CUDA,
    # which cannot be captured in a CUDA graph (cuBLAS's batched trsm can)
    half = torch.linalg.solve_triangular(factor, target.unsqueeze(-1), upper=False)
    solution = torch.linalg.solve_triangular(factor.mT, half, upper=True).squeeze(-1)
    failed = info != 0
    if normal.is_cuda and torch.cuda.is_current_stream_capturing():
        return solution.masked_fill(failed.unsqueeze(1), math.nan)
    if failed.any():
        fallback = torch.linalg.lstsq(normal[failed], target[failed].unsqueeze(-1)).solution
        solution[failed] = fallback.squeeze(-1)
    return solution


RANGE_SLACK = 1e-3  # float stacks may stray this far outside [0, 1] (resampling overshoot)


def _as_batch(stack: Tensor, evs, check: bool) -> tuple[Tensor, Tensor, bool]:
    if not isinstance(stack, Tensor):
        raise HdrsynError(f"stack: expected a torch.Tensor, got {type(stack).__name__}")
    batched = stack.dim() == 5
    if stack.dim() not in (4, 5) or stack.shape[-3] != 3:
        raise HdrsynError(
            f"stack: expected shape (P, 3, H, W) or (B, P, 3, H, W), got {tuple(stack.shape)}"
        )
    if not (stack.dtype == torch.uint8 or stack.is_floating_point()):
        raise HdrsynError(f"stack: expected uint8 levels or floats in [0, 1], got {stack.dtype}")
    if check and stack.is_floating_point() and stack.numel():
        low, high = torch.aminmax(stack.detach())
        if not (torch.isfinite(low) and torch.isfinite(high)):
            raise HdrsynError("stack: holds NaN or infinite values")
        if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
            raise HdrsynError(
                f"stack: float values must lie in [0, 1], got {low.item():g}…{high.item():g} "
                "(8-bit levels: pass a uint8 tensor)"
            )
    if not batched:
        stack = stack.unsqueeze(0)
    exposures = stack.shape[1]
    if exposures < 2:
        raise HdrsynError(f"stack: merging needs at least 2 exposures, got {exposures}")
    evs = torch.as_tensor(evs, dtype=torch.float64, device=stack.device)
    if evs.dim() == 1:
        evs = evs.unsqueeze(0).expand(stack.shape[0], -1)
    if evs.dim() != 2 or evs.shape[1] != exposures:
        raise HdrsynError(f"evs: {evs.shape[-1]} exposure values given for {exposures} images")
    if evs.shape[0] != stack.shape[0]:
        raise HdrsynError(f"evs: {evs.shape[0]} rows given for a batch of {stack.shape[0]} stacks")
    if check and not torch.isfinite(evs).all():
        raise HdrsynError("evs: exposure values must be finite")
    if check and (evs.sort(dim=1).values.diff(dim=1) == 0).any():
        raise HdrsynError("evs: two images have the same exposure value")
    return stack, evs, batched


def merge_exposures(
    stack: Tensor,
    evs: Tensor | Sequence[float],
    *,
    inverse_crf: Tensor | None = None,
    smoothness: float = DEFAULT_SMOOTHNESS,
    weights: Tensor | None = None,
    n_samples: int | None = None,
    exposure_weights: Tensor | Sequence[float] | None = None,
    pixel_weights: bool = False,
    monotone: bool = True,
    check: bool = True,
) -> tuple[Tensor, Tensor]:
    r"""Merge a bracketed exposure stack into radiance: Eq. 1 solve, then Eq. 2, differentiably.

    .. math::
        \ln E = \frac{\sum_j w(Z_j)\,(\hat g(Z_j) - EV_j \ln 2)}{\sum_j w(Z_j)}    \quad (Eq. 2)

    Where every exposure of a pixel is clipped (``Σ w = 0``), the pixel takes the value of the
    shortest exposure if it is bright there (level ≥ 128: over-exposed everywhere), else of the
    longest (under-exposed everywhere). The radiance scale is relative: a level-128 pixel at
    EV 0 has ``E = 1``.

    Args:
        stack: :math:`(P, 3, H, W)` or :math:`(B, P, 3, H, W)`, floats in [0, 1] (differentiable)
            or uint8 levels (memory-light; no gradient).
        evs: :math:`(P,)` or :math:`(B, P)` exposure values in stops, distinct and finite.
        inverse_crf: known ``g`` of shape :math:`(3, 256)` or :math:`(B, 3, 256)`; skips Eq. 1.
        smoothness: λ of Eq. 1 (per 70 samples, :func:`solve_inverse_crf`).
        weights: ``(256,)`` weight table, default :func:`hat_weights`.
        n_samples: pixels per channel for Eq. 1, default :func:`default_sample_count`.
        monotone: fit the solved ``g`` to rise with the level (:func:`monotone_fit`).
        exposure_weights: :math:`(P,)` or :math:`(B, P)` positive factors on each image's
            ``w(Z)`` in Eq. 2 (default all 1, Eq. 2 as printed): e.g. a measured photo among
            generated exposures, whose error is far smaller, weighs more (docs/hdr-layer.md).
        pixel_weights: weigh every channel of a pixel alike in Eq. 2, by the smallest of its
            channels' ``w(Z)``, so that all three come from the same exposures. Per-channel
            weights (False, Eq. 2 as printed and OpenCV's ``MergeDebevec``) draw a
            near-white pixel's channels from different exposures wherever one channel
            clips before the others, and each exposure's noise and JPEG error then show as
            single-pixel colour speckles (docs/hdr-layer.md). ``hdrsyn merge`` uses True.
        check: read the values (the stack's range, distinct finite EVs, positive exposure
            weights) and refuse bad ones. Each check waits for the device, and none can run in
            a captured CUDA graph: ``False`` skips them, for stacks a model made (shapes and
            dtypes are always checked).

    Returns:
        ``(radiance, inverse_crf)``: radiance :math:`(3, H, W)` or :math:`(B, 3, H, W)` and
        the log inverse response ``g`` :math:`(3, 256)` or :math:`(B, 3, 256)`, in the stack's
        float dtype (float32 for uint8 stacks).

    Example:
        >>> stack = torch.rand(7, 3, 32, 32)
        >>> radiance, g = merge_exposures(stack, torch.arange(-3.0, 4.0))
        >>> radiance.shape, g.shape
        (torch.Size([3, 32, 32]), torch.Size([3, 256]))
    """
    stack, evs, batched = _as_batch(stack, evs, check)
    batch, exposures = stack.shape[:2]
    dtype = stack.dtype if stack.is_floating_point() else torch.float32
    if inverse_crf is None:
        inverse_crf = solve_inverse_crf(stack, evs, smoothness=smoothness, weights=weights,
                                        n_samples=n_samples, monotone=monotone)  # fmt: skip
    else:
        inverse_crf = inverse_crf.to(stack.device).detach()
        if inverse_crf.dim() == 2:
            inverse_crf = inverse_crf.unsqueeze(0).expand(batch, -1, -1)
        if inverse_crf.shape != (batch, 3, LEVELS):
            raise HdrsynError(
                f"inverse_crf: expected shape (3, 256) or ({batch}, 3, 256), "
                f"got {tuple(inverse_crf.shape)}"
            )
    inverse_crf = inverse_crf.to(dtype).contiguous()
    weights = hat_weights(dtype, stack.device) if weights is None else weights
    weights = weights.to(stack.device, dtype)
    log_time = (evs * LN2).to(dtype)
    fallback_index = torch.stack([evs.argmin(dim=1), evs.argmax(dim=1)], dim=1)
    if exposure_weights is None:
        exposure_weights = torch.ones(batch, exposures, dtype=dtype, device=stack.device)
    exposure_weights = torch.as_tensor(exposure_weights, dtype=dtype, device=stack.device)
    if exposure_weights.dim() == 1:
        exposure_weights = exposure_weights.unsqueeze(0).expand(batch, -1)
    positive = not check or bool((exposure_weights > 0).all())
    if exposure_weights.shape != (batch, exposures) or not positive:
        raise HdrsynError(
            f"exposure_weights: {exposures} positive factors (or {batch} rows of them) needed"
        )
    log_radiance = _MergeDebevec.apply(
        stack.contiguous(), inverse_crf, log_time, weights, fallback_index,
        exposure_weights.contiguous(), pixel_weights,
    )  # fmt: skip
    # in place when no gradient is recorded: a 12 MP radiance is a 144 MB map
    radiance = log_radiance.exp() if log_radiance.requires_grad else log_radiance.exp_()
    if not batched:
        return radiance[0], inverse_crf[0]
    return radiance, inverse_crf
