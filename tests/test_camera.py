import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import EVS, gamma_curve, make_stack, to_tensor

from hdrsyn import HdrsynError, merge_exposures
from hdrsyn.camera import DEFAULT_SMOOTHNESS, hat_weights, solve_inverse_crf


def srgb_curve(x):
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def srgb_log_inverse(level):
    v = level / 255.0
    return np.log(np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4))


@pytest.mark.parametrize(
    "curve, log_inverse",
    [
        (gamma_curve, lambda level: 2.2 * np.log(level / 255.0)),
        (srgb_curve, srgb_log_inverse),
    ],
)
def test_recovers_known_response_curve(city_radiance, curve, log_inverse):
    """A clean stack (8-bit frames through one smooth curve): Eq. 1 at OpenCV's λ = 10 recovers
    it to 0.01 rms. The default λ = 100, chosen on realistic brackets (test_brackets.py),
    smooths the steep shadows of a gamma curve: measured 0.042 rms, 0.36 at level 16 (sRGB:
    0.011, 0.097)."""
    stack = to_tensor(make_stack(city_radiance, curve))
    levels = np.arange(16, 251)
    truth = log_inverse(levels) - log_inverse(128)
    for smoothness, rms, largest in ((10.0, 0.01, 0.03), (DEFAULT_SMOOTHNESS, 0.05, 0.4)):
        _, g = merge_exposures(stack, EVS, smoothness=smoothness)
        error = g.numpy()[:, levels] - truth
        assert g[:, 128].abs().max() == 0
        assert np.sqrt((error**2).mean()) < rms
        assert np.abs(error).max() < largest


def test_merge_matches_opencv_merge_debevec(city_radiance):
    images = make_stack(city_radiance)
    radiance, g = merge_exposures(to_tensor(images), EVS)
    times = (2.0**EVS).astype(np.float32)
    informative = sum(hat_weights().numpy()[image] for image in images) > 0
    for c in range(3):
        # OpenCV averages the weights over channels; one channel at a time it is Eq. 2 exactly.
        response = np.exp(g[c].numpy()).reshape(256, 1, 1).astype(np.float32)
        planes = [np.ascontiguousarray(image[:, :, c]) for image in images]
        expected = cv2.createMergeDebevec().process(planes, times, response)
        mask = informative[:, :, c]
        assert mask.mean() > 0.95
        np.testing.assert_allclose(radiance[c].numpy()[mask], expected[mask], rtol=5e-5)


