"""Curve-estimation error, without running the stop nets.

The ln f⁻¹ RMSE (levels 5…250, offset removed) on the held-out scenes (test family of curves,
each kind in turn: the docs/results.md test set) and on other views of the training scenes
(each through every test kind), per curve group: assuming sRGB, the colour-edge calibration
(sRGB where it finds too few edges) and the CurveNet of each model given. The photos are made
by the camera-realistic capture (docs/data.md); ``--format jpeg`` stores them as JPEGs
(quality 75–95, OpenCV, 4:2:0).

    python scripts/curve_error.py small --views 48 [--format jpeg]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

from hdrsyn.calibration import calibrate
from hdrsyn.curves import CURVE_FAMILIES, curve_rmse, srgb_log_inverse
from hdrsyn.data import HELD_OUT, TEST_FILES, SyntheticStackDataset
from hdrsyn.reconstruction import load_model

SHARED = "../shared/data/"


TRAINING_SOURCES = [SHARED + "hdr", SHARED + "hdr-extra-1k"]  # 1024-pixel panoramas


def samples(split: str, views: int, size: int, photo_format: str):
    if split == "test":
        dataset = SyntheticStackDataset([SHARED + name for name in TEST_FILES], split="test",
                                        length=views, size=size, curves="test",
                                        photo_format=photo_format)  # fmt: skip
    else:  # other views of the training scenes, each through every test-family kind
        dataset = SyntheticStackDataset(TRAINING_SOURCES, exclude=HELD_OUT, split="test",
                                        size=size, curves="test", seed=1,
                                        photo_format=photo_format)  # fmt: skip
        dataset.length = len(dataset.files) * len(CURVE_FAMILIES["test"]["kinds"])
    dataset = dataset.without_stack()
    return [dataset[i] for i in range(dataset.length)]


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
    parser.add_argument("--format", choices=("png", "jpeg"), default="png")
    args = parser.parse_args()
    for split in ("test", "other-views"):
        data = samples(split, args.views, args.size, args.format)
        print(f"\n{split}: {len(data)} {args.format} views at {args.size}²")
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
