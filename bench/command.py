"""Whole commands as a person runs them: start-up, decode, work, encode, write, in fresh processes.

    python bench/command.py [--rounds 3] [--sizes 1 12]

Each case is timed from process start to exit (the fastest of ``--rounds`` turns, cases in
turns so that a busy machine slows all alike), with its peak memory, and printed as a ratio
against its reference in the same run:

* ``hdrsyn --help`` and two refused commands (a missing photo; ``--evs -2 0 2``) against
  ``python -c "import numpy, cv2"`` (issue 23: at most 3×);
* ``hdrsyn reconstruct photo.jpg -o out.jpg`` (JPEG in, Ultra HDR JPEG out) and ``-o out.exr``
  against a Python process that reads a 7-photo JPEG bracket of the same size, runs OpenCV's
  Debevec calibration and merge and writes a Radiance .hdr (at most 2×).

The photos are the bundled ``examples/interior`` bracket resized to 1 MP (1152 × 864) and
12 MP (4000 × 3000), saved as JPEG quality 92 in a temporary folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "interior"
SIZES = {1: (1152, 864), 12: (4000, 3000)}
HDRSYN = [sys.executable, "-m", "hdrsyn"]

OPENCV_MERGE = """
import sys, cv2, numpy as np
paths, out = sys.argv[1:8], sys.argv[8]
images = [cv2.imread(p) for p in paths]
times = (2.0 ** np.arange(-3.0, 4.0)).astype(np.float32)
response = cv2.createCalibrateDebevec().process(images, times)
radiance = cv2.createMergeDebevec().process(images, times, response)
cv2.imwrite(out, radiance)
"""


def make_photos(folder: Path, megapixels: int) -> list[Path]:
    """The bundled bracket (EV -3…+3) at ``megapixels``, JPEG quality 92; EV 0 is index 3."""
    paths = []
    for ev in range(-3, 4):
        image = cv2.imread(str(EXAMPLE / f"ev{ev:+d}.jpg"))
        image = cv2.resize(image, SIZES[megapixels], interpolation=cv2.INTER_CUBIC)
        path = folder / f"{megapixels}mp-ev{ev:+d}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(path)
    return paths


def timed(argv: list[str]) -> tuple[float, float, int]:
    """Seconds from start to exit, peak resident memory (MB) and exit status of a process."""
    wrapped = ["/usr/bin/time", "-f", "%M", *argv]
    start = time.perf_counter()
    run = subprocess.run(wrapped, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = int(run.stderr.strip().splitlines()[-1]) / 1024
    return seconds, peak, run.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 12], choices=sorted(SIZES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hdrsyn-bench-") as name:
        folder = Path(name)
        cases: dict[str, tuple[list[str], str | None]] = {
            "import numpy, cv2": ([sys.executable, "-c", "import numpy, cv2"], None),
            "hdrsyn --help": ([*HDRSYN, "--help"], "import numpy, cv2"),
            "refused: missing photo": (
                [*HDRSYN, "reconstruct", str(folder / "missing.jpg"), "-o", str(folder / "x.exr")],
                "import numpy, cv2",
            ),
        }
        for megapixels in args.sizes:
            photos = make_photos(folder, megapixels)
            reference = f"OpenCV merge {megapixels} MP"
            cases[reference] = ([sys.executable, "-c", OPENCV_MERGE, *map(str, photos),
                                 str(folder / "opencv.hdr")], None)  # fmt: skip
            for suffix in ("jpg", "exr"):
                out = folder / f"out.{suffix}"
                argv = [*HDRSYN, "reconstruct", str(photos[3]), "-o", str(out), "--force"]
                cases[f"reconstruct {megapixels} MP -> .{suffix}"] = (argv, reference)
            if megapixels == args.sizes[0]:
                cases["refused: --evs -2 0 2"] = (
                    [*HDRSYN, "reconstruct", str(photos[3]), "-o", str(folder / "x.exr"),
                     "--evs", "-2", "0", "2"], "import numpy, cv2")  # fmt: skip
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):
            for label, (argv, _) in cases.items():
                seconds, peak, _code = timed(argv)
                old = best.get(label)
                best[label] = (min(seconds, old[0]), max(peak, old[1])) if old else (seconds, peak)
        print(f"{'case':32s} {'seconds':>8s} {'peak MB':>8s}  ratio to reference")
        for label, (_, reference) in cases.items():
            seconds, peak = best[label]
            ratio = f"{seconds / best[reference][0]:.2f}x {reference}" if reference else ""
            print(f"{label:32s} {seconds:8.2f} {peak:8.0f}  {ratio}")


if __name__ == "__main__":
    main()
