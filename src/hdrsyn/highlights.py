"""Clipped light's brightness: a boost per clipped region, predicted from what surrounds it.

Where a photo clips, the stack generator and the merge give back a fraction of a stop; the
truth is often several stops brighter, and how much varies with the region (a sun against a
bright sky wall). Each connected region of clipped pixels (brightest channel at 255 on a copy
of at most :data:`ANALYSIS_PIXELS`) is described by a few numbers (:data:`FEATURES`: its size
and shape, how bright and how steep its surroundings are, how far the reconstruction already
lifts it, how much of the photo clips). A small ensemble of perceptrons
(:class:`~hdrsyn.ensemble.Ensemble`, trained by ``scripts/highlight_regions.py`` on views of
the training scenes only, to the best PU21-PSNR of each view, each member on its own half of
the views) maps them to a boost (ln): the members' mean less ``caution`` times their spread, so
that a region unlike most of the training's gets less (:func:`predicted`). How strongly it is
used was chosen by how it did on training scenes it was not fitted on (the script's
leave-one-scene-out cross-validation): gently, since the features tell a lamp from a sky barely
above white poorly. The reconstruction
is raised by κ times that over the region and the bright pixels around it (:func:`zones`); κ,
the caution and the steepness below are stored with the weights. From the zone's edge inwards
the boost may rise by :data:`RATE` per pixel of the analysis copy or, where that is faster, by
as much per pixel as the light rose towards the region in the photo times the steepness
(:func:`region_rates`, :func:`rise`): a lamp against a dark wall or a window in its frame takes
its boost within a few pixels, a sky blown smoothly rises gently and gets no contour, no boost
makes a step where the photo has none. It passes from one region's boost to a neighbour's by at
most :data:`RATE` per pixel, so a blown window clipped in pieces has no seams
(:func:`painted`); softened (Gaussian σ = 1 pixel); luminance only, so hues stay the photo's.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from scipy import ndimage, sparse
from scipy.sparse import csgraph
from torch import Tensor

from hdrsyn.ensemble import Ensemble
from hdrsyn.errors import HdrsynError
from hdrsyn.io import read_weights
from hdrsyn.metrics import alignment_mask
from hdrsyn.tonemap import REC709_LUMA, srgb_decode

ANALYSIS_PIXELS = 256 * 256  # the regions are found and described on a copy of this size
CLIPPED = 254.5 / 255  # a pixel whose brightest channel reaches this is clipped
BRIGHT = 0.9  # a region's boost covers the pixels around it whose brightest channel reaches this
RATE = 0.03  # the boost (ln) may always change by this much per analysis pixel, and no more
# between regions or where the light crept up to white
RING, OUTER = 3, 10  # pixels (analysis copy) of the near and far rings around a region
WEIGHTS_FILE = "tables/highlights.safetensors"
FEATURES = (
    "log area share",  # ln(region pixels / image pixels)
    "log depth",  # ln(largest distance from the region's edge / image diagonal)
    "near dark",  # 1 - mean brightest channel of the photo in the near ring
    "near slope",  # mean |∇ ln L| of the linearised photo in the near ring
    "white share",  # share of the region's pixels with all three channels clipped
    "lift",  # how far the reconstruction lifts the region above the linearised photo (ln)
    "log clipped share",  # ln(share of the image's pixels that clip)
    "mean level",  # the photo's mean value
    "near saturation",  # mean (max − min) / max of the photo's channels in the near ring
    "compactness",  # ln(area / (π depth²)): 0 for a disc, larger for thin or ragged shapes
    "height",  # the region's mean row / image height (0 at the top)
    "at top",  # 1 if the region touches the top edge
    "falloff",  # mean ln L of the linearised photo, near ring minus far ring
    "bright share",  # share of the image's pixels with the brightest channel above 0.8
    "far dark",  # 1 - mean brightest channel of the photo in the far ring
)


def _luminance(image: np.ndarray) -> np.ndarray:
    return np.tensordot(np.asarray(REC709_LUMA), image, axes=1)


def _ring_means(values: list[np.ndarray], ring_labels: np.ndarray, index: np.ndarray,
                fallback: list[np.ndarray]) -> list[np.ndarray]:  # fmt: skip
    count = ndimage.sum_labels(np.ones_like(ring_labels, dtype=np.float64), ring_labels, index)
    return [np.where(count > 0, ndimage.sum_labels(v, ring_labels, index) / np.maximum(count, 1),
                     f) for v, f in zip(values, fallback, strict=True)]  # fmt: skip


def clipped_regions(photo: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels (h, w) of the 8-connected regions of clipped pixels of a (3, h, w) photo in
    [0, 1] (0 outside), and how many there are."""
    clipped = photo.max(axis=0) >= CLIPPED
    labels, count = ndimage.label(clipped, structure=np.ones((3, 3)))
    return labels, count


