"""The training loop: stages, sampling, DistributedDataParallel, checkpoints, validation."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from hdrsyn.data import SyntheticStackDataset
from hdrsyn.errors import HdrsynError
from hdrsyn.io import read_weights
from hdrsyn.losses import CoBiLoss
from hdrsyn.models import StackGenerator
from hdrsyn.train.checkpoints import checkpoints_of, load_checkpoint, save_checkpoint
from hdrsyn.train.config import DataConfig, StageConfig, TrainConfig, load_config
from hdrsyn.train.graph import TrainingStep, bf16_is_native, to_device
from hdrsyn.train.objective import StageObjective
from hdrsyn.train.validation import validate


class _StepSampler(Sampler):
    """Sample indices of steps ``start…stop`` for this rank: sample k of global step s on rank r
    is index ``(s·world + r)·batch + k``, so every step sees the same data however it is split
    into processes, and a resumed run continues exactly where it stopped."""

    def __init__(self, start: int, stop: int, batch: int, rank: int, world: int):
        self.start, self.stop, self.batch, self.rank, self.world = start, stop, batch, rank, world

    def __iter__(self):
        for step in range(self.start, self.stop):
            first = (step * self.world + self.rank) * self.batch
            yield from range(first, first + self.batch)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.batch


@dataclass
class _Context:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def _distributed_context(device: str | None) -> _Context:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return _Context(rank, world, torch.device(device))


def train(
    run: str | os.PathLike,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    device: str | None = None,
    time_limit: float | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
    init: str | os.PathLike | None = None,
) -> dict:
    """Train (or resume) a run in folder ``run``; return the last validation metrics.

    Args:
        config: required for a new run; a resumed run reads ``run/config.json``.
        time_limit: seconds after which to checkpoint and stop (resume later).
        stop_after: total step after which to checkpoint and stop (for tests).
        init: start a new run from these generator weights (a checkpoint's or an exported
            ``model.safetensors``) instead of a random initialisation: fine-tuning.
    """
    run = Path(run)
    context = _distributed_context(device)
    if resume:
        if not (run / "config.json").exists():
            raise HdrsynError(f"{run}: no config.json to resume from")
        config = load_config(run / "config.json")
        init = json.loads((run / "config.json").read_text()).get("init")  # a fine-tune's start
    elif config is None:
        raise HdrsynError("train: a config is needed for a new run")
    elif checkpoints_of(run) and context.main:
        raise HdrsynError(f"{run}: already holds checkpoints; use --resume or another folder")
    start_from_init = init is not None and not (resume and checkpoints_of(run))
    if start_from_init and not Path(init).is_file():
        raise HdrsynError(f"{init}: no such weights file (--init)")  # before making the run
    # the data and the loss's weights are checked before the run folder is made
    data = config.data
    largest_batch = max(_batch_size(s, data) for s in config.stages)
    train_set = SyntheticStackDataset(
        data.source, exclude=data.exclude, size=data.size, split="train", seed=config.run.seed,
        length=max(1, config.total_steps * context.world * largest_batch),
        noise=data.noise, jpeg=data.jpeg, srgb_share=data.srgb_share,
    )  # fmt: skip
    train_sets = {True: train_set, False: train_set.without_stack()}
    val_set = SyntheticStackDataset(
        data.source, exclude=data.exclude, size=data.size, split="val", length=data.val_views,
        seed=config.run.seed,
    )  # fmt: skip
    cobi = CoBiLoss(config.loss.vgg_weights or None)
    if context.main:
        run.mkdir(parents=True, exist_ok=True)
        resolved = config.to_dict() | ({"init": str(init)} if init is not None else {})
        (run / "config.json").write_text(json.dumps(resolved, indent=2))

    torch.manual_seed(config.run.seed)
    generator = StackGenerator(config.model).to(context.device)
    cobi = cobi.to(context.device)
    graph = config.run.cuda_graph and context.device.type == "cuda" and context.world == 1
    optimizer = torch.optim.Adam(
        generator.parameters(),
        lr=config.optim.lr,
        betas=config.optim.betas,
        weight_decay=config.optim.weight_decay,
        capturable=graph,  # the step count on the device, for the CUDA graph
    )
    step = 0
    if start_from_init:  # a new fine-tune, or one killed before its first checkpoint
        _load_init(generator, init)
    if resume and checkpoints_of(run):
        step = load_checkpoint(checkpoints_of(run)[-1], generator, optimizer)

    stop = config.total_steps if stop_after is None else min(stop_after, config.total_steps)
    started = time.monotonic()
    metrics: dict = {}
    log = run / "log.jsonl"
    amp = config.run.amp and bf16_is_native(context.device)
    if context.main:  # what this start (or resume) runs on: the precision depends on the machine
        session = {"device": str(context.device), "processes": context.world,
                   "precision": "bf16 autocast" if amp else "float32", "cuda_graph": graph,
                   "torch": torch.__version__}  # fmt: skip
        with log.open("a") as handle:
            handle.write(json.dumps({"step": step, "session": session}) + "\n")
    board = _tensorboard(run) if context.main else None

    boundary, out_of_time = 0, False
    for stage in config.stages:
        stage_start, boundary = boundary, boundary + stage.steps
        if step >= boundary or step >= stop:
            continue
        for group in optimizer.param_groups:
            group["lr"] = stage.lr or config.optim.lr
        objective = StageObjective(generator, stage, config.loss, cobi)
        if context.world > 1:
            objective = DistributedDataParallel(objective, find_unused_parameters=True)
        train_step = TrainingStep(
            objective, optimizer, amp=amp, graph=graph,
            centralize=config.optim.gradient_centralization,
        )  # fmt: skip
        batch_size = _batch_size(stage, data)
        loader = DataLoader(
            train_sets[stage.kind != "curve"],  # the curve stage needs only photo and curve
            batch_size=batch_size,
            sampler=_StepSampler(step, min(boundary, stop), batch_size, context.rank,
                                 context.world),
            num_workers=data.workers,
            persistent_workers=False,
        )  # fmt: skip
        bar = tqdm(
            total=boundary - stage_start, initial=step - stage_start, desc=stage.name,
            disable=not context.main if progress is None else not (progress and context.main),
        )  # fmt: skip
        generator.train()
        for batch in loader:
            loss, parts = train_step(to_device(batch, context.device))
            step += 1
            bar.update(1)
            values = {k: float(v.detach()) for k, v in parts.items()} | {
                "loss": float(loss.detach())
            }
            bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()})
            if context.main:
                with log.open("a") as handle:
                    handle.write(json.dumps({"step": step, "stage": stage.name, **values}) + "\n")
                if board is not None:
                    for key, value in values.items():
                        board.add_scalar(f"train/{key}", value, step)
            if _agree(not math.isfinite(values["loss"]), context):  # before any checkpoint
                raise HdrsynError(
                    f"step {step}: the loss is not finite (training diverged; the HDR layer "
                    "does not check generated stacks); nothing of this step was saved: resume "
                    f"from the last checkpoint in {run} with a lower learning rate"
                )
            if time_limit is not None:  # every rank must stop at the same step
                out_of_time = _agree(time.monotonic() - started > time_limit, context)
            end_of_stage = step == boundary
            if (
                step % config.run.checkpoint_every == 0
                or end_of_stage
                or step == stop
                or out_of_time
            ):
                if context.main:
                    save_checkpoint(run, generator, optimizer, step, config.run.keep_checkpoints)
                if context.world > 1:
                    dist.barrier()
            if context.main and (step % config.run.val_every == 0 or end_of_stage):
                metrics = validate(generator, val_set, context.device, run, step)
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
                with log.open("a") as handle:
                    handle.write(json.dumps({"step": step, "validation": metrics}) + "\n")
                if board is not None:
                    for key, value in metrics.items():
                        board.add_scalar(f"validation/{key}", value, step)
                generator.train()
            if out_of_time or step >= stop:
                break
        bar.close()
        if step >= stop or out_of_time:
            break
    if board is not None:
        board.close()
    if context.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return metrics


def _batch_size(stage: StageConfig, data: DataConfig) -> int:
    return stage.batch_size or data.batch_size


def _load_init(generator: StackGenerator, init) -> None:
    """Start from another model's weights. Sub-nets the file lacks (e.g. the curve estimator
    of a model trained before it existed) keep their initialisation; anything else must fit."""
    path = Path(init)  # train() has checked that it is a file, before making the run
    weights, _ = read_weights(path)
    try:
        result = generator.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
    except RuntimeError as error:
        raise HdrsynError(f"{path}: weights do not fit the model config ({error})") from None
    missing = [k for k in result.missing_keys if not k.startswith("curve_net.")]
    if result.unexpected_keys or missing:
        extra = (result.unexpected_keys + missing)[:3]
        raise HdrsynError(f"{path}: weights do not fit the model config ({', '.join(extra)} …)")


def _agree(flag: bool, context: _Context) -> bool:
    """True on every rank if it is true on any."""
    if context.world == 1:
        return flag
    value = torch.tensor(float(flag), device=context.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value)


def _tensorboard(run: Path):
    """A TensorBoard writer in ``run/tensorboard`` when the tensorboard package is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: log.jsonl always has the same numbers
        return None
    return SummaryWriter(str(run / "tensorboard"))
