"""Benchmark: single-photo reconstruction time and peak memory at 1 MP and 12 MP.

    python bench/reconstruct.py                       # small (shipped weights) and paper
    python bench/reconstruct.py --presets small --sizes 1

Input: the bundled example photo resized to 1 MP (1152 × 864) and 12 MP (4000 × 3000) and
rounded to 8 bits, as a JPEG or PNG photo is. `small` takes the curve as sRGB (`curve="srgb"`;
the default is "hybrid") and raises clipped regions (the default highlight boost),
`small-edges` measures the curve from the colour edges first, `small-no-highlights` leaves the
boost out (`--no-highlights`; `--presets small small-no-highlights` to compare).
The `paper` preset runs with random weights (none are shipped): its time is what matters. Each
case runs in a fresh child process (so its peak memory is its own); the reference in every run
is OpenCV's Debevec calibration and merge (`CalibrateDebevec` + `MergeDebevec`) of a 7-image
8-bit stack of the same size, and the ratio to it is printed; `merge` is ours on that stack.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from baseline import checkout, run_child

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "interior" / "ev+0.jpg"
SIZES = {1: (1152, 864), 12: (4000, 3000)}


def child(preset: str, megapixels: int) -> None:
    from hdrsyn import merge_exposures, read_ldr

    with contextlib.suppress(ImportError):  # as the command line does (older revisions: on import)
        from hdrsyn.allocator import keep_freed_memory

        keep_freed_memory()
    from hdrsyn import load_model, reconstruct  # exported by every revision
    from hdrsyn.models import PRESETS, HDRSynthesizer

    width, height = SIZES[megapixels]
    photo = cv2.resize(read_ldr(PHOTO), (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    photo = (np.round(photo * 255) / 255).astype(np.float32)  # 8-bit levels, as read from a file
    exposures = [np.round(np.clip(photo * 2.0**ev, 0, 1) * 255).astype(np.uint8)
                 for ev in range(-3, 4)]  # fmt: skip
    if preset == "opencv":
        images = [np.ascontiguousarray(x[..., ::-1]) for x in exposures]
        times = (2.0 ** np.arange(-3.0, 4.0)).astype(np.float32)
        start = time.perf_counter()
        response = cv2.createCalibrateDebevec().process(images, times)
        cv2.createMergeDebevec().process(images, times, response)
    elif preset == "merge":
        stack = torch.from_numpy(np.stack(exposures)).permute(0, 3, 1, 2).contiguous()
        start = time.perf_counter()
        merge_exposures(stack, np.arange(-3.0, 4.0))
    else:
        torch.manual_seed(0)
        name = preset.removesuffix("-edges").removesuffix("-no-highlights")
        model = load_model("small") if name == "small" else HDRSynthesizer(PRESETS[name]).eval()
        # -no-highlights: without the region boost (the default raises clipped regions)
        options = {"highlights": False} if preset.endswith("-no-highlights") else {}
        start = time.perf_counter()
        reconstruct(photo, model, curve="edges" if preset.endswith("-edges") else "srgb",
                    **options)  # fmt: skip
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small", "small-edges", "paper"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 12], choices=sorted(SIZES))
    parser.add_argument("--baseline", metavar="REV", help="also run the presets at this revision")
    parser.add_argument("--rounds", type=int, default=1, help="turns; each case's fastest is kept")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| size | case | time (s) | ratio to OpenCV's 7-image merge | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(checkout(args.baseline)) if args.baseline else None
        cases = [(case, None) for case in ["opencv", "merge", *args.presets]]
        cases += [(preset, src) for preset in args.presets] if src else []
        for megapixels in args.sizes:
            results = {}
            for _ in range(args.rounds):
                for case, source in cases:
                    label = f"{case} @ {args.baseline}" if source else case
                    result = run_child([__file__, "--child", case, str(megapixels)], source)
                    if label not in results or result["seconds"] < results[label]["seconds"]:
                        results[label] = result
            for label, result in results.items():
                ratio = result["seconds"] / results["opencv"]["seconds"]
                print(f"| {megapixels} MP | {label} | {result['seconds']:.2f} | {ratio:.2f} | "
                      f"{result['peak_mb']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
