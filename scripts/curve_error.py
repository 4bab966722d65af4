"""Curve-estimation error, without running the stop nets.

The ln f⁻¹ RMSE (levels 5…250, offset removed) on the held-out scenes (test family of curves,
each kind in turn: the docs/results.md test set) and on other views of the training scenes
(each through every test kind), per curve group: assuming sRGB, the colour-edge calibration
(sRGB where it finds too few edges) and the CurveNet of each model given. ``--jpeg Q``
first passes every photo through JPEG at quality Q (OpenCV, 4:2:0).

    python scripts/curve_error.py small --views 48 [--jpeg 90]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

from hdrsyn.calibration import calibrate
from hdrsyn.curves import CURVE_FAMILIES, curve_rmse, srgb_log_inverse
from hdrsyn.data import HELD_OUT, SyntheticStackDataset, jpeg_compressed
from hdrsyn.reconstruct import load_model

SHARED = "../shared/data/"


def samples(split: str, views: int, size: int):
    held_out = [SHARED + name for name in HELD_OUT]
    if split == "test":
        dataset = SyntheticStackDataset(held_out, split="test", length=views, size=size,
                                        curves="test")  # fmt: skip
    else:  # other views of the training scenes, each through every test-family kind
        dataset = SyntheticStackDataset([SHARED + "hdr", SHARED + "hdr-extra"], exclude=HELD_OUT,
                                        split="test", size=size, curves="test", seed=1)  # fmt: skip
        dataset.length = len(dataset.files) * len(CURVE_FAMILIES["test"]["kinds"])
    dataset = dataset.without_stack()
    return [dataset[i] for i in range(dataset.length)]


def jpeg(photo: torch.Tensor, quality: int) -> torch.Tensor:
    compressed = jpeg_compressed(photo.permute(1, 2, 0).numpy(), quality)
    return torch.from_numpy(compressed).permute(2, 0, 1)


@torch.no_grad()
def errors(net, data) -> dict[str, list[float]]:
    by_group = defaultdict(list)
    for sample in data:
        true = sample["inverse_crf"][0]
        if net is None:
            estimate = srgb_log_inverse()
        elif net == "edges":
            measured = calibrate(np.round(sample["input"].permute(1, 2, 0).numpy() * 255)
                                 .astype(np.uint8))  # fmt: skip
            estimate = srgb_log_inverse() if measured is None else measured
        else:
            estimate = net(sample["input"][None].float())[0]
        error = curve_rmse(estimate, true).item()
        by_group[sample["curve_group"]].append(error)
        by_group["all"].append(error)
    return by_group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="weights files or run folders")
    parser.add_argument("--views", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--jpeg", type=int, metavar="Q", help="JPEG quality of the photos")
    args = parser.parse_args()
    for split in ("test", "other-views"):
        data = samples(split, args.views, args.size)
        if args.jpeg:
            for sample in data:
                sample["input"] = jpeg(sample["input"], args.jpeg)
        print(f"\n{split}: {len(data)} views at {args.size}²")
        print(f"{'model':40s} {'srgb':>7s} {'roll-off':>9s} {'other':>7s} {'all':>7s}")
        nets = {"assume sRGB": None, "edges": "edges"}
        nets |= {m: load_model(m).generator.curve_net for m in args.models}
        for name, net in nets.items():
            found = errors(net, data)
            groups = ("srgb", "roll-off", "other", "all")
            cells = [sum(found[g]) / len(found[g]) for g in groups]
            print(f"{name:40s} " + " ".join(f"{c:7.3f}" for c in cells))


if __name__ == "__main__":
    main()