def region_features(photo: np.ndarray, radiance: np.ndarray,
                    labels: np.ndarray, count: int) -> np.ndarray:  # fmt: skip
    """(count, len(FEATURES)) float64: each clipped region of ``labels`` described (see
    :data:`FEATURES`). ``photo`` (3, h, w) in [0, 1], ``radiance`` (3, h, w) its
    reconstruction at the same size."""
    height, width = labels.shape
    if count == 0:
        return np.zeros((0, len(FEATURES)))
    index = np.arange(1, count + 1)
    clipped = labels > 0
    photo = photo.astype(np.float64)
    brightest, darkest = photo.max(axis=0), photo.min(axis=0)
    depth = ndimage.distance_transform_edt(clipped)
    outside, (rows, cols) = ndimage.distance_transform_edt(~clipped, return_indices=True)
    nearest = labels[rows, cols]
    near = np.where((outside > 0) & (outside <= RING), nearest, 0)
    far = np.where((outside > RING) & (outside <= OUTER), nearest, 0)
    log_linear = np.log(np.maximum(_luminance(srgb_decode(torch.from_numpy(photo)).numpy()),
                                   1e-6))  # fmt: skip
    slope = np.hypot(*np.gradient(log_linear))
    saturation = (brightest - darkest) / np.maximum(brightest, 1e-3)
    near_level, near_slope, near_saturation, near_log = _ring_means(
        [brightest, slope, saturation, log_linear], near, index,
        [np.ones(count), np.zeros(count), np.zeros(count), np.zeros(count)])  # fmt: skip
    far_level, far_log = _ring_means([brightest, log_linear], far, index, [near_level, near_log])
    area = ndimage.sum_labels(np.ones_like(depth), labels, index)
    deepest = ndimage.maximum(depth, labels, index)
    lift_map = np.log(np.maximum(_luminance(radiance.astype(np.float64)), 1e-12)) - log_linear
    reference = np.median(lift_map[alignment_mask(torch.from_numpy(photo)[None])[0, 0].numpy()])
    row = np.broadcast_to(np.arange(height)[:, None] / height, labels.shape)
    columns = [
        np.log(area / (height * width)),
        np.log(deepest / np.hypot(height, width)),
        1 - near_level,
        near_slope,
        ndimage.mean(darkest >= CLIPPED, labels, index),
        ndimage.mean(lift_map, labels, index) - reference,
        np.full(count, np.log(clipped.mean())),
        np.full(count, photo.mean()),
        near_saturation,
        np.log(area / (np.pi * deepest**2)),
        ndimage.mean(row, labels, index),
        (ndimage.minimum(row, labels, index) == 0).astype(np.float64),
        near_log - far_log,
        np.full(count, (brightest > 0.8).mean()),
        1 - far_level,
    ]
    return np.stack(columns, axis=1)


class Boost(NamedTuple):
    """A region model and how it is used: ``kappa`` scales its predictions, ``caution`` how
    many of its members' standard deviations are taken off their mean (:func:`predicted`),
    ``steepness`` how fast the boost may rise (:func:`region_rates`)."""

    net: Ensemble
    kappa: float
    steepness: float
    caution: float = 0.0


