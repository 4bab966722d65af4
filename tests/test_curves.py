"""Response-curve families, their basis, the curve error and the lookups through a table g."""

import numpy as np
import pytest
import torch
from kornia.color import linear_rgb_to_rgb, rgb_to_linear_rgb

from hdrsyn.curves import (
    CURVE_FAMILIES,
    KINDS,
    PARAMETER_RANGES,
    ResponseCurve,
    _reexpose_pointwise,
    curve_rmse,
    decode,
    encode,
    fit_basis,
    parameter_bands,
    reexpose,
    sample_curve,
    srgb_log_inverse,
)


def test_every_kind_is_monotone_from_black_to_white():
    rng = np.random.default_rng(0)
    x = np.concatenate([[0.0], np.geomspace(1e-6, 1.0, 2000)])
    for family in CURVE_FAMILIES:
        for kind in CURVE_FAMILIES[family]["kinds"]:
            for _ in range(10):
                curve = sample_curve(rng, family, kind)
                y = curve(x)
                assert y[0] == pytest.approx(0, abs=1e-9) and y[-1] == pytest.approx(1), curve
                assert (np.diff(y) >= 0).all() and y[1000] < y[-2], curve
                g = curve.log_inverse()
                assert np.isfinite(g).all() and (np.diff(g) >= 0).all(), curve


def test_roll_off_curves_by_their_formulas():
    """Written out here: extended Reinhard, Hable's filmic and Narkowicz's ACES fit, each
    T(Wx)/T(W) through the sRGB encoding; the log profile without it."""

    def srgb(v):
        return np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)

    def hable(y):
        return ((y * (0.15 * y + 0.05) + 0.004) / (y * (0.15 * y + 0.5) + 0.06)) - 0.02 / 0.3

    def aces(y):
        return (y * (2.51 * y + 0.03)) / (y * (2.43 * y + 0.59) + 0.14)

    x = np.array([0.001, 0.02, 0.1, 0.5, 0.9])
    w = 8.0
    reinhard = (w * x) * (1 + w * x / w**2) / (1 + w * x)  # T(W) = 1 by construction
    np.testing.assert_allclose(ResponseCurve("reinhard", white=w)(x), srgb(reinhard), rtol=1e-9)
    np.testing.assert_allclose(
        ResponseCurve("hable", white=11.2)(x), srgb(hable(11.2 * x) / hable(11.2)), rtol=1e-9
    )
    np.testing.assert_allclose(ResponseCurve("aces", white=w)(x), srgb(aces(w * x) / aces(w)),
                               rtol=1e-9)  # fmt: skip
    np.testing.assert_allclose(ResponseCurve("log", white=100.0)(x),
                               np.log(1 + 100 * x) / np.log(101), rtol=1e-9)  # fmt: skip
    # roll-off: a Reinhard camera puts its clipping point more than five stops above the
    # exposure it shows at mid-grey; an sRGB camera two and a half
    for curve, stops in [(ResponseCurve("reinhard", white=8.0), 5.0), (ResponseCurve("srgb"), 2.4)]:
        assert np.log2(1 / curve.inverse(np.array([0.461]))[0]) > stops


def test_families_are_disjoint_and_hold_a_kind_out_of_training():
    assert "aces" not in CURVE_FAMILIES["train"]["kinds"]
    assert "aces" in CURVE_FAMILIES["test"]["kinds"]
    assert set(CURVE_FAMILIES["test"]["kinds"]) == set(KINDS)
    for name in PARAMETER_RANGES:
        if name == "aces":
            continue
        train, test = parameter_bands(name, "train"), parameter_bands(name, "test")
        low, high = PARAMETER_RANGES[name][:2]
        assert train[0][0] == pytest.approx(low) and train[-1][1] == pytest.approx(high)
        for a, b in train:
            for c, d in test:
                assert b <= c + 1e-9 or d <= a + 1e-9, (name, (a, b), (c, d))  # no overlap
    rng = np.random.default_rng(1)
    train = [sample_curve(rng, "train") for _ in range(800)]
    assert 0.28 < np.mean([c.kind == "srgb" for c in train]) < 0.39  # a third
    shares = [sample_curve(rng, "train", srgb_share=0.8).kind == "srgb" for _ in range(400)]
    assert 0.74 < np.mean(shares) < 0.86
    test_gammas = [sample_curve(rng, "test", "gamma").gamma for _ in range(200)]
    for gamma in test_gammas:
        assert any(a <= gamma <= b for a, b in parameter_bands("gamma", "test"))


def test_log_inverse_inverts_the_curve():
    for curve in [ResponseCurve("sigmoid", 2.2, contrast=4.0), ResponseCurve("hable", white=9.0)]:
        g = curve.log_inverse()
        levels = np.arange(5, 251)
        np.testing.assert_allclose(curve(np.exp(g[levels])), levels / 255, atol=1e-4)


def test_basis_fits_every_training_curve_and_most_of_the_held_out_kind():
    mean, basis = fit_basis(8)
    torch.testing.assert_close(basis @ basis.T, torch.eye(8), atol=1e-4, rtol=0)
    rng = np.random.default_rng(2)
    for family, kind, bound in [("train", None, 0.01), ("test", "aces", 0.06)]:
        curves = torch.stack([
            torch.from_numpy(sample_curve(rng, family, kind).log_inverse()) for _ in range(40)
        ])  # fmt: skip
        curves = curves - curves[:, 128:129]
        fitted = mean + ((curves - mean) @ basis.T) @ basis
        assert curve_rmse(fitted, curves).max() < bound


