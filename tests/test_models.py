import pytest
import torch
from torch import nn

from hdrsyn import HdrsynError
from hdrsyn.models import PRESETS, HDRSynthesizer, ModelConfig, StackGenerator, parameter_count
from hdrsyn.models.blocks import ConditionalInstanceNorm, ConvBlock, ConvGRU

TINY = ModelConfig(
    global_base=4,
    global_levels=3,
    local_base=4,
    local_levels=2,
    refine_base=4,
    refine_levels=3,
    max_width=16,
)


def as_if_trained(module):
    """Output layers start at zero (the untrained net is the physical prior); give them values."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if ".head." in name:
                parameter.normal_(std=0.1)
    return module


@pytest.mark.parametrize("height, width", [(17, 23), (32, 32), (9, 40)])
def test_stack_shapes_for_odd_sizes(height, width):
    torch.manual_seed(0)
    generator = StackGenerator(TINY).eval()
    image = torch.rand(2, 3, height, width)
    out = generator(image)
    assert out.stack.shape == (2, 7, 3, height, width)
    assert out.evs.tolist() == [-3, -2, -1, 0, 1, 2, 3]
    torch.testing.assert_close(out.stack[:, 3], image)  # EV 0 is the input itself
    assert len(out.steps) == 6
    for _, _, step in out.steps:
        assert step.edge.shape == (2, 1, height, width)
        assert step.global_image.shape == (2, 3, height, width)


def test_hdr_loss_gradient_reaches_every_subnetwork():
    torch.manual_seed(0)
    model = HDRSynthesizer(TINY)
    with (
        torch.no_grad()
    ):  # output layers start at zero (the prior); make them those of a trained net
        for name, parameter in model.named_parameters():
            if ".head." in name:
                parameter.normal_(std=0.1)
    image = torch.rand(1, 3, 24, 24) * 0.8 + 0.1
    _, radiance = model(image)
    radiance.log().mean().backward()  # through the differentiable HDR layer only
    for name, module in [
        (f"{direction}.{net}", getattr(getattr(model.generator, direction), net))
        for direction in ("stop_up", "stop_down")
        for net in ("global_net", "local_net", "refine_net")
    ]:
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, name


def test_untrained_model_makes_the_physical_srgb_stack():
    """Zero output layers: every step is the sRGB re-exposure of its input, so the stack is the
    photo re-exposed by ±1…3 stops (clipping included), computed here in NumPy."""
    import numpy as np

    torch.manual_seed(0)
    image = torch.rand(1, 3, 16, 16)
    stack = StackGenerator(TINY).eval()(image).stack[0].detach().double().numpy()
    photo = image[0].double().numpy()
    linear = np.where(photo <= 0.04045, photo / 12.92, ((photo + 0.055) / 1.055) ** 2.4)
    for index, ev in enumerate(range(-3, 4)):
        exposed = np.clip(linear * 2.0**ev, 0, 1)
        encoded = np.where(
            exposed <= 0.0031308, exposed * 12.92, 1.055 * exposed ** (1 / 2.4) - 0.055
        )
        expected = np.clip(encoded, 1e-3, 1 - 1e-3) if ev else photo  # the logit clamp
        np.testing.assert_allclose(stack[index], expected, atol=2e-5)
    identity = StackGenerator(ModelConfig(**{**TINY.to_dict(), "prior": "identity"})).eval()
    np.testing.assert_allclose(
        identity(image).stack[0, 0].detach().numpy(),
        image[0].clamp(1e-3, 1 - 1e-3).numpy(),
        atol=1e-6,
    )
    with pytest.raises(HdrsynError, match="prior"):
        ModelConfig(prior="linear")


def test_untrained_model_with_the_true_curve_makes_the_cameras_own_stack():
    """With the prior re-exposing through the photo's curve, an untrained model makes the stack
    that camera would have taken, clipping included: here the dataset's own rendering through
    a Reinhard roll-off curve (NumPy) is the reference, on pixels not clipped by the logit."""
    import numpy as np

    from hdrsyn.capture import quantise
    from hdrsyn.curves import ResponseCurve, decode
    from hdrsyn.models.stacknet import merge_stack

    curve = ResponseCurve("reinhard", white=8.0)
    rng = np.random.default_rng(0)
    radiance = np.exp(rng.normal(-2.5, 1.2, (16, 16, 3)))
    photo = torch.from_numpy(quantise(curve(radiance))).permute(2, 0, 1)[None]
    g = torch.from_numpy(curve.log_inverse())[None]
    config = ModelConfig(**{**TINY.to_dict(), "prior": "estimated", "merge": "estimated"})
    model = HDRSynthesizer(config).eval()
    model.generator.estimate_curve = lambda image: g - g[:, 128:129]
    generated, merged = model(photo)
    for index, ev in enumerate(range(-3, 4)):
        truth = curve(radiance * 2.0**ev).transpose(2, 0, 1)
        ours = generated.stack[0, index].detach().numpy()
        known = photo[0].numpy() < 1  # what a clipped pixel hides, physics cannot give
        inside = (truth > 2e-3) & (truth < 1 - 2e-3) & known
        np.testing.assert_allclose(ours[inside], truth[inside], atol=3 / 255)
        assert (ours[(truth >= 1) & known] > 0.99).all()  # what clips at EV, clips
    # merged with the same curve, a well-exposed pixel's radiance is the photo decoded
    well = ((photo > 0.05) & (photo < 0.95)).all(dim=1)[0]
    decoded = decode(photo, g - g[:, 128:129])[0]
    ratio = (merged[0] / decoded)[:, well]
    torch.testing.assert_close(ratio, torch.ones_like(ratio), rtol=2e-2, atol=0)
    assert merge_stack(generated, config)[1].shape == (1, 3, 256)
    with pytest.raises(HdrsynError, match="needs prior"):
        ModelConfig(merge="estimated")


def test_curve_net_is_monotone_normalised_deterministic_and_trainable():
    from hdrsyn.models.curve import CurveNet

    torch.manual_seed(0)
    net = CurveNet().eval()
    with torch.no_grad():  # a random last layer, so the output is not just the mean curve
        net.head[-1].weight.normal_(0, 0.05)
    photo = torch.rand(2, 3, 90, 130)
    g = net(photo)
    assert g.shape == (2, 256) and (g.diff(dim=1) >= 0).all() and (g[:, 128] == 0).all()
    assert torch.equal(net(photo), g) and not torch.equal(g[0], g[1])
    g.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.head.parameters())
    # the level histograms see the photo's own levels: a clip at 255 is not blurred away
    from hdrsyn.models.curve import _level_histograms

    spike = torch.full((1, 3, 40, 40), 200 / 255)
    spike[..., :10, :] = 1.0
    shares = _level_histograms(spike)[0].square()
    assert shares[0, 255] == pytest.approx(0.25) and shares[0, 200] == pytest.approx(0.75)


def test_condition_changes_output():
    torch.manual_seed(0)
    norm = ConditionalInstanceNorm(4, "discrete")
    with torch.no_grad():
        norm.gamma[1] = 2.0
        norm.beta[1] = 0.5
    x = torch.randn(1, 4, 5, 5)
    first = norm(x, torch.tensor([[0.0, 1.0]]))
    second = norm(x, torch.tensor([[1.0, 2.0]]))
    torch.testing.assert_close(second, 2 * first + 0.5)
    continuous = ConditionalInstanceNorm(4, "continuous")
    with torch.no_grad():
        continuous.mlp[-1].weight.normal_()
    a = continuous(x, torch.tensor([[0.0, 1.0]]))
    b = continuous(x, torch.tensor([[0.0, 1.5]]))
    assert (a - b).abs().max() > 1e-3


def _random_cin(channels: int) -> ConditionalInstanceNorm:
    """A discrete CIN with random step tables (seed 0, which the caller's data then follows)."""
    torch.manual_seed(0)
    norm = ConditionalInstanceNorm(channels, "discrete")
    with torch.no_grad():
        norm.gamma.normal_()
        norm.beta.normal_()
    return norm


def test_cin_is_torch_instance_norm_with_step_affine_and_keeps_channels_last():
    norm = _random_cin(6)
    x = torch.randn(2, 6, 9, 7) * 3 + 5  # an offset mean: the variance is of the centred values
    condition = torch.tensor([[0.0, 2.0], [2.0, 3.0]])
    expected = nn.functional.instance_norm(x, eps=1e-5)
    expected = norm.gamma[[1, 2], :, None, None] * expected + norm.beta[[1, 2], :, None, None]
    torch.testing.assert_close(norm(x, condition), expected, atol=1e-5, rtol=1e-5)
    out = norm(x.contiguous(memory_format=torch.channels_last), condition)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_cin_backward_written_out_equals_autograd_of_torch_instance_norm():
    """CIN's hand-written backward against autograd through nn.functional.instance_norm, on a
    channels_last map with an offset mean, for the input and the step tables."""
    norm = _random_cin(6)
    x = (torch.randn(2, 6, 9, 7) * 3 + 5).contiguous(memory_format=torch.channels_last)
    condition = torch.tensor([[0.0, 2.0], [2.0, 3.0]])
    weights = torch.randn(2, 6, 9, 7)

    def gradients(function):
        inputs = [x.clone().requires_grad_(), norm.gamma, norm.beta]
        return torch.autograd.grad((function(inputs[0]) * weights).sum(), inputs)

    def reference(z):
        slots = [1, 2]
        normalised = nn.functional.instance_norm(z, eps=1e-5)
        return norm.gamma[slots, :, None, None] * normalised + norm.beta[slots, :, None, None]

    pairs = zip(gradients(lambda z: norm(z, condition)), gradients(reference), strict=True)
    for ours, expected in pairs:
        torch.testing.assert_close(ours, expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("shape", "k"), [((2, 8, 16, 12), 8), ((1, 4, 6, 10), 4), ((2, 8, 5, 5), 0)]
)
def test_cin_on_few_channels_folds_pixels_into_rows_with_the_same_values(shape, k):
    """A channels_last map with few channels is normalised through (B, H·W/k, k·C) row views
    (blocks._Rows: the CPU vectorises the longer rows): forward and backward equal the
    NCHW computation's, also for the batch stride oneDNN gives a batch of one (C), and the
    in-place inference path equals the autograd one bit for bit."""
    from hdrsyn.models.blocks import _Rows

    norm = _random_cin(shape[1])
    condition = torch.tensor([[0.0, 2.0]]).expand(shape[0], 2)
    plain = torch.randn(shape) * 3 + 5
    weights = torch.randn(shape)
    last = plain.contiguous(memory_format=torch.channels_last)
    views = [last]
    if shape[0] == 1:
        views.append(last.as_strided(shape, (shape[1], 1, shape[3] * shape[1], shape[1])))
    expected = norm(plain, condition)
    (expected_grad,) = torch.autograd.grad(
        (norm(plain.requires_grad_(), condition) * weights).sum(), plain
    )
    assert _Rows(last.to("meta")).k == 0  # the CPU only
    for x in views:
        assert _Rows(x).k == k
        out = norm(x, condition)
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
        x = x.detach().requires_grad_()
        (grad,) = torch.autograd.grad((norm(x, condition) * weights).sum(), x)
        torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)
        with torch.no_grad():
            assert torch.equal(norm(x.detach().clone(), condition, overwrite=True), out)


