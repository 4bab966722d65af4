"""``hdrsyn evaluate``: models, classical baselines and the oracle on one test set, one report.

The test set is either HDR radiance maps (folders and/or files of scenes never trained on, e.g.
:data:`hdrsyn.data.HELD_OUT`), from which fixed views are cut looking anywhere and photographed
through the *test* family of response curves, each kind in turn (split ``test`` of
:class:`hdrsyn.data.SyntheticStackDataset`), or a folder of real bracketed scenes
(:class:`hdrsyn.data.BracketedStackDataset`). Every method's radiance is scored under the
protocol of :mod:`hdrsyn.metrics` (median luminance-ratio alignment over the photo's
well-exposed pixels, 99.9th percentile at 1000 cd/m², PU21 per channel), over the whole image
and per region (well exposed / clipped / dark), and the report breaks it down by curve group
(sRGB, highlight roll-off, other). Stack measures compare generated and true exposures at EV
±1, ±2, ±3. Models that estimate the camera's curve are also scored on it (ln f⁻¹ RMSE), next
to assuming sRGB.
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from hdrsyn import __version__
from hdrsyn.baselines import BASELINES
from hdrsyn.camera import merge_exposures
from hdrsyn.curves import curve_rmse, decode, srgb_log_inverse
from hdrsyn.data import BracketedStackDataset, SyntheticStackDataset
from hdrsyn.errors import HdrsynError
from hdrsyn.io import is_hdr_file, write_bytes, write_ldr
from hdrsyn.metrics import (
    alignment_mask,
    display_referred,
    hdr_metrics,
    ms_ssim,
    protocol_align,
    psnr,
    pu21_encode,
    ssim,
)
from hdrsyn.plots import contact_sheet, stack_rows
from hdrsyn.reconstruction import CURVES, load_model, reconstruct
from hdrsyn.tonemap import display, luminance

HDR_COLUMNS = ("pu21_psnr", "pu21_ssim", "log_psnr", "mu_psnr")
REGION_COLUMNS = ("pu21_psnr_well", "pu21_psnr_clipped", "pu21_psnr_dark")
GROUPS = ("srgb", "roll-off", "other")
STACK_EVS = (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0)
STACK_COLUMNS = tuple(
    f"{kind}_ev{ev:+g}" for ev in STACK_EVS for kind in ("psnr", "ssim", "ms_ssim")
)
CLASSICAL = (*BASELINES, "true-curve", "oracle")
ERROR_RANGE = 64.0  # PU21 units at full colour of the error maps (≈ a quarter of SDR range)


def test_set(data, *, size: int = 256, views: int = 24, seed: int = 0, photo_format="png"):
    """The dataset ``hdrsyn evaluate`` reads from ``data`` (see the module doc): HDR files
    and/or folders of them (views at the source's pixel density, photographed by the
    camera-realistic capture and stored as ``photo_format``), or one folder of bracketed scene
    folders."""
    paths = [Path(p) for p in ([data] if isinstance(data, str | os.PathLike) else data)]
    for path in paths:
        if not path.exists():
            raise HdrsynError(f"{path}: no such file or folder")

    def has_hdr(path: Path) -> bool:
        if path.is_file():
            return is_hdr_file(path)
        return any(is_hdr_file(p) for p in path.iterdir())

    if all(has_hdr(p) for p in paths):
        return SyntheticStackDataset(
            paths, size=size, split="test", length=views, seed=seed, curves="test",
            photo_format=photo_format,
        )  # fmt: skip
    if len(paths) != 1 or not paths[0].is_dir():
        raise HdrsynError(
            f"{', '.join(map(str, paths))}: give HDR images (files or folders) or one folder "
            "of bracketed scene folders"
        )
    return BracketedStackDataset(paths[0], size=size)


def _model_label(spec: str) -> tuple[str, str, str, bool]:
    """``NAME=PATH``, ``PATH`` or a shipped name, each optionally ending in ``@hybrid`` (the
    default: sRGB with CurveNet's estimate near white), ``@srgb`` (the photo's curve taken as
    sRGB), ``@edges`` (measured from its colour edges) or ``@estimated`` (CurveNet's
    estimate), then optionally ``@no-highlights`` (``reconstruct``'s ``highlights=False``;
    ``@highlights``, the default, is accepted too) → (label, model, curve, highlights)."""
    highlights = not spec.endswith("@no-highlights")
    spec = spec.removesuffix("@no-highlights").removesuffix("@highlights")
    curve = CURVES[0]
    for choice in CURVES:
        if spec.endswith("@" + choice):
            spec, curve = spec.removesuffix("@" + choice), choice
    if "=" in spec:
        label, model = spec.split("=", 1)
        if not label or not model:
            raise HdrsynError(f"--model {spec!r}: use NAME=PATH or PATH")
        return label, model, curve, highlights
    label = Path(spec).stem if spec.endswith(".safetensors") else spec
    label += ("" if curve == CURVES[0] else "@" + curve) + ("" if highlights else "@no-highlights")
    return label, spec, curve, highlights


def evaluate(
    data: str | os.PathLike,
    output: str | os.PathLike,
    *,
    models: list[str] = ("small",),
    baselines: list[str] = CLASSICAL,
    size: int = 256,
    views: int = 24,
    seed: int = 0,
    photo_format: str = "png",
    overwrite: bool = False,
) -> list[dict]:
    """Run every model and baseline on the test set; write ``report.md``, ``results.csv`` and
    one picture per image into ``output``. Returns the per-image rows."""
    unknown = [name for name in baselines if name not in CLASSICAL]
    if unknown:
        raise HdrsynError(f"baselines: unknown {', '.join(unknown)}; use {', '.join(CLASSICAL)}")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise HdrsynError(f"{output}: exists and is not a folder")
    if (output / "report.md").exists() and not overwrite:
        raise HdrsynError(f"{output}: already holds a report (use --force to overwrite)")
    labelled = [_model_label(spec) for spec in models]
    labels = [label for label, *_ in labelled] + list(baselines)
    if len(set(labels)) != len(labels):
        raise HdrsynError(f"methods: names must differ, got {', '.join(labels)}")
    loaded = {label: (load_model(model), curve, highlights)
              for label, model, curve, highlights in labelled}
    dataset = test_set(data, size=size, views=views, seed=seed, photo_format=photo_format)
    (output / "images").mkdir(parents=True, exist_ok=True)
    rows, started = [], time.perf_counter()
    for index in tqdm(range(len(dataset)), desc="evaluate", unit="image"):
        sample = dataset[index]
        name = f"{index:03d}_{Path(sample['source']).stem}"
        mask = alignment_mask(sample["input"][None])
        aligned, image_rows = _evaluate_one(sample, loaded, baselines)
        for method, row in image_rows.items():
            rows.append({"image": name, "source": sample["source"], "curve": sample["curve"],
                         "group": sample["curve_group"], "view": sample.get("view", ""),
                         "capture": sample.get("capture", ""), "method": method,
                         **row})  # fmt: skip
        picture = _picture(sample, aligned, mask)
        write_ldr(output / "images" / f"{name}.png", picture, overwrite=True)
    seconds = time.perf_counter() - started
    _write_csv(output / "results.csv", rows, overwrite)
    settings = {
        "data": ", ".join(map(str, [data] if isinstance(data, str | os.PathLike) else data)),
        "test set": f"{len(dataset)} images"
        + (
            f", {size}², views {views}, seed {seed}, test-family response curves (each kind in "
            f"turn), native-density views, camera-realistic capture stored as {photo_format}"
            if isinstance(dataset, SyntheticStackDataset)
            else f", bracketed scenes{f' resized to {size}²' if size else ''}"
        ),
        "models": ", ".join(f"{label} = {model} (curve: {curve}"
                            f", {'' if highlights else 'no '}highlight boost)"
                            for label, model, curve, highlights in labelled) or "none",  # fmt: skip
        "baselines": ", ".join(baselines) or "none",
        "hdrsyn": __version__,
        "machine": f"{platform.machine()}, torch {torch.__version__}, {seconds:.0f} s",
    }
    write_bytes(output / "report.md", report_markdown(rows, labels, settings).encode(),
                overwrite=True)  # fmt: skip
    return rows


@torch.no_grad()
def _evaluate_one(sample: dict, models: dict[str, tuple[nn.Module, str, bool]], baselines):
    """Every method's radiance, aligned to the reference as the protocol says, and its scores."""
    photo = sample["input"].float()
    reference = sample["radiance"].float()[None]
    stack, evs = sample["stack"].float(), [float(ev) for ev in sample["evs"]]
    true_curve = sample["inverse_crf"].float()
    radiances, rows = {}, {}
    for label, (model, curve, highlights) in models.items():
        result = reconstruct(photo.permute(1, 2, 0).numpy(), model, curve=curve,
                             highlights=highlights)
        radiance = torch.from_numpy(result.radiance).permute(2, 0, 1)[None]
        generated = torch.from_numpy(result.stack).permute(0, 3, 1, 2)
        rows[label] = {}
        if result.photo_curve is not None:
            estimate = torch.from_numpy(result.photo_curve)
            rows[label]["curve_rmse"] = curve_rmse(estimate, true_curve[0]).item()
        for ev in STACK_EVS:
            if ev in evs and ev in result.evs:
                fake = generated[result.evs.index(ev)][None]
                true = stack[evs.index(ev)][None]
                rows[label][f"psnr_ev{ev:+g}"] = psnr(fake, true)[0].item()
                rows[label][f"ssim_ev{ev:+g}"] = ssim(fake, true)[0].item()
                rows[label][f"ms_ssim_ev{ev:+g}"] = ms_ssim(fake, true)[0].item()
        radiances[label] = radiance
    for name in baselines:
        rows[name] = {}
        if name == "oracle":
            radiance = merge_exposures(stack, torch.tensor(evs))[0][None]
        elif name == "true-curve":  # the photo through its camera's own inverse curve
            radiance = decode(photo[:, None], true_curve)[:, 0][None]  # a channel per curve
        else:
            radiance = BASELINES[name](photo)[None]
            if name == "linearised":
                rows[name]["curve_rmse"] = curve_rmse(srgb_log_inverse(), true_curve[0]).item()
        radiances[name] = radiance
    aligned = {k: protocol_align(v, reference, photo[None]) for k, v in radiances.items()}
    for method, radiance in radiances.items():
        scores = hdr_metrics(radiance, reference, photo[None])
        rows[method] = {k: v[0].item() for k, v in scores.items()} | rows[method]
    return aligned, rows


