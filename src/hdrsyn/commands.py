"""The jobs behind the command line, one function per command; the CLI only parses and calls.

PyTorch and the models are imported inside the functions that use them, after every check
of the arguments and files: a refused command answers in a fraction of a second.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from tqdm import tqdm

from hdrsyn.errors import HdrsynError
from hdrsyn.io import (
    HDR_OUTPUT_SUFFIXES,
    LDR_SUFFIXES,
    MAX_BOOST,
    check_writable,
    exif_evs,
    read_hdr,
    read_ldr,
    write_bytes,
    write_hdr,
    write_ldr,
)
from hdrsyn.stops import DEFAULT_EVS, chains

if TYPE_CHECKING:
    import torch



@dataclass
class Merged:
    """What :func:`merge_files` made: the radiance ``(H, W, 3)``, the files written by kind
    (as :func:`reconstruct_files` returns them), and with ``align`` each image's shift
    ``(dx, dy)`` in pixels onto the middle one."""

    radiance: np.ndarray
    written: dict[str, list[Path]]
    shifts: dict[Path, tuple[int, int]] = field(default_factory=dict)


def merge_files(
    images: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    evs: Sequence[float] | None = None,
    preview: str | os.PathLike | None = None,
    plot_crf: str | os.PathLike | None = None,
    overwrite: bool = False,
    smoothness: float | None = None,
    key: float = 0.18,
    max_boost: float = MAX_BOOST,
    half: bool = True,
    align: bool = False,
    quiet: bool = False,
) -> Merged:
    """Merge a bracketed stack of photographs into an HDR file (Debevec–Malik via our layer).

    Args:
        images: two or more LDR files of the same size, or folders of them.
        output: ``.exr``, ``.hdr`` or ``.pfm`` path, or ``.jpg`` for an Ultra HDR JPEG
            (headroom ``max_boost`` stops; :func:`hdrsyn.io.write_hdr`); ``.exr`` in half
            floats unless ``half`` is False.
        evs: exposure of each image in stops; default from EXIF (exposure time, f-number, ISO),
            relative to the middle exposure.
        preview: optional PNG/JPEG path for a Reinhard-tone-mapped view.
        plot_crf: optional PNG path for a plot of the recovered response curves.
        align: translate the images onto the middle one first (handheld brackets), with
            Ward's (2003) threshold bitmaps, matched by phase correlation between
            neighbouring exposures; the edges uncovered by a shift are repeated from the
            image's border.
        quiet: no progress display (otherwise shown on stderr when it is a terminal: the
            stage, read, align, merge or write).

    Returns:
        the radiance, what was written and the shifts :class:`Merged` holds.
    """
    paths = _photos(images)
    for path in paths:
        if not path.exists():
            raise HdrsynError(f"{path}: no such file")
    import torch

    from hdrsyn.camera import merge_exposures, solve_response
    from hdrsyn.plots import response_curve_png

    check_writable(output, overwrite, HDR_OUTPUT_SUFFIXES)
    if preview is not None:
        check_writable(preview, overwrite, LDR_SUFFIXES)
    if plot_crf is not None:
        check_writable(plot_crf, overwrite, (".png",))
    if len(paths) < 2:
        raise HdrsynError(f"merge needs at least 2 images of different exposure, got {len(paths)}")
    evs = _exposures(paths, evs)
    # in order of exposure: --align chains neighbouring exposures and aligns onto the middle one
    order = sorted(range(len(paths)), key=evs.__getitem__)
    paths, evs = [paths[i] for i in order], [evs[i] for i in order]

    bar = tqdm(total=len(paths) + 3 + align, desc="merge", unit="step", leave=False,
               disable=True if quiet else None, file=sys.stderr)  # fmt: skip

    def stage(name: str) -> None:
        bar.update()  # the step before is done
        bar.set_postfix_str(name, refresh=True)

    levels = []
    for path in paths:
        stage(f"read {path.name}")
        image = read_ldr(path)
        if levels and image.shape != levels[0].shape:
            first = levels[0].shape
            raise HdrsynError(
                f"{path}: size {image.shape[1]}×{image.shape[0]} differs from "
                f"{paths[0]} ({first[1]}×{first[0]})"
            )
        levels.append(np.round(image * 255).astype(np.uint8))  # the layer's 256 levels
    shifts = {}
    if align:
        stage("align")
        levels, moves = _aligned(levels)
        shifts = {path: (round(dx), round(dy)) for path, (dx, dy) in zip(paths, moves, strict=True)}
    moved = 0.0 if align else _largest_move(levels)
    stack = torch.from_numpy(np.stack(levels)).permute(0, 3, 1, 2)
    del levels
    stage("merge")
    solve = {} if smoothness is None else {"smoothness": smoothness}  # None: Eq. 1's default
    response = solve_response(stack[None], torch.tensor(evs)[None], **solve)
    notes = response.warnings()
    if moved > 0:
        notes.insert(0, f"the frames are up to {moved:.0f} pixels apart (the camera moved?): "
                     "try --align")  # fmt: skip
    for note in notes:
        warnings.warn(note, stacklevel=2)
    inverse_crf = response.inverse_crf[0].float()
    # every channel of a pixel from the same exposures: no colour speckles where one channel
    # clips first (camera.merge_exposures, docs/hdr-layer.md)
    radiance, _ = merge_exposures(stack, evs, inverse_crf=inverse_crf, pixel_weights=True)
    result = radiance.permute(1, 2, 0).numpy()

    stage("write")
    write_hdr(output, result, overwrite=overwrite, half=half, max_boost=max_boost)
    written = {"HDR image": [Path(output)]}
    if preview is not None:
        write_ldr(preview, _display(radiance, key), overwrite=overwrite)
        written["preview"] = [Path(preview)]
    if plot_crf is not None:
        before = response.least_squares[0].numpy()
        plot = response_curve_png(inverse_crf.numpy(), least_squares=before, notes=notes)
        write_bytes(plot_crf, plot, overwrite=overwrite)
        written["response plot"] = [Path(plot_crf)]
    bar.update()
    bar.close()
    return Merged(result, written, shifts)


def describe_shifts(shifts: dict[Path, tuple[int, int]]) -> str:
    """One line for the user: the shift ``--align`` applied to each image, in pixels."""
    moves = ", ".join(f"{path.name} ({dx:+d}, {dy:+d})" for path, (dx, dy) in shifts.items())
    return f"aligned onto the middle image, shifts (x, y) in pixels: {moves}"


ALIGN_EXCLUDE = 4  # levels either side of the threshold that a bitmap leaves out (Ward 2003)
ALIGN_MIN_PEAK = 0.2  # phase correlation's peak below this: no structure to align by
ALIGN_FRACTIONS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.1, 0.9, 0.05, 0.95, 0.02, 0.98, 0.01, 0.99)
ALIGN_MAX_SHIFT = 1 / 16  # of the short side, between neighbouring exposures


def _bitmap(grey: np.ndarray, threshold: float) -> np.ndarray:
    """+1 above ``threshold``, −1 below, 0 within :data:`ALIGN_EXCLUDE` levels of it (noise)."""
    above = grey > threshold + ALIGN_EXCLUDE
    below = grey < threshold - ALIGN_EXCLUDE
    return above.astype(np.float32) - below.astype(np.float32)


def _shift(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """The translation (dx, dy) that puts grey ``moving`` onto ``reference``, whole pixels.

    Ward's threshold bitmaps make two exposures comparable: a pixel is above or below the
    same quantile in both. The quantile is the median unless that is clipped or black in
    either image (a bright frame's median is often 255, and its median bitmap is noise): the
    one nearest the median that lies clear of 0 and 255 in both; none such, no shift. The
    bitmaps are matched by phase correlation (OpenCV, Hanning window): one FFT each, any
    shift. No shift where the correlation has no clear peak (a featureless sky) or the shift
    is implausibly large for neighbouring frames of a handheld bracket."""
    for fraction in ALIGN_FRACTIONS:
        thresholds = (np.quantile(reference, fraction), np.quantile(moving, fraction))
        if all(ALIGN_EXCLUDE < level < 255 - ALIGN_EXCLUDE for level in thresholds):
            break
    else:  # one of them is clipped or black nearly everywhere
        return np.zeros(2)
    window = cv2.createHanningWindow(reference.shape[::-1], cv2.CV_32F)
    (dx, dy), peak = cv2.phaseCorrelate(_bitmap(moving, thresholds[1]),
                                        _bitmap(reference, thresholds[0]), window)  # fmt: skip
    if peak < ALIGN_MIN_PEAK or max(abs(dx), abs(dy)) > ALIGN_MAX_SHIFT * min(reference.shape):
        return np.zeros(2)
    return np.round([dx, dy])


def _moves(grey: list[np.ndarray]) -> list[np.ndarray]:
    """Each image's translation (dx, dy) onto the middle one: :func:`_shift` between
    neighbouring exposures (neighbours look most alike), chained outwards from the middle."""
    middle = len(grey) // 2
    moves = {middle: np.zeros(2)}
    for step in (-1, 1):
        index = middle + step
        while 0 <= index < len(grey):
            moves[index] = moves[index - step] + _shift(grey[index - step], grey[index])
            index += step
    return [moves[index] for index in range(len(grey))]


def _aligned(levels: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each image translated onto the middle one (:func:`_moves`), the border repeated.
    Returns the images and their shifts (dx, dy)."""
    moves = _moves([cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in levels])
    aligned = []
    for (dx, dy), image in zip(moves, levels, strict=True):
        move = np.float32([[1, 0, dx], [0, 1, dy]])
        aligned.append(cv2.warpAffine(image, move, image.shape[1::-1],
                                      borderMode=cv2.BORDER_REPLICATE))  # fmt: skip
    return aligned, moves


SHIFT_CHECK_PIXELS = 1 << 20  # the check for a moved camera looks at about 1 MP


def _largest_move(levels: list[np.ndarray]) -> float:
    """How far (pixels, full size) the frames of a bracket given without --align lie from the
    middle one, found on copies of about :data:`SHIFT_CHECK_PIXELS`: 0 for a tripod."""
    height, width = levels[0].shape[:2]
    factor = max(1, math.ceil(math.sqrt(height * width / SHIFT_CHECK_PIXELS)))
    grey = [cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (width // factor, height // factor),
                       interpolation=cv2.INTER_AREA) for image in levels]  # fmt: skip
    return factor * max(float(np.abs(move).max()) for move in _moves(grey))


def _exposures(paths: list[Path], evs: Sequence[float] | None) -> list[float]:
    if evs is None:
        evs = exif_evs(paths, "give the EVs with --ev")
    evs = [float(ev) for ev in evs]
    if len(evs) != len(paths):
        raise HdrsynError(f"{len(paths)} images but {len(evs)} EVs given (--ev)")
    seen: dict[float, Path] = {}
    for path, ev in zip(paths, evs, strict=True):
        if not math.isfinite(ev):
            raise HdrsynError(f"{path}: exposure value {ev} is not finite")
        if ev in seen:
            raise HdrsynError(f"{path}: same exposure value ({ev:g} EV) as {seen[ev]}")
        seen[ev] = path
    return evs


def _display(radiance: torch.Tensor, key: float, white: float | None = None) -> np.ndarray:
    """Tone-map ``(3, H, W)`` radiance and sRGB-encode it into ``(H, W, 3)`` in [0, 1]."""
    from hdrsyn.tonemap import display

    return display(radiance, key, white).permute(1, 2, 0).numpy()


def tonemap_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    key: float = 0.18,
    white: float | None = None,
    overwrite: bool = False,
) -> np.ndarray:
    """Tone-map an HDR file (Reinhard et al. 2002) to an sRGB PNG or JPEG.

    Returns:
        the displayed image, ``(H, W, 3)`` float32 in [0, 1].
    """
    import torch

    check_writable(output, overwrite, LDR_SUFFIXES)
    radiance = torch.from_numpy(read_hdr(source)).permute(2, 0, 1)
    shown = _display(radiance, key, white)
    write_ldr(output, shown, overwrite=overwrite)
    return shown