def test_in_place_inference_path_gives_the_same_values_and_leaves_inputs_alone():
    """Without autograd, CIN (``overwrite``) and Swish work in place on the block's own maps:
    bit for bit the values of the autograd path, and the block's input and skip untouched."""
    torch.manual_seed(0)
    block = ConvBlock(3, 5, "discrete")
    with torch.no_grad():
        for norm in block.norms:
            norm.gamma.normal_()
            norm.beta.normal_()
    x = torch.randn(2, 3, 8, 6).contiguous(memory_format=torch.channels_last)
    skip = torch.randn(2, 2, 8, 6)
    block.conv1 = nn.Conv2d(5, 5, 3, padding=1)  # takes x (3) and the skip (2)
    condition = torch.tensor([[0.0, 1.0], [1.0, 2.0]])
    inputs = x.clone(), skip.clone()
    expected = block(x, condition, skip=skip)
    with torch.no_grad():
        ours = block(x, condition, skip=skip)
        norm = block.norms[0]
        y = torch.randn(2, 5, 4, 4)
        assert torch.equal(norm(y.clone(), condition, overwrite=True), norm(y, condition))
    assert torch.equal(ours, expected.detach())
    assert torch.equal(x, inputs[0]) and torch.equal(skip, inputs[1])


def test_conv_block_with_a_skip_is_the_conv_of_the_concatenation():
    torch.manual_seed(0)
    block = ConvBlock(5 + 3, 4, "discrete")
    x, skip = torch.randn(2, 5, 9, 11), torch.randn(2, 3, 9, 11)
    condition = torch.tensor([[0.0, 1.0], [1.0, 2.0]])
    expected = block(torch.cat([x, skip], dim=1), condition)
    torch.testing.assert_close(block(x, condition, skip=skip), expected, atol=1e-5, rtol=1e-5)
    x.requires_grad_(True)
    block(x, condition, skip=skip).square().sum().backward()
    assert block.conv1.weight.grad[:, 5:].abs().sum() > 0  # the skip's block is trained too


