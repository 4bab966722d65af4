"""Building blocks: Swish conv blocks, conditional instance normalisation, Conv-GRU."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hdrsyn.stops import MAX_STEPS

NORM_EPS = 1e-5  # instance norm's ε (nn.InstanceNorm2d's default, which the weights trained with)


class ConditionalInstanceNorm(nn.Module):
    r"""Instance norm whose affine parameters depend on the requested exposure step.

    ``y = γ_e · (x − μ)/σ + β_e`` (Dumoulin et al. 2017, used on every decoder conv by
    Kim et al. 2021). Two ways to choose ``(γ_e, β_e)`` from the condition ``(ev_from, ev_to)``:

    * ``discrete``: one learned pair per recursion step (slot ``|ev_to| − 1`` for integer steps
      of one stop, as in the paper);
    * ``continuous``: a small MLP of ``(ev_to, ev_to − ev_from)``, so any EV (e.g. +1.5) can be
      asked for.
    """

    def __init__(
        self, channels: int, mode: str = "discrete", slots: int = MAX_STEPS, hidden: int = 32
    ):
        super().__init__()
        self.mode = mode
        if mode == "discrete":
            self.gamma = nn.Parameter(torch.ones(slots, channels))
            self.beta = nn.Parameter(torch.zeros(slots, channels))
        elif mode == "continuous":
            self.mlp = nn.Sequential(
                nn.Linear(2, hidden), nn.SiLU(), nn.Linear(hidden, 2 * channels)
            )
            nn.init.zeros_(self.mlp[-1].weight)
            with torch.no_grad():
                self.mlp[-1].bias.copy_(torch.cat([torch.ones(channels), torch.zeros(channels)]))
        else:
            raise ValueError(f"unknown condition mode {mode!r}; use 'discrete' or 'continuous'")

    def forward(self, x: Tensor, condition: Tensor, *, overwrite: bool = False) -> Tensor:
        """``x``: (B, C, H, W); ``condition``: (B, 2) = (ev_from, ev_to) of this step.
        ``overwrite``: ``x`` is the caller's temporary; when no gradient is recorded it is
        normalised in place (the same values, no new map: fewer fresh pages to fault in)."""
        if self.mode == "discrete":
            slot = (condition[:, 1].abs().round().long() - 1).clamp(0, self.gamma.shape[0] - 1)
            gamma, beta = self.gamma[slot], self.beta[slot]
        else:
            step = torch.stack([condition[:, 1], condition[:, 1] - condition[:, 0]], dim=1)
            gamma, beta = self.mlp(step.to(x.dtype)).chunk(2, dim=1)
        return _InstanceNorm.apply(x, gamma, beta, overwrite and not torch.is_grad_enabled())


class _InstanceNorm(torch.autograd.Function):
    """``γ · (x − μ)/σ + β`` per image and channel, γ and β (B, C): instance norm (biased
    variance, ε = 1e-5 as nn.InstanceNorm2d) with the scale folded in, written out so that it
    keeps the input's memory format (channels_last), and with its backward pass written out too
    (five passes over the map instead of autograd's nine: 2–3× faster on the CPU). Statistics in
    float32 under bf16 autocast: a mean rounded to bf16 would swamp a small variance.
    ``in_place`` (only without a backward pass): a float32/float64 ``x`` is overwritten."""

    @staticmethod
    def forward(ctx, x: Tensor, gamma: Tensor, beta: Tensor, in_place: bool = False) -> Tensor:
        dtype = x.dtype
        in_place = in_place and dtype in (torch.float32, torch.float64)
        x = x if dtype in (torch.float32, torch.float64) else x.float()
        rows = _Rows(x)
        mean = x.mean(dim=(2, 3), keepdim=True)
        centred = x if in_place else torch.empty_like(x)
        torch.sub(rows.map(x), rows.channel(mean), out=rows.map(centred))
        rstd = torch.rsqrt(centred.square().mean(dim=(2, 3), keepdim=True) + NORM_EPS)
        scale = gamma[:, :, None, None].to(x.dtype) * rstd
        ctx.save_for_backward(centred, rstd, scale)
        ctx.dtypes = dtype, gamma.dtype, beta.dtype
        beta = beta[:, :, None, None].to(x.dtype)
        out = centred if in_place else torch.empty_like(centred)
        torch.addcmul(rows.channel(beta), rows.map(centred), rows.channel(scale), out=rows.map(out))
        return out.to(dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        centred, rstd, scale = ctx.saved_tensors
        x_dtype, gamma_dtype, beta_dtype = ctx.dtypes
        rows = _Rows(centred)
        grad = rows.like(grad.to(centred.dtype))
        count = centred.shape[2] * centred.shape[3]
        grad_beta = grad.sum(dim=(2, 3), keepdim=True)
        projected = (grad * centred).sum(dim=(2, 3), keepdim=True)  # Σ dy · (x − μ)
        # dx = scale · (dy − mean(dy) − x̂ · mean(dy · x̂)), x̂ = (x − μ) · rstd
        grad_x = torch.empty_like(centred)
        shift, slope = -scale * grad_beta / count, -scale * rstd.square() * projected / count
        torch.addcmul(
            rows.channel(shift), rows.map(grad), rows.channel(scale), out=rows.map(grad_x)
        )
        rows.map(grad_x).addcmul_(rows.map(centred), rows.channel(slope))
        return (
            grad_x.to(x_dtype),
            (projected * rstd)[:, :, 0, 0].to(gamma_dtype),
            grad_beta[:, :, 0, 0].to(beta_dtype),
            None,
        )


class _Rows:
    """Views that run CIN's per-channel arithmetic on a long innermost dimension.

    PyTorch's CPU kernels vectorise along the innermost dimension, which in a channels_last map
    is C: ``x - mean`` on 8 channels runs 4–6× slower per value than on 16 (0.53 against 0.13 ms
    on 8 × 384 × 512 here, one AVX-512 vector holding 16 floats). So a channels_last map with
    few channels is viewed as (B, H·W/k, k·C) rows of k pixels, and each per-channel (B, C, 1, 1)
    value repeated k times: the same arithmetic, value for value. On the CPU only (a GPU would
    only launch more kernels), and below 16 channels only: from 16 on the rows are already
    vectorised and the views cost more than they save (CIN forward and backward at 4 × 16 × 64²:
    0.65 against 0.48 ms; at 4 × 8 × 128²: 0.80 against 1.10)."""

    def __init__(self, like: Tensor):
        batch, channels, height, width = like.shape
        self.k = 1
        while self.k * channels < 64 and (height * width) % (2 * self.k) == 0:
            self.k *= 2
        folds = (
            like.device.type == "cpu"  # GPU kernels do not vectorise this way; launches count
            and like.is_contiguous(memory_format=torch.channels_last)
            and 1 < channels < 16
        )
        self.k = self.k if folds and self.k > 1 else 0
        self.batch, self.channels = batch, channels

    def like(self, t: Tensor) -> Tensor:
        """``t`` (B, C, H, W) in the layout :meth:`map` needs."""
        return t.contiguous(memory_format=torch.channels_last) if self.k else t

    def map(self, t: Tensor) -> Tensor:
        """A (B, C, H, W) map in that layout as a view of rows (itself when not folded)."""
        if not self.k:
            return t
        return t.permute(0, 2, 3, 1).view(self.batch, -1, self.k * self.channels)

    def channel(self, value: Tensor) -> Tensor:
        """A (B, C, 1, 1) per-channel value, broadcastable against :meth:`map`'s rows."""
        if not self.k:
            return value
        return value.reshape(self.batch, 1, self.channels).repeat(1, 1, self.k)


class ConvBlock(nn.Module):
    """Two 3×3 convolutions, each followed by Swish; with a condition, CIN before each Swish."""

    def __init__(self, in_channels: int, out_channels: int, cin_mode: str | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norms = (
            nn.ModuleList([ConditionalInstanceNorm(out_channels, cin_mode) for _ in range(2)])
            if cin_mode
            else None
        )

    def forward(
        self, x: Tensor, condition: Tensor | None = None, skip: Tensor | None = None
    ) -> Tensor:
        """``x`` (B, C, H, W); ``skip``: a tensor the first conv takes as if concatenated after
        ``x`` on the channels (a U-Net's skip connection): the conv is split into its two weight
        blocks and summed, the same result without copying both into one tensor (1.6× faster
        on the CPU in channels_last)."""
        for index, conv in enumerate((self.conv1, self.conv2)):
            if index == 0 and skip is not None:
                split = x.shape[1]
                x = nn.functional.conv2d(x, conv.weight[:, :split], conv.bias, padding=1).add_(
                    nn.functional.conv2d(skip, conv.weight[:, split:], None, padding=1)
                )
            else:
                x = conv(x)
            if self.norms is not None:
                x = self.norms[index](x, condition, overwrite=True)  # x: this block's own
            # Swish (Ramachandran et al. 2017), in place when no gradient is recorded
            x = nn.functional.silu(x, inplace=not torch.is_grad_enabled())
        return x


class ConvGRU(nn.Module):
    """Convolutional GRU cell (Ballas et al. 2016); the hidden state has the input's size."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        padding = kernel_size // 2
        self.gates = nn.Conv2d(2 * channels, 2 * channels, kernel_size, padding=padding)
        self.candidate = nn.Conv2d(2 * channels, channels, kernel_size, padding=padding)

    def forward(self, x: Tensor, hidden: Tensor | None) -> Tensor:
        """``x``, ``hidden`` (B, C, H, W) (None: zeros) → the new hidden state (B, C, H, W):
        ``z, r = σ(W_g * [x, h])``, ``h̃ = tanh(W_c * [x, r ⊙ h])``, ``(1 − z) ⊙ h + z ⊙ h̃``."""
        if hidden is None:
            hidden = torch.zeros_like(x)
        update, reset = torch.sigmoid(self.gates(torch.cat([x, hidden], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * hidden], dim=1)))
        return (1 - update) * hidden + update * candidate