def _picture(sample: dict, aligned: dict, mask) -> np.ndarray:
    """Row 1: input, every method and the reference, tone-mapped alike. Row 2: the pixels the
    scale alignment used (light), then each method's |ΔPU21| error map."""
    reference = sample["radiance"].float()[None]

    def shown(radiance):
        return display(radiance, like=reference)[0].permute(1, 2, 0).numpy()

    tiles = [sample["input"].permute(1, 2, 0).numpy()] + [shown(r) for r in aligned.values()]
    top = contact_sheet(tiles + [shown(reference)], ["input", *aligned, "reference"], 160)
    errors = [_error_map(r, reference) for r in aligned.values()]
    used = mask[0, 0].float().numpy()
    used = np.repeat(used[..., None] * 0.6 + 0.2, 3, axis=2)
    labels = ["scale-alignment pixels", *(f"{k} error" for k in aligned)]
    bottom = contact_sheet([used] + errors, labels, 160)
    return stack_rows([top, bottom])


def _error_map(aligned, reference) -> np.ndarray:
    """|PU21(prediction) − PU21(reference)| of luminance, 0 … ERROR_RANGE, as a colour map."""
    from matplotlib import colormaps

    codes = [pu21_encode(luminance(x))[0, 0] for x in display_referred(aligned, reference)]
    error = ((codes[0] - codes[1]).abs() / ERROR_RANGE).clamp(0, 1).numpy()
    return colormaps["magma"](error)[..., :3].astype(np.float32)