def test_model_output_depends_on_step_condition():
    torch.manual_seed(0)
    generator = as_if_trained(StackGenerator(TINY))
    with torch.no_grad():
        for name, parameter in generator.named_parameters():
            if ".norms." in name:  # CIN starts as the identity for every step; make steps differ
                parameter.normal_(std=0.3)
    image = torch.rand(1, 3, 16, 16)
    net = generator.stop_up
    state_a, state_b = {}, {}
    edge = torch.zeros(1, 1, 16, 16)
    a = net(image, edge, torch.tensor([[0.0, 1.0]]), state_a).image
    b = net(image, edge, torch.tensor([[1.0, 2.0]]), state_b).image
    assert (a - b).abs().max() > 1e-4


def test_recursion_carries_gru_state():
    torch.manual_seed(0)
    net = as_if_trained(StackGenerator(TINY)).stop_up
    image = torch.rand(1, 3, 16, 16)
    edge = torch.zeros(1, 1, 16, 16)
    condition = torch.tensor([[0.0, 1.0]])
    state = {}
    first = net(image, edge, condition, state).image
    assert state["global"] is not None and state["local"] is not None
    second = net(image, edge, condition, state).image  # same input, carried state
    fresh = net(image, edge, condition, {}).image
    torch.testing.assert_close(fresh, first)
    assert (second - first).abs().max() > 1e-6


