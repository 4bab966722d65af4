"""A training step captured once as a CUDA graph and replayed for every batch.

On a GPU the step is launch-bound: a joint step of the small model is ~20,000 kernel launches
(recursion, CIN, losses, the HDR layer's chunks, Adam), which the CPU issues one by one while
the GPU waits. A CUDA graph records them once and replays them with one launch. What the graph
needs of the step, and what this module and the code it calls do for it:

* no reads of device values on the host: the HDR layer's value checks are skipped for a
  model's stack, its clipped-pixel fallback is computed for every pixel, the EVs stay on the
  host (:func:`to_device`), constants are filled on the device instead of copied to it;
* the Canny edges of the data (kornia copies its Sobel kernel from the host) are computed
  before the replay, eagerly (:meth:`~hdrsyn.train.objective.StageObjective.with_edges`);
* Adam with ``capturable=True`` (its step count on the device), and the learning rate fixed
  while the graph lives (the loop makes one step per stage, and each stage has one rate);
* the same shapes every step: a batch of other shapes (or other EVs) runs eagerly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hdrsyn.errors import HdrsynError
from hdrsyn.train.objective import StageObjective, centralize_gradients


def to_device(batch: dict, device: torch.device | str) -> dict:
    """A collated batch's tensors on ``device``, except ``evs``: the objective reads them as
    Python numbers (the recursion's structure), which from the device would wait for it."""
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, Tensor) and k != "evs" else v
        for k, v in batch.items()
    }


def bf16_is_native(device: torch.device | str) -> bool:
    """Whether ``device`` computes in bf16 natively, so that bf16 autocast speeds training up:
    CUDA, or a CPU with AVX-512 BF16 or AMX (oneDNN's bf16 convolutions, 1.8× float32's here;
    a CPU without them would emulate bf16, so it trains in float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: may go
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


class TrainingStep:
    """``step(batch) → (loss, terms)``: forward, backward, gradient centralisation and the
    optimizer step of ``objective``'s stage (a :class:`StageObjective`, or one wrapped in
    DistributedDataParallel) on a batch on the device (:func:`to_device`).

    With ``graph`` (CUDA only; the optimizer made with ``capturable=True``), the step is
    captured as a CUDA graph after ``warmup`` eager steps and replayed from then on; the
    returned tensors (detached) are then the graph's own outputs: read them before the next
    call. A batch of other shapes or EVs than the captured one runs eagerly. A failed capture raises
    :class:`~hdrsyn.errors.HdrsynError` (after one, CUDA's random number state is unusable).
    """

    def __init__(
        self,
        objective: StageObjective | torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        amp: bool = False,
        centralize: bool = False,
        graph: bool = False,
        warmup: int = 3,
    ):
        self.objective, self.optimizer = objective, optimizer
        self.stage: StageObjective = getattr(objective, "module", objective)  # unwrapped
        self.amp, self.centralize, self.warmup = amp, centralize, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: dict = {}  # the batch the graph was captured on
        self.inputs: dict[str, Tensor] = {}  # its device tensors: the graph's input buffers
        self.outputs: tuple[Tensor, dict[str, Tensor]] | None = None
        self.eager = not graph  # never capture
        self.steps = 0
        self.side_stream: torch.cuda.Stream | None = None

    def __call__(self, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        batch = self.stage.with_edges(batch)
        self.steps += 1
        if self.eager or not batch["input"].is_cuda or not self._fits(batch):
            return self._eager(batch)
        if self.graph is None:
            if self.steps <= self.warmup:  # on a side stream, as capture wants (cuBLAS etc.)
                return self._warm_up(batch)
            try:
                self._capture(batch)
            except RuntimeError as error:  # the CUDA state is not to be trusted after it
                raise HdrsynError(
                    f"CUDA graph capture of the training step failed ({error}); "
                    "train eagerly with [run] cuda_graph = false"
                ) from error
        for key, buffer in self.inputs.items():
            buffer.copy_(batch[key], non_blocking=True)
        self.graph.replay()
        return self.outputs

    def _fits(self, batch: dict) -> bool:
        """Whether the captured graph (if any) can run ``batch``."""
        if self.graph is None:
            return True
        for key, buffer in self.inputs.items():
            other = batch.get(key)
            if not isinstance(other, Tensor) or other.shape != buffer.shape:
                return False
        return torch.equal(batch["evs"], self.static["evs"])  # on the host (to_device)

    def _step_ops(self, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        device = batch["input"].device.type
        # no cast cache in a graph (autocast's cache does not survive capture)
        amp = {"dtype": torch.bfloat16, "enabled": self.amp, "cache_enabled": self.eager}
        with torch.autocast(device, **amp):
            loss, parts = self.objective(batch)
        loss.backward()
        if self.centralize:
            centralize_gradients(self.stage.generator)
        self.optimizer.step()
        # detached: a caller holding the loss must not keep this step's autograd graph alive
        # (its gradient accumulators would still name the warm-up stream in the next step)
        return loss.detach(), {k: v.detach() for k, v in parts.items()}

    def _eager(self, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        self.optimizer.zero_grad(set_to_none=True)
        return self._step_ops(batch)

    def _warm_up(self, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        if self.side_stream is None:
            self.side_stream = torch.cuda.Stream()
        self.side_stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side_stream):
            result = self._eager(batch)
        torch.cuda.current_stream().wait_stream(self.side_stream)
        return result

    def _capture(self, batch: dict) -> None:
        on_device = {k: v for k, v in batch.items() if isinstance(v, Tensor) and v.is_cuda}
        self.inputs = {k: v.clone() for k, v in on_device.items()}
        self.static = batch | self.inputs
        self.optimizer.zero_grad(set_to_none=True)  # backward allocates the grads in the graph
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.outputs = self._step_ops(self.static)
        self.graph = graph
