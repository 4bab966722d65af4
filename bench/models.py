"""Benchmark: parameter counts and stack-generation time per megapixel of the presets.

    python bench/models.py                # 512 × 512, small and paper
    python bench/models.py --side 256 --presets small

Times the whole HDRSynthesizer (six StopNet steps + the HDR layer), eval mode, no gradient,
best of --repeat runs after one warm-up, in this process; prints each preset's ratio to the
first one.
"""

import argparse
import time

import torch

from hdrsyn.models import PRESETS, HDRSynthesizer, parameter_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--presets", nargs="+", default=["small", "paper"], choices=PRESETS)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    image = torch.rand(1, 3, args.side, args.side)
    megapixels = args.side**2 / 1e6
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.side}²")
    print("| preset | parameters | StopNet params | s per stack | s per MP | ratio |")
    print("|---|---|---|---|---|---|")
    first = None
    for name in args.presets:
        model = HDRSynthesizer(PRESETS[name]).eval()
        with torch.no_grad():
            model(image)
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                model(image)
                best = min(best, time.perf_counter() - start)
        first = first or best
        stopnet = parameter_count(model.generator.stop_up)
        print(
            f"| {name} | {parameter_count(model) / 1e6:.2f} M | {stopnet / 1e6:.2f} M | "
            f"{best:.2f} | {best / megapixels:.1f} | {best / first:.2f} |"
        )


if __name__ == "__main__":
    main()
