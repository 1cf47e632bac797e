"""`carlib weights`: put CLIP weights where :func:`carlib.load_clip` finds them (or seeded ones, offline)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``carlib weights``."""
    weights = commands.add_parser(
        "weights",
        help="download pretrained CLIP weights where load_clip finds them",
        description="Downloads a tag's open_clip_model.safetensors into $CARLIB_WEIGHTS_DIR/<model>-<tag>/. "
        "With --random-seed, writes seeded RANDOM weights there instead, to run the real-weights path offline "
        "(every later load says so; real weights are never overwritten).",
    )
    weights.add_argument("--model", default="ViT-B-16", help="open_clip model name (default ViT-B-16)")
    weights.add_argument(
        "--pretrained",
        default=None,
        help="open_clip pretrained tag (default: openai where the model has it, else its first tag; "
        "`carlib models` lists the families)",
    )
    weights.add_argument(
        "--random-seed",
        type=int,
        default=None,
        metavar="SEED",
        help="write seeded random weights instead of downloading (testing only)",
    )
    weights.set_defaults(handler=_weights_command)


def _weights_command(args: argparse.Namespace) -> int:
    from carlib.models import default_tag, fetch_weights, write_seeded_weights

    if args.pretrained is None:
        args.pretrained = default_tag(args.model)
    if args.random_seed is not None:
        path = write_seeded_weights(args.model, args.pretrained, seed=args.random_seed)
        print(f"{args.model} / {args.pretrained}: seeded random weights (seed {args.random_seed}) at {path}")
        return 0
    print(f"{args.model} / {args.pretrained}: {fetch_weights(args.model, args.pretrained)}")
    return 0
