"""The objective of each stage (paper Eq. 4–7, DESIGN.md §4) and gradient centralisation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hdrsyn.curves import curve_rmse
from hdrsyn.edges import canny_edges
from hdrsyn.losses import (
    edge_loss,
    highlight_loss,
    histogram_loss,
    l1_loss,
    mu_law_loss,
)
from hdrsyn.metrics import well_exposed
from hdrsyn.models import StackGenerator
from hdrsyn.models.stacknet import filled, merge_stack, pad_to
from hdrsyn.train.config import LossConfig, StageConfig


class StageObjective(nn.Module):
    def __init__(self, generator: StackGenerator, stage: StageConfig, losses: LossConfig, cobi):
        super().__init__()
        self.generator, self.stage, self.weights, self.cobi = generator, stage, losses, cobi

    def forward(self, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        """``batch``: a collated :class:`~hdrsyn.data.SyntheticStackDataset` batch (``input``
        (B, 3, H, W), ``stack`` (B, 7, 3, H, W), ``evs`` (B, 7), ``radiance`` (B, 3, H, W),
        ``inverse_crf`` (B, 3, 256)), with its Canny edges if :meth:`with_edges` added them.
        Returns (the stage's weighted loss, its terms)."""
        batch = self.with_edges(batch)
        if self.stage.kind == "joint":
            return self._joint(batch)
        if self.stage.kind == "curve":
            estimate = self.generator.estimate_curve(batch["input"])
            loss = curve_rmse(estimate.float(), batch["inverse_crf"][:, 0].float()).mean()
            return self.weights.curve * loss, {"curve_rmse": loss}
        return self._teacher_forced(batch)

    def with_edges(self, batch: dict) -> dict:
        """``batch`` with the Canny edges of its data (no gradient) if the stage uses them
        (local and joint) and it has none: ``input_edges`` (B, 1, H', W') of the photo padded
        as the generator pads it (the local nets' first input) and ``stack_edges``
        (B, 7, 1, H, W) of every exposure (Eq. 5's targets). One batched call per batch; they
        depend on the data alone, so a captured step (:mod:`hdrsyn.train.graph`) takes them
        as inputs."""
        if self.stage.kind not in ("local", "joint") or "input_edges" in batch:
            return batch
        stack = batch["stack"]
        padded = pad_to(batch["input"], self.generator.config.multiple)[0]
        edges = canny_edges(stack.flatten(0, 1)).unflatten(0, stack.shape[:2])
        return batch | {"input_edges": canny_edges(padded), "stack_edges": edges}

    def _pairs(self, evs: list[float]):
        """(net, [(source index, target index), ...]) for the up and down chains."""
        zero = evs.index(0.0)
        up = [(i, i + 1) for i in range(zero, len(evs) - 1)]
        down = [(i, i - 1) for i in range(zero, 0, -1)]
        return [(self.generator.stop_up, up), (self.generator.stop_down, down)]

    def _teacher_forced(self, batch):
        stack, evs = batch["stack"], batch["evs"][0].tolist()
        height, width = stack.shape[-2:]
        padded = torch.stack(
            [pad_to(stack[:, i], self.generator.config.multiple)[0] for i in range(len(evs))], 1
        )
        with torch.no_grad():
            curve = self.generator.estimate_curve(batch["input"])
        total, parts, count = 0.0, {}, 0
        for net, pairs in self._pairs(evs):
            state: dict = {}
            edge = batch.get("input_edges")  # the photo's, then each step's own (inference)
            for source, target in pairs:
                condition = filled(stack, [evs[source], evs[target]]).expand(len(stack), 2)
                current = padded[:, source]
                truth = stack[:, target].float()
                if self.stage.kind == "global":
                    estimate = net.global_tone(current, condition, state, curve)
                    estimate = estimate[..., :height, :width]
                    l1 = l1_loss(estimate.float(), truth)
                    hist = histogram_loss(estimate.float(), truth)
                    loss = self.weights.l1 * l1 + self.weights.histogram * hist
                    _accumulate(parts, {"l1": l1, "histogram": hist})
                else:
                    edge = net.edges(current, edge, condition, state)
                    target_edges = batch["stack_edges"][:, target]
                    loss = self.weights.edge * edge_loss(
                        edge[..., :height, :width].float(), target_edges
                    )
                    _accumulate(parts, {"edge": loss})
                total, count = total + loss, count + 1
        return total / count, {k: v / count for k, v in parts.items()}

    def _joint(self, batch):
        stack, evs = batch["stack"], batch["evs"][0].tolist()
        generated = self.generator(batch["input"], evs, edge=batch["input_edges"])
        index = {ev: i for i, ev in enumerate(evs)}
        total, parts = 0.0, {}
        for _, target_ev, step in generated.steps:
            target = index[target_ev]
            truth = stack[:, target].float()
            image = step.image.float()
            terms = {"l1": l1_loss(image, truth)}
            loss = self.weights.l1 * terms["l1"]
            if step.global_image is not None:  # a decomposed StopNet (not the ablation)
                tone = step.global_image.float()
                terms["global_l1"] = l1_loss(tone, truth)
                terms["histogram"] = histogram_loss(tone, truth)
                terms["edge"] = edge_loss(step.edge.float(), batch["stack_edges"][:, target])
                loss = (
                    loss
                    + self.weights.l1 * terms["global_l1"]
                    + self.weights.histogram * terms["histogram"]
                    + self.weights.edge * terms["edge"]
                )
            if self.stage.cobi and self.weights.cobi > 0:
                terms["cobi"] = self.cobi(image, truth)
                loss = loss + self.weights.cobi * terms["cobi"]
            _accumulate(parts, terms)
            total = total + loss
        steps = len(generated.steps)
        total, parts = total / steps, {k: v / steps for k, v in parts.items()}
        wants_hdr = self.stage.hdr_loss and (self.weights.hdr > 0 or self.weights.highlight > 0)
        if wants_hdr:
            with torch.autocast(stack.device.type, enabled=False):
                generated.stack = generated.stack.float()
                radiance, _ = merge_stack(generated, self.generator.config, check=False)
                photo, reference = batch["input"].float(), batch["radiance"].float()
                mask = well_exposed(photo)
                if self.weights.hdr > 0:
                    parts["hdr"] = mu_law_loss(radiance, reference, self.weights.mu, mask)
                    total = total + self.weights.hdr * parts["hdr"]
                if self.weights.highlight > 0:
                    parts["highlight"] = highlight_loss(radiance, reference, photo, mask)
                    total = total + self.weights.highlight * parts["highlight"]
        return total, parts


def _accumulate(parts: dict, terms: dict) -> None:
    for key, value in terms.items():
        parts[key] = parts.get(key, 0.0) + value


def centralize_gradients(module: nn.Module) -> None:
    """Gradient centralisation (Yong et al. 2020): remove the mean of each conv/linear weight's
    gradient over all but the output dimension. Only conv and linear weights: the CIN tables
    (slots × channels) are 2-D too, but centring them over channels would tie every channel's
    γ and β to the others'."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear) and layer.weight.grad is not None:
            grad = layer.weight.grad
            grad -= grad.mean(dim=tuple(range(1, grad.dim())), keepdim=True)
