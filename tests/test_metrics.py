"""Every measure of hdrsyn.metrics against a second implementation or a value worked by hand."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from hdrsyn.metrics import (
    align_scale,
    display_referred,
    hdr_metrics,
    log_psnr,
    ms_ssim,
    mu_psnr,
    protocol_align,
    psnr,
    pu21_encode,
    pu21_psnr,
    pu21_ssim,
    regions,
    ssim,
    well_exposed,
)


def smooth_images(count=2, size=64, seed=0):
    """Natural-ish test images: smooth random fields with some texture, in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, size // 8, size // 8, generator=generator)
    image = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic")
    image = image + 0.05 * torch.rand(count, 3, size, size, generator=generator)
    return image.clamp(0, 1).double()


def test_psnr_by_hand():
    a, b = torch.full((1, 3, 4, 4), 0.5), torch.full((1, 3, 4, 4), 0.6)
    assert psnr(a, b).item() == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert psnr(a * 255, b * 255, peak=255).item() == pytest.approx(20.0, abs=1e-4)


def test_ssim_matches_scikit_image():
    reference = smooth_images(2, 64)
    noisy = (reference + 0.08 * torch.randn(reference.shape, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(noisy, reference)
    for index in range(2):
        expected = structural_similarity(
            noisy[index].numpy(), reference[index].numpy(), channel_axis=0, data_range=1.0,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        )  # fmt: skip
        assert ours[index].item() == pytest.approx(expected, abs=1e-4)
    assert ssim(reference, reference).min().item() == pytest.approx(1.0, abs=1e-6)


def test_ms_ssim_matches_torchmetrics():
    reference = smooth_images(2, 192)
    blurred = torch.nn.functional.avg_pool2d(reference, 3, 1, 1, count_include_pad=False)
    ours = ms_ssim(blurred, reference)
    expected = multiscale_structural_similarity_index_measure(
        blurred, reference, data_range=1.0, kernel_size=11, sigma=1.5, reduction="none"
    )
    torch.testing.assert_close(ours, expected, atol=2e-3, rtol=0)
    assert 0.5 < ours.min() < 1
    assert math.isnan(ms_ssim(reference[..., :160, :160], reference[..., :160, :160])[0])


def test_pu21_encoding_by_formula():
    """PU21 "banding + glare" (Mantiuk & Azimi 2021), written out here in NumPy."""
    p = [0.353487901, 0.3734658629, 8.277049286e-05, 0.9062562627, 0.09150303166, 0.9099517204,
         596.3148142]  # fmt: skip
    luminance = np.array([0.001, 0.005, 0.1, 1.0, 100.0, 1000.0, 10000.0, 1e5])
    clamped = np.clip(luminance, 0.005, 10000)
    ratio = (p[0] + p[1] * clamped ** p[3]) / (1 + p[2] * clamped ** p[3])
    expected = np.maximum(p[6] * (ratio ** p[4] - p[5]), 0)
    ours = pu21_encode(torch.tensor(luminance)).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-10)
    assert ours[0] == ours[1] and ours[1] < 1  # clamped below 0.005 cd/m²; near 0 there
    assert 240 < ours[4] < 270  # 100 cd/m² (SDR white) near 256, the peak the metrics use
    assert np.all(np.diff(ours[1:-1]) > 0)


def test_pu21_range_matches_a_second_implementation():
    """The encoded range FFmpeg's pu21 filter lists for banding + glare (p_min, p_max), typed
    there independently of the coefficients: PU21(0.005) = 5.4705e-10, PU21(10000) =
    595.3939 (to its printed digits)."""
    ends = pu21_encode(torch.tensor([0.005, 10000.0], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(ends, [5.4705e-10, 595.3939], rtol=2e-5)


def test_hdr_measures_by_hand():
    reference = torch.ones(1, 3, 16, 16)
    reference[..., :8] = 0.01
    # log-PSNR: a uniform 0.05-decade error over a 5-decade range → 20 log10(5 / 0.05) = 40 dB
    assert log_psnr(reference * 10**0.05, reference).item() == pytest.approx(40.0, abs=1e-3)
    # μ-law PSNR against NumPy
    prediction = reference * 0.8
    mu = 5000.0
    codes = [np.log1p(mu * x.numpy()) / np.log1p(mu) for x in (prediction, reference)]
    expected = 10 * np.log10(1 / np.mean((codes[0] - codes[1]) ** 2))
    assert mu_psnr(prediction, reference).item() == pytest.approx(expected, rel=1e-5)
    # PU21-PSNR: the reference's 99.9th luminance percentile (here 1) is shown at 1000 cd/m²,
    # and the peak is PU21(1000) (the protocol of issue 11)
    p_pred = pu21_encode(prediction.double() * 1000)
    p_ref = pu21_encode(reference.double() * 1000)
    peak = pu21_encode(torch.tensor(1000.0, dtype=torch.float64)).item()
    expected = 10 * np.log10(peak**2 / ((p_pred - p_ref) ** 2).mean().item())
    assert pu21_psnr(prediction, reference).item() == pytest.approx(expected, rel=1e-4)
    assert pu21_ssim(reference, reference).item() == pytest.approx(1.0, abs=1e-6)


def test_alignment_removes_the_unknown_scale():
    reference = smooth_images(2, 32).float() * 5 + 0.01  # radiance: positive
    photo = torch.rand(2, 3, 32, 32) * 0.8 + 0.1
    scaled = hdr_metrics(reference * 37.0, reference, photo)
    assert scaled["mu_psnr"].min() > 90 and scaled["pu21_ssim"].min() > 0.999
    aligned = align_scale(reference * 37.0, reference, well_exposed(photo))
    torch.testing.assert_close(aligned, reference, rtol=1e-5, atol=1e-6)
    worse = hdr_metrics(reference * (1 + 0.2 * torch.rand_like(reference)), reference, photo)
    for name, value in worse.items():
        if name in ("pu21_psnr_clipped", "pu21_psnr_dark"):  # no such pixels in this photo
            assert value.isnan().all() and scaled[name].isnan().all()
        else:
            assert (value < scaled[name]).all(), name


def test_protocol_alignment_is_the_median_luminance_ratio_over_well_exposed_pixels():
    reference = torch.ones(1, 3, 10, 20)
    prediction = torch.ones(1, 3, 10, 20)
    prediction[..., :, :7] = 0.5  # 70 well-exposed pixels predicted at half the radiance
    prediction[..., :, 7:12] = 4.0  # 50 at four times
    photo = torch.full((1, 3, 10, 20), 0.5)
    photo[..., :, 12:] = 1.0  # 80 clipped pixels: ignored, though the prediction is right there
    # median of ln(L_ref / L_pred) over the 120 well-exposed pixels: 70 × ln 2, 50 × −ln 4
    aligned = protocol_align(prediction, reference, photo)
    torch.testing.assert_close(aligned, prediction * 2.0)
    # fewer than 100 well-exposed pixels: all pixels count (70 × ln 2, 50 × −ln 4, 80 × 0)
    photo[..., :, 9:12] = 1.0  # 90 left
    torch.testing.assert_close(protocol_align(prediction, reference, photo), prediction * 1.0)


def test_display_scaling_puts_the_99_9th_percentile_at_1000():
    reference = torch.linspace(0.001, 1.0, 10000).view(1, 1, 100, 100).expand(1, 3, 100, 100)
    reference = reference.clone()
    reference[..., 0, :5] = 1e6  # five pixels far above: the maximum does not set the scale
    _, shown = display_referred(reference, reference)
    level = np.quantile(shown[0, 0].numpy().ravel(), 0.999)
    assert level == pytest.approx(1000.0, rel=1e-3)


def test_regions_split_the_photo():
    photo = torch.tensor([[0.5, 0.5, 0.5], [0.97, 0.5, 0.5], [0.02, 0.5, 0.5], [0.02, 0.5, 0.99]])
    masks = regions(photo.T.reshape(1, 3, 1, 4))
    assert masks["well"].flatten().tolist() == [True, False, False, False]
    assert masks["clipped"].flatten().tolist() == [False, True, False, True]
    assert masks["dark"].flatten().tolist() == [False, False, True, False]