_SHIPPED: Boost | None = None


def load_boost(path: str | Path | None = None) -> Boost:
    """The boost network, its strength κ, steepness and caution, from ``path`` or the
    package's own table."""
    global _SHIPPED
    if path is None and _SHIPPED is not None:
        return _SHIPPED
    file = Path(path) if path else Path(str(resources.files("hdrsyn") / WEIGHTS_FILE))
    state, metadata = read_weights(file)
    try:
        config = json.loads(metadata["config"])
        net = Ensemble(config["members"], config["hidden"], len(FEATURES)).double()
        net.load_state_dict({k: v.double() for k, v in state.items()})
        loaded = Boost(net.eval(), float(config["kappa"]), float(config["steepness"]),
                       float(config["caution"]))
    except (KeyError, ValueError, RuntimeError) as error:
        raise HdrsynError(f"{file}: not a highlight-boost table ({error!r})") from None
    if path is None:
        _SHIPPED = loaded
    return loaded


def _analysis_copy(image: Tensor) -> np.ndarray:
    """(3, H, W) → (3, h, w) float64 of at most ANALYSIS_PIXELS (area averages)."""
    height, width = image.shape[1:]
    scale = min(1.0, (ANALYSIS_PIXELS / (height * width)) ** 0.5)
    planes = image.detach().float().cpu().numpy()
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        planes = np.stack([cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in planes])
    return planes.astype(np.float64)


