r"""Losses of Kim et al. 2021 (Eq. 4–7): L1, histogram, edge, μ-law HDR and CoBi.

References:
    J. H. Kim, S. Lee, S. Jo, S.-J. Kang. End-to-End Differentiable Learning to HDR Image
    Synthesis for Multi-exposure Images. AAAI 2021. — Eq. 4 (global), 5 (local), 6–7 (refine).
    X. Zhang, Q. Chen, R. Ng, V. Koltun. Zoom to Learn, Learn to Zoom. CVPR 2019. — CoBi.
    R. Mechrez, I. Talmi, L. Zelnik-Manor. The Contextual Loss for Image Transformation with
    Non-Aligned Data. ECCV 2018. — cosine feature distance with target-mean centring.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from hdrsyn.errors import HdrsynError
from hdrsyn.metrics import align_scale, regions

MU = 5000.0  # μ of the μ-law HDR loss (paper; the official code uses 100)


def l1_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error of two tensors of one shape (e.g. (B, 3, H, W)); a scalar."""
    return (prediction - target).abs().mean()


def soft_histogram(image: Tensor, bins: int = 256) -> Tensor:
    r"""Differentiable histogram: each value is shared linearly between its two nearest bins.

    This is a kernel-density histogram with a triangular kernel one bin wide: the counts
    ``cnt_l`` of Eq. 4, made piecewise linear in the pixel values so that they have gradients.

    Args:
        image: :math:`(B, C, H, W)` in [0, 1].

    Returns:
        :math:`(B, C, bins)`, each histogram summing to 1.
    """
    batch, channels = image.shape[:2]
    position = image.clamp(0, 1).reshape(batch, channels, -1) * (bins - 1)
    lower = position.detach().floor().clamp(max=bins - 2)
    upper_share = position - lower
    histogram = image.new_zeros(batch, channels, bins)
    histogram = histogram.scatter_add(2, lower.long(), 1 - upper_share)
    histogram = histogram.scatter_add(2, lower.long() + 1, upper_share)
    return histogram / position.shape[-1]


def histogram_loss(prediction: Tensor, target: Tensor, bins: int = 256) -> Tensor:
    r"""Eq. 4's histogram term: :math:`\sum_l |cnt_l(\hat I) − cnt_l(I)| / N`, mean over images
    and channels, of two :math:`(B, C, H, W)` images in [0, 1]; a scalar. 0 for equal
    histograms, at most 2 for disjoint ones."""
    difference = soft_histogram(prediction, bins) - soft_histogram(target, bins)
    return difference.abs().sum(dim=-1).mean()


def edge_loss(predicted_edges: Tensor, target_edges: Tensor) -> Tensor:
    """Eq. 5: L1 between predicted edges :math:`(B, 1, H, W)` and the target exposure's Canny
    edges (σ = 2, :func:`hdrsyn.edges.canny_edges`; the training objective computes them once
    per batch, from the data)."""
    return l1_loss(predicted_edges, target_edges)


def mu_law_loss(
    prediction: Tensor, target: Tensor, mu: float = MU, mask: Tensor | None = None
) -> Tensor:
    r"""Eq. 6's HDR term :math:`|\log((1 + μ\hat H)/(1 + μH))|`, mean over pixels.

    Radiance from the HDR layer has a relative scale, so the prediction is first scaled to the
    target by one scalar (:func:`hdrsyn.metrics.align_scale`: the mean log ratio over ``mask``,
    (B, 1, H, W), e.g. the photo's well-exposed pixels; all pixels without one), and both are
    divided by the *target's* maximum. (Normalising each by its own maximum, the paper's "both
    normalised to [0, 1]", lets one pixel, usually a clipped highlight whose value is the
    least known, set the scale of the whole prediction; see docs/losses.md.)
    """
    if mask is None:
        mask = torch.ones_like(target[:, :1], dtype=torch.bool)
    aligned = align_scale(prediction, target, mask)
    peak = target.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return (torch.log1p(mu * aligned / peak) - torch.log1p(mu * target / peak)).abs().mean()


