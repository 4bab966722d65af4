"""Make the pictures in README.md and docs/ from the bundled example, with hdrsyn itself.

python scripts/make_figures.py
"""

from pathlib import Path

import numpy as np
import torch

from hdrsyn import load_model, merge_exposures, read_ldr, reconstruct, write_ldr
from hdrsyn.io import exposure_from_exif, write_bytes
from hdrsyn.plots import contact_sheet, response_curve_png
from hdrsyn.tonemap import display

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "interior"
IMAGES = ROOT / "docs" / "images"


def main() -> None:
    paths = [EXAMPLE / f"ev{ev:+d}.jpg" for ev in range(-3, 4)]
    images = [read_ldr(path) for path in paths]
    evs = [exposure_from_exif(path) for path in paths]
    evs = [ev - float(np.median(evs)) for ev in evs]
    stack = torch.from_numpy(np.round(np.stack(images) * 255).astype(np.uint8)).permute(0, 3, 1, 2)
    radiance, inverse_crf = merge_exposures(stack, evs)
    shown = display(radiance).permute(1, 2, 0).numpy()

    pair = contact_sheet(
        [images[3], shown], ["input: EV 0 photo", "hdrsyn merge, Reinhard tone map"], 300
    )
    write_ldr(IMAGES / "merge_example.png", pair, overwrite=True)
    labels = [f"EV {ev:+.0f}" for ev in evs]
    write_ldr(IMAGES / "example_stack.png", contact_sheet(images, labels, 120), overwrite=True)
    write_bytes(IMAGES / "example_crf.png", response_curve_png(inverse_crf.numpy()), overwrite=True)

    result = reconstruct(images[3], load_model("small"))
    hdr_shown = display(torch.from_numpy(result.radiance).permute(2, 0, 1))
    tiles = [images[3], *result.stack, hdr_shown.permute(1, 2, 0).numpy()]
    labels = ["input", *[f"generated EV {ev:+g}" for ev in result.evs], "HDR, tone-mapped"]
    write_ldr(IMAGES / "reconstruct_example.png", contact_sheet(tiles, labels, 110), overwrite=True)


if __name__ == "__main__":
    main()