def test_gru_cell_is_the_gru_equations():
    """h' = (1 − z) h + z tanh(W [x, r ⊙ h]), [z, r] = σ(U [x, h]) (Ballas et al. 2016), by
    hand with the cell's own kernels, from a non-zero state."""
    torch.manual_seed(0)
    cell = ConvGRU(3)
    x, h = torch.randn(1, 3, 5, 5), torch.randn(1, 3, 5, 5)
    conv = torch.nn.functional.conv2d
    gates = torch.sigmoid(conv(torch.cat([x, h], 1), cell.gates.weight, cell.gates.bias, padding=1))
    z, r = gates[:, :3], gates[:, 3:]
    candidate = torch.tanh(conv(torch.cat([x, r * h], 1), cell.candidate.weight,
                                cell.candidate.bias, padding=1))  # fmt: skip
    torch.testing.assert_close(cell(x, h), (1 - z) * h + z * candidate)
    torch.testing.assert_close(cell(x, None), cell(x, torch.zeros_like(x)))


def test_gradcheck_cin_and_conv_gru():
    torch.manual_seed(0)
    for mode in ("discrete", "continuous"):
        norm = ConditionalInstanceNorm(4, mode).double()
        with torch.no_grad():  # away from the identity start, so γ and β matter
            for parameter in norm.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.3)
        x = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
        condition = torch.tensor([[0.0, 1.0], [-1.0, -2.0]], dtype=torch.float64)
        assert torch.autograd.gradcheck(norm, (x, condition))
    cell = ConvGRU(2).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    h = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cell, (x, h))


