"""``carlib world``: sample, export, train and report on ShapesWorld."""

from __future__ import annotations

import argparse
import json

from carlib.files import atomic_write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``world`` command (sample, export, train, report) to ``carlib``'s sub-parsers."""
    world = subparsers.add_parser("world", help="ShapesWorld: generated scenes and the small CLIP trained on them")
    commands = world.add_subparsers(dest="world_command", metavar="SUBCOMMAND")
    commands.required = True

    sample = commands.add_parser("sample", help="write a few scenes with colourised masks as PNGs")
    sample.add_argument("--seed", type=int, default=0, help="base seed of the scenes (default 0)")
    sample.add_argument("--out", required=True, help="output folder (must be new or empty)")
    sample.add_argument("--n", type=int, default=4, help="number of scenes (default 4)")
    sample.add_argument("--split", default="test", choices=("train", "val", "test"))
    sample.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    sample.set_defaults(handler=_sample)

    export = commands.add_parser(
        "export",
        help="write scenes as a PASCAL VOC 2012 style dataset, or moving clips (--video) in the Ref-DAVIS17 layout",
    )
    export.add_argument("--split", default="test", choices=("train", "val", "test"))
    export.add_argument(
        "--n", type=int, default=None, help="number of scenes (default 200), or clips with --video (default 20)"
    )
    export.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    export.add_argument(
        "--format",
        default=None,
        help="dataset layout: 'voc' (default) for scenes; clips are always "
        "written in the Ref-DAVIS17 layout ('refdavis')",
    )
    export.add_argument(
        "--video",
        action="store_true",
        help="moving ShapesWorld: short clips whose objects move, with referring expressions, in the "
        "Ref-DAVIS17 layout (carlib eval --preset refdavis17 reads it)",
    )
    export.add_argument("--frames", type=int, default=None, help="frames per clip with --video (default 8)")
    export.add_argument("--out", required=True, help="dataset folder (must be new or empty)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    export.set_defaults(handler=_export)

    from carlib.world.train import build_arg_parser

    train = commands.add_parser("train", help="train the ShapesWorld CLIP on CPU (resumable)")
    build_arg_parser(train)
    train.set_defaults(handler=_train)

    report = commands.add_parser("report", help="zero-shot accuracy, Grad-CAM and CLIP-ES IoU on test scenes")
    report.add_argument("--model", default=None, help="checkpoint folder (default: the shipped one)")
    report.add_argument(
        "--name",
        default="shapes",
        choices=("shapes", "shapes-siglip"),
        help="which ShapesWorld model: shapes (contrastive) or shapes-siglip (sigmoid, MAP head)",
    )
    report.add_argument(
        "--score-kind",
        default="softmax",
        choices=("softmax", "sigmoid"),
        help="Grad-CAM's target: softmax over classes and background words, or each class's sigmoid "
        "(shapes-siglip only)",
    )
    report.add_argument("--n", type=int, default=200, help="number of test scenes (default 200)")
    report.add_argument("--seed", type=int, default=0, help="base seed of the test scenes (default 0)")
    report.add_argument(
        "--clip-es-layers",
        type=int,
        default=None,
        help="final blocks whose attention CLIP-ES averages (default: the report's choice)",
    )
    report.add_argument(
        "--split",
        default="test",
        choices=("val", "test"),
        help="scene split: test for the figures, val for choosing settings",
    )
    report.add_argument("--json", default=None, help="also write the figures to this JSON file")
    report.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    report.set_defaults(handler=_report)


def _sample(args: argparse.Namespace) -> int:
    from carlib.world.export import write_samples

    panels = write_samples(args.out, seed=args.seed, n=args.n, split=args.split, overwrite=args.overwrite)
    print(f"wrote {len(panels)} scenes to {args.out} (image | class | instance | background panels, scenes.json)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from carlib.world.export import EXPORT_FORMATS, VIDEO_FORMAT, export_refdavis, export_voc

    if args.video:
        if args.format not in (None, VIDEO_FORMAT):
            raise ValueError(f"--video writes the Ref-DAVIS17 layout; --format {args.format!r} does not apply")
        n = 20 if args.n is None else args.n
        out = export_refdavis(
            args.out, split=args.split, n=n, seed=args.seed, frames=args.frames, overwrite=args.overwrite
        )
        print(
            f"wrote {n} moving {args.split} clips (seed {args.seed}) in the Ref-DAVIS17 layout to {out}; "
            f"evaluate with: carlib eval --preset refdavis17 --model shapes --data-root {out} --out RUN"
        )
        return 0
    if args.frames is not None:
        raise ValueError("--frames applies to --video clips")
    fmt = args.format or "voc"
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown --format {fmt!r}; supported: {', '.join(EXPORT_FORMATS)} (and --video for clips)")
    n = 200 if args.n is None else args.n
    out = export_voc(args.out, split=args.split, n=n, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {n} {args.split} scenes (seed {args.seed}) in VOC layout to {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from carlib.world.train import run_from_args

    return run_from_args(args)


def _report(args: argparse.Namespace) -> int:
    import torch

    from carlib.evaluation.shapesworld_report import evaluate_world

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from carlib.evaluation.shapesworld_report import CLIP_ES_LAYERS

    layers = CLIP_ES_LAYERS if args.clip_es_layers is None else args.clip_es_layers
    if layers < 1:
        raise ValueError(f"--clip-es-layers must be at least 1, got {layers}")
    report = evaluate_world(
        args.model,
        name=args.name,
        score_kind=args.score_kind,
        n=args.n,
        seed=args.seed,
        split=args.split,
        clip_es_layers=layers,
        progress=True,
    )
    print(report.format())
    if args.json:
        atomic_write_text(json.dumps(report.as_dict(), indent=2) + "\n", args.json)
    return 0
