"""How much of the gap to the oracle is the response curve, and how much is clipping?

    python scripts/clipping_gap.py [--data ../shared/data/hdr] [--views 12]

On the fixed validation views, for each curve family: μ-law PSNR (the training validation score)
of the photo linearised with the sRGB curve, of the photo linearised with its *true* response
curve (clipped pixels stay clipped), and the share of pixels clipped in the photo.
"""

import argparse

import numpy as np
import torch

from hdrsyn.baselines import linearised
from hdrsyn.data import SyntheticStackDataset
from hdrsyn.metrics import hdr_psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/hdr")
    parser.add_argument("--views", type=int, default=12)
    args = parser.parse_args()
    print("| curves | sRGB-linearised (dB) | true-curve-linearised (dB) | clipped pixels |")
    print("|---|---|---|---|")
    for curves in ("train", "test"):
        views = SyntheticStackDataset(
            args.data, size=256, split="val", length=args.views, seed=0, curves=curves
        )
        srgb, true, clipped = [], [], []
        for index in range(len(views)):
            sample = views[index]
            photo, reference = sample["input"][None], sample["radiance"][None]
            levels = torch.round(photo * 255).long()
            linear = torch.exp(sample["inverse_crf"][0][levels])  # the camera's own inverse
            srgb.append(hdr_psnr(linearised(photo), reference, photo).item())
            true.append(hdr_psnr(linear, reference, photo).item())
            clipped.append((photo >= 254 / 255).any(dim=1).float().mean().item())
        print(f"| {curves} | {np.mean(srgb):.2f} | {np.mean(true):.2f} | {np.mean(clipped):.1%} |")


if __name__ == "__main__":
    main()