def test_deterministic_given_the_seed():
    """Two models built from one seed give the same stack bit for bit; another seed does not."""
    image = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    outputs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        model = as_if_trained(HDRSynthesizer(TINY)).eval()
        with torch.no_grad():
            outputs.append(model(image)[0].stack)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    assert (outputs[0] - outputs[2]).abs().max() > 1e-4


@pytest.mark.parametrize("preset", ["small", "paper"])
def test_presets_build_and_run_at_64(preset):
    torch.manual_seed(0)
    model = HDRSynthesizer(PRESETS[preset]).eval()
    with torch.no_grad():
        out, radiance = model(torch.rand(1, 3, 64, 64))
    assert out.stack.shape == (1, 7, 3, 64, 64)
    assert radiance.shape == (1, 3, 64, 64) and torch.isfinite(radiance).all()
    # the counts docs/models.md gives (3.48 M, 202.91 M): two StopNets each
    expected = {"small": 3_476_446, "paper": 202_910_318}[preset]
    assert parameter_count(model) == expected == 2 * parameter_count(model.generator.stop_up)


def test_gru_placement_and_ablation_options():
    paper = StackGenerator(ModelConfig(**{**TINY.to_dict(), "gru": "paper"})).stop_up
    assert paper.global_net.gru is None and paper.refine_net.gru is not None
    plain = StackGenerator(ModelConfig(**{**TINY.to_dict(), "decomposition": False}))
    out = plain(torch.rand(1, 3, 16, 16))
    assert out.stack.shape == (1, 7, 3, 16, 16) and out.steps[0][2].edge is None
    no_cin = StackGenerator(ModelConfig(**{**TINY.to_dict(), "condition": "none"}))
    assert not any("norms" in name for name, _ in no_cin.named_parameters())


def test_continuous_condition_allows_fractional_evs():
    generator = StackGenerator(ModelConfig(**{**TINY.to_dict(), "condition": "continuous"}))
    out = generator(torch.rand(1, 3, 16, 16), evs=(-1.0, 0.0, 1.5))
    assert out.evs.tolist() == [-1.0, 0.0, 1.5]
    with pytest.raises(HdrsynError, match="not a whole stop"):
        StackGenerator(TINY)(torch.rand(1, 3, 16, 16), evs=(0.0, 1.5))
    with pytest.raises(HdrsynError, match="gru"):
        ModelConfig(gru="everywhere")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu_and_trains():
    torch.manual_seed(0)
    model = HDRSynthesizer(TINY).eval()
    image = torch.rand(1, 3, 40, 24)
    with torch.no_grad():
        cpu_stack = model(image)[0].stack
        model.cuda()
        gpu_stack = model(image.cuda())[0].stack
    torch.testing.assert_close(gpu_stack.cpu(), cpu_stack, rtol=1e-3, atol=1e-3)
    model.train()
    _, radiance = model(image.cuda())
    radiance.log().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_photo_weight_makes_the_photo_decide_its_well_exposed_pixels():
    """With a large photo weight, an untrained model's merge of a well-exposed photo is the
    photo decoded, even when the generated exposures are off (here: perturbed)."""
    from hdrsyn.curves import decode, srgb_log_inverse
    from hdrsyn.models.stacknet import merge_stack

    torch.manual_seed(0)
    config = ModelConfig(**{**TINY.to_dict(), "prior": "estimated", "merge": "estimated",
                            "photo_weight": 1024.0})  # fmt: skip
    photo = torch.rand(1, 3, 16, 16) * 0.6 + 0.2
    g = srgb_log_inverse()[None]
    generated = StackGenerator(config).eval()(photo, curve=g - g[:, 128:129])
    generated.stack = (generated.stack + 0.03 * torch.randn_like(generated.stack)).clamp(0, 1)
    zero = generated.evs.tolist().index(0.0)
    generated.stack[:, zero] = photo
    radiance = merge_stack(generated, config)[0]
    expected = decode(photo, g - g[:, 128:129])
    ratio = radiance / expected
    torch.testing.assert_close(ratio, torch.ones_like(ratio), rtol=1e-2, atol=0)
    plain = merge_stack(generated, ModelConfig(**{**config.to_dict(), "photo_weight": 1.0}))[0]
    assert (plain / expected - 1).abs().mean() > 5 * (ratio - 1).abs().mean()
    with pytest.raises(HdrsynError, match="photo_weight"):
        ModelConfig(photo_weight=0.0)


