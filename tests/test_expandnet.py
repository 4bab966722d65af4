"""ExpandNet as a baseline: the shipped weights load whole, and the module computes what the
README of ../shared/peers/expandnet describes (checked against plain functional convolutions
written from that description, not from the module)."""

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from hdrsyn.baselines import BASELINES
from hdrsyn.expandnet import WEIGHTS, expandnet, load_expandnet


def _weights():
    from importlib import resources

    return load_file(str(resources.files("hdrsyn") / WEIGHTS))


def test_every_tensor_of_the_released_weights_loads():
    state = _weights()
    network = load_expandnet()
    assert sum(p.numel() for p in network.parameters()) == 456_899
    assert set(state) == set(network.state_dict())
    for name, tensor in network.state_dict().items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0)


def _reference(x: torch.Tensor, w: dict) -> torch.Tensor:
    def conv(x, name, stride=1, padding=0, dilation=1, selu=True):
        y = F.conv2d(x, w[name + ".weight"], w[name + ".bias"], stride, padding, dilation)
        return F.selu(y) if selu else y

    local = conv(conv(x, "local_net.0.0", padding=1), "local_net.1.0", padding=1)
    mid = x
    for i in range(3):
        mid = conv(mid, f"mid_net.{i}.0", padding=2, dilation=2)
    mid = conv(mid, "mid_net.3", padding=2, dilation=2, selu=False)
    glob = F.interpolate(x, (256, 256), mode="bilinear", align_corners=False)
    for i in range(6):
        glob = conv(glob, f"glob_net.{i}.0", stride=2, padding=1)
    glob = conv(glob, "glob_net.6", selu=False)  # (B, 64, 1, 1)
    fused = torch.cat([local, mid, glob.expand(-1, -1, *x.shape[-2:])], 1)
    return torch.sigmoid(conv(conv(fused, "end_net.0.0"), "end_net.1", selu=False))


def test_the_module_is_the_described_network():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 40, 72)
    with torch.no_grad():
        torch.testing.assert_close(load_expandnet()(x), _reference(x, _weights()))


def test_baseline_output_is_relative_radiance_and_deterministic():
    torch.manual_seed(1)
    ramp = torch.linspace(0, 1, 64).expand(3, 48, 64).contiguous()
    photo = (ramp * 0.8 + 0.1 * torch.rand(3, 48, 64)).clamp(0, 1)
    radiance = BASELINES["expandnet"](photo)
    assert radiance.shape == photo.shape and radiance.min() == 0 and radiance.max() == 1
    assert torch.equal(radiance, expandnet(photo))
    # brighter photo columns come out brighter (the network expands, it does not invert)
    columns = radiance.mean(dim=(0, 1))
    assert columns[-8:].mean() > 2 * columns[:8].mean()
