import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from hdrsyn import HdrsynError
from hdrsyn.losses import (
    CoBiLoss,
    VGG19Features,
    edge_loss,
    highlight_loss,
    histogram_loss,
    l1_loss,
    mu_law_loss,
    soft_histogram,
)
from hdrsyn.metrics import mu_law


def test_l1_by_hand():
    assert l1_loss(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.0])).item() == 0.75


def test_soft_histogram_counts_and_shares():
    image = torch.tensor([0.0, 1.0, 0.5 / 255 * 2, 100 / 255]).view(1, 1, 2, 2)
    histogram = soft_histogram(image)
    assert histogram.shape == (1, 1, 256)
    expected = torch.zeros(256)
    expected[0] += 1
    expected[255] += 1
    expected[1] += 1  # exactly on level 1
    expected[100] += 1
    torch.testing.assert_close(histogram[0, 0], expected / 4)
    halfway = soft_histogram(torch.full((1, 1, 1, 1), 10.5 / 255))[0, 0]
    assert halfway[10].item() == pytest.approx(0.5, abs=1e-4)
    assert halfway[11].item() == pytest.approx(0.5, abs=1e-4)


def test_soft_histogram_matches_numpy_for_integer_levels():
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, (2, 3, 16, 16))
    histogram = soft_histogram(torch.from_numpy(levels / 255.0).float())
    for b in range(2):
        for c in range(3):
            counts = np.bincount(levels[b, c].ravel(), minlength=256) / 256
            np.testing.assert_allclose(histogram[b, c].numpy(), counts, atol=1e-6)


def test_histogram_loss_values_and_gradient():
    image = torch.rand(1, 3, 8, 8)
    assert histogram_loss(image, image).item() == 0
    shuffled = image.flatten(2)[..., torch.randperm(64)].view(1, 3, 8, 8)
    assert histogram_loss(shuffled, image).item() == pytest.approx(0, abs=1e-6)  # spatial-blind
    black, white = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    assert histogram_loss(black, white).item() == pytest.approx(2.0)
    prediction = (torch.rand(1, 3, 8, 8) * 0.5).requires_grad_()
    histogram_loss(prediction, image).backward()
    assert prediction.grad.abs().sum() > 0


def test_edge_loss():
    target = torch.zeros(1, 3, 32, 32)
    target[..., 8:24, 8:24] = 1  # a bright square: edges on its border
    from hdrsyn.edges import canny_edges

    edges = canny_edges(target)
    assert 20 < edges.sum() < 200
    assert edge_loss(edges, edges).item() == 0
    prediction = torch.full_like(edges, 0.5, requires_grad=True)
    loss = edge_loss(prediction, edges)
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert prediction.grad.abs().sum() > 0


def test_mu_law_by_hand():
    assert mu_law(torch.tensor(1.0)).item() == pytest.approx(1.0)
    assert mu_law(torch.tensor(0.0)).item() == 0
    assert mu_law(torch.tensor(0.01), mu=100).item() == pytest.approx(math.log(2) / math.log(101))


def test_mu_law_loss_is_scale_free_and_signed_right():
    target = torch.rand(2, 3, 8, 8) + 0.01
    assert mu_law_loss(target * 37.0, target).item() == pytest.approx(0, abs=1e-6)
    brighter = target.clone()
    brighter[0, :, :4] *= 4  # the top half brighter relative to the peak
    small = mu_law_loss(target * 1.01, target).item()
    assert mu_law_loss(brighter, target).item() > small
    prediction = target.clone().requires_grad_()
    mu_law_loss(prediction * torch.linspace(0.5, 1, 8), target).backward()
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0
    # by hand: one pixel of two at half the other; aligned by the geometric-mean ratio √2
    a = torch.tensor([1.0, 0.5]).view(1, 1, 1, 2)
    b = torch.tensor([1.0, 1.0]).view(1, 1, 1, 2)
    r = math.sqrt(2)
    expected = (abs(math.log1p(5000 * r) - math.log1p(5000))
                + abs(math.log1p(5000 * r / 2) - math.log1p(5000))) / 2  # fmt: skip
    assert mu_law_loss(a, b).item() == pytest.approx(expected, rel=1e-5)
    # with a mask, only the masked pixels set the scale
    mask = torch.tensor([True, False]).view(1, 1, 1, 2)
    expected = abs(math.log1p(5000 * 0.5) - math.log1p(5000)) / 2
    assert mu_law_loss(a, b, mask=mask).item() == pytest.approx(expected, rel=1e-5)


