"""`carlib ablate --table recurrence|prompts|background|backbones|sweep|methods`: one of the paper's ablation
tables, or the dense methods alone and under CaR on ShapesWorld."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from carlib.apps.options import add_vlm_options, model_overrides, options_namespace
from carlib.evaluation.ablation import TABLES, run_table
from carlib.files import atomic_write_text
from carlib.pipeline import MODEL_CHOICES


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``carlib ablate`` to the command line."""
    parser = commands.add_parser("ablate", help="run one of the paper's ablation tables")
    add_ablate_arguments(parser)
    parser.set_defaults(handler=run_ablate)


def add_ablate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``carlib ablate`` (also what :func:`ablate_options` fills in for ``carlib reproduce``)."""
    parser.add_argument("--table", required=True, choices=TABLES)
    parser.add_argument("--preset", default="shapes", help="shapes (default, offline) or a real preset")
    parser.add_argument("--n", type=int, default=100, help="ShapesWorld scenes per row")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="where to write the table (and real-data runs)")
    parser.add_argument("--model", default="auto", choices=MODEL_CHOICES)
    parser.add_argument("--limit", type=int, default=None)
    add_vlm_options(parser)
    parser.add_argument(
        "--models",
        default=None,
        metavar="NAME[,NAME...]",
        help="methods table: the ShapesWorld models (default shapes,shapes-siglip, each only if it "
        "loads; named here, each must load)",
    )


def ablate_options(**values) -> argparse.Namespace:
    """``carlib ablate``'s options as :func:`run_ablate` takes them: ``values`` by option name, the rest at
    their defaults.

    Raises:
        ValueError: an option ``carlib ablate`` does not have, or a required one missing.
    """
    return options_namespace(add_ablate_arguments, "carlib ablate", **values)


def run_ablate(args: argparse.Namespace) -> int:
    """Run ``carlib ablate`` with parsed options (:func:`ablate_options` builds them without a command line)."""
    models = None
    if args.models is not None:
        if args.table != "methods":
            raise ValueError("--models applies to --table methods")
        models = [name.strip() for name in args.models.split(",") if name.strip()]
        from carlib.models import SHAPES_MODELS

        unknown = [name for name in models if name not in SHAPES_MODELS]
        if unknown or not models:
            raise ValueError(f"--models takes ShapesWorld models ({', '.join(SHAPES_MODELS)}), got {args.models!r}")
    markdown = run_table(
        args.table,
        args.preset,
        n=args.n,
        data_root=args.data_root,
        out_dir=args.out,
        model=args.model,
        limit=args.limit,
        model_overrides=model_overrides(args),
        models=models,
    )
    print(markdown)
    if args.out is not None:
        record = json.dumps({"table": args.table, "markdown": markdown})
        atomic_write_text(markdown, args.out / f"ablation-{args.table}.md")
        atomic_write_text(record, args.out / f"ablation-{args.table}.json")
    return 0
