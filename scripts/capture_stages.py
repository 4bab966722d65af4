"""The camera-realistic capture, stage by stage, for docs/data.md: a native view of a training
panorama, then each step of :class:`hdrsyn.capture.Capture` in turn, cropped and enlarged 4×
so that single pixels show (nearest neighbour, no smoothing).

    python scripts/capture_stages.py [-o docs/images/capture_stages.png]
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from hdrsyn import write_ldr
from hdrsyn.capture import Capture, demosaiced, jpeg_compressed, mosaic, quantise
from hdrsyn.curves import ResponseCurve
from hdrsyn.data import native_view
from hdrsyn.io import read_hdr
from hdrsyn.plots import contact_sheet

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT.parent / "shared" / "data" / "hdr" / "city.exr"  # a training scene
CROP = (slice(96, 160), slice(80, 144))  # 64² of the 256² view, shown 4× enlarged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-o", "--output", default=str(ROOT / "docs" / "images" / "capture_stages.png")
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    curve = ResponseCurve("srgb")
    view = native_view(read_hdr(SCENE), 40.0, 0.0, 256)
    view = view * 0.18 / np.exp(np.log(np.maximum(view.mean(2), 1e-6)).mean())
    camera = Capture(blur=0.6, shot=0.01, read=0.002, bayer=True, sharpen=0.8,
                     sharpen_radius=1.0, jpeg=80)  # fmt: skip
    stages = [("native view (no resampling)", quantise(curve(view)))]
    blurred = camera.optics(view)
    stages.append(("optics: PSF sigma 0.6 px", quantise(curve(blurred))))
    sigma = camera.shot * np.sqrt(np.clip(blurred, 0, 1)) + camera.read
    noisy = np.clip(blurred + sigma * rng.standard_normal(view.shape).astype(np.float32), 0, 1)
    stages.append(("sensor noise", quantise(curve(noisy))))
    raw = mosaic(noisy).astype(np.float32) / 65535
    shown = np.zeros_like(noisy)  # the mosaic in its filter colours
    shown[0::2, 0::2, 0], shown[0::2, 1::2, 1] = raw[0::2, 0::2], raw[0::2, 1::2]
    shown[1::2, 0::2, 1], shown[1::2, 1::2, 2] = raw[1::2, 0::2], raw[1::2, 1::2]
    stages.append(("Bayer mosaic (RGGB)", quantise(curve(shown))))
    encoded = curve(demosaiced(mosaic(noisy))).astype(np.float32)
    stages.append(("demosaiced, curve", quantise(encoded)))
    detail = encoded - cv2.GaussianBlur(encoded, (0, 0), camera.sharpen_radius)
    sharpened = quantise(encoded + camera.sharpen * detail)
    stages.append(("sharpened (encoded)", sharpened))
    stages.append(("JPEG q80", jpeg_compressed(sharpened, 80)))
    tiles = [np.kron(image[CROP], np.ones((4, 4, 1), np.float32)) for _, image in stages]
    sheet = contact_sheet(tiles, [label for label, _ in stages], 200)
    write_ldr(args.output, sheet, overwrite=True)
    print("wrote", args.output)


if __name__ == "__main__":
    main()