def test_mu_law_loss_is_not_set_by_the_predictions_brightest_pixel():
    """A wrong highlight costs its own pixels, not a shift of the whole image."""
    target = torch.rand(1, 3, 16, 16) + 0.01
    target[..., 0, 0] = 50.0  # the sun
    clipped = target.clamp_max(1.2)  # a prediction whose highlight is clipped
    mask = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    mask[..., 0, 0] = False  # the sun is not well exposed in the photo
    expected = abs(math.log1p(5000 * 1.2 / 50) - math.log1p(5000)) / 256  # that pixel alone
    assert mu_law_loss(clipped, target, mask=mask).item() == pytest.approx(expected, rel=1e-4)


def test_highlight_loss_is_the_log_error_on_clipped_pixels_by_hand():
    target = torch.ones(1, 3, 2, 2)
    target[..., 0, 1] = 16.0  # a lamp, clipped in the photo
    target[..., 1, 1] = 4.0  # a window, clipped in the photo
    photo = torch.full((1, 3, 2, 2), 0.5)
    photo[..., :, 1] = 1.0
    mask = photo.lt(0.95).all(dim=1, keepdim=True)  # alignment: the two unclipped pixels
    prediction = target.clone() * 3.0  # a scale the alignment removes …
    prediction[..., 0, 1] = 3.0 * 2.0  # … the lamp predicted 3 stops too dark
    prediction[..., 1, 1] = 3.0 * 4.0  # the window right
    expected = (math.log(16.0 / 2.0) + 0.0) / 2
    assert highlight_loss(prediction, target, photo, mask).item() == pytest.approx(expected)
    assert highlight_loss(prediction, target, torch.full_like(photo, 0.5), mask).item() == 0
    prediction.requires_grad_()
    highlight_loss(prediction, target, photo, mask).backward()
    assert prediction.grad[..., 0, 1].sum() < 0  # brighter lamp, lower loss


def test_cobi_rgb_zero_for_identical_and_grows_with_difference():
    torch.manual_seed(0)
    loss = CoBiLoss()
    assert loss.features == "rgb-patches"
    image = torch.rand(1, 3, 32, 32)
    assert loss(image, image).item() == pytest.approx(0, abs=1e-5)
    shifted = torch.roll(image, 1, dims=3)
    noisy = (image + 0.3 * torch.randn_like(image)).clamp(0, 1)
    unrelated = torch.rand(1, 3, 32, 32)
    values = [loss(x, image).item() for x in (shifted, noisy, unrelated)]
    assert 0 < values[0] < values[2] and 0 < values[1]
    # shifting by one pixel costs about the spatial term of one pixel step, no more
    assert values[0] < 0.1 * (1 / 31) * 1.5 + 0.05


def test_cobi_gradient():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 24, 24)
    prediction = torch.rand(1, 3, 24, 24, requires_grad=True)
    CoBiLoss()(prediction, target).backward()
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0


def test_gradcheck_cobi():
    """CoBi on RGB patches, in float64: its gradient is the derivative of the loss."""
    torch.manual_seed(0)
    target = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    prediction = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    loss = CoBiLoss(patch=3, max_points=64)
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (prediction,), atol=1e-5)


def test_cobi_value_and_gradient_match_the_dense_minimum_by_hand():
    """The loss (its nearest candidate found without autograd, then differentiated) equals the
    formula written densely: min over all candidates of cosine + spatial distance, autograd
    through ``amin``."""
    torch.manual_seed(0)
    loss = CoBiLoss(patch=3, max_points=64, chunk=10)
    target = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    prediction = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    value = loss(prediction, target)
    (gradient,) = torch.autograd.grad(value, prediction)

    def dense(prediction):
        p = nn.functional.unfold(prediction, 3, padding=1).transpose(1, 2)  # (B, 64, 27)
        t = nn.functional.unfold(target, 3, padding=1).transpose(1, 2)
        centre = t.mean(dim=1, keepdim=True)
        p = nn.functional.normalize(p - centre, dim=2)
        t = nn.functional.normalize(t - centre, dim=2)
        ys, xs = torch.meshgrid(torch.linspace(0, 1, 8, dtype=torch.float64),
                                torch.linspace(0, 1, 8, dtype=torch.float64), indexing="ij")
        xy = torch.stack([ys.flatten(), xs.flatten()], dim=1)
        cost = 1 - t @ p.transpose(1, 2) + 0.1 * torch.cdist(xy, xy)  # (B, target, candidate)
        return cost.amin(dim=2).mean()

    expected = dense(prediction)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(gradient, torch.autograd.grad(expected, prediction)[0])


