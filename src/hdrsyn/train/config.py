"""The training config: the TOML schema, its dataclasses and validation (docs/training.md)."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from hdrsyn.errors import HdrsynError
from hdrsyn.models import PRESETS, ModelConfig


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
    amp: bool = True  # bf16 autocast where bf16 is native: CUDA, CPUs with AVX-512 BF16 / AMX
    cuda_graph: bool = True  # capture each stage's step as a CUDA graph (one GPU; graph.py)


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


# each numeric key's range: (lowest, highest or None, whether the lowest itself is excluded)
LIMITS: dict[str, tuple[float, float | None, bool]] = {
    "global_base": (1, None, False), "global_levels": (1, None, False),
    "local_base": (1, None, False), "local_levels": (1, None, False),
    "refine_base": (1, None, False), "refine_levels": (1, None, False),
    "max_width": (1, None, False), "size": (8, None, False), "batch_size": (1, None, False),
    "val_views": (1, None, False), "workers": (0, None, False), "srgb_share": (0, 1, False),
    "lr": (0, None, True), "weight_decay": (0, None, False), "steps": (0, None, False),
    "val_every": (1, None, False), "checkpoint_every": (1, None, False),
    "keep_checkpoints": (1, None, False), "l1": (0, None, False),
    "histogram": (0, None, False), "edge": (0, None, False), "hdr": (0, None, False),
    "cobi": (0, None, False), "highlight": (0, None, False), "curve": (0, None, False),
    "mu": (0, None, True), "seed": (0, None, False),
}  # fmt: skip
# keys where 0 means "take the default" ([[stages]] batch_size, lr) or a weight is off
ZERO_ALLOWED = {"StageConfig": {"batch_size", "lr"}}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# annotation (as written in the dataclasses) → the check of a value
_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": _is_number,
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "list[str]": _is_strings,
    "str | list[str]": lambda v: isinstance(v, str) or _is_strings(v),
    "tuple[float, float]": lambda v: isinstance(v, tuple) and len(v) == 2
    and all(map(_is_number, v)),
}  # fmt: skip


def _type_error(name: str, value, hint: str) -> str | None:
    """Why ``value`` does not fit the annotation ``hint`` (a string), or None."""
    if _TYPE_CHECKS.get(hint, lambda v: True)(value):
        return None
    return f"{name} = {value!r}: expected {hint.replace('tuple[float, float]', 'two numbers')}"


def _range_error(kind_name: str, name: str, value) -> str | None:
    if name not in LIMITS or not _is_number(value):
        return None
    low, high, excluded = LIMITS[name]
    if value == 0 and name in ZERO_ALLOWED.get(kind_name, ()):
        return None
    if excluded and value <= low:
        return f"{name} = {value}: must be {'positive' if low == 0 else f'> {low}'}"
    if value < low or (high is not None and value > high):
        span = f"≥ {low}" if high is None else f"in [{low}, {high}]"
        return f"{name} = {value}: must be {span}"
    return None


def _build(kind, values: dict, where: str):
    known = {f.name: f.type for f in fields(kind)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise HdrsynError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {sorted(known)}")
    for name, value in values.items():
        problem = _type_error(name, value, str(known[name]))
        problem = problem or _range_error(kind.__name__, name, value)
        if problem:
            raise HdrsynError(f"{where}: {problem}")
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
