"""Staged training of the stop-up / stop-down networks (paper §Implementation, DESIGN.md §4).

Stages, each a number of steps from the config file:

* ``global``: the global nets alone, teacher-forced (image at EV t → EV t ± 1), L1 + histogram
  loss (Eq. 4);
* ``local``: the local nets alone, teacher-forced, L1 against Canny edges (Eq. 5);
* ``joint``: every sub-net through the full recursion from the input photo: the global and local
  losses on every step, L1 + CoBi on every refined image (Eq. 6–7), and the μ-law HDR loss on
  the radiance that the differentiable HDR layer merges from the generated stack (Eq. 6).

Plain PyTorch: one loop, Adam with gradient centralisation, DistributedDataParallel under
``torchrun`` (gloo on CPU, nccl on CUDA), bf16 autocast on CUDA (the HDR layer stays float32).
Samples are a pure function of their index, and a run is a pure function of its config and
seed, so ``--resume`` after a kill reaches the same weights as an uninterrupted run on CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from hdrsyn.baselines import linearised
from hdrsyn.curves import curve_rmse
from hdrsyn.data import SyntheticStackDataset
from hdrsyn.edges import canny_edges
from hdrsyn.errors import HdrsynError
from hdrsyn.losses import (
    CoBiLoss,
    edge_loss,
    highlight_loss,
    histogram_loss,
    l1_loss,
    mu_law_loss,
)
from hdrsyn.metrics import hdr_psnr, psnr, well_exposed
from hdrsyn.models import PRESETS, ModelConfig, StackGenerator
from hdrsyn.models.stacknet import merge_stack, pad_to


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    source: str | list[str] = "../shared/data/hdr"  # folders and/or files of HDR images
    exclude: list[str] = field(default_factory=list)  # e.g. data.HELD_OUT: never trained on
    size: int = 128
    batch_size: int = 4
    val_views: int = 12
    workers: int = 0
    noise: bool = True
    jpeg: bool = True
    srgb_share: float = 1 / 3  # of training curves (docs/data.md)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    gradient_centralization: bool = True


@dataclass
class LossConfig:
    l1: float = 1.0
    histogram: float = 0.01
    edge: float = 1.0
    hdr: float = 1.0
    cobi: float = 0.1
    highlight: float = 0.0  # log-radiance L1 on the photo's clipped pixels (docs/losses.md)
    curve: float = 1.0  # RMSE of the estimated ln f⁻¹ (curve stage)
    mu: float = 5000.0
    vgg_weights: str = ""  # a local VGG-19 file for CoBi; empty: RGB patches


@dataclass
class StageConfig:
    name: str
    kind: str  # curve | global | local | joint
    steps: int
    hdr_loss: bool = True  # joint stage: the HDR loss through the differentiable layer
    cobi: bool = True  # joint stage: CoBi on the refined images
    batch_size: int = 0  # 0: [data] batch_size
    lr: float = 0.0  # 0: [optim] lr

    def __post_init__(self):
        if self.kind not in ("curve", "global", "local", "joint"):
            raise HdrsynError(
                f"stage {self.name}: kind {self.kind!r}; use curve, global, local or joint"
            )
        if self.steps < 0:
            raise HdrsynError(f"stage {self.name}: steps must be ≥ 0")
        if self.batch_size < 0 or self.lr < 0:
            raise HdrsynError(f"stage {self.name}: batch_size and lr must be ≥ 0")


@dataclass
class RunConfig:
    seed: int = 0
    val_every: int = 500
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    amp: bool = True  # bf16 autocast on CUDA


@dataclass
class TrainConfig:
    model: ModelConfig
    stages: list[StageConfig]
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = ""

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)

    def to_dict(self) -> dict:
        return asdict(self)


def _build(kind, values: dict, where: str):
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise HdrsynError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {sorted(known)}")
    try:
        return kind(**values)
    except TypeError as error:
        raise HdrsynError(f"{where}: {error}") from None


def config_from_dict(values: dict, where: str = "config") -> TrainConfig:
    """Validate a config mapping (TOML or JSON layout) into a :class:`TrainConfig`."""
    values = dict(values)
    values.pop("init", None)  # recorded by fine-tuning runs; not part of the config
    model = dict(values.pop("model", {}))
    preset = model.pop("preset", values.pop("preset", ""))
    if preset and preset not in PRESETS:
        raise HdrsynError(f"{where}: [model] preset {preset!r}; use one of {sorted(PRESETS)}")
    base = asdict(PRESETS[preset]) if preset else {}
    stages = values.pop("stages", None)
    if not stages:
        raise HdrsynError(f"{where}: no [[stages]]")
    optim = dict(values.pop("optim", {}))
    if "betas" in optim:
        optim["betas"] = tuple(optim["betas"])
    config = TrainConfig(
        model=_build(ModelConfig, {**base, **model}, f"{where} [model]"),
        stages=[_build(StageConfig, dict(s), f"{where} [[stages]]") for s in stages],
        data=_build(DataConfig, values.pop("data", {}), f"{where} [data]"),
        optim=_build(OptimConfig, optim, f"{where} [optim]"),
        loss=_build(LossConfig, values.pop("loss", {}), f"{where} [loss]"),
        run=_build(RunConfig, values.pop("run", {}), f"{where} [run]"),
        preset=preset,
    )
    if values:
        raise HdrsynError(f"{where}: unknown section(s) {', '.join(sorted(values))}")
    separate = [s.name for s in config.stages if s.kind in ("global", "local")]
    curve_stages = [s.name for s in config.stages if s.kind == "curve"]
    if curve_stages and config.model.prior != "estimated":
        raise HdrsynError(
            f"{where}: stage(s) {', '.join(curve_stages)} train the curve estimator, which only "
            "a model with prior = 'estimated' has"
        )
    if not config.model.decomposition and separate:
        raise HdrsynError(
            f"{where}: stage(s) {', '.join(separate)} train the global/local nets, which a "
            "model without decomposition lacks; use joint stages"
        )
    return config


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a TOML (or the resolved JSON a run writes) training config."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise HdrsynError(f"{path}: cannot read ({error.strerror})") from None
    try:
        values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise HdrsynError(f"{path}: {error}") from None
    return config_from_dict(values, str(path))


# ---------------------------------------------------------------------------------------------
# The objective of one stage, as a module so that DistributedDataParallel can wrap it
# ---------------------------------------------------------------------------------------------
class StageObjective(nn.Module):
    def __init__(self, generator: StackGenerator, stage: StageConfig, losses: LossConfig, cobi):
        super().__init__()
        self.generator, self.stage, self.weights, self.cobi = generator, stage, losses, cobi

    def forward(self, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        if self.stage.kind == "joint":
            return self._joint(batch)
        if self.stage.kind == "curve":
            estimate = self.generator.estimate_curve(batch["input"])
            loss = curve_rmse(estimate.float(), batch["inverse_crf"][:, 0].float()).mean()
            return self.weights.curve * loss, {"curve_rmse": loss}
        return self._teacher_forced(batch)

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
        first_edges = canny_edges(pad_to(batch["input"], self.generator.config.multiple)[0])
        total, parts, count = 0.0, {}, 0
        for net, pairs in self._pairs(evs):
            state: dict = {}
            edge = first_edges  # as at inference: the photo's edges, then each step's own
            for source, target in pairs:
                condition = stack.new_tensor([evs[source], evs[target]]).expand(len(stack), 2)
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
                    loss = self.weights.edge * edge_loss(edge[..., :height, :width].float(), truth)
                    _accumulate(parts, {"edge": loss})
                total, count = total + loss, count + 1
        return total / count, {k: v / count for k, v in parts.items()}

    def _joint(self, batch):
        stack, evs = batch["stack"], batch["evs"][0].tolist()
        generated = self.generator(batch["input"], evs)
        index = {ev: i for i, ev in enumerate(evs)}
        total, parts = 0.0, {}
        for _, target_ev, step in generated.steps:
            truth = stack[:, index[target_ev]].float()
            image = step.image.float()
            terms = {"l1": l1_loss(image, truth)}
            loss = self.weights.l1 * terms["l1"]
            if step.global_image is not None:  # a decomposed StopNet (not the ablation)
                tone = step.global_image.float()
                terms["global_l1"] = l1_loss(tone, truth)
                terms["histogram"] = histogram_loss(tone, truth)
                terms["edge"] = edge_loss(step.edge.float(), truth)
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
                radiance, _ = merge_stack(generated, self.generator.config)
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


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------
def _checkpoints(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("step-*"))


def weights_file(path: str | os.PathLike) -> Path:
    """The weights of a run folder (its latest checkpoint), a checkpoint folder, or a file."""
    folder = Path(path)
    if (folder / "checkpoints").is_dir():
        found = _checkpoints(folder)
        if not found:
            raise HdrsynError(f"{folder}: no checkpoints")
        folder = found[-1]
    source = folder if folder.suffix == ".safetensors" else folder / "model.safetensors"
    if not source.is_file():
        raise HdrsynError(f"{source}: not found (give a run, checkpoint or weights file)")
    return source


def save_checkpoint(run: Path, generator, optimizer, step: int, keep: int) -> Path:
    """Weights (safetensors) + optimiser/step/RNG state, written to a temporary folder and
    renamed into place, so a kill never leaves a half-written checkpoint."""
    folder = run / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:07d}"
    temporary = folder / f".tmp-{step:07d}-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    save_file(state, temporary / "model.safetensors", metadata=_metadata(generator.config, step))
    torch.save(
        {"step": step, "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()},
        temporary / "state.pt",
    )
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)
    for old in _checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _metadata(config: ModelConfig, step: int) -> dict[str, str]:
    return {
        "format": "hdrsyn-generator-1",
        "model": json.dumps(config.to_dict()),
        "step": str(step),
    }


def load_checkpoint(folder: Path, generator, optimizer) -> int:
    generator.load_state_dict(load_file(str(folder / "model.safetensors")))
    state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return int(state["step"])


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------
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
    elif _checkpoints(run) and context.main:
        raise HdrsynError(f"{run}: already holds checkpoints; use --resume or another folder")
    start_from_init = init is not None and not (resume and _checkpoints(run))
    if start_from_init and not Path(init).is_file():
        raise HdrsynError(f"{init}: no such weights file (--init)")  # before making the run
    if context.main:
        run.mkdir(parents=True, exist_ok=True)
        resolved = config.to_dict() | ({"init": str(init)} if init is not None else {})
        (run / "config.json").write_text(json.dumps(resolved, indent=2))

    torch.manual_seed(config.run.seed)
    generator = StackGenerator(config.model).to(context.device)
    optimizer = torch.optim.Adam(
        generator.parameters(),
        lr=config.optim.lr,
        betas=config.optim.betas,
        weight_decay=config.optim.weight_decay,
    )
    step = 0
    if start_from_init:  # a new fine-tune, or one killed before its first checkpoint
        _load_init(generator, init)
    if resume and _checkpoints(run):
        step = load_checkpoint(_checkpoints(run)[-1], generator, optimizer)

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
    cobi = CoBiLoss(config.loss.vgg_weights or None).to(context.device)
    stop = config.total_steps if stop_after is None else min(stop_after, config.total_steps)
    started = time.monotonic()
    metrics: dict = {}
    log = run / "log.jsonl"
    amp = config.run.amp and context.device.type == "cuda"
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
            batch = {
                k: v.to(context.device) if isinstance(v, Tensor) else v for k, v in batch.items()
            }
            with torch.autocast(context.device.type, dtype=torch.bfloat16, enabled=amp):
                loss, parts = objective(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.optim.gradient_centralization:
                centralize_gradients(generator)
            optimizer.step()
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
    path = Path(init)
    if not path.is_file():
        raise HdrsynError(f"{path}: no such weights file (--init)")
    try:
        weights = load_file(str(path))
    except Exception as error:  # safetensors raises several types for bad files
        raise HdrsynError(f"{path}: not a readable safetensors file ({error})") from None
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


@torch.no_grad()
def validate(generator: StackGenerator, dataset, device, run: Path | None = None, step: int = 0):
    """Stack PSNR (generated EV ≠ 0 vs target, 8-bit), HDR μ-law PSNR of ours and of the
    linearised input, and the estimated curve's ln f⁻¹ RMSE (models that estimate it), over the
    fixed validation views; writes a contact sheet PNG to ``run``."""
    generator.eval()
    scores: dict[str, list] = {"stack_psnr": [], "hdr_psnr": [], "linearised_hdr_psnr": []}
    pictures = []
    for index in range(len(dataset)):
        sample = dataset[index]
        photo = sample["input"][None].to(device)
        generated = generator(photo, sample["evs"].tolist())
        generated.stack = generated.stack.float()
        radiance = merge_stack(generated, generator.config)[0].cpu()
        stack = generated.stack.cpu()[0]
        target = sample["stack"]
        others = [i for i, ev in enumerate(sample["evs"].tolist()) if ev != 0]
        scores["stack_psnr"].append(psnr(stack[others], target[others]).mean())
        reference = sample["radiance"][None]
        scores["hdr_psnr"].append(hdr_psnr(radiance, reference, photo.cpu())[0])
        linear = linearised(photo.cpu())
        scores["linearised_hdr_psnr"].append(hdr_psnr(linear, reference, photo.cpu())[0])
        if generated.inverse_crf is not None:
            error = curve_rmse(generated.inverse_crf.float().cpu()[0], sample["inverse_crf"][0])
            scores.setdefault("curve_rmse", []).append(error)
        if index < 3:
            pictures.append((sample, stack, radiance[0]))
    metrics = {key: float(torch.stack(values).mean()) for key, values in scores.items()}
    if run is not None:
        _validation_sheet(run / f"validation-{step:07d}.png", pictures)
    return metrics


def _validation_sheet(path: Path, pictures) -> None:
    from hdrsyn.io import write_ldr
    from hdrsyn.plots import contact_sheet, stack_rows
    from hdrsyn.tonemap import display

    def shown(image):
        return image.permute(1, 2, 0).numpy()

    rows = []
    for sample, stack, radiance in pictures:
        tones = [display(r) for r in (radiance, sample["radiance"])]
        evs = sample["evs"].tolist()
        images = [shown(sample["input"])] + [shown(x) for x in stack] + [shown(t) for t in tones]
        labels = ["input"] + [f"ours EV {ev:+g}" for ev in evs] + ["ours HDR", "reference HDR"]
        rows.append(contact_sheet(images, labels, 96))
        rows.append(contact_sheet(
            [shown(x) for x in sample["stack"]], [f"target EV {ev:+g}" for ev in evs], 96
        ))  # fmt: skip
    write_ldr(path, stack_rows(rows, gap=4), overwrite=True)


def export_weights(checkpoint: str | os.PathLike, output: str | os.PathLike, *, half: bool = True,
                   overwrite: bool = False) -> Path:  # fmt: skip
    """Copy a run's (latest), a checkpoint's or a weights file's generator weights into a
    standalone safetensors file (float16 by
    default: half the size; :func:`hdrsyn.load_model` computes in float32)."""
    from safetensors import safe_open
    from safetensors.torch import save as save_bytes

    from hdrsyn.io import check_writable, write_bytes

    source = weights_file(checkpoint)
    check_writable(output, overwrite, (".safetensors",))
    with safe_open(str(source), "pt") as handle:
        metadata = handle.metadata()
    state = load_file(str(source))
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    write_bytes(output, save_bytes(state, metadata=metadata), overwrite=overwrite)
    return Path(output)


__all__ = [
    "TrainConfig",
    "config_from_dict",
    "export_weights",
    "load_config",
    "train",
    "validate",
    "weights_file",
]