def test_cobi_finds_its_nearest_candidates_in_float32_under_autocast():
    """The losses run in float32 under bf16 autocast (docs/training.md): CoBi's candidate
    search too (autocast would run its batched product in bf16, whose 8 bits tie candidates
    0.004 apart and pick others: a different loss)."""
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    loss = CoBiLoss()
    expected = loss(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(loss(a, b), expected)


def test_cobi_chunking_does_not_change_result():
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 20, 20), torch.rand(2, 3, 20, 20)
    whole = CoBiLoss(chunk=100_000)(a, b)
    chunked = CoBiLoss(chunk=37)(a, b)
    torch.testing.assert_close(whole, chunked)


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operation produces, forward and backward."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.largest = max(self.largest, value.numel())
        return out


def test_cobi_memory_bounded_at_256():
    torch.manual_seed(0)
    prediction = torch.rand(1, 3, 256, 256, requires_grad=True)
    target = torch.rand(1, 3, 256, 256)
    loss = CoBiLoss(max_points=4096, chunk=1024)
    with LargestTensor() as probe:
        loss(prediction, target).backward()
    # without tiling the distance matrix alone would hold 4096² (or 65536²) entries
    assert probe.largest <= 1024 * 4096
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0


@pytest.fixture
def vgg_file(tmp_path):
    torch.manual_seed(0)
    reference = VGG19Features.__new__(VGG19Features)
    torch.nn.Module.__init__(reference)
    layers = []
    channels = 3
    for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512):
        if item == "M":
            layers.append(torch.nn.MaxPool2d(2))
        else:
            layers += [torch.nn.Conv2d(channels, item, 3, padding=1), torch.nn.ReLU()]
            channels = item
    state = {f"features.{k}": v for k, v in torch.nn.Sequential(*layers).state_dict().items()}
    # a torchvision VGG-19 state dict also holds the classifier (smaller here)
    state |= {"classifier.0.weight": torch.rand(8, 4), "classifier.0.bias": torch.rand(8)}
    save_file(state, tmp_path / "vgg19.safetensors")
    torch.save(state, tmp_path / "vgg19.pth")
    return tmp_path


def test_cobi_with_local_vgg_weights(vgg_file):
    for name in ("vgg19.safetensors", "vgg19.pth"):
        loss = CoBiLoss(vgg_weights=vgg_file / name)
        assert loss.features == "vgg19"
        image = torch.rand(1, 3, 32, 32)
        assert loss(image, image).item() == pytest.approx(0, abs=1e-4)
        prediction = torch.rand(1, 3, 32, 32, requires_grad=True)
        value = loss(prediction, image)
        value.backward()
        assert value.item() > 0 and prediction.grad.abs().sum() > 0
        assert all(not p.requires_grad for p in loss.vgg.parameters())


def test_vgg_weights_errors(tmp_path):
    with pytest.raises(HdrsynError, match="not found"):
        CoBiLoss(vgg_weights=tmp_path / "nope.safetensors")
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(HdrsynError, match="bad.pth"):
        CoBiLoss(vgg_weights=tmp_path / "bad.pth")


def test_canny_hysteresis_dilation_is_a_3x3_max_pool():
    """The hysteresis' dilation (shifted ORs) equals a 3 × 3 max pool, borders included, and
    canny_edges keeps weak edges only where they touch a strong one."""
    from hdrsyn.edges import _dilated, canny_edges

    torch.manual_seed(0)
    mask = torch.rand(2, 1, 17, 23) > 0.9
    expected = torch.nn.functional.max_pool2d(mask.float(), 3, 1, 1) > 0
    assert torch.equal(_dilated(mask), expected)
    image = torch.zeros(1, 3, 48, 48)
    image[..., :, 24:] = 1.0  # one strong vertical edge
    edges = canny_edges(image)
    assert edges[0, 0, 8:40, 22:26].sum() > 0 and edges[0, 0, :, :16].sum() == 0