def test_cin_statistics_stay_float32_for_bfloat16_inputs():
    """Under bf16 autocast the convs hand CIN bf16 maps: a mean rounded to bf16 (8 bits) would
    swamp a small variance, so the statistics are taken in float32 (as nn.InstanceNorm2d's
    kernels accumulate); the output keeps the input's dtype."""
    torch.manual_seed(0)
    norm = ConditionalInstanceNorm(4, "discrete")
    x = (torch.randn(1, 4, 16, 16) * 0.05 + 10).bfloat16()  # mean ≫ std
    out = norm(x, torch.tensor([[0.0, 1.0]]))
    assert out.dtype == torch.bfloat16
    expected = nn.functional.instance_norm(x.float(), eps=1e-5)
    assert (out.float() - expected).abs().max() < 0.05  # bf16 output rounding only


def test_upsampling_by_transposed_conv_is_bilinear_interpolation():
    """The decoder's large-map path (a transposed conv) against ``interpolate``: values and
    gradients, odd sides, both layouts; a size other than twice goes to ``interpolate``."""
    from hdrsyn.models.unet import upsampled

    torch.manual_seed(0)
    for layout in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(2, 16, 101, 87).contiguous(memory_format=layout).requires_grad_()
        assert x.numel() >= 1 << 18  # the transposed-conv path
        ours = upsampled(x, (202, 174))
        expected = nn.functional.interpolate(x, size=(202, 174), mode="bilinear")
        torch.testing.assert_close(ours, expected, atol=2e-6, rtol=0)
        weights = torch.randn_like(expected)
        ours_grad = torch.autograd.grad((ours * weights).sum(), x)[0]
        expected_grad = torch.autograd.grad((expected * weights).sum(), x)[0]
        torch.testing.assert_close(ours_grad, expected_grad, atol=2e-5, rtol=0)
    odd = torch.randn(1, 64, 64, 80)
    expected = nn.functional.interpolate(odd, size=(129, 160), mode="bilinear")
    torch.testing.assert_close(upsampled(odd, (129, 160)), expected)
    # bf16 (training under autocast on a CPU) goes to interpolate: oneDNN has no fast bf16
    # grouped transposed conv (measured 3.2 against 0.5 ms at 4 × 16 × 64²)
    half = torch.randn(4, 16, 64, 64, dtype=torch.bfloat16)
    expected = nn.functional.interpolate(half, size=(128, 128), mode="bilinear")
    assert torch.equal(upsampled(half, (128, 128)), expected)
    # a channels_last map stays channels_last (else the next conv copies it), also with the
    # batch stride oneDNN gives a batch of one (C instead of H·W·C)
    x = torch.randn(1, 16, 224, 304).contiguous(memory_format=torch.channels_last)
    for strides in (x.stride(), (16, 1, 304 * 16, 16)):
        view = x.as_strided(x.shape, strides)
        assert upsampled(view, (448, 608)).is_contiguous(memory_format=torch.channels_last)