def preview_data(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    count: int = 4,
    split: str = "val",
    seed: int = 0,
    size: int = 192,
    overwrite: bool = False,
) -> np.ndarray:
    """Write a contact sheet of training samples: input, target stack, tone-mapped reference.

    ``source`` is a folder of HDR images (synthetic stacks are made from it) or a folder of
    bracketed scenes (one sub-folder each).
    """
    from hdrsyn.data import BracketedStackDataset, SyntheticStackDataset
    from hdrsyn.plots import contact_sheet, stack_rows
    from hdrsyn.tonemap import display

    check_writable(output, overwrite, (".png", ".jpg", ".jpeg"))
    folder = Path(source)
    if folder.is_dir() and any(p.is_dir() for p in folder.iterdir()):
        dataset = BracketedStackDataset(folder, size=size)
    else:
        dataset = SyntheticStackDataset(folder, size=size, split=split, length=count, seed=seed)
    rows = []
    for index in tqdm(range(min(count, len(dataset))), desc="samples", disable=None, leave=False):
        sample = dataset[index]
        images = [sample["input"]] + list(sample["stack"])
        images.append(display(sample["radiance"]))
        labels = [f"input ({sample['curve']})"]
        labels += [f"EV {ev:+g}" for ev in sample["evs"].tolist()]
        labels.append(f"reference: {sample['source']}")
        rows.append(
            contact_sheet([image.permute(1, 2, 0).numpy() for image in images], labels, size)
        )
    sheet = stack_rows(rows, gap=6)
    write_ldr(output, sheet, overwrite=overwrite)
    return sheet


