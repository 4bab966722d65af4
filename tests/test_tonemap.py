import numpy as np
import pytest
import torch

from hdrsyn import HdrsynError, tonemap_reinhard
from hdrsyn.tonemap import luminance, srgb_decode, srgb_encode


def reinhard_numpy(rgb, key, white=None):
    """Reinhard et al. 2002, Eq. 1, 2, 4, written independently in NumPy."""
    lum = rgb @ np.array([0.2126, 0.7152, 0.0722])
    log_average = np.exp(np.mean(np.log(1e-6 + lum)))
    scaled = key / log_average * lum
    white = scaled.max() if white is None else white
    display = scaled * (1 + scaled / white**2) / (1 + scaled)
    return np.clip(rgb * (display / np.maximum(lum, 1e-6))[..., None], 0, 1)


def test_uniform_image_by_hand():
    radiance = torch.full((3, 4, 5), 7.0, dtype=torch.float64)
    out = tonemap_reinhard(radiance, key=0.18, white=1e9)
    # L = a = 0.18 everywhere, L_d = 0.18 / 1.18
    torch.testing.assert_close(out, torch.full_like(radiance, 0.18 / 1.18), rtol=1e-5, atol=0)
    # default white point = the brightest scaled luminance, which then maps to exactly 1
    torch.testing.assert_close(tonemap_reinhard(radiance), torch.ones_like(radiance))


@pytest.mark.parametrize("key, white", [(0.18, None), (0.36, 2.0), (0.09, 0.5)])
def test_matches_numpy_reference(key, white):
    rng = np.random.default_rng(0)
    rgb = np.exp(rng.normal(0, 2, (20, 30, 3)))
    expected = reinhard_numpy(rgb, key, white)
    out = tonemap_reinhard(torch.from_numpy(rgb).permute(2, 0, 1), key=key, white=white)
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, rtol=1e-6, atol=1e-9)


def test_batched_is_per_image():
    rng = np.random.default_rng(1)
    batch = torch.from_numpy(np.exp(rng.normal(0, 1, (2, 3, 8, 8))))
    out = tonemap_reinhard(batch)
    for b in range(2):
        torch.testing.assert_close(out[b], tonemap_reinhard(batch[b]))


def test_srgb_transfer_function_values():
    linear = torch.tensor([0.0, 0.0031308, 0.18, 1.0]).view(4, 1, 1, 1).expand(4, 3, 1, 1)
    encoded = srgb_encode(linear)[:, 0, 0, 0]
    expected = torch.tensor([0.0, 12.92 * 0.0031308, 1.055 * 0.18 ** (1 / 2.4) - 0.055, 1.0])
    torch.testing.assert_close(encoded, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(srgb_decode(srgb_encode(linear)), linear, rtol=1e-5, atol=1e-6)


def test_luminance_weights():
    rgb = torch.eye(3).view(3, 3, 1, 1)
    assert luminance(rgb).flatten().tolist() == pytest.approx([0.2126, 0.7152, 0.0722])


def test_rejects_bad_arguments():
    with pytest.raises(HdrsynError, match="key"):
        tonemap_reinhard(torch.ones(3, 2, 2), key=0)
    with pytest.raises(HdrsynError, match="shape"):
        tonemap_reinhard(torch.ones(2, 2, 2))
