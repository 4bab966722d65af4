"""Checkpoints of a run (safetensors weights + optimiser state), and export of weights."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from hdrsyn.errors import HdrsynError
from hdrsyn.models import ModelConfig


def checkpoints_of(run: Path) -> list[Path]:
    """The checkpoint folders of a run, oldest first."""
    return sorted((run / "checkpoints").glob("step-*"))


def weights_file(path: str | os.PathLike) -> Path:
    """The weights of a run folder (its latest checkpoint), a checkpoint folder, or a file."""
    folder = Path(path)
    if (folder / "checkpoints").is_dir():
        found = checkpoints_of(folder)
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
    for old in checkpoints_of(run)[:-keep]:
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


def export_weights(checkpoint: str | os.PathLike, output: str | os.PathLike, *, half: bool = True,
                   overwrite: bool = False) -> Path:  # fmt: skip
    """Copy a run's (latest), a checkpoint's or a weights file's generator weights into a
    standalone safetensors file (float16 by
    default: half the size; :func:`hdrsyn.load_model` computes in float32)."""
    from safetensors.torch import save as save_bytes

    from hdrsyn.io import check_writable, read_weights, write_bytes

    source = weights_file(checkpoint)
    check_writable(output, overwrite, (".safetensors",))
    state, metadata = read_weights(source)
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    write_bytes(output, save_bytes(state, metadata=metadata), overwrite=overwrite)
    return Path(output)