def reconstruct_files(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    model: str = "small",
    evs: Sequence[float] | None = None,
    stack_dir: str | os.PathLike | None = None,
    preview: str | os.PathLike | None = None,
    max_pixels: int | None = None,
    curve: str = "hybrid",
    highlights: bool = True,
    overwrite: bool = False,
    key: float = 0.18,
    max_boost: float = MAX_BOOST,
    half: bool = True,
    quiet: bool = False,
) -> dict[str, list[Path]]:
    """Single photo(s) → HDR. One input file writes ``output``; a folder (or several files)
    writes ``output/<name>.exr`` for each image (``output`` and ``preview`` are then folders,
    made if they are new ones inside existing writable folders). Progress goes to stderr on a
    terminal (never when ``quiet``): photos done, and the stage of the current one (read,
    curve, networks, merge, write).
    ``curve`` and ``highlights``: see :func:`hdrsyn.reconstruction.reconstruct`. ``.exr``
    outputs are half floats unless ``half`` is False (:func:`hdrsyn.io.write_hdr`).
    Every output is checked before any work. A photo that cannot be read does not stop the
    others: the run ends with an error naming every photo that failed.

    Returns:
        the files written by kind: ``{"HDR image": [...], "preview": [...], "exposure": [...]}``.
    """
    photos = _photos(inputs)
    output = Path(output)
    single = len(photos) == 1 and not Path(inputs[0]).is_dir()
    if single and not photos[0].is_file():
        raise HdrsynError(f"{photos[0]}: no such file")
    evs = list(DEFAULT_EVS if evs is None else evs)
    continuous = _continuous_condition(model)
    if continuous is not None:  # else a run folder: the model refuses wrong EVs when loaded
        chains(evs, continuous)
    folders = []  # made after every check: a refused run leaves nothing
    if single:
        jobs = [(photos[0], output, Path(preview) if preview else None)]
    else:
        _distinct_stems(photos)
        folders.append(_new_or_existing_folder(output, "-o (several inputs)"))
        shown = Path(preview) if preview else None
        if shown is not None:
            folders.append(_new_or_existing_folder(shown, "--preview (several inputs)"))
        jobs = [(p, output / f"{p.stem}.exr", shown / f"{p.stem}.png" if shown else None)
                for p in photos]  # fmt: skip
    stack_folder = None
    if stack_dir is not None:
        stack_folder = _new_or_existing_folder(Path(stack_dir), "--stack-dir")
        folders.append(stack_folder)
    for photo, hdr, shown in jobs:  # refuse before any work
        check_writable(hdr, overwrite, HDR_OUTPUT_SUFFIXES, folder_made=hdr.parent in folders)
        if shown is not None:
            check_writable(shown, overwrite, LDR_SUFFIXES, folder_made=shown.parent in folders)
        for ev in evs if stack_folder is not None else []:
            check_writable(stack_folder / _stack_name(photo, ev), overwrite, (".png",),
                           folder_made=True)  # fmt: skip
    import torch

    from hdrsyn.reconstruction import DEFAULT_MAX_PIXELS, load_model, reconstruct

    network = load_model(model)
    for folder in folders:
        folder.mkdir(exist_ok=True)
    written: dict[str, list[Path]] = {"HDR image": [], "preview": [], "exposure": []}
    failed = []
    bar = tqdm(jobs, desc="reconstruct", unit="photo", disable=True if quiet else None,
               file=sys.stderr, leave=False)  # fmt: skip
    for photo, hdr, shown in bar:
        def stage(name: str, photo: Path = photo) -> None:
            bar.set_postfix_str(f"{photo.name}: {name}", refresh=True)

        stage("read")
        try:
            image = read_ldr(photo)
        except HdrsynError as error:
            if single:
                raise
            failed.append(str(error))
            continue
        result = reconstruct(image, network, evs=evs, curve=curve, highlights=highlights,
                             max_pixels=max_pixels or DEFAULT_MAX_PIXELS, stage=stage)  # fmt: skip
        stage("write")
        write_hdr(hdr, result.radiance, overwrite=overwrite, half=half, max_boost=max_boost)
        written["HDR image"].append(hdr)
        if shown is not None:
            radiance = torch.from_numpy(result.radiance).permute(2, 0, 1)
            write_ldr(shown, _display(radiance, key), overwrite=overwrite)
            written["preview"].append(shown)
        if stack_folder is not None:
            for ev, image in zip(result.evs, result.stack, strict=True):
                exposure = stack_folder / _stack_name(photo, ev)
                write_ldr(exposure, image, overwrite=overwrite)
                written["exposure"].append(exposure)
    bar.close()
    if failed:
        raise HdrsynError(f"{len(failed)} of {len(jobs)} photos failed, the others were "
                          f"written: {'; '.join(failed)}")  # fmt: skip
    return written


