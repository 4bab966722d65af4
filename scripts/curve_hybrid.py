"""Choose the hybrid curve (issue 22): sRGB up to a level, CurveNet's reading of a roll-off above.

    python scripts/curve_hybrid.py [--settings srgb hybrid 0.7:1.5 ...] [--views 96] [--seed 7]
        [--formats png jpeg] [--model small] [--test]

For each setting the shipped model (or ``--model``) reconstructs camera-realistic views (the
test split's cameras and curves, PNG and JPEG) of the *training* scenes (data.HELD_OUT
excluded) and prints the PU21-PSNR gain over the linearised photo by curve group. A setting
``LEVEL:SHARE`` keeps sRGB up to ``LEVEL`` and above it adds ``SHARE`` times how much more
CurveNet's estimate rises than sRGB's (never less: ``hybrid_curve``); ``@EVIDENCE`` does so
only for photos with at least that fraction of pixels above level 0.8 (sRGB for the others:
``hybrid_share``). The rule that chooses the default: the largest gain over all views, PNG
and JPEG, among settings that lose to plain sRGB on no group. ``--test`` adds the held-out
scenes' 48 views of ``hdrsyn evaluate`` (report them; never choose by them).

Measured 2026-12-06 (96 views, 256², seed 7; PNG / JPEG), gain by group sRGB (15 views),
roll-off (36), other (45), all. The shares are the excess above sRGB's rise, clamped at 0:

    srgb          +0.72 +0.62 +0.59 +0.62 / +0.78 +0.62 +0.57 +0.62
    0.9:0.5       +0.74 +0.88 +0.73 +0.79 / +0.82 +0.88 +0.70 +0.78   (the default until today)
    0.9:1.5       +0.68 +1.39 +1.00 +1.09 / +0.84 +1.36 +0.94 +1.08
    0.8:1.5       +0.50 +2.18 +1.29 +1.50 / +0.77 +2.19 +1.25 +1.53
    0.7:1         +0.42 +2.49 +1.32 +1.62 / +0.69 +2.55 +1.30 +1.67
    0.7:1.5       +0.26 +2.85 +1.42 +1.78 / +0.59 +2.95 +1.52 +1.91
    0.7:2         +0.15 +2.65 +1.31 +1.63 / +0.51 +2.75 +1.54 +1.84
    0.7:1.5@0.05  +0.87 +2.59 +1.41 +1.76 / +0.98 +2.68 +1.49 +1.86   <- chosen (hybrid)
    0.7:1.5@0.10  +0.90 +1.94 +1.33 +1.49 / +1.02 +2.02 +1.39 +1.57

Levels 0.7, 0.8, 0.9, shares 0.5 … 2 and evidence 0 … 0.1 were tried, with and without a
threshold on the estimate's own rise (no help). A share of 1.5 undoes CurveNet's pull towards
its mean curve: on these roll-off views its estimate rises above sRGB's two thirds as far as
the truth (median 0.66 against 0.97 at level 255).

The evidence rule is the least certain part. Without it 0.7:1.5 loses on sRGB photos almost
entirely through one view (4.9 % of its pixels above 0.8, 0.5 % clipped) where CurveNet read a
strong roll-off: −9.6 dB PNG, −6.7 dB JPEG; 0.05 sits just above it (0.04 lets it through;
0.06 … 0.10 cost roll-off photos 0.2 … 0.7 dB). Checked on 192 more validation views (seeds 8
and 9, PNG: ``--seed 8 --formats png``), pooled with the 192 above (sRGB 60 views,
roll-off 144, other 180): srgb +0.88 +0.54 +0.61 +0.63; 0.7:1.5 +0.82 +2.88 +1.54 +1.93 (three
sRGB views lose more than 1 dB: the one above twice, and one with 32 % bright pixels, −3.9);
0.7:1.5@0.05 +1.07 +2.63 +1.51 +1.86 (one); 0.7:1 +0.90 +2.47 +1.38 +1.71. The rule still picks
0.7:1.5@0.05. On the held-out views (``--test``, reported, not chosen by) the gate leaves half
the views at sRGB (their median share of bright pixels is 0.05; the training scenes' 0.15):
0.7:1.5@0.05 gains +0.90 +0.90 +1.01 +0.94 / +0.93 +0.95 +0.92 +0.93, 0.7:1.5 without it
+1.20 +1.73 +1.15 +1.44 / +1.09 +1.92 +1.02 +1.48 and no held-out view loses more than
0.55 dB to sRGB. A confidence for CurveNet's reading that rests on more than one validation
view is open work (issue 22).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from highlight_boost import SHARED, SOURCES, reconstructed  # scripts/: the batched reconstruct

from hdrsyn import load_model, reconstruction
from hdrsyn.baselines import linearised
from hdrsyn.curves import normalised, srgb_log_inverse
from hdrsyn.data import HELD_OUT, TEST_FILES, SyntheticStackDataset
from hdrsyn.metrics import hdr_metrics, protocol_align

GROUPS = ("srgb", "roll-off", "other", "all")


def curves_for(setting: str, estimate: torch.Tensor, photos: torch.Tensor) -> torch.Tensor:
    """The curves (B, 256) of a setting: ``srgb``, ``0:1`` (CurveNet alone), ``LEVEL:SHARE``
    for every photo, ``LEVEL:SHARE@EVIDENCE`` only for photos with at least that fraction of
    pixels above level 0.8 (sRGB for the rest), ``hybrid`` the default (reconstruct's)."""
    if setting == "srgb":
        return normalised(srgb_log_inverse()).to(estimate).expand_as(estimate)
    if setting == "hybrid":
        setting = (f"{reconstruction.HYBRID_LEVEL}:{reconstruction.HYBRID_SHARE}"
                   f"@{reconstruction.HYBRID_EVIDENCE}")
    rule, _, evidence = setting.partition("@")
    level, share = map(float, rule.split(":"))
    if level == 0:
        return estimate
    if not evidence:
        return reconstruction.hybrid_curve(estimate, share, level)
    shares = reconstruction.hybrid_share(photos, share, float(evidence))
    return reconstruction.hybrid_curve(estimate, shares, level)


def validation_views(seed: int, length: int, photo_format: str, size: int = 256):
    """Camera-realistic views (test-split cameras and curves) of the training scenes."""
    return SyntheticStackDataset(
        [str(s) for s in SOURCES], exclude=HELD_OUT, size=size, split="test", length=length,
        seed=seed, curves="test", photo_format=photo_format,
    ).without_stack()


def held_out_views(photo_format: str):
    """The 48 views of the held-out scenes that ``hdrsyn evaluate`` scores."""
    return SyntheticStackDataset(
        [str(SHARED / f) for f in TEST_FILES], size=256, split="test", length=48, seed=0,
        curves="test", photo_format=photo_format,
    ).without_stack()


def batches(model, views, batch: int = 16):
    """``(items, photos (B, 3, H, W), CurveNet's estimates (B, 256))`` a batch at a time."""
    for start in range(0, len(views), batch):
        items = [views[i] for i in range(start, min(start + batch, len(views)))]
        photos = torch.stack([item["input"] for item in items])
        with torch.no_grad():
            yield items, photos, model.generator.estimate_curve(photos)


def view_gains(model, items, photos: torch.Tensor, curves: torch.Tensor) -> list[float]:
    """Each view's PU21-PSNR gain over the linearised photo, reconstructed with ``curves``."""
    with torch.no_grad():
        radiance = reconstructed(model, photos, curves)
    out = []
    for item, photo, result in zip(items, photos, radiance, strict=True):
        truth, photo = item["radiance"][None], photo[None]
        ours = hdr_metrics(protocol_align(result[None], truth, photo), truth, photo)
        base = hdr_metrics(linearised(photo[0])[None], truth, photo)
        out.append((ours["pu21_psnr"] - base["pu21_psnr"]).item())
    return out


def gains(model, views, settings: list[str]) -> dict[str, dict[str, float]]:
    scores: dict[str, dict[str, list[float]]] = {s: {g: [] for g in GROUPS} for s in settings}
    for items, photos, estimate in batches(model, views):
        for setting in settings:
            curves = curves_for(setting, estimate, photos)
            for item, gain in zip(items, view_gains(model, items, photos, curves), strict=True):
                scores[setting][item["curve_group"]].append(gain)
                scores[setting]["all"].append(gain)
    return {s: {g: float(np.mean(v)) for g, v in by.items() if v} for s, by in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=["srgb", "hybrid", "0.7:1.5", "0.9:0.5"],
                        help="srgb, hybrid, LEVEL:SHARE, LEVEL:SHARE@EVIDENCE or 0:1")
    parser.add_argument("--model", default="small", help="shipped name or weights file")
    parser.add_argument("--views", type=int, default=96)
    parser.add_argument("--seed", type=int, default=7, help="of the validation views")
    parser.add_argument("--formats", nargs="+", default=["png", "jpeg"], choices=("png", "jpeg"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--test", action="store_true", help="also the held-out views")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    checks = {}
    for photo_format in args.formats:
        checks[f"validation {photo_format}"] = validation_views(args.seed, args.views,
                                                               photo_format, args.size)  # fmt: skip
        if args.test:
            checks[f"held-out {photo_format}"] = held_out_views(photo_format)
    for name, views in checks.items():
        for setting, by_group in gains(model, views, args.settings).items():
            row = "  ".join(f"{g} {v:+.2f}" for g, v in by_group.items())
            print(f"{name:16s} {setting:8s} {row}", flush=True)


if __name__ == "__main__":
    main()