def test_curve_rmse_ignores_the_offset_and_is_the_rms_by_hand():
    truth = torch.linspace(-3, 0, 256)
    assert curve_rmse(truth + 5.0, truth).item() == pytest.approx(0.0, abs=1e-6)
    bumped = truth.clone()
    bumped[5:128] += 0.3  # 123 of the 246 levels 5…250 off by 0.3: RMS 0.15 around the mean
    assert curve_rmse(bumped, truth).item() == pytest.approx(0.15, abs=1e-6)
    assert curve_rmse(srgb_log_inverse(), srgb_log_inverse()).item() == 0


def test_decode_and_encode_through_the_srgb_table_match_the_srgb_formula():
    g = srgb_log_inverse()[None]
    levels = torch.arange(256.0).view(1, 1, 1, 256) / 255
    expected = rgb_to_linear_rgb(levels.expand(1, 3, 1, 256))[:, :1]
    decoded = decode(levels, g)
    ratio = (decoded / expected.clamp_min(1e-12))[..., 1:255]  # 0, 255: read at 0.5, 254.5
    torch.testing.assert_close(ratio, torch.ones_like(ratio), rtol=2e-3, atol=0)
    torch.testing.assert_close(encode(decode(levels, g), g), levels, atol=1e-5, rtol=0)
    image = torch.rand(2, 3, 8, 8) * 0.9 + 0.05
    stops = torch.tensor([-2.0, 1.5])
    ours = reexpose(image, stops, g.expand(2, -1))
    scale = torch.exp2(stops).view(2, 1, 1, 1)
    physical = linear_rgb_to_rgb((rgb_to_linear_rgb(image) * scale).clamp(0, 1))
    torch.testing.assert_close(ours, physical, atol=3e-3, rtol=0)
    assert reexpose(torch.ones(1, 3, 2, 2), torch.tensor([-1.0]), g).max() < 0.75  # white: 1 stop


def test_reexpose_from_its_table_equals_decode_scale_encode():
    """The tabulated re-exposure against its definition, pixel by pixel: curves of every kind
    and a non-monotone one (estimates can be), batches with their own stops and curves, both
    memory layouts, the ends 0 and 1 and the input levels themselves."""
    rng = np.random.default_rng(0)
    curves = [torch.from_numpy(sample_curve(rng, "test", kind).log_inverse()) for kind in KINDS]
    bumpy = curves[0].clone()
    bumpy[100:110] -= 0.2  # a dip: the encoding reads it through its running maximum
    curves.append(bumpy)
    g = torch.stack(curves).float()
    batch = len(g)
    image = torch.rand(batch, 3, 24, 40)
    image[:, 0, 0, :3] = torch.tensor([0.0, 1.0, 0.5])
    image[:, 1, :, :] = torch.randint(0, 256, (24, 40)) / 255
    stops = torch.linspace(-3, 3, batch)
    expected = _reexpose_pointwise(image, stops, g)
    for layout in (torch.contiguous_format, torch.channels_last):
        ours = reexpose(image.contiguous(memory_format=layout), stops, g)
        assert ours.is_contiguous(memory_format=layout)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)  # 200 seeds: 4.5e-7


def test_reexpose_gradients_equal_those_of_its_definition():
    g = torch.from_numpy(ResponseCurve("reinhard", white=6.0).log_inverse()).double()[None]
    g = g.expand(2, -1)
    stops = torch.tensor([1.0, -2.0], dtype=torch.float64)
    image = (torch.rand(2, 3, 8, 8, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    weights = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    ours = torch.autograd.grad((reexpose(image, stops, g) * weights).sum(), image)[0]
    expected = torch.autograd.grad((_reexpose_pointwise(image, stops, g) * weights).sum(), image)
    torch.testing.assert_close(ours, expected[0], atol=1e-9, rtol=1e-9)
    with torch.no_grad():  # off the kinks of the piecewise-linear map for finite differences
        image += (0.5 - (image * 255 * 16) % 1) / (255 * 16)
    assert torch.autograd.gradcheck(lambda z: reexpose(z, stops, g), (image,))


def test_lookups_have_gradients():
    g = torch.from_numpy(ResponseCurve("reinhard", white=6.0).log_inverse()).double()[None]
    image = (torch.rand(1, 3, 4, 4, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    # keep off the table's knots, where the piecewise-linear lookup has a kink
    with torch.no_grad():
        image += (0.5 - (image * 255) % 1) / 255
    assert torch.autograd.gradcheck(lambda z: decode(z, g), (image,))
    exposure = decode(image, g).detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda e: encode(e, g), (exposure,), atol=1e-5)


def test_black_is_read_at_the_floor_and_white_at_its_least():
    """Level 0 at G_FLOOR below mid-grey (what black pixels of the training views hold, in the
    median, lies below it); level 255 at 254.5, the least a clipped pixel holds."""
    from hdrsyn.curves import G_FLOOR, MID_LEVEL

    for kind in ("srgb", "hable"):
        curve = ResponseCurve(kind, white=8.0) if kind == "hable" else ResponseCurve(kind)
        g = curve.log_inverse()
        assert g[0] == pytest.approx(g[MID_LEVEL] + G_FLOOR)
        assert g[1] > g[0] + 2  # level 1 is read where it is, far above the floor
        assert g[255] == pytest.approx(np.log(curve.inverse(np.array([254.5 / 255]))[0]))
