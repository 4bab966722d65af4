"""A small ensemble of perceptrons, each member fitted on its own half of the views, so that
where the members disagree few training views were like the input (the caution's measure of
:mod:`hdrsyn.highlights`; also the curve-correction study, scripts/curve_refine.py)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Ensemble(nn.Module):
    """``members`` perceptrons (two SiLU hidden layers of ``hidden``) from ``inputs``
    standardised features (the buffers ``mean`` and ``scale``) to ``outputs`` numbers;
    called, the members' mean."""

    def __init__(self, members: int, hidden: int, inputs: int, outputs: int = 1):
        super().__init__()
        self.register_buffer("mean", torch.zeros(inputs))
        self.register_buffer("scale", torch.ones(inputs))
        shapes = [(inputs, hidden), (hidden, hidden), (hidden, outputs)]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(members, i, o) / i**0.5) for i, o in shapes)  # fmt: skip
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(members, 1, o)) for _, o in shapes)

    def members(self, features: Tensor) -> Tensor:
        """Each member's prediction for (N, inputs) features, or for its own (members, N,
        inputs): (members, N) with one output, else (members, N, outputs)."""
        x = ((features - self.mean) / self.scale).expand(len(self.weights[0]), -1, -1)
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(bias, x, weight)
            if layer < len(self.weights) - 1:
                x = nn.functional.silu(x)
        return x[..., 0] if x.shape[-1] == 1 else x

    def forward(self, features: Tensor) -> Tensor:
        return self.members(features).mean(dim=0)