def _continuous_condition(model: str | os.PathLike) -> bool | None:
    """Whether a shipped name or a ``.safetensors`` file holds a continuous-condition model,
    from the file's metadata alone (no PyTorch); None when that cannot be told so (a run
    folder, a missing or foreign file: loading the model says what is wrong)."""
    from safetensors import safe_open

    shipped = resources.files("hdrsyn") / "weights" / f"{model}.safetensors"
    path = Path(str(shipped)) if shipped.is_file() else Path(model)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "np") as handle:
            config = json.loads((handle.metadata() or {}).get("model", "null"))
    except Exception:  # safetensors raises several types; load_model names the problem
        return None
    return None if not isinstance(config, dict) else config.get("condition") == "continuous"


def describe_written(written: dict[str, list[Path]], seconds: float | None = None) -> list[str]:
    """Lines for the user: each file of a kind with few, else a count per kind and folder;
    with ``seconds``, a last line with the count of files and the time taken."""
    lines = []
    for kind, paths in written.items():
        if len(paths) <= 3:
            lines += [f"wrote {path}" for path in paths]
            continue
        for folder in sorted({p.parent for p in paths}):
            count = sum(p.parent == folder for p in paths)
            lines.append(f"wrote {count} {kind}s to {folder}/")
    if seconds is not None:
        count = sum(map(len, written.values()))
        lines.append(f"done: {count} file{'s' * (count != 1)} in {seconds:.1f} s")
    return lines


def _distinct_stems(photos: list[Path]) -> None:
    """Outputs are named by the photo's stem: two photos with one stem would overwrite."""
    seen: dict[str, Path] = {}
    for photo in photos:
        other = seen.setdefault(photo.stem, photo)
        if other is not photo:
            raise HdrsynError(f"{other} and {photo}: same name, same outputs; rename one")


def _new_or_existing_folder(folder: Path, what: str) -> Path:
    """``folder`` if it is one, or a new one to make inside an existing writable folder."""
    if folder.is_dir():
        return folder
    parent = folder.parent if str(folder.parent) else Path(".")
    if folder.exists() or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise HdrsynError(f"{folder}: {what} must be a folder, or a new one in an existing "
                          "writable folder")  # fmt: skip
    return folder


def _stack_name(photo: Path, ev: float) -> str:
    return f"{photo.stem}_ev{ev:+g}.png"


def _photos(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The photos named, a folder standing for the PNG, JPEG and TIFF files in it."""
    photos: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in LDR_SUFFIXES)
            if not found:
                raise HdrsynError(f"{item}: no images in it (PNG, JPEG or TIFF)")
            photos += found
        else:
            photos.append(item)
    return photos
