"""Make the bundled example: a bracketed JPEG stack (EV −3…+3) cut from a CC0 HDR photograph.

    python scripts/make_example.py ../shared/data/hdr/interior.exr examples/interior

Each JPEG carries its exposure time in EXIF (1/60 s at EV 0), so `hdrsyn merge` needs no --ev.
The response curve is sRGB; EV 0 puts the median of the view at 18 % grey.
"""

import io
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from hdrsyn.io import read_hdr, write_bytes

EXIF_IFD, EXPOSURE_TIME, F_NUMBER, ISO = 0x8769, 0x829A, 0x829D, 0x8827


def srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def main(source: str, folder: str) -> None:
    radiance = read_hdr(source)[96:416, 300:900]  # the room and its bright window
    radiance = radiance / np.median(radiance) * 0.18
    for ev in range(-3, 4):
        pixels = np.round(255 * srgb(radiance * 2.0**ev)).astype(np.uint8)
        exif = Image.Exif()
        exif_ifd = exif.get_ifd(EXIF_IFD)
        time = Fraction(2**ev) / 60
        exif_ifd[EXPOSURE_TIME] = IFDRational(time.numerator, time.denominator)
        exif_ifd[F_NUMBER] = IFDRational(8, 1)
        exif_ifd[ISO] = 100
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=92, exif=exif)
        write_bytes(Path(folder) / f"ev{ev:+d}.jpg", buffer.getvalue(), overwrite=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