def _write_csv(path: Path, rows: list[dict], overwrite: bool) -> None:
    columns = ["image", "source", "curve", "group", "view", "capture", "method", *HDR_COLUMNS,
               *REGION_COLUMNS, "curve_rmse", *STACK_COLUMNS]  # fmt: skip
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_bytes(path, buffer.getvalue().encode(), overwrite=True)


def _mean_std(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    array = np.asarray(values)
    digits = 4 if np.abs(array).max() <= 1 else 2
    return f"{array.mean():.{digits}f} ± {array.std():.{digits}f}"


def report_markdown(rows: list[dict], methods: list[str], settings: dict) -> str:
    """The report: settings, the HDR table (all methods), the stack table (models)."""
    by_method = {m: [r for r in rows if r["method"] == m] for m in methods}
    lines = ["# hdrsyn evaluation", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    lines += ["", *group_markdown(rows, methods), "", *region_markdown(rows, methods)]
    curves = curve_markdown(rows, methods)
    if curves:
        lines += ["", *curves]
    lines += [
        "",
        "Every HDR measure under the protocol (median luminance-ratio alignment over the photo's",
        "well-exposed pixels, 99.9th percentile at 1000 cd/m²); mean ± std over images.",
        "Definitions: docs/results.md.",
        "",
        "| method | PU21-PSNR (dB) | PU21-SSIM | log-PSNR (dB) | μ-law PSNR (dB) |",
        "|---|---|---|---|---|",
    ]
    for method, items in by_method.items():
        cells = [_mean_std([r[c] for r in items]) for c in HDR_COLUMNS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if len(methods) > 1:
        lines += ["", *paired_markdown(rows, methods)]
    stacked = [m for m, items in by_method.items() if items and "psnr_ev+1" in items[0]]
    if stacked:
        lines += ["", "Generated exposures against the true ones (PSNR dB / SSIM / MS-SSIM):", ""]
        lines += ["| method | " + " | ".join(f"EV {ev:+g}" for ev in STACK_EVS) + " |"]
        lines += ["|---" * (len(STACK_EVS) + 1) + "|"]
        for method in stacked:
            items = by_method[method]
            cells = []
            for ev in STACK_EVS:
                parts = [
                    _mean_std([r.get(f"{kind}_ev{ev:+g}", math.nan) for r in items])
                    for kind in ("psnr", "ssim", "ms_ssim")
                ]
                cells.append(" / ".join(parts))
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per image: results.csv. Pictures: images/ (input, methods and reference tone-mapped",
        f"alike; below them |ΔPU21| error maps, 0 … {ERROR_RANGE:g} PU units).",
        "",
    ]
    return "\n".join(lines)


def _mean(values) -> float:
    values = [v for v in values if isinstance(v, float) and math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def _groups(rows: list[dict]) -> list[str]:
    """The curve groups present, then the cameras of real brackets (one group each)."""
    present = {r.get("group") for r in rows}
    return [g for g in GROUPS if g in present] + sorted(present - set(GROUPS) - {None})


def _group_means(rows: list[dict], method: str, column: str, groups: list[str]) -> list[float]:
    """``method``'s mean of ``column`` in each of ``groups``, then over all images."""
    return [
        _mean([r.get(column, math.nan) for r in rows
               if r["method"] == method and (group is None or r.get("group") == group)])
        for group in (*groups, None)
    ]  # fmt: skip


def group_markdown(rows: list[dict], methods: list[str]) -> list[str]:
    """PU21-PSNR per curve group (and all images), each method with its gain over the
    linearised photo when that is a row."""
    groups = _groups(rows)
    base = "linearised" if "linearised" in methods else None
    lines = [
        "PU21-PSNR (dB) by the camera's curve group"
        + (" (in brackets: minus the linearised photo, same images)" if base else "")
        + "; images per group: "
        + ", ".join(f"{g} {len({r['image'] for r in rows if r.get('group') == g})}"
                    for g in groups) + ".",  # fmt: skip
        "",
        "| method | " + " | ".join(groups) + " | all |",
        "|---" * (len(groups) + 2) + "|",
    ]
    baseline = _group_means(rows, base, "pu21_psnr", groups) if base else None
    for method in methods:
        values = _group_means(rows, method, "pu21_psnr", groups)
        cells = [f"{value:.2f}" for value in values]
        if baseline and method != base:
            cells = [f"{cell} ({v - b:+.2f})" for cell, v, b in zip(cells, values, baseline,
                                                                    strict=True)]  # fmt: skip
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def region_markdown(rows: list[dict], methods: list[str]) -> list[str]:
    """PU21-PSNR per region of the photo, mean over the images that have the region."""
    lines = [
        "PU21-PSNR (dB) by region of the photo: well exposed (every channel in 0.05…0.95),",
        "clipped (a channel above 0.95), dark (the rest); mean over images with such pixels.",
        "",
        "| method | well exposed | clipped | dark |",
        "|---|---|---|---|",
    ]
    for method in methods:
        items = [r for r in rows if r["method"] == method]
        cells = [f"{_mean([r.get(c, math.nan) for r in items]):.2f}" for c in REGION_COLUMNS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def curve_markdown(rows: list[dict], methods: list[str]) -> list[str]:
    """RMSE of the estimated ln f⁻¹ per curve group; 'linearised' is assuming sRGB."""
    scored = [m for m in methods if any("curve_rmse" in r for r in rows if r["method"] == m)]
    if not scored:
        return []
    groups = _groups(rows)
    lines = [
        "Camera curve: RMSE of ln f⁻¹ over levels 5…250 after the best constant offset",
        "(linearised = assuming sRGB).",
        "",
        "| method | " + " | ".join(groups) + " | all |",
        "|---" * (len(groups) + 2) + "|",
    ]
    for method in scored:
        cells = [f"{value:.3f}" for value in _group_means(rows, method, "curve_rmse", groups)]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def paired_differences(rows: list[dict], method: str, against: str, column: str) -> np.ndarray:
    """``method`` minus ``against`` in ``column``, image by image (non-finite pairs dropped)."""
    first = {r["image"]: r[column] for r in rows if r["method"] == against}
    pairs = [
        (r[column], first[r["image"]])
        for r in rows
        if r["method"] == method and r["image"] in first
    ]
    differences = np.asarray([a - b for a, b in pairs], dtype=np.float64)
    return differences[np.isfinite(differences)]


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided p of the Wilcoxon signed-rank test (exact for small samples); 1 if all ties."""
    from scipy.stats import wilcoxon

    if not np.any(differences != 0):
        return 1.0
    return float(wilcoxon(differences).pvalue)


def paired_markdown(rows: list[dict], methods: list[str]) -> list[str]:
    """Every other method against the first, image by image: the score spread between images
    (± 5 dB) hides differences that are consistent on every image, and shows ones that are not."""
    against = methods[0]
    lines = [
        f"Paired against {against}, image by image: mean difference (median; images where the",
        f"method scores higher; two-sided Wilcoxon signed-rank p). Positive = above {against}.",
        "",
        f"| method − {against} | PU21-PSNR (dB) | PU21-SSIM | log-PSNR (dB) | μ-law PSNR (dB) |",
        "|---|---|---|---|---|",
    ]
    for method in methods[1:]:
        cells = []
        for column in HDR_COLUMNS:
            d = paired_differences(rows, method, against, column)
            if d.size == 0:
                cells.append("n/a")
                continue
            digits = 4 if column.endswith("ssim") else 2
            cells.append(
                f"{d.mean():+.{digits}f} ({np.median(d):+.{digits}f}; "
                f"{int((d > 0).sum())}/{d.size}; p {wilcoxon_p(d):.2g})"
            )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines
