"""The ``carlib`` command line: one sub-command group per concern."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carlib",
        description="CLIP as RNN (CaR): training-free open-vocabulary segmentation.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    from carlib.demo import register as register_demo

    register_demo(commands)
    weights = commands.add_parser(
        "weights", help="download pretrained CLIP weights where load_clip finds them",
        description="Downloads a tag's open_clip_model.safetensors into $CARLIB_WEIGHTS_DIR/<model>-<tag>/. "
        "With --random-seed, writes seeded RANDOM weights there instead, to run the real-weights path offline "
        "(every later load says so; real weights are never overwritten).")
    weights.add_argument("--model", default="ViT-B-16", help="open_clip model name (default ViT-B-16)")
    weights.add_argument("--pretrained", default="openai", help="open_clip pretrained tag (default openai)")
    weights.add_argument("--random-seed", type=int, default=None, metavar="SEED",
                         help="write seeded random weights instead of downloading (testing only)")
    weights.set_defaults(handler=_weights_command)
    from carlib.ablation import register as register_ablate
    from carlib.datasets.cli import register as register_data
    from carlib.evaluation import register as register_eval
    from carlib.gallery import register as register_gallery
    from carlib.segment_cli import register as register_segment
    from carlib.world.cli import register as register_world

    register_segment(commands)
    register_eval(commands)
    register_data(commands)
    register_ablate(commands)
    register_world(commands)
    register_gallery(commands)
    return parser


def _weights_command(args: argparse.Namespace) -> int:
    from carlib.models import fetch_weights, write_seeded_weights

    if args.random_seed is not None:
        path = write_seeded_weights(args.model, args.pretrained, seed=args.random_seed)
        print(f"{args.model} / {args.pretrained}: seeded random weights (seed {args.random_seed}) at {path}")
        return 0
    print(f"{args.model} / {args.pretrained}: {fetch_weights(args.model, args.pretrained)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        # Users get one readable line, not a traceback, for problems they can fix.
        print(f"carlib {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