def zones(photo: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Where each region's boost goes (h, w): the pixels of a (3, h, w) photo whose brightest
    channel is at least 0.9 within :data:`OUTER` pixels of a clipped region, labelled by the
    nearest (0 elsewhere). The boost rises from the zone's edge (:func:`rise`), where the
    photo's light starts to near white, so JPEG noise and blocking in a blown region (no
    holes: they stay above 0.9) do not break it."""
    bright = photo.max(axis=0) >= BRIGHT
    outside, (rows, cols) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    return np.where(bright & (outside <= OUTER), labels[rows, cols], 0)


def region_rates(features: np.ndarray, steepness: float) -> np.ndarray:
    """How fast (ln per analysis pixel) each region's boost may rise: ``steepness`` times how
    steeply the photo's light rose towards the region (its ``near slope``), and at least
    :data:`RATE`. A lamp in the dark or a window in its frame may take its boost within a
    few pixels; a sky blown smoothly rises no faster than :data:`RATE`."""
    return np.maximum(RATE, steepness * features[:, FEATURES.index("near slope")])


_STEPS = ((0, 1, 1.0), (1, 0, 1.0), (1, 1, 2**0.5), (1, -1, 2**0.5))  # 8 neighbours, halved


def rise(zone: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """How high the boost may have risen at each pixel (h, w): the cost of the cheapest
    8-connected path to it from a pixel outside the zones (``zone`` as :func:`zones`), a step
    costing its length times the mean rate of its two pixels (a zone pixel its region's rate
    from ``rates``, one per region; a pixel outside :data:`RATE`). 0 outside the zones;
    changes by no more than the rates allow, also where two regions of different rates meet."""
    inside = zone > 0
    nodes = ndimage.binary_dilation(inside, np.ones((3, 3), bool))
    count = int(nodes.sum())
    number = np.full(zone.shape, -1)
    number[nodes] = np.arange(count)
    rate = np.concatenate([[RATE], rates])[zone]
    height, width = zone.shape
    heads, tails, costs = [], [], []
    for down, right, length in _STEPS:
        a = (slice(0, height - down), slice(max(0, -right), width - max(0, right)))
        b = (slice(down, height), slice(max(0, right), width - max(0, -right)))
        step = nodes[a] & nodes[b] & (inside[a] | inside[b])
        heads.append(number[a][step])
        tails.append(number[b][step])
        costs.append((rate[a][step] + rate[b][step]) / 2 * length)
    graph = sparse.coo_matrix((np.concatenate(costs), (np.concatenate(heads),
                                                        np.concatenate(tails))),
                              shape=(count, count)).tocsr()  # fmt: skip
    risen = np.zeros(zone.shape)
    sources = number[nodes & ~inside]
    if len(sources) == 0:  # the zone fills the picture: nothing limits the boost
        risen[inside] = np.inf
        return risen
    risen[nodes] = csgraph.dijkstra(graph, directed=False, indices=sources, min_only=True)
    risen[~inside] = 0
    return risen


def painted(boosts: np.ndarray, zone: np.ndarray, risen: np.ndarray) -> np.ndarray:
    """The boost map (h, w): each zone pixel at its region's boost from ``boosts`` (one per
    region), 0 outside the zones, no higher than the boost may have risen there (``risen``,
    :func:`rise`), and passing from one region's boost to a neighbour's smaller one by at most
    :data:`RATE` per pixel (the largest such map), so that the pieces of one blown area meet
    without a seam."""
    field = np.minimum(np.concatenate([[0.0], boosts])[zone], risen)
    top, (height, width) = field.max(), zone.shape
    for label, box in enumerate(ndimage.find_objects(zone, max_label=len(boosts)), start=1):
        if box is None or boosts[label - 1] >= top:
            continue
        reach = int(np.ceil((top - boosts[label - 1]) / RATE))  # beyond it the cone is above
        crop = tuple(slice(max(0, s.start - reach), min(n, s.stop + reach))
                     for s, n in zip(box, (height, width), strict=True))  # fmt: skip
        cone = boosts[label - 1] + RATE * ndimage.distance_transform_edt(zone[crop] != label)
        np.minimum(field[crop], cone, out=field[crop])
    return field


def predicted(boost: Boost, features: np.ndarray) -> np.ndarray:
    """Each region's boost (ln, never below 0) for (N, len(FEATURES)) ``features``: κ × (the
    members' mean − caution × their standard deviation). The members were trained on
    different halves of the training views, so they disagree where few training regions were
    like this one: there the boost shrinks, and a wrong guess costs less."""
    with torch.no_grad():
        members = boost.net.members(torch.from_numpy(features)).numpy()
    spread = members.std(axis=0, ddof=1) if len(members) > 1 else 0.0
    guess = members.mean(axis=0) - boost.caution * spread
    return boost.kappa * np.maximum(guess, 0)


def boost_map(photo: np.ndarray, radiance: np.ndarray, boost: Boost) -> np.ndarray:
    """The ln boost (h, w) at the analysis copy's size: each region's boost
    (:func:`predicted`), painted over its zone (:func:`zones`, :func:`rise`,
    :func:`painted`) and softened (Gaussian σ = 1 pixel)."""
    labels, count = clipped_regions(photo)
    if count == 0:
        return np.zeros(labels.shape)
    features = region_features(photo, radiance, labels, count)
    zone = zones(photo, labels)
    risen = rise(zone, region_rates(features, boost.steepness))
    return ndimage.gaussian_filter(painted(predicted(boost, features), zone, risen), 1.0)


def raise_highlights(radiance: Tensor, photo: Tensor, boost: Boost | None = None) -> Tensor:
    """Raise the clipped regions of ``radiance`` (1, 3, H, W), the reconstruction of ``photo``
    (1, 3, H, W) in [0, 1], in place by the predicted boost (module doc; ``boost``: the
    package's own by default); returns it."""
    photo_small, radiance_small = _analysis_copy(photo[0]), _analysis_copy(radiance[0])
    boost = boost_map(photo_small, radiance_small, boost or load_boost())
    if not boost.any():
        return radiance
    height, width = photo.shape[2:]
    full = cv2.resize(np.exp(boost).astype(np.float32), (width, height),
                      interpolation=cv2.INTER_LINEAR)  # fmt: skip
    return radiance.mul_(torch.from_numpy(full).to(radiance))
