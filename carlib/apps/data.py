"""``carlib data``: check a benchmark's layout, convert COCO-Stuff to COCO-Object."""

from __future__ import annotations

import argparse

from carlib.datasets.registry import DATASET_PRESETS, check_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command (``check``, ``convert-coco-object``) to ``carlib``'s sub-parsers."""
    data = subparsers.add_parser("data", help="benchmark datasets: check a layout (see docs/datasets.md)")
    commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    commands.required = True

    check = commands.add_parser("check", help="list what is missing for a preset's benchmark (exit 0 if complete)")
    check.add_argument("--preset", required=True, choices=DATASET_PRESETS, help="the preset whose dataset to check")
    check.add_argument("--data-root", required=True, help="folder holding the dataset")
    check.add_argument("--split", default=None, help="split to check (default val)")
    check.add_argument(
        "--split-by", default=None, help="referring datasets: unc, umd or google (default unc; umd for refcocog)"
    )
    check.set_defaults(handler=_check)

    convert = commands.add_parser(
        "convert-coco-object", help="write COCO-Object *_instanceTrainIds.png from COCO-Stuff label PNGs"
    )
    convert.add_argument("--stuff-dir", required=True, help="COCO-Stuff stuffthingmaps folder, e.g. .../val2017")
    convert.add_argument("--out", required=True, help="output folder, e.g. coco/annotations/val2017")
    convert.add_argument("--overwrite", action="store_true", help="rewrite existing files")
    convert.set_defaults(handler=_convert)


def _check(args: argparse.Namespace) -> int:
    problems = check_dataset(args.preset, args.data_root, args.split, split_by=args.split_by)
    split = args.split or "val"
    if not problems:
        print(f"OK: {args.preset} ({split}) at {args.data_root}")
        return 0
    print(f"{args.preset} ({split}) at {args.data_root}: {len(problems)} problem(s); see docs/datasets.md")
    for problem in problems:
        print(f"  - {problem}")
    return 1


def _convert(args: argparse.Namespace) -> int:
    from carlib.datasets.semantic import convert_coco_object

    written = convert_coco_object(args.stuff_dir, args.out, overwrite=args.overwrite)
    print(f"wrote {written} COCO-Object label PNGs to {args.out}")
    return 0
