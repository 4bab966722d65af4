"""Before/after pictures of held-out scenes for docs/results.md: photos from an sRGB camera and a
roll-off (filmic) camera, the linearised photo, hdrsyn (the curve taken as sRGB, as for JPEGs,
and the curve measured from the photo's colour edges, the default for lossless photos) and the
true radiance, each shown
tone-mapped alike, and exposed so that the true radiance's 99th luminance percentile is white
(where the highlights' content shows).

    python scripts/held_out_pictures.py [--model small] [-o docs/images/held_out.png]
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from hdrsyn import load_model, reconstruct, write_ldr
from hdrsyn.curves import ResponseCurve
from hdrsyn.data import perspective_view, quantise
from hdrsyn.io import read_hdr
from hdrsyn.metrics import hdr_metrics, protocol_align
from hdrsyn.plots import contact_sheet, stack_rows
from hdrsyn.tonemap import display, srgb_decode, srgb_encode
from hdrsyn.tonemap import luminance as luminance_of

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
# (scene, yaw, pitch): views with a blown window, a lamp or the sun
VIEWS = [
    ("hdr-extra/bridge.exr", 0.0, 0.0),
    ("hdr/sunrise.exr", 25.0, 5.0),
    ("hdr-extra/lobby.exr", -144.0, 15.0),
]
CAMERAS = [ResponseCurve("srgb"), ResponseCurve("hable", white=14.0)]
SIZE = 256


def row(radiance_view: np.ndarray, curve: ResponseCurve, model) -> tuple[np.ndarray, dict]:
    luminance = np.maximum(radiance_view @ np.array([0.2126, 0.7152, 0.0722]), 1e-6)
    exposure = curve.inverse(np.array([0.461]))[0] / np.exp(np.log(luminance).mean())
    radiance = (radiance_view * exposure).astype(np.float32)
    photo = quantise(curve(radiance))
    reference = torch.from_numpy(radiance).permute(2, 0, 1)[None]
    photo_t = torch.from_numpy(photo).permute(2, 0, 1)[None]
    ours = {
        curve_mode: torch.from_numpy(reconstruct(photo, model, curve=curve_mode).radiance).permute(
            2, 0, 1
        )[None]
        for curve_mode in ("srgb", "edges")
    }
    linear = srgb_decode(photo_t)
    methods = {
        "linearised": linear,
        "hdrsyn, sRGB curve": ours["srgb"],
        "hdrsyn, edge curve": ours["edges"],
    }
    aligned = {k: protocol_align(v, reference, photo_t) for k, v in methods.items()}
    scores = {k: hdr_metrics(v, reference, photo_t)["pu21_psnr"].item() for k, v in methods.items()}
    tiles, labels = [photo], [f"photo ({curve.describe()})"]
    for name, radiance_map in [*aligned.items(), ("true radiance", reference)]:
        tiles.append(display(radiance_map, like=reference)[0].permute(1, 2, 0).numpy())
        score = f" {scores[name]:.1f} dB" if name in scores else ""
        labels.append(name + score)
    white = torch.quantile(luminance_of(reference).flatten(), 0.99)
    for name, radiance_map in [*aligned.items(), ("true radiance", reference)]:
        darker = srgb_encode((radiance_map / white).clamp(0, 1))
        tiles.append(darker[0].permute(1, 2, 0).numpy())
        labels.append(f"{name}, highlights")
    return contact_sheet(tiles, labels, 128), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "images" / "held_out.png"))
    args = parser.parse_args()
    model = load_model(args.model)
    rows = []
    for scene, yaw, pitch in VIEWS:
        view = perspective_view(read_hdr(DATA / scene), yaw, pitch, 60.0, SIZE)
        for curve in CAMERAS:
            sheet, scores = row(view, curve, model)
            rows.append(sheet)
            print(scene, curve.describe(), {k: round(v, 2) for k, v in scores.items()})
    write_ldr(args.output, stack_rows(rows, gap=6), overwrite=True)
    print("wrote", args.output)


if __name__ == "__main__":
    main()
