"""`carlib reproduce --table N`: one paper table, its commands, and ours beside the published numbers."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from carlib.apps.options import add_vlm_options
from carlib.pipeline import MODEL_CHOICES
from carlib.progress import counted

DEFAULT_RUNS = Path("runs/reproduce")


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``carlib reproduce`` to the command line."""
    from carlib.evaluation.reproduce import METHODS_TABLE, TABLE_NUMBERS

    parser = commands.add_parser(
        "reproduce",
        help="reproduce one of the paper's tables (ShapesWorld analogue offline, or real data)",
        description="Without --data-root: the table's analogue on held-out ShapesWorld scenes, ours beside the "
        "published numbers. With --data-root: runs the table's `carlib eval`/`carlib ablate` commands "
        "that have no metrics.json under --out yet, then reports every row. --list prints the commands, "
        "datasets and weights without running anything.",
    )
    parser.add_argument(
        "--table",
        choices=(*TABLE_NUMBERS, METHODS_TABLE, "all"),
        default=None,
        help="the paper's table number, or methods (SCLIP, ClearCLIP, NACLIP alone; not in the "
        "paper); all: every table (default with --list)",
    )
    parser.add_argument(
        "--list",
        "--dry-run",
        dest="list_only",
        action="store_true",
        help="print the commands, datasets and weights; run nothing",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="folder holding the benchmarks in their docs/datasets.md layouts (real data)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where the report goes; with real data, the runs' root (default {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="real data: only read the metrics.json files already under --out; run nothing",
    )
    parser.add_argument("--n", type=int, default=100, help="ShapesWorld scenes per row (default 100)")
    parser.add_argument("--seed", type=int, default=None, help="ShapesWorld scene seed (default: the test split's)")
    parser.add_argument("--model", default=None, choices=MODEL_CHOICES, help="real data: passed to every command")
    parser.add_argument("--limit", type=int, default=None, help="real data: only the first N images per command")
    add_vlm_options(parser)
    parser.add_argument(
        "--sam-checkpoint",
        type=Path,
        default=None,
        help="real data: the SAM checkpoint of Table 1's CaR + SAM rows (default sam_hq_vit_h.pth)",
    )
    parser.set_defaults(handler=_reproduce_command)


def _reproduce_command(args: argparse.Namespace) -> int:
    from carlib.evaluation.reproduce import METHODS_TABLE, TABLE_NUMBERS, get_table, listing

    if args.table is None and not args.list_only:
        raise ValueError("--table N is required (1-7, methods, or all); --list shows what every table needs")
    numbers = (*TABLE_NUMBERS, METHODS_TABLE) if args.table in (None, "all") else (args.table,)
    tables = [get_table(number) for number in numbers]
    real = args.data_root is not None or args.report_only
    out = args.out if args.out is not None or not real else DEFAULT_RUNS
    values = {
        "data_root": str(args.data_root) if args.data_root else None,
        "out": str(out) if out else None,
        "sam_checkpoint": str(args.sam_checkpoint) if args.sam_checkpoint else None,
    }
    if args.list_only:
        print("\n".join(listing(table, **values) for table in tables))
        return 0
    if args.data_root is not None and not args.data_root.is_dir():
        raise FileNotFoundError(f"--data-root {args.data_root} is not a folder (see docs/datasets.md for the layouts)")
    failed = 0
    runs = None
    for table in counted(tables, "tables", resumable=real):  # real data: each command resumes
        if real:
            report, table_failed = _real_report(table, out, values, args)
            failed += table_failed
        else:
            from carlib.evaluation.reproduce import WorldRuns

            runs = runs or WorldRuns(args.n, seed=args.seed, progress=True)
            report = _world_report(table, runs)
        print(report.markdown())
        if out is not None:
            _write(report, out)
    return 1 if failed else 0


def _world_report(table, runs):
    from carlib.evaluation.reproduce import Report, listing, world_numbers

    source = (
        f"ShapesWorld analogue, {runs.n} held-out test scenes (seed {runs.seed}), CaR + dense CRF with the "
        f"ShapesWorld CLIP: same code, different model and world, for orientation, not equality"
    )
    commands = [line for line in listing(table).splitlines() if line.startswith("carlib ")]
    return Report(table, world_numbers(table, runs), source, commands)


def _real_report(table, out: Path, values: dict, args: argparse.Namespace):
    """Run the table's commands that have no metrics yet (unless --report-only), then read every row's."""
    from carlib.evaluation.registry import option_words
    from carlib.evaluation.reproduce import Report, missing_commands, read_real_numbers

    failed = 0
    commands = []
    extra = {
        option: getattr(args, option)
        for option in ("model", "limit", "proposal_model", "classifier_model", "tokenizer")
        if getattr(args, option) is not None
    }
    missing = [] if args.report_only else missing_commands(table, out)  # each command writes only its own rows
    for command in counted(table.commands(), "commands"):
        options = {**command.values(**values), **extra}
        shown = "carlib " + shlex.join(command.argv(**values) + option_words(extra))
        commands.append(shown)
        if command not in missing:
            continue
        print(f"$ {shown}", flush=True)
        try:
            status = run_command(command.app, options)
        except (ValueError, FileNotFoundError, RuntimeError, OSError) as error:
            print(f"carlib reproduce: `{shown}` failed: {error}; its rows stay empty")
            failed += 1
            continue
        if status != 0:
            print(f"carlib reproduce: `{shown}` exited with {status}; its rows stay empty")
            failed += 1
    source = f"real data, the metrics.json files under {out}" + (f" (first {args.limit} images)" if args.limit else "")
    return Report(table, read_real_numbers(table, out), source, commands), failed


def run_command(app: str, options: dict) -> int:
    """Run a registry command by calling its function (``carlib eval``: :func:`carlib.apps.eval.run_eval`,
    ``carlib ablate``: :func:`carlib.apps.ablate.run_ablate`) with ``options`` by name."""
    if app == "eval":
        from carlib.apps.eval import eval_options, run_eval

        return run_eval(eval_options(**options))
    if app == "ablate":
        from carlib.apps.ablate import ablate_options, run_ablate

        return run_ablate(ablate_options(**options))
    raise ValueError(f"the registry has no command {app!r}")


def _write(report, out: Path) -> None:
    from carlib.files import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    stem = f"reproduce-table{report.table.number}"
    atomic_write_text(report.markdown(), out / f"{stem}.md")
    atomic_write_text(json.dumps(report.as_dict(), indent=1) + "\n", out / f"{stem}.json")
    print(f"wrote {out / stem}.md and .json")
