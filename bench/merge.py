"""Benchmark: our HDR layer against OpenCV's CalibrateDebevec + MergeDebevec, same run.

    python bench/merge.py                 # 1 MP and 12 MP, 7 exposures
    python bench/merge.py --sizes 1       # quicker

Inputs: ../shared/data/hdr/interior.exr resized to the target size, seven sRGB 8-bit exposures
EV −3…+3. Each case is timed (best of --repeat) in this process; peak memory of each case is
measured in a fresh child process by sampling RSS during the run (peak, and its growth
over the prepared inputs alone).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from hdrsyn import merge_exposures, read_hdr

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "hdr" / "interior.exr"
EVS = np.arange(-3.0, 4.0)
SIZES = {1: (1152, 864), 12: (4000, 3000)}
CASES = ("opencv", "ours-uint8", "ours-float", "ours-float-backward")


def make_stack(megapixels: int) -> list[np.ndarray]:
    width, height = SIZES[megapixels]
    radiance = cv2.resize(read_hdr(SOURCE), (width, height), interpolation=cv2.INTER_LINEAR)
    radiance = radiance / np.median(radiance) * 0.18
    out = []
    for ev in EVS:
        x = np.clip(radiance * 2.0**ev, 0, 1)
        srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)
        out.append(np.round(255 * srgb).astype(np.uint8))
    return out


def prepare(case: str, images: list[np.ndarray]):
    """Return a zero-argument function that runs the case on already-prepared inputs."""
    if case == "opencv":
        times = (2.0**EVS).astype(np.float32)

        def run():
            response = cv2.createCalibrateDebevec().process(images, times)
            return cv2.createMergeDebevec().process(images, times, response)

        return run
    stack = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    if case == "ours-uint8":
        return lambda: merge_exposures(stack, EVS)
    stack = stack.float().div_(255)
    if case == "ours-float":
        return lambda: merge_exposures(stack, EVS)

    def forward_backward():
        leaf = stack.requires_grad_()
        radiance, _ = merge_exposures(leaf, EVS)
        radiance.log().mean().backward()
        leaf.grad = None

    return forward_backward


def current_rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def child(case: str, megapixels: int) -> None:
    run = prepare(case, make_stack(megapixels))
    before = current_rss_mb()
    peak = before
    done = threading.Event()

    def watch():  # ru_maxrss would include making the inputs; sample RSS during the run instead
        nonlocal peak
        while not done.wait(0.002):
            peak = max(peak, current_rss_mb())

    watcher = threading.Thread(target=watch)
    watcher.start()
    run()
    done.set()
    watcher.join()
    print(json.dumps({"peak_mb": max(peak, current_rss_mb()), "inputs_mb": before}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 12], choices=sorted(SIZES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, threads {torch.get_num_threads()}")
    print("| size | case | time (s) | ratio to OpenCV | peak RSS (MB) | growth over inputs (MB) |")
    print("|---|---|---|---|---|---|")
    for megapixels in args.sizes:
        images = make_stack(megapixels)
        seconds = {}
        for case in CASES:
            run = prepare(case, images)
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - start)
            seconds[case] = best
        for case in CASES:
            output = subprocess.run(
                [sys.executable, __file__, "--child", case, str(megapixels)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            memory = json.loads(output.strip().splitlines()[-1])
            print(
                f"| {megapixels} MP | {case} | {seconds[case]:.2f} | "
                f"{seconds[case] / seconds['opencv']:.2f} | {memory['peak_mb']:.0f} | "
                f"{memory['peak_mb'] - memory['inputs_mb']:.0f} |"
            )


if __name__ == "__main__":
    main()
