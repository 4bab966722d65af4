"""Stop-up / stop-down networks, the recursive stack generator, and the end-to-end synthesizer.

One :class:`StopNet` changes the exposure of an image by one step (Kim et al. 2021, Fig. 3):
a global net predicts the target tone, a local net its edges, a refinement net combines them.
:class:`StackGenerator` applies a stop-up and a stop-down net recursively (EV +1, +2, +3 and
−1, −2, −3), carrying the Conv-GRU states from step to step; :class:`HDRSynthesizer` adds the
differentiable HDR layer so that the whole chain trains end to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from hdrsyn.camera import merge_exposures
from hdrsyn.curves import reexpose
from hdrsyn.edges import canny_edges
from hdrsyn.errors import HdrsynError
from hdrsyn.models.curve import CurveNet
from hdrsyn.models.unet import UNet
from hdrsyn.stops import DEFAULT_EVS, chains
from hdrsyn.tonemap import srgb_decode, srgb_encode

_EPS = 1e-3  # images are clamped to [ε, 1 − ε] before the logit


@dataclass(frozen=True)
class ModelConfig:
    """Widths and options of one StopNet (the up and down nets share it).

    ``gru`` places the Conv-GRUs: ``"code"`` at the bottleneck of the global and local nets (the
    official code, which produced the published numbers), ``"paper"`` at the refinement net's
    bottleneck (the paper's text), ``"none"`` for no recurrent state. ``condition`` is the CIN
    mode: ``"discrete"`` (one γ, β per step), ``"continuous"`` (any EV) or ``"none"``.
    ``decomposition=False`` drops the global and local nets (refinement net alone).
    ``prior`` is what the image outputs are residuals of: the physical exposure change of the
    input (decode, scale by 2^Δ, encode, clip) under the response curve that
    :class:`~hdrsyn.models.curve.CurveNet` estimates from the photo (``"estimated"``) or under
    sRGB (``"srgb"``), or ``"identity"`` the input itself. ``merge`` is the curve the HDR layer
    merges the stack with: ``"solve"`` solves it from the stack (Eq. 1, the paper),
    ``"estimated"`` takes the estimated curve (the one that made the stack's physical part).
    ``photo_weight`` multiplies the EV 0 image's weight in Eq. 2: the photo is a measurement,
    the other exposures are predictions (1: Eq. 2 as printed; docs/hdr-layer.md).
    """

    global_base: int = 32
    global_levels: int = 5
    local_base: int = 16
    local_levels: int = 4
    refine_base: int = 16
    refine_levels: int = 5
    max_width: int = 1024
    gru: str = "code"
    condition: str = "discrete"
    decomposition: bool = True
    prior: str = "srgb"
    merge: str = "solve"
    photo_weight: float = 1.0

    def __post_init__(self):
        if self.gru not in ("code", "paper", "none"):
            raise HdrsynError(f"gru: {self.gru!r}; use 'code', 'paper' or 'none'")
        if self.condition not in ("discrete", "continuous", "none"):
            raise HdrsynError(f"condition: {self.condition!r}; use discrete, continuous or none")
        if self.prior not in ("estimated", "srgb", "identity"):
            raise HdrsynError(f"prior: {self.prior!r}; use 'estimated', 'srgb' or 'identity'")
        if self.merge not in ("solve", "estimated"):
            raise HdrsynError(f"merge: {self.merge!r}; use 'solve' or 'estimated'")
        if not self.photo_weight > 0:
            raise HdrsynError(f"photo_weight: {self.photo_weight}; must be positive")
        if self.merge == "estimated" and self.prior != "estimated":
            raise HdrsynError("merge = 'estimated' needs prior = 'estimated' (a curve estimate)")

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this."""
        return 2 ** max(self.global_levels, self.local_levels, self.refine_levels)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    # official widths (REFERENCE-NOTES.md): global 32→1024, local 16→256, refinement 16→512
    "paper": ModelConfig(),
    # the same structure, narrow enough to train on 2 CPU cores
    "small": ModelConfig(global_base=8, local_base=8, refine_base=8, max_width=64),
}


@dataclass
class StepOutput:
    image: Tensor  # (B, 3, H, W) the next exposure, in [0, 1]
    edge: Tensor | None  # (B, 1, H, W) predicted edges of the next exposure, in [0, 1]
    global_image: Tensor | None  # (B, 3, H, W) the global net's tone estimate


def image_logit(image: Tensor) -> Tensor:
    """logit of an image in [0, 1] (any shape), clamped to [ε, 1 − ε]: where exposure changes
    are shifts."""
    return torch.logit(image.clamp(_EPS, 1 - _EPS))


def exposure_prior(image: Tensor, stops: Tensor) -> Tensor:
    """``image`` (B, 3, H, W) re-exposed by ``stops`` (B,) as an sRGB camera would: decode,
    scale by 2^stops, encode, clip. Right wherever the photo is well exposed and the camera is
    sRGB-like; the networks learn what it misses (clipped regions, other response curves)."""
    return srgb_encode(srgb_decode(image) * torch.exp2(stops).view(-1, 1, 1, 1).to(image.dtype))


def prior_logit(image: Tensor, stops: Tensor, prior: str, curve: Tensor | None = None) -> Tensor:
    """logit of ``image`` re-exposed by ``stops`` (B,) under ``prior`` (:class:`ModelConfig`);
    ``curve``: the estimated ``g`` (B, 256) for ``prior = "estimated"``."""
    if prior == "estimated":
        return image_logit(reexpose(image, stops, curve))
    return image_logit(exposure_prior(image, stops) if prior == "srgb" else image)


class StopNet(nn.Module):
    """One exposure step: global, local and refinement U-Nets (paper Fig. 3).

    The image outputs are residual in logit space, ``sigmoid(logit(prior) + net(...))``, where
    the prior is the input re-exposed by the step under an sRGB response (``ModelConfig.prior``):
    outputs stay in (0, 1), and the output layers start at zero, so an untrained net already
    makes the physical stack and training learns only what physics misses.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        cin = None if config.condition == "none" else config.condition
        common = {"max_width": config.max_width, "cin_mode": cin}
        if config.decomposition:
            code_gru = config.gru == "code"
            self.global_net = UNet(
                3, 3, config.global_base, config.global_levels, gru=code_gru, **common
            )
            self.local_net = UNet(
                4, 1, config.local_base, config.local_levels, gru=code_gru, **common
            )
            refine_inputs = 3 + 3 + 1
        else:
            self.global_net = self.local_net = None
            refine_inputs = 3
        self.refine_net = UNet(
            refine_inputs,
            3,
            config.refine_base,
            config.refine_levels,
            gru=config.gru == "paper" or (config.gru == "code" and not config.decomposition),
            **common,
        )
        for net in (self.global_net, self.refine_net):
            if net is not None:
                nn.init.zeros_(net.head.weight)
                nn.init.zeros_(net.head.bias)

    def prior(self, image: Tensor, condition: Tensor, curve: Tensor | None) -> Tensor:
        """logit of what the step starts from (see :class:`ModelConfig`)."""
        return prior_logit(image, condition[:, 1] - condition[:, 0], self.config.prior, curve)

    def global_tone(
        self, image: Tensor, condition: Tensor, state: dict, curve: Tensor | None = None
    ) -> Tensor:
        """The global net's estimate of the next exposure (Eq. 4 supervises it)."""
        logits, state["global"] = self.global_net(image, condition, state.get("global"))
        return torch.sigmoid(self.prior(image, condition, curve) + logits)

    def edges(self, image: Tensor, edge: Tensor, condition: Tensor, state: dict) -> Tensor:
        """The local net's edge map of the next exposure (Eq. 5 supervises it)."""
        inputs = torch.cat([image, edge], dim=1)
        logits, state["local"] = self.local_net(inputs, condition, state.get("local"))
        return torch.sigmoid(logits)

    def forward(
        self,
        image: Tensor,
        edge: Tensor,
        condition: Tensor,
        state: dict[str, Tensor | None],
        curve: Tensor | None = None,
    ) -> StepOutput:
        """``condition``: (B, 2) = (ev_from, ev_to); ``state``: GRU states, updated in place;
        ``curve``: the photo's estimated ``g`` (B, 256) when the prior uses it."""
        if self.global_net is None:
            logits, state["refine"] = self.refine_net(image, condition, state.get("refine"))
            prior = self.prior(image, condition, curve)
            return StepOutput(torch.sigmoid(prior + logits), None, None)
        global_image = self.global_tone(image, condition, state, curve)
        new_edge = self.edges(image, edge, condition, state)
        logits, state["refine"] = self.refine_net(
            torch.cat([image, global_image, new_edge], dim=1), condition, state.get("refine")
        )
        return StepOutput(torch.sigmoid(image_logit(global_image) + logits), new_edge, global_image)


@dataclass
class StackOutput:
    stack: Tensor  # (B, P, 3, H, W) in [0, 1], sorted by EV, the input at EV 0 included
    evs: Tensor  # (P,) stops relative to the input
    steps: list[tuple[float, float, StepOutput]]  # (ev_from, ev_to, output) of every step
    inverse_crf: Tensor | None = None  # (B, 256) the estimated g of the photo's camera


def pad_to(image: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Replicate-pad an image ``(..., H, W)`` bottom and right to a multiple of ``multiple``;
    return it and the original ``(H, W)``."""
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        image = nn.functional.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
    return image, (height, width)


class StackGenerator(nn.Module):
    """Generate a bracketed stack from one image with recursive stop-up and stop-down nets.
    ``fit_curve_basis=False`` skips fitting CurveNet's basis, for weights that bring it."""

    def __init__(self, config: ModelConfig, *, fit_curve_basis: bool = True):
        super().__init__()
        self.config = config
        self.stop_up = StopNet(config)
        self.stop_down = StopNet(config)
        estimated = config.prior == "estimated"
        self.curve_net = CurveNet(fit=fit_curve_basis) if estimated else None
        # channels_last (NHWC): oneDNN's convolutions run on it without reordering, and the
        # narrow convs of these nets are 1.3–3.5× faster so (docs/performance.md); every
        # activation keeps the input's format, which forward sets
        self.to(memory_format=torch.channels_last)

    def estimate_curve(self, image: Tensor) -> Tensor | None:
        """The photo's ``g`` (B, 256) from :class:`CurveNet`, or None without one."""
        return None if self.curve_net is None else self.curve_net(image)

    def _chains(self, evs: Sequence[float]) -> tuple[list[float], list[float]]:
        return chains(evs, continuous=self.config.condition == "continuous")

    def forward(
        self,
        image: Tensor,
        evs: Sequence[float] = DEFAULT_EVS,
        curve: Tensor | None = None,
        edge: Tensor | None = None,
    ) -> StackOutput:
        """``image``: (B, 3, H, W) in [0, 1], any size; ``curve``: a known ``g`` (B, 256) of
        the photo's camera to use instead of the estimate (models with ``prior = "estimated"``);
        ``edge``: the photo's Canny edges if the caller has them,
        ``canny_edges(pad_to(image, config.multiple)[0])`` (training computes them per batch).
        """
        up, down = self._chains(evs)
        if curve is not None and self.curve_net is None:
            raise HdrsynError("curve: this model re-exposes under a fixed curve (prior = "
                              f"{self.config.prior!r}); it takes no curve")  # fmt: skip
        inverse_crf = self.estimate_curve(image) if curve is None else curve.to(image)
        # the stop nets take the curve as given; CurveNet learns from the curve loss alone
        curve = None if inverse_crf is None else inverse_crf.detach()
        padded, (height, width) = pad_to(image, self.config.multiple)
        padded = padded.contiguous(memory_format=torch.channels_last)
        first_edge = canny_edges(padded) if edge is None else edge
        results: dict[float, Tensor] = {0.0: padded}
        steps = []
        for net, chain in ((self.stop_up, up), (self.stop_down, down)):
            current, edge, previous = padded, first_edge, 0.0
            state: dict[str, Tensor | None] = {}
            for target in chain:
                condition = filled(padded, [previous, target]).expand(padded.shape[0], 2)
                output = net(current, edge, condition, state, curve)
                steps.append((previous, target, output))
                current, previous = output.image, target
                edge = output.edge if output.edge is not None else edge
                results[target] = current
        ordered = sorted(results)
        stack = torch.stack([results[ev] for ev in ordered], dim=1)[..., :height, :width]
        for _, _, output in steps:
            for name in ("image", "edge", "global_image"):
                value = getattr(output, name)
                if value is not None:
                    setattr(output, name, value[..., :height, :width])
        return StackOutput(stack, filled(image, ordered), steps, inverse_crf)


def filled(like: Tensor, values: Sequence[float]) -> Tensor:
    """A (len(values),) tensor on ``like``'s device and dtype, filled there: ``new_tensor``
    copies from the host, which waits for the device and cannot be captured in a CUDA graph."""
    return torch.stack([like.new_full((), value) for value in values])


class HDRSynthesizer(nn.Module):
    """StackGenerator followed by the differentiable HDR layer: one photo → (stack, radiance)."""

    def __init__(self, config: ModelConfig, *, fit_curve_basis: bool = True):
        super().__init__()
        self.config = config
        self.generator = StackGenerator(config, fit_curve_basis=fit_curve_basis)

    def forward(
        self, image: Tensor, evs: Sequence[float] = DEFAULT_EVS, curve: Tensor | None = None
    ) -> tuple[StackOutput, Tensor]:
        """``image`` (B, 3, H, W) in [0, 1] → (the generated stack, radiance (B, 3, H, W) of
        the HDR layer: Eq. 1 solve, Eq. 2 merge)."""
        generated = self.generator(image, evs, curve)
        return generated, merge_stack(generated, self.config)[0]


def merge_stack(
    generated: StackOutput, config: ModelConfig, stack: Tensor | None = None, *, check=True
) -> tuple[Tensor, Tensor]:
    """``(radiance (B, 3, H, W), g (B, 3, 256))`` of a generated stack (or of ``stack``, e.g.
    its full-resolution version) through the HDR layer, with the curve ``config.merge`` names;
    ``check``: as :func:`~hdrsyn.camera.merge_exposures`'s (training skips the value checks,
    which wait for the device)."""
    stack = generated.stack if stack is None else stack
    curve = None
    if config.merge == "estimated":
        curve = generated.inverse_crf.detach().unsqueeze(1).expand(-1, 3, -1)
    exposure_weights = torch.where(generated.evs == 0, config.photo_weight, 1.0)
    return merge_exposures(stack, generated.evs, inverse_crf=curve,
                           exposure_weights=exposure_weights, check=check)  # fmt: skip


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