LOG_FLOOR = 1e-6  # relative to the reference's maximum: log radiance is floored here


def highlight_loss(prediction: Tensor, target: Tensor, photo: Tensor, mask: Tensor) -> Tensor:
    r"""Mean :math:`|\ln \hat H − \ln H|` over the photo's clipped pixels (the ``clipped``
    region of :func:`hdrsyn.metrics.regions`: any channel above 0.95), after the scale
    alignment of :func:`mu_law_loss` over ``mask``.

    The μ-law loss divides by the reference's maximum, so it barely sees how bright a blown
    window or lamp is; in log space every stop counts alike. 0 without clipped pixels.

    Args:
        prediction, target: radiance :math:`(B, 3, H, W)`; photo: :math:`(B, 3, H, W)` in
        [0, 1]; mask: :math:`(B, 1, H, W)` pixels for the scale alignment.
    """
    aligned = align_scale(prediction, target, mask)
    floor = LOG_FLOOR * target.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    error = (aligned.clamp_min(floor).log() - target.clamp_min(floor).log()).abs()
    clipped = regions(photo)["clipped"].expand_as(error)
    return (error * clipped).sum() / clipped.sum().clamp_min(1)


# VGG-19 "features" up to relu4_4, laid out as torchvision's so that its state_dict keys load.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512)
_VGG_TAPS = {"relu3_4": 17, "relu4_4": 26}  # indices in torchvision's vgg19().features
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """VGG-19 conv layers to relu4_4, weights from a local file (no download).

    Accepts a safetensors file or a PyTorch state_dict (loaded with ``weights_only=True``) with
    torchvision's key names (``features.0.weight`` …; a bare ``0.weight`` works too).
    """

    def __init__(self, weights: str | os.PathLike):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG19:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)
        self.features.load_state_dict(_load_vgg_state(Path(weights), len(layers)))
        self.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: Tensor) -> list[Tensor]:
        """``image`` (B, 3, H, W) in [0, 1] → [relu3_4 (B, 256, H/4, W/4), relu4_4
        (B, 512, H/8, W/8)]."""
        x = (image - self.mean) / self.std
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _VGG_TAPS.values():
                taps.append(x)
        return taps


