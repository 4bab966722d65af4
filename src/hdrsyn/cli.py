"""Command-line front end: parse, call one library function, print. No logic lives here."""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings

from hdrsyn import __version__
from hdrsyn.errors import HdrsynError

MERGE_EXAMPLES = """examples:
  hdrsyn merge examples/interior/*.jpg -o interior.exr --preview interior.png
  hdrsyn merge a.jpg b.jpg c.jpg --ev -2 0 2 -o out.hdr --plot-crf crf.png
EVs are stops relative to each other (exposure time 2^EV); without --ev they come from EXIF."""

RECONSTRUCT_EXAMPLES = """examples:
  hdrsyn reconstruct examples/interior/ev+0.jpg -o room.exr --preview room.png
  hdrsyn reconstruct photos/ -o hdr/ --stack-dir stacks/
The radiance is relative: a mid-grey (level 128) pixel of the photo has radiance 1."""

TONEMAP_EXAMPLES = """examples:
  hdrsyn tonemap interior.exr -o interior.png
  hdrsyn tonemap interior.exr -o interior.jpg --key 0.36"""


PREVIEW_EXAMPLES = """examples:
  hdrsyn preview-data ../shared/data/hdr -o samples.png
  hdrsyn preview-data ../shared/data/hdr -o train.png --split train --count 6 --seed 3"""


EVALUATE_EXAMPLES = """examples:
  hdrsyn evaluate --data ../shared/data/hdr/sunrise.exr ../shared/data/hdr-extra/bridge.exr \
      ../shared/data/hdr-extra/lobby.exr --views 48 -o report/
  hdrsyn evaluate --data hdr-test/ --model ours=small --model no-curve=runs/no-curve -o report/
  hdrsyn evaluate --data vds-test/ --size 256 --baselines linearised oracle -o vds-report/
--data is HDR images or folders of them (scenes never trained on: views looking anywhere,
through each test-family response curve in turn) or one folder of bracketed scenes, one
sub-folder each (docs/data.md). Protocol and metrics: docs/results.md."""


