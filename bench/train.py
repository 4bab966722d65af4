"""Benchmark: training iterations per second of each stage kind, for the presets.

    python bench/train.py                          # small, 128², batch 4, CPU
    python bench/train.py --baseline d418c39       # the same, against that revision, in turns
    python bench/train.py --presets small paper --size 256 --batch 16 --device cuda

Times optimizer steps of the real objective (hdrsyn.train.StageObjective: losses, the HDR layer,
CoBi on RGB patches) on fixed synthetic batches from ../shared/data/hdr, after --warmup steps;
prints it/s and each row's time ratio to the first row (same process). With ``--baseline REV``
each round runs REV's hdrsyn and the working tree's in turn, each in a fresh process, and the
table keeps each row's fastest round and prints the speed-up (REV's s/it over ours).
"""

import argparse
import json
import sys
import time

import torch
from baseline import checkout, run_child


def measure(args) -> list[dict]:
    from hdrsyn.data import SyntheticStackDataset
    from hdrsyn.losses import CoBiLoss
    from hdrsyn.models import PRESETS, StackGenerator
    from hdrsyn.train import LossConfig, StageConfig, StageObjective

    torch.manual_seed(0)
    data = SyntheticStackDataset(args.data, size=args.size, length=args.batch, seed=0)
    batch = torch.utils.data.default_collate([data[i] for i in range(args.batch)])
    batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    cobi = CoBiLoss().to(args.device)
    rows = []
    for name in args.presets:
        generator = StackGenerator(PRESETS[name]).to(args.device)
        optimizer = torch.optim.Adam(generator.parameters(), lr=1e-5)
        for kind in args.stages:
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
            rows.append({"preset": name, "stage": kind,
                         "seconds": (time.perf_counter() - start) / args.steps})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small"], choices=("small", "paper"))
    parser.add_argument("--stages", nargs="+", default=["global", "local", "joint"],
                        choices=("global", "local", "joint"))  # fmt: skip
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="../shared/data/hdr")
    parser.add_argument("--baseline", metavar="REV", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=2, help="turns with --baseline (default 2)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    print(f"torch {torch.__version__}, {args.device}, threads {torch.get_num_threads()}, "
          f"{args.size}², batch {args.batch}")  # fmt: skip
    if not args.baseline:
        rows = measure(args)
        print("| preset | stage | it/s | s/it | ratio |")
        print("|---|---|---|---|---|")
        for row in rows:
            seconds = row["seconds"]
            print(f"| {row['preset']} | {row['stage']} | {1 / seconds:.2f} | {seconds:.2f} | "
                  f"{seconds / rows[0]['seconds']:.2f} |")  # fmt: skip
        return
    child = [__file__, "--child", *sys.argv[1:]]
    best: dict[str, list[float]] = {"baseline": [], "current": []}
    with checkout(args.baseline) as src:
        for _ in range(args.rounds):
            for version, source in (("baseline", src), ("current", None)):
                seconds = [row["seconds"] for row in run_child(child, source)]
                previous = best[version] or seconds
                best[version] = [min(a, b) for a, b in zip(previous, seconds, strict=True)]
    print(f"fastest of {args.rounds} rounds, each version in a fresh process")
    print(f"| preset | stage | {args.baseline} it/s | now it/s | speed-up |")
    print("|---|---|---|---|---|")
    names = [(p, s) for p in args.presets for s in args.stages]
    for (preset, stage), old, new in zip(names, best["baseline"], best["current"], strict=True):
        print(f"| {preset} | {stage} | {1 / old:.2f} | {1 / new:.2f} | {old / new:.2f} |")


if __name__ == "__main__":
    main()
