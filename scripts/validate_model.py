"""Print the model card's validation table: shipped weights (and any weights files given) on the
12 held-out views at 256², next to the linearised-photo baseline and the oracle (the true stack
merged by our layer).

    python scripts/validate_model.py [more.safetensors ...] [--data ../shared/data/hdr]
"""

import argparse

import torch

from hdrsyn import load_model, merge_exposures
from hdrsyn.baselines import linearised
from hdrsyn.data import SyntheticStackDataset
from hdrsyn.metrics import hdr_psnr
from hdrsyn.train import validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", default=["small"])
    parser.add_argument("--data", default="../shared/data/hdr")
    args = parser.parse_args()
    views = SyntheticStackDataset(args.data, size=256, split="val", length=12, seed=0)
    print("| model | stack PSNR (dB) | HDR PSNR (dB) |")
    print("|---|---|---|")
    for weights in args.weights:
        model = load_model(weights)
        metrics = validate(model.generator, views, "cpu")
        print(f"| {weights} | {metrics['stack_psnr']:.2f} | {metrics['hdr_psnr']:.2f} |")
    baseline, oracle = [], []
    for index in range(len(views)):
        sample = views[index]
        photo, reference = sample["input"][None], sample["radiance"][None]
        baseline.append(hdr_psnr(linearised(photo), reference, photo)[0])
        merged, _ = merge_exposures(sample["stack"], sample["evs"])
        oracle.append(hdr_psnr(merged[None], reference, photo)[0])
    print(f"| linearised photo (baseline) | — | {torch.stack(baseline).mean():.2f} |")
    print(f"| oracle: true stack, our layer | ∞ | {torch.stack(oracle).mean():.2f} |")


if __name__ == "__main__":
    main()
