import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from hdrsyn.highlights import (
    ANALYSIS_PIXELS,
    FEATURES,
    RATE,
    BoostNet,
    clipped_regions,
    load_boost,
    painted,
    raise_highlights,
    region_features,
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


def _constant_net(boost: float) -> BoostNet:
    """A one-member net that predicts ``boost`` for every region."""
    net = BoostNet(members=1, hidden=4).double()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.zero_()
        net.biases[-1].fill_(boost)
    return net.eval()


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
    raise_highlights(radiance, torch.from_numpy(photo)[None].float(), _constant_net(1.0), 1.0)
    assert torch.equal(radiance, before)


@pytest.mark.parametrize("size", [(64, 64), (400, 300)])  # the second above ANALYSIS_PIXELS
def test_raise_highlights_lifts_clipped_regions_only_and_keeps_hues(size):
    height, width = size
    assert (height * width > ANALYSIS_PIXELS) == (size == (400, 300))
    photo = torch.from_numpy(_disc_photo(height, width, radius=min(size) / 6)).float()[None]
    photo[0, 0, :, : width // 4] *= 0.8  # a tinted strip: hues must survive the boost
    radiance = srgb_decode(photo) * torch.tensor([1.0, 0.9, 1.1]).view(1, 3, 1, 1)
    before = radiance.clone()
    raise_highlights(radiance, photo, _constant_net(1.0), kappa=0.2)
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


def test_painting_is_the_largest_map_under_the_boosts_that_changes_by_rate_per_pixel():
    """A blown block clipped in two pieces (a column just below white between them) that get
    boosts 0.3 and 0.05: the painted map is the largest one no larger than each piece's boost,
    0 outside the zone, changing by at most RATE per pixel (brute force in NumPy: the
    smallest boost-plus-distance cone over every pixel), so the pieces meet without a seam."""
    photo = np.full((3, 60, 90), 0.5)
    photo[:, 8:52, 8:82] = 0.95  # the zone: bright, joined by the gap
    photo[:, 10:50, 10:44] = 1.0
    photo[:, 10:50, 47:80] = 1.0
    labels, count = clipped_regions(photo)
    assert count == 2
    boosts = np.where(np.arange(1, 3) == labels[30, 20], 0.3, 0.05)
    zone, depth = zones(photo, labels)
    field = painted(boosts, zone, depth)
    cap = np.concatenate([[0.0], boosts])[zone].ravel()
    points = np.argwhere(np.ones(zone.shape)).astype(np.float64)
    expected = np.concatenate([
        (cap[None, :] + RATE * np.hypot(*(chunk[:, None, :] - points[None]).transpose(2, 0, 1))
         ).min(axis=1) for chunk in np.array_split(points, 27)]).reshape(zone.shape)  # fmt: skip
    # the brute force takes cones from pixel centres; the painting from the zone's edge (EDT)
    np.testing.assert_allclose(field, expected, atol=RATE * 1e-9 + 1e-12)
    assert np.abs(np.diff(field, axis=1)).max() <= RATE * (1 + 1e-9)
    assert field[30, 20] == pytest.approx(0.3)  # deep in the brighter piece: its whole boost
    assert field[30, 60] == pytest.approx(0.05)


def test_negative_predictions_never_darken():
    photo = torch.from_numpy(_disc_photo()).float()[None]
    radiance = srgb_decode(photo)
    before = radiance.clone()
    raise_highlights(radiance, photo, _constant_net(-2.0), kappa=1.0)
    assert torch.equal(radiance, before)


def test_a_file_that_is_not_a_boost_table_is_refused_in_one_line(tmp_path):
    from safetensors.torch import save_file

    from hdrsyn import HdrsynError

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(HdrsynError, match="other.safetensors: not a highlight-boost table"):
        load_boost(tmp_path / "other.safetensors")


def test_shipped_boost_loads_every_tensor_and_is_deterministic():
    net, kappa = load_boost()
    assert 0 < kappa <= 2
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
