"""Staged training of the stop-up / stop-down networks (paper §Implementation, DESIGN.md §4).

Stages, each a number of steps from the config file:

* ``global``: the global nets alone, teacher-forced (image at EV t → EV t ± 1), L1 + histogram
  loss (Eq. 4);
* ``local``: the local nets alone, teacher-forced, L1 against Canny edges (Eq. 5);
* ``joint``: every sub-net through the full recursion from the input photo: the global and local
  losses on every step, L1 + CoBi on every refined image (Eq. 6–7), and the μ-law HDR loss on
  the radiance that the differentiable HDR layer merges from the generated stack (Eq. 6).

Plain PyTorch: one loop, Adam with gradient centralisation, DistributedDataParallel under
``torchrun`` (gloo on CPU, nccl on CUDA), bf16 autocast where bf16 is native (CUDA, CPUs with
AVX-512 BF16 or AMX; the HDR layer and the losses stay float32),
and on one GPU each stage's step captured as a CUDA graph (:mod:`~hdrsyn.train.graph`).
Samples are a pure function of their index, and a run is a pure function of its config and
seed, so ``--resume`` after a kill reaches the same weights as an uninterrupted run on CPU.

Modules: :mod:`~hdrsyn.train.config` (the schema), :mod:`~hdrsyn.train.objective` (the losses
of each stage), :mod:`~hdrsyn.train.graph` (:class:`TrainingStep`: one step, eager or as a
CUDA graph), :mod:`~hdrsyn.train.loop` (:func:`train`), :mod:`~hdrsyn.train.validation`,
:mod:`~hdrsyn.train.checkpoints` (and :func:`export_weights`).
"""

from hdrsyn.train.checkpoints import (
    export_weights,
    load_checkpoint,
    save_checkpoint,
    weights_file,
)
from hdrsyn.train.config import (
    DataConfig,
    LossConfig,
    OptimConfig,
    RunConfig,
    StageConfig,
    TrainConfig,
    config_from_dict,
    load_config,
)
from hdrsyn.train.graph import TrainingStep, to_device
from hdrsyn.train.loop import train
from hdrsyn.train.objective import StageObjective, centralize_gradients
from hdrsyn.train.validation import validate

__all__ = [
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "RunConfig",
    "StageConfig",
    "StageObjective",
    "TrainConfig",
    "TrainingStep",
    "centralize_gradients",
    "config_from_dict",
    "export_weights",
    "load_checkpoint",
    "load_config",
    "save_checkpoint",
    "to_device",
    "train",
    "validate",
    "weights_file",
]