TRAIN_EXAMPLES = """examples:
  hdrsyn train --config configs/small.toml --run-dir runs/small
  hdrsyn train --run-dir runs/small --resume
  torchrun --nproc_per_node 2 -m hdrsyn train --config configs/paper.toml --run-dir runs/paper"""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind, low: float, inclusive: bool, what: str):
    """An argparse type: ``kind`` (int or float), finite, above ``low`` (or equal, if
    ``inclusive``); refusals name the rule, e.g. "-5: must be a positive integer"."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: must be {what}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text}: must be {what}")
        return value

    return parse


POSITIVE_INT = _number(int, 0, False, "a positive integer")
POSITIVE = _number(float, 0.0, False, "a positive number")
NON_NEGATIVE = _number(float, 0.0, True, "a number ≥ 0")


def _add_output_format(command: argparse.ArgumentParser) -> None:
    """``--max-boost`` (the HDR headroom of .jpg/.avif outputs) and ``--float32`` (.exr
    precision), for reconstruct and merge."""
    from hdrsyn.io import MAX_BOOST

    command.add_argument("--max-boost", type=POSITIVE, default=MAX_BOOST, metavar="STOPS",
                         help=".jpg/.avif output: headroom above SDR white in stops "
                         f"(default {MAX_BOOST:g})")  # fmt: skip
    command.add_argument("--float32", action="store_true",
                         help=".exr output: 32-bit floats (default: half floats, a seventh "
                         "of the size at 12 MP, rounding under 0.05 %%; float32 anyway "
                         "where a value exceeds 65504)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hdrsyn",
        description="Single-image and multi-exposure HDR synthesis (Kim et al., AAAI 2021).",
    )
    parser.add_argument("--version", action="version", version=f"hdrsyn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    reconstruct = commands.add_parser(
        "reconstruct",
        help="turn one photo (or a folder of photos) into an HDR image",
        description="Generate an exposure stack with the trained stop-up/stop-down networks "
        "and merge it with the differentiable HDR layer (Kim et al. 2021).",
        epilog=RECONSTRUCT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reconstruct.add_argument("inputs", nargs="+", metavar="IN", help="photo(s) or a folder")
    reconstruct.add_argument("-o", "--output", required=True, metavar="OUT",
                             help=".exr/.hdr/.pfm, .jpg (Ultra HDR JPEG) or .avif (HDR AVIF, "
                             "BT.2100 PQ) for one photo; for several, a folder (made "
                             "if new) that gets NAME.exr per photo; a photo that cannot be "
                             "read is skipped and the run ends with exit 2 naming it")  # fmt: skip
    reconstruct.add_argument("--model", default="small", help="shipped name or .safetensors")
    reconstruct.add_argument("--evs", nargs="+", type=float, metavar="EV",
                             help="stack exposures (default -3 … 3); must hold 0")  # fmt: skip
    reconstruct.add_argument("--stack-dir", metavar="DIR", help="also write the stack as PNGs")
    reconstruct.add_argument("--preview", metavar="PNG",
                             help="also write a tone-mapped view (for several photos: a "
                             "folder, made if new, of NAME.png)")  # fmt: skip
    reconstruct.add_argument("--max-pixels", type=POSITIVE_INT, metavar="N",
                             help="the networks run on a copy of at most N pixels "
                             "(default 262144 = 512²; smaller is faster and slightly "
                             "less accurate: docs/performance.md)")  # fmt: skip
    reconstruct.add_argument("--curve", choices=("hybrid", "srgb", "edges", "estimated"),
                             default="hybrid",
                             help="the photo's response curve: sRGB up to level 0.7 and "
                             "CurveNet's guess above where the photo has enough bright "
                             "pixels (hybrid, default), taken as "
                             "sRGB (srgb), measured from its colour edges (edges) or "
                             "CurveNet's guess (estimated); on held-out camera-realistic "
                             "photos only hybrid and srgb never lose to the photo on any kind "
                             "of camera (docs/results.md)")  # fmt: skip
    reconstruct.add_argument("--highlights", action=argparse.BooleanOptionalAction,
                             default=True,
                             help="raise each clipped region by the brightness a small model "
                             "predicts it lost (default; --no-highlights leaves clipped "
                             "regions a fraction of a stop above white): a small gain on "
                             "average for every kind of camera on photos of scenes it never "
                             "saw, though a few lose (docs/results.md)")  # fmt: skip
    reconstruct.add_argument("--key", type=POSITIVE, default=0.18,
                             help="key of the --preview tone mapping (default 0.18; lower "
                             "for night scenes)")  # fmt: skip
    _add_output_format(reconstruct)
    reconstruct.add_argument("--quiet", action="store_true",
                             help="no progress display (shown on a terminal only)")
    reconstruct.add_argument("--force", action="store_true", help="overwrite existing outputs")

    merge = commands.add_parser(
        "merge",
        help="merge a bracketed stack of photos into an HDR image",
        description="Recover the camera response (Debevec & Malik 1997) and merge the stack.",
        epilog=MERGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    merge.add_argument("images", nargs="+", metavar="IMG", help="LDR photos (PNG/JPEG/TIFF)")
    merge.add_argument("--ev", nargs="+", type=float, metavar="EV", help="exposure of each image")
    merge.add_argument("-o", "--output", required=True, metavar="OUT",
                       help=".exr, .hdr, .pfm, .jpg (Ultra HDR JPEG) or .avif (HDR AVIF, "
                       "BT.2100 PQ)")  # fmt: skip
    merge.add_argument("--align", action="store_true",
                       help="translate handheld brackets onto the middle image first "
                       "(threshold bitmaps, phase correlation)")  # fmt: skip
    _add_output_format(merge)
    merge.add_argument("--preview", metavar="PNG", help="also write a tone-mapped PNG/JPEG")
    merge.add_argument("--plot-crf", metavar="PNG", help="also plot the recovered response")
    merge.add_argument("--smoothness", type=NON_NEGATIVE, default=None,
                       help="λ of Eq. 1 as OpenCV means it, ≥ 0 (default 100)")  # fmt: skip
    merge.add_argument("--key", type=POSITIVE, default=0.18, help="preview key (default 0.18)")
    merge.add_argument("--quiet", action="store_true",
                       help="no progress display (shown on a terminal only)")
    merge.add_argument("--force", action="store_true", help="overwrite existing outputs")

    tonemap = commands.add_parser(
        "tonemap",
        help="tone-map an HDR image for display (Reinhard et al. 2002)",
        description="Reinhard et al. 2002 global operator, then sRGB encoding.",
        epilog=TONEMAP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tonemap.add_argument("input", metavar="IN", help=".exr, .hdr or .pfm")
    tonemap.add_argument("-o", "--output", required=True, metavar="OUT", help=".png or .jpg")
    tonemap.add_argument("--key", type=POSITIVE, default=0.18, help="key a (default 0.18)")
    tonemap.add_argument("--white", type=POSITIVE, help="white point (default: brightest pixel)")
    tonemap.add_argument("--force", action="store_true", help="overwrite an existing output")

    preview = commands.add_parser(
        "preview-data",
        help="contact sheet of training samples (input, stack, reference)",
        description="Show what the model trains on: synthetic stacks from a folder of HDR "
        "images, or real bracketed scenes (one sub-folder each).",
        epilog=PREVIEW_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    preview.add_argument("data", metavar="DIR", help="HDR folder or bracketed-scenes folder")
    preview.add_argument("-o", "--output", required=True, metavar="PNG")
    preview.add_argument("--count", type=POSITIVE_INT, default=4, help="samples (default 4)")
    preview.add_argument("--split", choices=("train", "val"), default="val")
    preview.add_argument("--seed", type=int, default=0)
    preview.add_argument("--size", type=POSITIVE_INT, default=192,
                         help="tile side in pixels (default 192)")  # fmt: skip
    preview.add_argument("--force", action="store_true", help="overwrite an existing output")

    train = commands.add_parser(
        "train",
        help="train the stop-up/stop-down networks (staged, resumable, DDP under torchrun)",
        description="Staged training from a TOML config; checkpoints, validation sheets and "
        "log.jsonl go to the run folder. Under torchrun it trains with DDP.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", metavar="TOML", help="training config (new runs)")
    train.add_argument("--run-dir", required=True, metavar="DIR", help="run folder")
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    train.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available")
    train.add_argument("--time-limit", type=POSITIVE, metavar="SEC", help="checkpoint and stop")
    train.add_argument("--init", metavar="WEIGHTS", help="fine-tune from these weights")

    evaluate = commands.add_parser(
        "evaluate",
        help="score models against classical baselines and the oracle; write a report",
        description="Run models and baselines on a test set and write report.md, results.csv "
        "and one picture per image (input, methods, reference, error maps).",
        epilog=EVALUATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("--data", required=True, nargs="+", metavar="PATH",
                          help="HDR files/folders, or one folder of bracketed scenes")
    evaluate.add_argument("-o", "--output", required=True, metavar="DIR", help="report folder")
    evaluate.add_argument("--model", action="append", metavar="[NAME=]MODEL",
                          help="shipped name, .safetensors or run folder, optionally ending "
                          "in @hybrid (sRGB, CurveNet's guess near white: the default), "
                          "@srgb (the photo's curve taken as sRGB), @edges (measured from "
                          "its colour edges) or @estimated (CurveNet's guess), then "
                          "optionally @no-highlights (with --no-highlights); repeat to "
                          "compare (default: small)")  # fmt: skip
    evaluate.add_argument("--baselines", nargs="*", metavar="NAME",
                          default=["linearised", "akyuz", "huo", "expandnet", "true-curve",
                                   "oracle"],
                          help="from linearised akyuz huo expandnet true-curve oracle "
                          "(default: all); true-curve: the photo through its camera's true "
                          "inverse curve")  # fmt: skip
    evaluate.add_argument("--views", type=POSITIVE_INT, default=24,
                          help="views from HDR images (default 24)")  # fmt: skip
    evaluate.add_argument("--size", type=POSITIVE_INT, default=256,
                          help="image side (default 256)")  # fmt: skip
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--format", choices=("png", "jpeg"), default="png",
                          help="how the views from HDR images are stored: png (lossless, "
                          "default) or jpeg (quality 75-95); same views and cameras")  # fmt: skip
    evaluate.add_argument("--force", action="store_true", help="overwrite an existing report")

    export = commands.add_parser(
        "export",
        help="write a run's latest weights as one safetensors file for --model",
        description="Copy the generator weights of a run (or one checkpoint folder) into a "
        "standalone float16 safetensors file that --model and hdrsyn.load_model accept.",
    )
    export.add_argument("run", metavar="DIR", help="run folder or checkpoint folder")
    export.add_argument("-o", "--output", required=True, metavar="FILE.safetensors")
    export.add_argument("--float32", action="store_true", help="keep float32 weights")
    export.add_argument("--force", action="store_true", help="overwrite an existing output")
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"hdrsyn: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    warnings.formatwarning = _one_line_warning
    from hdrsyn import commands  # after parsing: --help and --version stay fast
    from hdrsyn.allocator import keep_freed_memory

    keep_freed_memory()  # this process's own malloc: reuse freed maps (allocator.py)

    try:
        if args.command == "reconstruct":
            written = commands.reconstruct_files(
                args.inputs,
                args.output,
                model=args.model,
                evs=args.evs,
                stack_dir=args.stack_dir,
                preview=args.preview,
                max_pixels=args.max_pixels,
                curve=args.curve,
                highlights=args.highlights,
                overwrite=args.force,
                key=args.key,
                max_boost=args.max_boost,
                half=not args.float32,
                quiet=args.quiet,
            )
            print("\n".join(commands.describe_written(written, time.monotonic() - started)))
        elif args.command == "merge":
            merged = commands.merge_files(
                args.images,
                args.output,
                evs=args.ev,
                preview=args.preview,
                plot_crf=args.plot_crf,
                overwrite=args.force,
                smoothness=args.smoothness,
                key=args.key,
                max_boost=args.max_boost,
                half=not args.float32,
                align=args.align,
                quiet=args.quiet,
            )
            if merged.shifts:
                print(commands.describe_shifts(merged.shifts))
            seconds = time.monotonic() - started
            print("\n".join(commands.describe_written(merged.written, seconds)))
        elif args.command == "tonemap":
            commands.tonemap_file(
                args.input, args.output, key=args.key, white=args.white, overwrite=args.force
            )
        elif args.command == "train":
            from hdrsyn.train import load_config, train

            if args.config is None and not args.resume:
                raise HdrsynError("train: give --config for a new run, or --resume")
            config = None if args.resume else load_config(args.config)
            train(args.run_dir, config, resume=args.resume, device=args.device,
                  time_limit=args.time_limit, init=args.init)  # fmt: skip
        elif args.command == "export":
            from hdrsyn.train import export_weights

            export_weights(args.run, args.output, half=not args.float32, overwrite=args.force)
        elif args.command == "evaluate":
            from hdrsyn.evaluate import evaluate

            evaluate(args.data, args.output, models=args.model or ["small"],
                     baselines=args.baselines, size=args.size, views=args.views,
                     seed=args.seed, photo_format=args.format, overwrite=args.force)  # fmt: skip
        elif args.command == "preview-data":
            commands.preview_data(
                args.data,
                args.output,
                count=args.count,
                split=args.split,
                seed=args.seed,
                size=args.size,
                overwrite=args.force,
            )
    except HdrsynError as error:
        print(f"hdrsyn: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hdrsyn: interrupted", file=sys.stderr)
        return 130
    if args.command not in ("train", "reconstruct", "merge"):
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