def _opencv_grid(height, width, samples=70):
    """The pixel grid OpenCV's CalibrateDebevec samples when random=False (calibrate.cpp)."""
    x_points = int(math.sqrt(samples * width / height))
    y_points = samples // x_points
    step_x, step_y = width // x_points, height // y_points
    return [
        (step_y // 2 + j * step_y) * width + step_x // 2 + i * step_x
        for i in range(x_points)
        for j in range(y_points)
    ]


def test_solve_matches_opencv_calibrate_debevec_on_same_samples(city_radiance):
    images = make_stack(city_radiance[:64, :96], srgb_curve)
    height, width = images.shape[1:3]
    grid = torch.tensor(_opencv_grid(height, width))
    times = (2.0**EVS).astype(np.float32)
    expected = np.log(cv2.createCalibrateDebevec(70, 10.0, False).process(list(images), times))
    expected = expected[:, 0, :].T  # (3, 256)
    expected -= expected[:, 128:129]  # OpenCV keeps g(128) = 0 only softly
    stack = to_tensor(images).unsqueeze(0)
    g = solve_inverse_crf(stack, torch.tensor(EVS)[None], sample_index=grid.expand(1, 3, -1),
                          smoothness=10.0)  # fmt: skip
    # OpenCV solves in float32 by SVD; levels with data agree closely.
    observed = np.unique(images[:, grid // width, grid % width])
    observed = observed[(observed > 5) & (observed < 250)]
    np.testing.assert_allclose(g[0].numpy()[:, observed], expected[:, observed], atol=0.02)


def test_jpeg_bracket_matches_opencv_calibrate_and_merge():
    """The bundled bracket (7 JPEGs, EXIF exposure times, sRGB camera with JPEG artefacts; made
    from a real HDR photograph, not captured as a bracket): the Eq. 1 solve on OpenCV's sample
    grid matches CalibrateDebevec, and Eq. 2 with OpenCV's own curve matches MergeDebevec."""
    from pathlib import Path

    from hdrsyn import read_ldr
    from hdrsyn.io import exposure_from_exif

    folder = Path(__file__).parents[1] / "examples" / "interior"
    paths = [folder / f"ev{ev:+d}.jpg" for ev in range(-3, 4)]
    images = np.stack([np.round(read_ldr(p) * 255).astype(np.uint8) for p in paths])
    evs = np.array([exposure_from_exif(p) for p in paths])
    evs -= np.median(evs)
    times = (2.0**evs).astype(np.float32)
    height, width = images.shape[1:3]
    grid = torch.tensor(_opencv_grid(height, width))
    response = cv2.createCalibrateDebevec(70, 10.0, False).process(list(images), times)
    expected = np.log(response)[:, 0, :].T  # (3, 256)
    expected -= expected[:, 128:129]
    stack = to_tensor(images).unsqueeze(0)
    g = solve_inverse_crf(stack, torch.tensor(evs)[None], sample_index=grid.expand(1, 3, -1),
                          smoothness=10.0)  # fmt: skip
    observed = np.unique(images[:, grid // width, grid % width])
    observed = observed[(observed > 5) & (observed < 250)]
    np.testing.assert_allclose(g[0].numpy()[:, observed], expected[:, observed], atol=0.03)
    informative = sum(hat_weights().numpy()[image] for image in images) > 0
    ours, _ = merge_exposures(to_tensor(images), evs, inverse_crf=torch.from_numpy(np.log(
        response[:, 0, :].T.astype(np.float64))).float())  # fmt: skip
    for c in range(3):  # OpenCV averages weights over channels: compare one channel at a time
        planes = [np.ascontiguousarray(image[:, :, c]) for image in images]
        curve = response[:, :, c].reshape(256, 1, 1)
        merged = cv2.createMergeDebevec().process(planes, times, curve)
        mask = informative[:, :, c]
        np.testing.assert_allclose(ours[c].numpy()[mask], merged[mask], rtol=1e-4)


def test_backward_is_eq3_by_hand():
    g = torch.linspace(-4.0, 1.5, 256, dtype=torch.float64) ** 3 / 10
    g = (g - g[128]).expand(3, 256).contiguous()
    levels = torch.tensor([[0, 40, 200], [30, 128, 255]], dtype=torch.float64)  # (P=2, 3 px)
    stack = (levels / 255).view(2, 1, 1, 3).expand(2, 3, 1, 3).clone().requires_grad_()
    evs = torch.tensor([-1.0, 1.0])
    log_radiance = merge_exposures(stack, evs, inverse_crf=g)[0].log()
    log_radiance.sum().backward()
    w = hat_weights(torch.float64)
    slope = torch.cat([g[0, 1:2] - g[0, :1], g[0, 1:] - g[0, :-1]])  # Eq. 3; right-sided at 0
    k = levels.long()
    expected = 255 * w[k] / w[k].sum(0) * slope[k]
    for c in range(3):
        torch.testing.assert_close(stack.grad[:, c, 0], expected, rtol=1e-12, atol=1e-12)
    # forward is Eq. 2 on the table values at integer levels
    lt = (evs * math.log(2)).view(2, 1).double()
    expected_value = (w[k] * (g[0][k] - lt)).sum(0) / w[k].sum(0)
    torch.testing.assert_close(log_radiance[0, 0].detach(), expected_value)


def test_derivative_at_level_zero_is_the_one_sided_right_derivative():
    """A pixel black in every exposure takes the longest exposure (the all-clipped fallback),
    so its gradient is that of ĝ at Z = 0: a finite difference from the right, positive.
    (Eq. 3 as printed, g(0), is negative here and would make a brighter pixel darker.)"""
    g = torch.log(torch.linspace(0.5, 255, 256, dtype=torch.float64) / 255) * 2.2
    g = (g - g[128]).expand(3, 256).contiguous()
    evs = torch.tensor([-1.0, 0.0, 1.0])
    stack = torch.zeros(3, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    merge_exposures(stack, evs, inverse_crf=g)[0].log().sum().backward()
    step = 1e-6
    nudged = stack.detach().clone()
    nudged[2] += step  # the longest exposure, a little above black
    after = merge_exposures(nudged, evs, inverse_crf=g)[0].log()
    before = merge_exposures(stack.detach(), evs, inverse_crf=g)[0].log()
    difference = (after - before) / step
    assert (stack.grad[2] > 0).all() and (stack.grad[:2] == 0).all()
    torch.testing.assert_close(stack.grad[2, :, 0, 0], difference[:, 0, 0], rtol=1e-4, atol=0)
    torch.testing.assert_close(stack.grad[2, 0, 0, 0], 255 * (g[0, 1] - g[0, 0]))


def test_gradient_at_integer_levels_is_the_left_finite_difference():
    """At an integer level k the layer is in segment (k − 1, k] (Eq. 3): its gradient is the
    finite difference from the left, for well-exposed pixels and for a pixel clipped white in
    every exposure (the all-clipped fallback: the shortest exposure's ĝ at 255)."""
    torch.manual_seed(0)
    g = torch.cumsum(torch.rand(3, 256, dtype=torch.float64) * 0.05 + 0.01, dim=1)
    g = (g - g[:, 128:129]).contiguous()
    evs = torch.tensor([-1.0, 0.0, 2.0])
    levels = torch.randint(20, 236, (3, 3, 1, 4)).double()
    levels[:, :, 0, 3] = 255  # white everywhere: the fallback takes EV −1
    stack = (levels / 255).requires_grad_()
    merge_exposures(stack, evs, inverse_crf=g)[0].log().sum().backward()
    step = 1e-7
    before = merge_exposures(stack.detach(), evs, inverse_crf=g)[0].log()
    for index in [(0, 1, 0, 0), (1, 2, 0, 2), (2, 0, 0, 1), (0, 0, 0, 3), (1, 1, 0, 3)]:
        nudged = stack.detach().clone()
        nudged[index] -= step
        after = merge_exposures(nudged, evs, inverse_crf=g)[0].log()
        channel = index[1]
        difference = ((before - after)[channel] / step).sum()
        torch.testing.assert_close(stack.grad[index], difference, rtol=1e-5, atol=1e-9)
    assert stack.grad[0, :, 0, 3].gt(0).all() and (stack.grad[1:, :, 0, 3] == 0).all()


@pytest.mark.parametrize("pixel_weights, solved", [(False, False), (True, False), (False, True)])
def test_gradcheck_between_levels(pixel_weights, solved):
    """Exact gradients with a given curve and with the Eq. 1 solve and its monotone fit (the
    solved curve is a constant of the rounded levels, as in the paper)."""
    torch.manual_seed(0)
    g = torch.cumsum(torch.rand(3, 256, dtype=torch.float64) * 0.05 + 0.01, dim=1)
    g = None if solved else g - g[:, 128:129]
    levels = torch.randint(3, 250, (4, 3, 3, 4)).double() + torch.rand(4, 3, 3, 4).double() * 0.3
    levels += 0.1  # away from integers (Eq. 3 kinks) and from half-levels (weight steps)
    stack = (levels / 255).requires_grad_()

    def merged(stack):
        return merge_exposures(stack, [-2.0, -0.5, 1.0, 2.5], inverse_crf=g,
                               pixel_weights=pixel_weights)[0]  # fmt: skip

    assert torch.autograd.gradcheck(merged, (stack,), eps=1e-7, atol=1e-6)


def test_fully_clipped_pixels_use_shortest_or_longest_exposure():
    g = torch.linspace(-5, 2, 256, dtype=torch.float64).expand(3, 256).contiguous()
    g = g - g[:, 128:129]
    stack = torch.zeros(3, 3, 1, 2, dtype=torch.uint8)
    stack[:, :, 0, 0] = 255  # bright in every exposure
    stack[:, :, 0, 1] = 0  # dark in every exposure
    evs = torch.tensor([0.0, -2.0, 1.0])
    radiance, _ = merge_exposures(stack, evs, inverse_crf=g)
    log_radiance = radiance.double().log()
    torch.testing.assert_close(
        log_radiance[:, 0, 0], g[:, 255] + 2 * math.log(2), rtol=0, atol=1e-5
    )
    torch.testing.assert_close(log_radiance[:, 0, 1], g[:, 0] - 1 * math.log(2), rtol=0, atol=1e-5)


def test_batched_equals_single_and_uint8_equals_float(city_radiance):
    first = to_tensor(make_stack(city_radiance[:40, :60]))
    second = to_tensor(make_stack(city_radiance[40:80, 60:120] * 3, srgb_curve))
    batch = torch.stack([first, second])
    evs = torch.tensor(np.stack([EVS, EVS + 0.5]))
    radiance, g = merge_exposures(batch, evs)
    for b, stack in enumerate((first, second)):
        single, single_g = merge_exposures(stack, evs[b])
        torch.testing.assert_close(radiance[b], single)
        torch.testing.assert_close(g[b], single_g)
    as_float, _ = merge_exposures(first.float() / 255, EVS)
    torch.testing.assert_close(as_float, radiance[0], rtol=1e-5, atol=1e-6)


def test_dtype_follows_input(city_radiance):
    stack = to_tensor(make_stack(city_radiance[:32, :32])).double() / 255
    radiance64, g64 = merge_exposures(stack, EVS)
    radiance32, g32 = merge_exposures(stack.float(), EVS)
    assert radiance64.dtype == g64.dtype == torch.float64
    assert radiance32.dtype == g32.dtype == torch.float32
    torch.testing.assert_close(radiance32.double(), radiance64, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    radiance = cv2.resize(np.exp(rng.normal(-1.5, 1.5, (16, 24, 3))), (240, 160))
    stack = to_tensor(make_stack(radiance)).float() / 255
    cpu, g_cpu = merge_exposures(stack, EVS)
    gpu_stack = stack.cuda().requires_grad_()
    gpu, g_gpu = merge_exposures(gpu_stack, EVS)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=1e-4, atol=1e-4)
    gpu.log().mean().backward()
    assert torch.isfinite(gpu_stack.grad).all()


@pytest.mark.parametrize(
    "stack, evs, message",
    [
        (torch.rand(1, 3, 4, 4), [0.0], "at least 2"),
        (torch.rand(3, 3, 4, 4), [0.0, 1.0], "3 images"),
        (torch.rand(3, 3, 4, 4), [0.0, 1.0, 1.0], "same exposure"),
        (torch.rand(3, 3, 4, 4), [0.0, 1.0, float("nan")], "finite"),
        (torch.rand(3, 4, 4, 4), [0.0, 1.0, 2.0], "shape"),
        (torch.randint(0, 9, (3, 3, 4, 4)), [0.0, 1.0, 2.0], "uint8"),
        (torch.rand(3, 3, 4, 4).index_put_((torch.tensor([1]),), torch.tensor(float("nan"))),
         [0.0, 1.0, 2.0], "NaN"),
        (torch.rand(3, 3, 4, 4) * 255, [0.0, 1.0, 2.0], r"\[0, 1\].*uint8"),
        (torch.rand(3, 3, 4, 4) - 0.5, [0.0, 1.0, 2.0], r"\[0, 1\]"),
    ],
)
def test_rejects_bad_input(stack, evs, message):
    with pytest.raises(HdrsynError, match=message):
        merge_exposures(stack, evs)


def test_exposure_weights_scale_each_images_hat_weight_by_hand():
    g = torch.log(torch.linspace(0.5, 255, 256, dtype=torch.float64) / 255) * 2.2
    g = (g - g[128]).expand(3, 256).contiguous()
    levels = torch.tensor([[60.0], [200.0]], dtype=torch.float64)  # two exposures, one pixel
    stack = (levels / 255).view(2, 1, 1, 1).expand(2, 3, 1, 1).clone().requires_grad_()
    evs = torch.tensor([0.0, 1.0])
    w = hat_weights(torch.float64)[levels.long()].flatten()  # 60, 55
    for factors in ([1.0, 1.0], [16.0, 1.0]):
        c = torch.tensor(factors, dtype=torch.float64)
        log_e = g[0, levels.long().flatten()] - evs.double() * math.log(2)
        expected = (c * w * log_e).sum() / (c * w).sum()
        merged = merge_exposures(stack, evs, inverse_crf=g, exposure_weights=c)[0]
        assert merged.log()[0, 0, 0].item() == pytest.approx(expected.item(), rel=1e-12)
    stack.grad = None
    merged = merge_exposures(stack, evs, inverse_crf=g, exposure_weights=[16.0, 1.0])[0]
    merged.log().sum().backward()
    share = 16 * w[0] / (16 * w[0] + w[1])
    slope = 255 * (g[0, 60] - g[0, 59])
    assert stack.grad[0, 0, 0, 0].item() == pytest.approx((share * slope).item(), rel=1e-9)
    with pytest.raises(HdrsynError, match="exposure_weights"):
        merge_exposures(stack, evs, exposure_weights=[1.0, 0.0])


def test_pixel_weights_give_each_channel_the_smallest_channel_weight_by_hand():
    g = torch.log(torch.linspace(0.5, 255, 256, dtype=torch.float64) / 255) * 2.2
    g = (g - g[128]).expand(3, 256).contiguous()
    # one pixel, two exposures: red is near clipping in the longer one, green and blue are not
    levels = torch.tensor([[120.0, 100.0, 80.0], [250.0, 210.0, 170.0]], dtype=torch.float64)
    stack = (levels / 255).view(2, 3, 1, 1).clone().requires_grad_()
    evs = torch.tensor([0.0, 1.0])
    hat = hat_weights(torch.float64)
    shared = hat[levels.long()].min(dim=1).values  # per exposure: 80, 5
    merged = merge_exposures(stack, evs, inverse_crf=g, pixel_weights=True)[0]
    for c in range(3):
        log_e = g[c, levels[:, c].long()] - evs.double() * math.log(2)
        expected = (shared * log_e).sum() / shared.sum()
        assert merged.log()[c, 0, 0].item() == pytest.approx(expected.item(), rel=1e-12)
    merged.log()[2].sum().backward()  # blue's gradient: its own slope, the shared shares
    share = shared / shared.sum()
    for j in range(2):
        k = int(levels[j, 2])
        slope = 255 * (g[2, k] - g[2, k - 1])
        assert stack.grad[j, 2, 0, 0].item() == pytest.approx((share[j] * slope).item(), rel=1e-9)


def test_normal_equations_fall_back_to_least_squares_when_cholesky_fails(monkeypatch):
    """Systems whose Cholesky factorisation fails are solved by least squares; the others keep
    the Cholesky solution. Both agree with NumPy's solve on well-posed systems."""
    import hdrsyn.camera as camera

    rng = np.random.default_rng(0)
    matrices = rng.normal(size=(3, 6, 6))
    normal = torch.from_numpy(matrices @ matrices.transpose(0, 2, 1) + 6 * np.eye(6))
    target = torch.from_numpy(rng.normal(size=(3, 6)))
    expected = np.linalg.solve(normal.numpy(), target.numpy()[..., None])[..., 0]
    torch.testing.assert_close(camera._solve_normal_equations(normal, target),
                               torch.from_numpy(expected))  # fmt: skip
    original = torch.linalg.cholesky_ex
    used = []

    def failing(matrix):
        factor, info = original(matrix)
        info = info.clone()
        info[1] = 3  # as if the second system were not positive definite
        return factor.clone().index_fill_(0, torch.tensor([1]), float("nan")), info

    monkeypatch.setattr(torch.linalg, "cholesky_ex", failing)
    original_lstsq = torch.linalg.lstsq
    def counting_lstsq(a, b):
        used.append(len(a))
        return original_lstsq(a, b)

    monkeypatch.setattr(torch.linalg, "lstsq", counting_lstsq)
    solved = camera._solve_normal_equations(normal, target)
    assert used == [1]  # one system went to least squares
    torch.testing.assert_close(solved, torch.from_numpy(expected))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_table_lookup_is_indexing(dtype):
    """The merge's table lookup (OpenCV's LUT for float32/float64 on the CPU, torch otherwise)
    is plain indexing, on strided rows of a stack as the merge passes them."""
    from hdrsyn.camera import look_up

    torch.manual_seed(0)
    table = torch.randn(256, dtype=dtype)
    stack = torch.randint(0, 256, (7, 3, 50), dtype=torch.uint8)
    levels = stack[:, 1]  # (7, 50), rows 150 apart
    torch.testing.assert_close(look_up(table, levels), table[levels.long()], rtol=0, atol=0)
    out = torch.empty(7, 50, dtype=dtype)
    assert look_up(table, levels, out) is out
    torch.testing.assert_close(out, table[levels.long()], rtol=0, atol=0)


def test_solve_is_the_least_squares_solution_of_eq1_written_densely():
    """Eq. 1 as one dense least-squares problem in NumPy (data rows, g(128) = 0, λ·√(N/70)·w·g'',
    and the solver's 10⁻¹⁰ relative ridge), solved by lstsq, against the solver's scatter-built
    normal equations."""
    rng = np.random.default_rng(0)
    exposures, n = 4, 30
    evs = np.array([-2.0, -0.5, 1.0, 2.5])
    stack = torch.from_numpy(rng.integers(0, 256, (1, exposures, 1, 6, 5), dtype=np.uint8))
    index = torch.from_numpy(rng.choice(30, n, replace=False))[None, None]
    g = solve_inverse_crf(stack, torch.tensor(evs)[None], smoothness=3.0, sample_index=index,
                          monotone=False)  # fmt: skip
    w = hat_weights(torch.float64).numpy()
    z = stack.reshape(exposures, 30)[:, index[0, 0]].numpy().astype(int)  # (P, n)
    rows, rhs = [], []
    for s in range(n):
        for j in range(exposures):
            row = np.zeros(256 + n)
            row[z[j, s]] += w[z[j, s]]
            row[256 + s] -= w[z[j, s]]
            rows.append(row)
            rhs.append(w[z[j, s]] * evs[j] * math.log(2))
    row = np.zeros(256 + n)
    row[128] = 1.0
    rows.append(row)
    rhs.append(0.0)
    for k in range(1, 255):
        row = np.zeros(256 + n)
        row[k - 1 : k + 2] = 3.0 * math.sqrt(n / 70) * w[k] * np.array([1.0, -2.0, 1.0])
        rows.append(row)
        rhs.append(0.0)
    rows, rhs = np.array(rows), np.array(rhs)
    ridge = 1e-10 * max(1.0, (rows**2).sum(axis=0).max())  # the solver's relative ridge
    rows = np.concatenate([rows, math.sqrt(ridge) * np.eye(256 + n)])
    rhs = np.concatenate([rhs, np.zeros(256 + n)])
    expected = np.linalg.lstsq(rows, rhs, rcond=None)[0][:256]
    expected -= expected[128]
    np.testing.assert_allclose(g[0, 0].numpy(), expected, atol=1e-6)


def _colour_speckles(radiance: np.ndarray) -> int:
    """Pixels whose chromaticity jumps from a neighbour's by more than 1 (sum over RGB of
    |Δ(c / mean c)| to the right and below): single-pixel colour speckles and streaks."""
    chroma = radiance / (radiance.mean(axis=2, keepdims=True) + 1e-8)
    jumps = (np.abs(np.diff(chroma, axis=1))[:-1] + np.abs(np.diff(chroma, axis=0))[:, :-1])
    return int((jumps.sum(axis=2) > 1).sum())


def test_pixel_weights_merge_a_real_bracket_without_colour_speckles():
    """The bundled bracket (JPEGs): with per-channel weights (Eq. 2 as printed), the window's
    near-white pixels take each channel from other exposures and come out speckled in yellow,
    cyan and red; weighing every channel of a pixel alike removes most of them, to about as
    few as OpenCV's merge of the same files."""
    folder = Path(__file__).resolve().parents[1] / "examples" / "interior"
    images = [cv2.imread(str(folder / f"ev{ev:+d}.jpg")) for ev in range(-3, 4)]
    stack = torch.from_numpy(np.stack(images)[..., ::-1].copy()).permute(0, 3, 1, 2)
    evs = torch.arange(-3.0, 4.0)
    channel, pixel = (merge_exposures(stack.contiguous(), evs, pixel_weights=joint)[0]
                      .permute(1, 2, 0).numpy() for joint in (False, True))  # fmt: skip
    times = (2.0 ** np.arange(-3.0, 4.0)).astype(np.float32)
    response = cv2.createCalibrateDebevec().process(images, times)
    opencv = cv2.createMergeDebevec().process(images, times, response)[..., ::-1]
    speckles = {name: _colour_speckles(r) for name, r in
                (("channel", channel), ("pixel", pixel), ("opencv", opencv))}  # fmt: skip
    assert speckles["pixel"] < 0.8 * speckles["channel"], speckles
    assert speckles["pixel"] < 1.2 * speckles["opencv"], speckles
    # where no channel is near clipping or black the weightings differ only in how they mix
    # well-exposed estimates: the same radiance within noise
    levels = stack.numpy()
    inside = ((levels > 10) & (levels < 245)).all(axis=(0, 1))
    difference = np.abs(np.log(pixel[inside]) - np.log(channel[inside]))
    assert np.median(difference) < 0.01 and np.percentile(difference, 99) < 0.05
