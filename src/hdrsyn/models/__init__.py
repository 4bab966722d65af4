"""Networks of Kim et al. 2021: StopNet, StackGenerator, HDRSynthesizer, and their presets."""

from hdrsyn.models.stacknet import (
    DEFAULT_EVS,
    PRESETS,
    HDRSynthesizer,
    ModelConfig,
    StackGenerator,
    StackOutput,
    StepOutput,
    StopNet,
    parameter_count,
)

__all__ = [
    "DEFAULT_EVS",
    "PRESETS",
    "HDRSynthesizer",
    "ModelConfig",
    "StackGenerator",
    "StackOutput",
    "StepOutput",
    "StopNet",
    "parameter_count",
]
