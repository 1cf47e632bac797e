"""`carlib eval --preset voc --data-root ... --out ...`: a benchmark run, resumable and shardable with torchrun."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from carlib.apps.options import (
    add_method_options,
    add_model_options,
    add_precision_options,
    add_sam_options,
    announce_models,
    apply_precision_options,
    method_protocol_from_options,
    model_overrides,
    options_namespace,
    preset_from_options,
    quick_gelu_option,
    sam_source_from_options,
)
from carlib.datasets.refdavis import RefDavisDataset
from carlib.dense_methods import METHOD_SPECS
from carlib.evaluation.benchmark import (
    check_expression_sets,
    check_method_run,
    count_unit,
    evaluate,
    headline_metric,
    open_benchmark,
    proposal_only,
)
from carlib.pipeline import load_models
from carlib.presets import get_preset, preset_names
from carlib.settings import POST_PROCESSING


def register(commands) -> None:
    """Add ``carlib eval`` to the command line (works under ``torchrun ... -m carlib eval``)."""
    parser = commands.add_parser(
        "eval",
        help="evaluate CaR, or a dense method alone (--method), on a benchmark (resumable, shardable with torchrun)",
    )
    add_eval_arguments(parser)
    parser.set_defaults(handler=run_eval)


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``carlib eval`` (also what :func:`eval_options` fills in for ``carlib reproduce``)."""
    parser.add_argument("--preset", required=True, help=", ".join(preset_names()))
    parser.add_argument("--data-root", type=Path, required=True, help="dataset folder (see docs/datasets.md)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (rerun the same command to resume)")
    parser.add_argument("--split", default=None, help="dataset split (default: the benchmark's evaluation split)")
    parser.add_argument(
        "--split-by",
        default=None,
        choices=("unc", "umd", "google"),
        help="referring only: whose split of the refs (RefCOCOg: umd by default, google for the paper's val(G))",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (videos for refdavis17)")
    parser.add_argument(
        "--expression-sets",
        default=None,
        metavar="SET[,SET...]",
        help="refdavis17 only: which of its expression sets to run (default the four: "
        "annot1-first-frame, annot1-full-video, annot2-first-frame, annot2-full-video; 'all' runs "
        "each object's expressions together)",
    )
    parser.add_argument("--post", choices=POST_PROCESSING, default=None, help="default: the preset's")
    add_sam_options(parser)
    add_model_options(parser)
    add_method_options(parser)
    parser.add_argument("--device", default=None)
    parser.add_argument("--without-background", action="store_true", help="VOC-20 / Context-59 setting")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes reading images ahead and running the CRF while the model works "
        "(default: on GPU half the cores, at most 4; on CPU 0). Metrics do not depend on it",
    )
    add_precision_options(parser)
    parser.add_argument("--no-progress", action="store_true")


def eval_options(**values) -> argparse.Namespace:
    """``carlib eval``'s options as :func:`run_eval` takes them: ``values`` (by option name, e.g. ``preset``,
    ``data_root``, ``without_background=True``), every other option at its default.

    Raises:
        ValueError: an option ``carlib eval`` does not have, or a required one missing.
    """
    return options_namespace(add_eval_arguments, "carlib eval", **values)


def run_eval(args: argparse.Namespace) -> int:
    """Run ``carlib eval`` with parsed options (:func:`eval_options` builds them without a command line)."""
    apply_precision_options(args)
    preset, model = preset_from_options(get_preset(args.preset), args)
    protocol = method_protocol_from_options(args, preset, args.without_background)
    if protocol is not None:
        check_method_run(preset, protocol.method, args.post)
    dataset = open_benchmark(
        preset, args.data_root, args.split, without_background=args.without_background, split_by=args.split_by
    )  # fails fast
    expression_sets = None
    if args.expression_sets is not None:
        if not isinstance(dataset, RefDavisDataset):
            raise ValueError(f"--expression-sets applies to refdavis17, not {preset.name}")
        expression_sets = check_expression_sets([name.strip() for name in args.expression_sets.split(",")])
    overrides = model_overrides(args)
    if protocol is not None and "proposal" in overrides:
        overrides["classifier"] = overrides["proposal"]  # one model: the method runs alone
    models = load_models(
        preset if protocol is None else proposal_only(preset),
        model,
        device=args.device,
        quick_gelu=quick_gelu_option(args),
        **overrides,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        announce_models("eval", models)
    sam_source = (
        None
        if protocol is not None
        else sam_source_from_options("eval", args.post or preset.settings.post, args, models, preset)
    )
    summary = evaluate(
        preset,
        args.data_root,
        args.out,
        split=args.split,
        limit=args.limit,
        post=args.post,
        model=model,
        device=args.device,
        without_background=args.without_background,
        progress=not args.no_progress,
        models=models,
        workers=args.workers,
        amp=args.amp,
        sam_source=sam_source,
        split_by=args.split_by,
        expression_sets=expression_sets,
        method_protocol=protocol,
    )
    if summary is not None:
        paper = summary.paper
        headline = headline_metric(summary.preset)
        who = "" if protocol is None else f"{METHOD_SPECS[protocol.method].title} alone ({protocol.name} protocol): "
        print(
            who
            + f"{headline} {summary.metrics[headline] * 100:.2f}%"
            + (f" (paper {paper}%)" if paper else "")
            + f" on {summary.images} {count_unit(summary.preset)}, "
            f"{len(summary.errors)} unreadable; wrote {args.out}/metrics.json"
        )
    return 0
