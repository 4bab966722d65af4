"""Benchmark: training iterations per second of each stage kind, for the presets.

    python bench/train.py                          # small, 128², batch 4, CPU
    python bench/train.py --presets small paper --size 256 --batch 16 --device cuda

Times optimizer steps of the real objective (hdrsyn.train.StageObjective: losses, the HDR layer,
CoBi on RGB patches) on fixed synthetic batches from ../shared/data/hdr, after --warmup steps;
prints it/s and each row's time ratio to the first row (same process).
"""

import argparse
import time

import torch

from hdrsyn.data import SyntheticStackDataset
from hdrsyn.losses import CoBiLoss
from hdrsyn.models import PRESETS, StackGenerator
from hdrsyn.train import LossConfig, StageConfig, StageObjective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small"], choices=PRESETS)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="../shared/data/hdr")
    args = parser.parse_args()
    torch.manual_seed(0)
    data = SyntheticStackDataset(args.data, size=args.size, length=args.batch, seed=0)
    batch = torch.utils.data.default_collate([data[i] for i in range(args.batch)])
    batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    cobi = CoBiLoss().to(args.device)
    print(f"torch {torch.__version__}, {args.device}, threads {torch.get_num_threads()}, "
          f"{args.size}², batch {args.batch}")  # fmt: skip
    print("| preset | stage | it/s | s/it | ratio |")
    print("|---|---|---|---|---|")
    first = None
    for name in args.presets:
        generator = StackGenerator(PRESETS[name]).to(args.device)
        optimizer = torch.optim.Adam(generator.parameters(), lr=1e-5)
        for kind in ("global", "local", "joint"):
            objective = StageObjective(generator, StageConfig(kind, kind, 1), LossConfig(), cobi)
            for index in range(args.warmup + args.steps):
                if index == args.warmup:
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                loss, _ = objective(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - start) / args.steps
            first = first or seconds
            ratio = seconds / first
            print(f"| {name} | {kind} | {1 / seconds:.2f} | {seconds:.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
