"""Before/after pictures of held-out scenes for docs/results.md: photos of a blown window, the
sun and lamps by an sRGB camera and a roll-off (filmic) camera, each a phone-like JPEG from the
camera-realistic capture; then the linearised photo, hdrsyn ``--no-highlights`` (without the
clipped-region boost), hdrsyn (default, with it), ExpandNet and the true radiance, tone-mapped
alike, and the same 3 and 6 stops darker (what each holds above the photo's white).

    python scripts/held_out_pictures.py [--model small] [-o docs/images/held_out.png]
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from hdrsyn import load_model, reconstruct, write_ldr
from hdrsyn.baselines import BASELINES
from hdrsyn.capture import Capture
from hdrsyn.curves import ResponseCurve
from hdrsyn.data import native_view
from hdrsyn.io import read_hdr
from hdrsyn.metrics import hdr_metrics, protocol_align
from hdrsyn.plots import contact_sheet, stack_rows
from hdrsyn.tonemap import display, srgb_encode

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
# (scene, yaw, pitch): native 256² views (90°) with a blown window, the sun, lamps
VIEWS = [
    ("hdr-extra-1k/bridge.exr", 0.0, 0.0),
    ("hdr/sunrise.exr", 25.0, 5.0),
    ("hdr-extra-1k/lobby.exr", -144.0, 15.0),
]
CAMERAS = [ResponseCurve("srgb"), ResponseCurve("hable", white=14.0)]
# a phone-like capture: mild noise, demosaiced, sharpened, JPEG q90
CAPTURE = Capture(blur=0.5, shot=0.004, read=0.001, bayer=True, sharpen=0.5, jpeg=90)
SIZE = 256


def row(view: np.ndarray, curve: ResponseCurve, model) -> tuple[np.ndarray, dict]:
    radiance_view = CAPTURE.optics(view)
    luminance = np.maximum(radiance_view @ np.array([0.2126, 0.7152, 0.0722]), 1e-6)
    exposure = curve.inverse(np.array([0.461]))[0] / np.exp(np.log(luminance).mean())
    radiance = (radiance_view * exposure).astype(np.float32)
    photo = CAPTURE.photograph(radiance, curve, np.random.default_rng(0))
    reference = torch.from_numpy(radiance).permute(2, 0, 1)[None]
    photo_t = torch.from_numpy(photo).permute(2, 0, 1)[None]
    ours, raised = (torch.from_numpy(reconstruct(photo, model, highlights=h).radiance)
                    .permute(2, 0, 1)[None] for h in (False, True))  # fmt: skip
    methods = {
        "linearised": BASELINES["linearised"](photo_t[0])[None],
        "--no-highlights": ours,
        "hdrsyn": raised,
        "ExpandNet": BASELINES["expandnet"](photo_t[0])[None],
    }
    aligned = {k: protocol_align(v, reference, photo_t) for k, v in methods.items()}
    scores = {k: hdr_metrics(v, reference, photo_t)["pu21_psnr"].item() for k, v in methods.items()}
    shown = [*aligned.items(), ("true radiance", reference)]
    tiles, labels = [photo], [f"photo ({curve.describe()})"]
    for name, radiance_map in shown:
        tiles.append(display(radiance_map, like=reference)[0].permute(1, 2, 0).numpy())
        labels.append(name + (f" {scores[name]:.1f} dB" if name in scores else ""))
    # the reference is the sensor exposure (1 = the photo's white): each 3 and 6 stops darker
    for stops in (3, 6):
        tiles.append(np.ones_like(photo))  # a blank first column keeps the methods aligned
        labels.append(f"{stops} stops darker:")
        for name, radiance_map in shown:
            darker = srgb_encode((radiance_map * 2.0**-stops).clamp(0, 1))
            tiles.append(darker[0].permute(1, 2, 0).numpy())
            labels.append(f"{name}, -{stops} stops")
    rows = [contact_sheet(tiles[i : i + 6], labels[i : i + 6], 128) for i in (0, 6, 12)]
    return stack_rows(rows, gap=2), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "images" / "held_out.png"))
    args = parser.parse_args()
    model = load_model(args.model)
    sheets = []
    for scene, yaw, pitch in VIEWS:
        view = native_view(read_hdr(DATA / scene), yaw, pitch, SIZE)
        for curve in CAMERAS:
            sheet, scores = row(view, curve, model)
            sheets.append(sheet)
            print(scene, curve.describe(), {k: round(v, 2) for k, v in scores.items()})
    write_ldr(args.output, stack_rows(sheets, gap=10), overwrite=True)
    print("wrote", args.output)


if __name__ == "__main__":
    main()
