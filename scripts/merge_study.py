"""How the response solve holds up on realistic brackets (issue 24, docs/hdr-layer.md).

Brackets made the way a camera makes them (hdrsyn.capture.bracket): native-resolution views of
the bundled HDR scenes, optics, sensor noise, Bayer mosaic and demosaicing, sharpening in the
encoded domain, a curve of the test family with its own shape per channel, JPEG at quality
75–95 (or PNG), a handheld shift of up to 6 pixels per frame (aligned by --align's code), and
seven frames one stop apart; plus a smooth bright sky gradient, where colour bands show.
Each solver setting merges every bracket; per setting the script prints

* curve: ln f⁻¹ RMSE against the camera's own curve (offset removed, levels 5…250), the mean
  over brackets of the worst channel; 30-240: the same over levels 30…240 (the shadows below
  30 are steep in ln exposure and noisy, and carry little weight in the merge);
* falls: brackets whose curve falls anywhere (largest fall > 0.01), and the largest fall;
* log error: RMSE of ln radiance against the truth (each channel scaled by its median ratio,
  pixels the bracket exposes);
* roughness: mean |∇ chromaticity| of the merge, 8× area-downsampled, over the bright pixels
  (level ≥ 200 in the middle frame), as a ratio to the truth's;
* sky hue range: the range of ln chromaticity along the sky gradient (column means; 0 = no
  bands and no drift).

Run: python scripts/merge_study.py [--views 4] [--format jpeg|png] [--scenes hdr|hdr-extra-1k]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from hdrsyn.camera import largest_drop, merge_exposures, solve_response
from hdrsyn.capture import PerChannel, bracket, sample_capture
from hdrsyn.commands import _aligned
from hdrsyn.curves import curve_rmse, sample_curve
from hdrsyn.data import native_view
from hdrsyn.io import read_hdr

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
EVS = np.arange(-3.0, 4.0)
SIZE, SHIFT = 384, 6


def camera(rng, jpeg: bool):
    base = sample_curve(rng, "test")
    jitter = []
    for _ in range(3):
        changes = {"gamma": base.gamma * rng.uniform(0.95, 1.05)}
        if base.white:
            changes["white"] = base.white * rng.uniform(0.9, 1.1)
        jitter.append(dataclasses.replace(base, **changes) if base.kind != "srgb" else base)
    capture = sample_capture(rng, noise=1.0, bayer=1.0, sharpen=0.7, jpeg=1.0 if jpeg else 0.0)
    return PerChannel(tuple(jitter)), capture, base.describe()


def sky(rng) -> np.ndarray:
    """A smooth bright gradient: a blue sky from 0.6 to 1.8 of clipping at EV 0 over its width,
    with a faint vertical falloff."""
    height, width = SIZE + 2 * SHIFT, SIZE + 2 * SHIFT
    ramp = np.geomspace(0.6, 1.8, width)[None, :] * np.linspace(1.0, 0.9, height)[:, None]
    hue = np.array([0.55, 0.75, 1.0]) * rng.uniform(0.9, 1.1, 3)
    return (ramp[..., None] * hue / hue.mean()).astype(np.float32)


def brackets(scenes: list[Path], views: int, jpeg: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    for path in scenes:
        panorama = read_hdr(path)
        for _ in range(views):
            view = native_view(panorama, rng.uniform(-180, 180), rng.uniform(-10, 10),
                               SIZE + 2 * SHIFT)  # fmt: skip
            view = view / np.median(view) * rng.uniform(0.1, 0.25)
            curve, capture, name = camera(rng, jpeg)
            yield f"{path.stem} {name}", view, curve, capture, rng
    for index in range(views):
        curve, capture, name = camera(rng, jpeg)
        yield f"sky{index} {name}", sky(rng), curve, capture, rng


def truth_curve(curve: PerChannel) -> torch.Tensor:
    return torch.from_numpy(np.stack([c.log_inverse() for c in curve.curves]))


def chroma_roughness(radiance: np.ndarray, mask: np.ndarray) -> float:
    small = cv2.resize(radiance, None, fx=1 / 8, fy=1 / 8, interpolation=cv2.INTER_AREA)
    keep = cv2.resize(mask.astype(np.float32), None, fx=1 / 8, fy=1 / 8,
                      interpolation=cv2.INTER_AREA) > 0.99  # fmt: skip
    chroma = small / (small.sum(axis=2, keepdims=True) + 1e-12)
    gradient = np.abs(np.diff(chroma, axis=1))[:-1] + np.abs(np.diff(chroma, axis=0))[:, :-1]
    keep = keep[:-1, :-1] & keep[1:, :-1] & keep[:-1, 1:]
    return float(gradient.sum(axis=2)[keep].mean()) if keep.any() else float("nan")


def _rmse(g, truth, low, high) -> float:
    difference = (g - truth)[:, low : high + 1]
    difference = difference - difference.mean(dim=1, keepdim=True)
    return difference.square().mean(dim=1).sqrt().max().item()


def measure(name, radiance, g, raw, frames, truth_light, curve) -> dict:
    truth = truth_light[SHIFT:-SHIFT, SHIFT:-SHIFT]
    exposed = (truth * 2.0**EVS.max() > 0.02).all(axis=2) & (truth * 2.0**EVS.min() < 0.9).all(
        axis=2
    )
    scaled = radiance.copy()
    for c in range(3):
        scaled[..., c] *= np.median(truth[..., c][exposed] / radiance[..., c][exposed])
    error = np.log(np.maximum(scaled, 1e-9)) - np.log(np.maximum(truth, 1e-9))
    bright = frames[len(frames) // 2].max(axis=2) >= 200
    row = {
        "name": name,
        "curve": curve_rmse(g, truth_curve(curve)).max().item(),
        "curve_mid": _rmse(g, truth_curve(curve), 30, 240),
        "fall": largest_drop(g[:, 5:251]).max().item(),
        "raw_fall": largest_drop(raw[:, 5:251]).max().item(),
        "log_error": float(np.sqrt((error[exposed] ** 2).mean())),
    }
    if bright.mean() > 0.01 and not name.startswith("sky"):  # the sky's truth has no roughness
        row["roughness"] = chroma_roughness(scaled, bright) / chroma_roughness(truth, bright)
    if name.startswith("sky"):
        profile = np.log(scaled[SIZE // 4 : 3 * SIZE // 4].mean(axis=0))
        hue = profile - profile.mean(axis=1, keepdims=True)
        hue = cv2.blur(hue[None], (5, 1))[0][4:-4]
        row["sky_hue_range"] = float((hue.max(axis=0) - hue.min(axis=0)).max())
    return row


SETTINGS = {  # label: solve_response's arguments; "unscaled 10": λ = 10 before λ was per 70 samples
    "opencv": None,
    "unscaled 10": {"smoothness": 10 * np.sqrt(70 / 128), "monotone": False},
    "10": {"smoothness": 10.0, "monotone": False},
    "10 monotone": {"smoothness": 10.0},
    "30": {"smoothness": 30.0, "monotone": False},
    "30 monotone": {"smoothness": 30.0},
    "50 monotone": {"smoothness": 50.0},
    "100": {"smoothness": 100.0, "monotone": False},
    "100 monotone": {"smoothness": 100.0},
    "200 monotone": {"smoothness": 200.0},
    "300 monotone": {"smoothness": 300.0},
    "100 monotone 512": {"smoothness": 100.0, "n_samples": 512},
}


def opencv_merge(frames: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    times = (2.0**EVS).astype(np.float32)
    response = cv2.createCalibrateDebevec().process(list(frames), times)
    merged = cv2.createMergeDebevec().process(list(frames), times, response)
    g = torch.from_numpy(np.log(response[:, 0, :].T.astype(np.float64)))
    return merged, g - g[:, 128:129]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=3, help="views per scene, and sky brackets")
    parser.add_argument("--format", choices=("jpeg", "png"), default="jpeg")
    parser.add_argument("--scenes", default="hdr", help="folder of ../shared/data")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS))
    args = parser.parse_args()
    cv2.setRNGSeed(0)
    scenes = sorted((SHARED / args.scenes).glob("*.exr"))
    rows = {label: [] for label in args.settings}
    started = time.monotonic()
    for name, view, curve, capture, rng in brackets(scenes, args.views, args.format == "jpeg"):
        frames, _ = bracket(view, EVS, curve, capture, rng, shift=SHIFT)
        frames = np.stack(_aligned(list(frames))[0])
        light = capture.optics(view)
        stack = torch.from_numpy(frames).permute(0, 3, 1, 2)
        for label in args.settings:
            if SETTINGS[label] is None:
                radiance, g = opencv_merge(frames)
                raw = g
            else:
                solve = solve_response(stack[None], torch.tensor(EVS)[None], **SETTINGS[label])
                g, raw = solve.inverse_crf[0], solve.least_squares[0]
                merged, _ = merge_exposures(stack, EVS, inverse_crf=g.float(), pixel_weights=True)
                radiance = merged.permute(1, 2, 0).numpy()
            rows[label].append(measure(name, radiance, g, raw, frames, light, curve))
    count = len(rows[args.settings[0]])
    print(f"{args.format}, {args.scenes}, {args.views} views per scene + {args.views} skies, "
          f"{count} brackets, {time.monotonic() - started:.0f} s")  # fmt: skip
    print(f"{'setting':16} {'curve':>6} {'30-240':>6} {'falls':>9} {'max fall':>8} {'log err':>7} "
          f"{'rough':>6} {'sky hue':>7}")  # fmt: skip
    for label, results in rows.items():
        falls = sum(r["fall"] > 0.01 for r in results)
        rough = [r["roughness"] for r in results if np.isfinite(r.get("roughness", np.nan))]
        skies = [r["sky_hue_range"] for r in results if "sky_hue_range" in r]
        print(f"{label:16} {np.mean([r['curve'] for r in results]):6.3f} "
              f"{np.mean([r['curve_mid'] for r in results]):6.3f} "
              f"{falls:4d}/{len(results):<4d} {max(r['fall'] for r in results):8.3f} "
              f"{np.mean([r['log_error'] for r in results]):7.3f} {np.median(rough):6.2f} "
              f"{np.mean(skies):7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
