"""Benchmark: training iterations per second of each stage kind, for the presets.

    python bench/train.py                          # small, 128², batch 4, CPU
    python bench/train.py --baseline d418c39       # the same, against that revision, in turns
    python bench/train.py --presets small paper --size 256 --batch 16 --device cuda
    python bench/train.py --size 256 --batch 16 --device cuda --graph --baseline d418c39
    python bench/train.py --amp off --baseline d418c39   # both in float32

Times optimizer steps of the real objective (hdrsyn.train.StageObjective: losses, the HDR layer,
CoBi on RGB patches) on fixed synthetic batches from ../shared/data/hdr, after --warmup steps;
prints it/s and each row's time ratio to the first row (same process). With ``--baseline REV``
each round runs REV's hdrsyn and the working tree's in turn, each in a fresh process, and the
table keeps each row's fastest round and prints the speed-up (REV's s/it over ours).

``--amp training`` (the default) runs each revision in the precision ``hdrsyn train`` gives a
config with ``amp = true`` on this device: bf16 autocast on CUDA, and (since it exists) on a CPU
with native bf16 (hdrsyn.train.graph.bf16_is_native); ``on`` / ``off`` force it for both.
"""

import argparse
import json
import sys
import time
from dataclasses import replace

import torch
from baseline import checkout, run_child


def measure(args) -> list[dict]:
    from hdrsyn.data import SyntheticStackDataset
    from hdrsyn.losses import CoBiLoss
    from hdrsyn.models import PRESETS, StackGenerator
    from hdrsyn.train import LossConfig, StageConfig, StageObjective

    try:
        from hdrsyn.train.graph import TrainingStep, to_device
    except ImportError:  # a revision before it (--baseline): the loop's step of then
        TrainingStep = to_device = None
    amp = {"on": True, "off": False}.get(args.amp)
    if amp is None:  # what this revision's training runs
        try:
            from hdrsyn.train.graph import bf16_is_native
        except ImportError:  # before it, training used autocast on CUDA only
            bf16_is_native = lambda device: device.startswith("cuda")  # noqa: E731
        amp = bf16_is_native(args.device)
    torch.manual_seed(0)
    data = SyntheticStackDataset(args.data, size=args.size, length=args.batch, seed=0)
    batch = torch.utils.data.default_collate([data[i] for i in range(args.batch)])
    if to_device is None:
        batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    else:
        batch = to_device(batch, args.device)
    cobi = CoBiLoss().to(args.device)
    graph = args.graph and TrainingStep is not None and args.device.startswith("cuda")
    warmup = max(args.warmup, 4) if graph else args.warmup  # TrainingStep captures at step 4
    rows = []
    for name in args.presets:
        config = PRESETS["small"]
        if name == "shipped":  # the shipped model's (docs/model-card.md)
            config = replace(config, prior="estimated", merge="estimated", photo_weight=1024.0)
        elif name != "small":
            config = PRESETS[name]
        generator = StackGenerator(config).to(args.device)
        optimizer = torch.optim.Adam(generator.parameters(), lr=1e-5, capturable=graph)
        for kind in args.stages:
            objective = StageObjective(generator, StageConfig(kind, kind, 1), LossConfig(), cobi)
            if TrainingStep is not None:
                step = TrainingStep(objective, optimizer, amp=amp, graph=graph)
            else:
                step = _old_step(objective, optimizer, amp)
            for index in range(warmup + args.steps):
                if index == warmup:
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                step(batch)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            rows.append({"preset": name, "stage": kind, "amp": amp,
                         "seconds": (time.perf_counter() - start) / args.steps})  # fmt: skip
    return rows


def _old_step(objective, optimizer, amp: bool):
    def step(batch):
        device = batch["input"].device.type
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss, _ = objective(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small"],
                        choices=("small", "paper", "shipped"),
                        help="presets, or the shipped model's config (small, estimated prior "
                        "and merge, photo weight 1024)")  # fmt: skip
    parser.add_argument("--stages", nargs="+", default=["global", "local", "joint"],
                        choices=("global", "local", "joint"))  # fmt: skip
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", choices=("training", "on", "off"), default="training",
                        help="bf16 autocast: as hdrsyn train runs it here, or forced")  # fmt: skip
    parser.add_argument("--graph", action="store_true",
                        help="the step as a CUDA graph (hdrsyn.train.TrainingStep)")  # fmt: skip
    parser.add_argument("--data", default="../shared/data/hdr")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="git revision to compare against (or a folder with its hdrsyn)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="turns with --baseline (default 2)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"torch {torch.__version__}, {args.device} ({device}), threads "
          f"{torch.get_num_threads()}, {args.size}², batch {args.batch}, amp {args.amp}, "
          f"graph {args.graph}")  # fmt: skip
    if not args.baseline:
        rows = measure(args)
        print("| preset | stage | precision | it/s | s/it | ratio |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            seconds = row["seconds"]
            print(f"| {row['preset']} | {row['stage']} | {_precision(row)} | {1 / seconds:.2f} | "
                  f"{seconds:.2f} | {seconds / rows[0]['seconds']:.2f} |")  # fmt: skip
        return
    child = [__file__, "--child", *sys.argv[1:]]
    best: dict[str, list[dict]] = {"baseline": [], "current": []}
    with checkout(args.baseline) as src:
        for _ in range(args.rounds):
            for version, source in (("baseline", src), ("current", None)):
                rows = run_child(child, source)
                previous = best[version] or rows
                best[version] = [min(a, b, key=lambda row: row["seconds"])
                                 for a, b in zip(previous, rows, strict=True)]  # fmt: skip
    print(f"fastest of {args.rounds} rounds, each version in a fresh process")
    print(f"| preset | stage | {args.baseline} it/s | now it/s | speed-up |")
    print("|---|---|---|---|---|")
    for old, new in zip(best["baseline"], best["current"], strict=True):
        print(f"| {new['preset']} | {new['stage']} | {1 / old['seconds']:.2f} ({_precision(old)}) "
              f"| {1 / new['seconds']:.2f} ({_precision(new)}) "
              f"| {old['seconds'] / new['seconds']:.2f} |")  # fmt: skip


def _precision(row: dict) -> str:
    return "bf16" if row["amp"] else "float32"


if __name__ == "__main__":
    main()