def _load_vgg_state(path: Path, n_layers: int) -> dict[str, Tensor]:
    if not path.is_file():
        raise HdrsynError(f"{path}: VGG-19 weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors and torch raise many types for bad files
        raise HdrsynError(f"{path}: not a readable weights file ({error})") from None
    wanted = {}
    for key, value in state.items():  # torchvision's VGG-19: features.N.* and classifier.*
        name = key.removeprefix("features.")
        index = name.split(".")[0]
        if index.isdigit() and int(index) < n_layers:
            wanted[name] = value
    if not wanted:
        raise HdrsynError(f"{path}: no VGG-19 'features.N.weight' tensors found")
    return wanted


class CoBiLoss(nn.Module):
    r"""Contextual bilateral loss (Zhang et al. 2019), the "minimum over candidates" form:

    .. math::
        \mathrm{CoBi}(P, Q) = \frac1N \sum_j \min_i
            \big(d_{cos}(p_i, q_j) + w_s \lVert x_i - x_j \rVert\big)

    with features centred on the target's mean (Mechrez et al. 2018) and positions ``x`` in
    [0, 1]² image coordinates.

    Features: VGG-19 relu3_4 and relu4_4 (summed) when ``vgg_weights`` names a local file;
    otherwise ``patch``×``patch`` RGB patches (the CoBi paper's RGB variant). Every report says
    which (:attr:`features`).

    Memory and time stay bounded: feature maps with more than ``max_points`` positions are
    reduced to at most that many (RGB: the image is area-averaged first; VGG: a regular
    subgrid), and the distance matrix is built ``chunk`` target rows at a time without
    autograd, only to find each target's nearest candidate; the loss is then the distance to
    that candidate, recomputed with autograd (the gradient of a minimum is the gradient of its
    minimiser), so at most ``chunk × max_points`` distances live at once: 1 M floats (4 MB)
    with the defaults, whatever the image size, and nothing of that size is kept for the
    backward pass.
    """

    def __init__(
        self,
        vgg_weights: str | os.PathLike | None = None,
        spatial_weight: float = 0.1,
        patch: int = 5,
        max_points: int = 1024,
        chunk: int = 1024,
    ):
        super().__init__()
        self.vgg = VGG19Features(vgg_weights) if vgg_weights is not None else None
        self.features = "vgg19" if self.vgg is not None else "rgb-patches"
        self.spatial_weight = spatial_weight
        self.patch = patch
        self.max_points = max_points
        self.chunk = chunk

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        """``prediction``, ``target``: :math:`(B, 3, H, W)` in [0, 1]. Returns a scalar."""
        if self.vgg is None:
            pairs = [(self._rgb_patches(prediction), self._rgb_patches(target))]
        else:
            pairs = list(zip(self.vgg(prediction), self.vgg(target), strict=True))
        return sum(self._cobi(*self._subsample(p, q)) for p, q in pairs)

    def _rgb_patches(self, image: Tensor) -> Tensor:
        height, width = image.shape[-2:]
        factor = math.ceil(math.sqrt(height * width / self.max_points))
        if factor > 1:
            image = nn.functional.avg_pool2d(image, factor, ceil_mode=True)
        patches = nn.functional.unfold(image, self.patch, padding=self.patch // 2)
        return patches.view(image.shape[0], -1, *image.shape[-2:])

    def _subsample(self, prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        height, width = prediction.shape[-2:]
        stride = math.ceil(math.sqrt(height * width / self.max_points))
        return prediction[..., ::stride, ::stride], target[..., ::stride, ::stride]

    def _cobi(self, prediction: Tensor, target: Tensor) -> Tensor:
        batch, channels, height, width = prediction.shape
        ys, xs = torch.meshgrid(
            torch.linspace(0, 1, height, device=prediction.device, dtype=prediction.dtype),
            torch.linspace(0, 1, width, device=prediction.device, dtype=prediction.dtype),
            indexing="ij",
        )
        positions = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1)
        centre = target.mean(dim=(2, 3), keepdim=True)
        pred = nn.functional.normalize((prediction - centre).flatten(2), dim=1).transpose(1, 2)
        targ = nn.functional.normalize((target - centre).flatten(2), dim=1).transpose(1, 2)
        with torch.no_grad():
            starts = range(0, targ.shape[1], self.chunk)
            rows = [slice(start, start + self.chunk) for start in starts]
            nearest = torch.cat([
                _nearest_candidate(targ[:, r], positions[r], pred, positions, self.spatial_weight)
                for r in rows
            ], dim=1)  # fmt: skip
        chosen = torch.gather(pred, 1, nearest.unsqueeze(2).expand(-1, -1, pred.shape[2]))
        cosine_distance = 1 - (targ * chosen).sum(dim=2)  # (B, N)
        spatial = (positions - positions[nearest]).norm(dim=2)  # (B, N)
        return (cosine_distance + self.spatial_weight * spatial).mean()


def _nearest_candidate(
    targets: Tensor, target_xy: Tensor, candidates: Tensor, candidate_xy: Tensor, weight: float
) -> Tensor:
    """Index of the candidate (B, n) minimising cosine distance + weight · spatial distance
    (the constant 1 of the cosine distance left out: it does not move the minimum). In the
    inputs' precision even under autocast: bf16 scores would tie candidates 0.004 apart (and
    bf16's argmin is 2× slower on the CPU)."""
    with torch.autocast(targets.device.type, enabled=False):
        spatial = torch.cdist(target_xy, candidate_xy).mul_(weight)  # (n, N)
        scores = torch.baddbmm(spatial, targets, candidates.transpose(1, 2), alpha=-1)  # (B,n,N)
        return scores.argmin(dim=2)
