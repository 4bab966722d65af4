import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from hdrsyn.ensemble import Ensemble
from hdrsyn.highlights import (
    ANALYSIS_PIXELS,
    FEATURES,
    RATE,
    Boost,
    clipped_regions,
    load_boost,
    painted,
    predicted,
    raise_highlights,
    region_features,
    region_rates,
    rise,
    zones,
)
from hdrsyn.tonemap import srgb_decode


def _disc_photo(height: int = 64, width: int = 64, radius: float = 8.0) -> np.ndarray:
    """(3, H, W): mid grey with a white clipped disc in the middle."""
    rows, cols = np.mgrid[:height, :width]
    disc = (rows - height // 2) ** 2 + (cols - width // 2) ** 2 <= radius**2
    photo = np.full((3, height, width), 0.5)
    photo[:, disc] = 1.0
    return photo


def _constant_net(boost: float) -> Ensemble:
    """A one-member net that predicts ``boost`` for every region."""
    net = Ensemble(1, 4, len(FEATURES)).double()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.zero_()
        net.biases[-1].fill_(boost)
    return net.eval()


def _constant(boost: float, kappa: float = 1.0, steepness: float = 0.0) -> Boost:
    return Boost(_constant_net(boost), kappa, steepness)


def test_region_features_of_a_disc_and_a_band_by_hand():
    photo = _disc_photo()
    photo[:, :4, 40:] = 1.0  # a second region: a band along the top edge
    labels, count = clipped_regions(photo)
    assert count == 2
    disc, band = int(labels[32, 32]) - 1, int(labels[0, 63]) - 1
    assert {disc, band} == {0, 1}
    radiance = srgb_decode(torch.from_numpy(photo)).numpy()
    radiance[:, labels == disc + 1] *= 2.0  # the reconstruction lifts the disc by ln 2
    features = dict(zip(FEATURES, region_features(photo, radiance, labels, count).T, strict=True))
    area = (labels == disc + 1).sum()
    clipped = (labels > 0).sum()
    assert features["log area share"][disc] == pytest.approx(math.log(area / 64**2))
    assert features["log area share"][band] == pytest.approx(math.log(4 * 24 / 64**2))
    depth = math.exp(features["log depth"][disc]) * math.hypot(64, 64)
    assert 8 <= depth <= 9.1  # the disc's centre is 8 … 9 pixels from the grey
    assert features["near dark"][disc] == pytest.approx(0.5)
    assert features["far dark"][disc] == pytest.approx(0.5)
    assert features["white share"] == pytest.approx([1, 1])
    assert features["lift"][disc] == pytest.approx(math.log(2))
    assert features["lift"][band] == pytest.approx(0)
    assert features["log clipped share"] == pytest.approx([math.log(clipped / 64**2)] * 2)
    assert features["bright share"] == pytest.approx([clipped / 64**2] * 2)
    assert features["mean level"] == pytest.approx([photo.mean()] * 2)
    assert features["near saturation"] == pytest.approx([0, 0])
    assert features["compactness"][disc] == pytest.approx(math.log(area / (math.pi * depth**2)))
    assert features["height"][disc] == pytest.approx(0.5)
    assert features["height"][band] == pytest.approx(1.5 / 64)
    assert features["at top"][disc] == 0 and features["at top"][band] == 1
    assert features["falloff"][disc] == pytest.approx(0, abs=1e-12)  # both rings grey
    assert features["near slope"][disc] > 0  # the ring's first pixels border the disc


def test_no_clipped_pixels_no_regions_no_change():
    photo = np.full((3, 32, 48), 0.6)
    assert clipped_regions(photo)[1] == 0
    assert region_features(photo, photo, *clipped_regions(photo)).shape == (0, len(FEATURES))
    radiance = torch.rand(1, 3, 32, 48) + 0.1
    before = radiance.clone()
    raise_highlights(radiance, torch.from_numpy(photo)[None].float(), _constant(1.0))
    assert torch.equal(radiance, before)


@pytest.mark.parametrize("size", [(64, 64), (400, 300)])  # the second above ANALYSIS_PIXELS
def test_raise_highlights_lifts_clipped_regions_only_and_keeps_hues(size):
    height, width = size
    assert (height * width > ANALYSIS_PIXELS) == (size == (400, 300))
    photo = torch.from_numpy(_disc_photo(height, width, radius=min(size) / 6)).float()[None]
    photo[0, 0, :, : width // 4] *= 0.8  # a tinted strip: hues must survive the boost
    radiance = srgb_decode(photo) * torch.tensor([1.0, 0.9, 1.1]).view(1, 3, 1, 1)
    before = radiance.clone()
    raise_highlights(radiance, photo, _constant(1.0, kappa=0.2))
    ratio = (radiance / before)[0]
    assert torch.allclose(ratio[0], ratio[1]) and torch.allclose(ratio[0], ratio[2])  # no hue
    # the disc's centre is deeper than 0.2 / RATE pixels: the whole boost
    assert ratio[0, height // 2, width // 2] == pytest.approx(math.exp(0.2), rel=1e-3)
    assert ratio.max() <= math.exp(0.2) * (1 + 1e-5) and ratio.min() >= 1
    # the boost rises from the disc's edge by at most RATE per pixel of the analysis copy
    scale = max(1.0, (height * width / ANALYSIS_PIXELS) ** 0.5)
    inside = ndimage.distance_transform_edt(photo[0].amax(dim=0).numpy() >= 0.9) / scale
    limit = np.exp(RATE * (inside + 2))  # + 2 pixels: the softening and the upsampling
    assert (ratio[0].numpy() <= limit * (1 + 1e-5)).all()
    far = ndimage.distance_transform_edt(photo[0].amax(dim=0).numpy() < 0.9) > 6 * scale
    assert torch.equal(radiance[0][:, far], before[0][:, far])  # far from the light: untouched


def _two_pieces() -> tuple[np.ndarray, np.ndarray, int]:
    """A blown block clipped in two pieces, a column just below white between them."""
    photo = np.full((3, 60, 90), 0.5)
    photo[:, 8:52, 8:82] = 0.95  # the zone: bright, joined by the gap
    photo[:, 10:50, 10:44] = 1.0
    photo[:, 10:50, 47:80] = 1.0
    labels, count = clipped_regions(photo)
    assert count == 2
    return photo, labels, int(labels[30, 20])


def test_painting_meets_a_smaller_neighbour_by_rate_per_pixel():
    """Pieces boosted 0.3 and 0.05, nothing limiting the rise: the painted map is the largest
    one no larger than each piece's boost, 0 outside the zone, that passes between the pieces
    by at most RATE per pixel (brute force in NumPy: the smallest boost-plus-distance cone
    over every zone pixel), so the pieces meet without a seam."""
    photo, labels, left = _two_pieces()
    boosts = np.where(np.arange(1, 3) == left, 0.3, 0.05)
    zone = zones(photo, labels)
    field = painted(boosts, zone, np.full(zone.shape, np.inf))
    cap = np.concatenate([[0.0], boosts])[zone]
    points = np.argwhere(zone > 0).astype(np.float64)
    everywhere = np.argwhere(np.ones(zone.shape)).astype(np.float64)
    expected = np.concatenate([
        (cap[zone > 0][None, :] + RATE * np.hypot(*(chunk[:, None, :] - points[None])
                                                  .transpose(2, 0, 1))).min(axis=1)
        for chunk in np.array_split(everywhere, 27)]).reshape(zone.shape)  # fmt: skip
    expected[zone == 0] = 0
    np.testing.assert_allclose(field, expected, atol=1e-12)
    assert field[30, 20] == pytest.approx(0.3) and field[30, 60] == pytest.approx(0.05)


def test_rise_is_the_cheapest_path_from_outside_and_has_no_seam():
    """Pieces rising at RATE and at 10 RATE: the rise equals scikit-image's minimum-cost path
    (MCP_Geometric: a step costs its length times the mean cost of its two pixels) from the
    pixels outside the zone; the steep piece reaches a boost of 1 within a few pixels of the
    zone's edge, the other 1 / RATE pixels in; at the pieces' meeting no step is larger than
    the steep rate allows, and from the gentle side no faster than RATE."""
    from skimage.graph import MCP_Geometric

    photo, labels, left = _two_pieces()
    zone = zones(photo, labels)
    rates = np.where(np.arange(1, 3) == left, 10 * RATE, RATE)
    risen = rise(zone, rates)
    costs = np.concatenate([[RATE], rates])[zone]
    starts = np.argwhere((zone == 0) & ndimage.binary_dilation(zone > 0, np.ones((3, 3))))
    reference, _ = MCP_Geometric(costs).find_costs(starts)
    np.testing.assert_allclose(risen, np.where(zone > 0, reference, 0), rtol=1e-9, atol=1e-12)
    field = painted(np.ones(2), zone, risen)
    assert field[30, 13] == pytest.approx(1.0)  # 6 pixels in from the zone's edge at 10 RATE
    assert field[30, 76] == pytest.approx(6 * RATE)  # 6 pixels in on the gentle side: RATE
    steps = np.abs(np.diff(field, axis=1))
    assert steps.max() <= 10 * RATE * (1 + 1e-9)
    assert steps[:, 47:].max() <= RATE * (1 + 1e-9)  # within the gentle piece


def test_region_rates_follow_the_light_rising_towards_the_region():
    """A lamp against grey (the light jumps to it) may take a boost of 1 within a few pixels;
    a region at the top of a smooth ramp (the light creeps up to it) rises at RATE."""
    lamp = _disc_photo()
    rows = np.linspace(0, 1, 64)[:, None] * np.ones((1, 64))
    ramp = np.broadcast_to(np.minimum(0.8 + 0.25 * rows, 1.0), (3, 64, 64)).copy()
    for photo, expected in ((lamp, "steep"), (ramp, "gentle")):
        labels, count = clipped_regions(photo)
        rates = region_rates(region_features(photo, srgb_decode(torch.from_numpy(photo)).numpy(),
                                             labels, count), steepness=1.0)  # fmt: skip
        assert (rates > 1 / 4).all() if expected == "steep" else (rates == RATE).all()
    assert (region_rates(np.ones((3, len(FEATURES))), steepness=0.0) == RATE).all()


def test_negative_predictions_never_darken():
    photo = torch.from_numpy(_disc_photo()).float()[None]
    radiance = srgb_decode(photo)
    before = radiance.clone()
    raise_highlights(radiance, photo, _constant(-2.0))
    assert torch.equal(radiance, before)


def test_a_file_that_is_not_a_boost_table_is_refused_in_one_line(tmp_path):
    from safetensors.torch import save_file

    from hdrsyn import HdrsynError

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(HdrsynError, match="other.safetensors: not a highlight-boost table"):
        load_boost(tmp_path / "other.safetensors")


def test_caution_takes_the_members_spread_off_their_mean():
    net = Ensemble(3, 4, len(FEATURES)).double()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.zero_()
        net.biases[-1][:, 0, 0] = torch.tensor([1.0, 2.0, 6.0])
    features = np.zeros((2, len(FEATURES)))
    spread = np.std([1.0, 2.0, 6.0], ddof=1)
    for caution in (0.0, 0.5, 1.0):
        expected = 1.5 * max(3.0 - caution * spread, 0.0)
        assert np.allclose(predicted(Boost(net, 1.5, 0.0, caution), features), expected)
    assert (predicted(Boost(net, 1.0, 0.0, 2.0), features) == 0).all()  # never below 0
    assert np.allclose(predicted(_constant(0.7, kappa=2.0), features), 1.4)  # one member


def test_shipped_boost_loads_every_tensor_and_is_deterministic():
    net, kappa, steepness, caution = load_boost()
    assert 0 < kappa <= 2 and 0 <= steepness <= 10 and 0 <= caution <= 3
    members = len(net.weights[0])
    inputs, hidden = net.weights[0].shape[1:]
    assert inputs == len(FEATURES)
    assert sum(p.numel() for p in net.parameters()) == members * (
        inputs * hidden + hidden + hidden * hidden + hidden + hidden + 1)  # fmt: skip
    assert torch.all(net.scale > 0)
    features = torch.randn(50, len(FEATURES), generator=torch.Generator().manual_seed(0))
    features = features.double() * net.scale + net.mean
    first, second = net(features), net(features)
    assert torch.equal(first, second) and torch.isfinite(first).all()
    assert net.members(features).shape == (members, 50)
