"""`carlib compare RUN_A RUN_B [...]`: protocols and numbers of two or more runs side by side."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``carlib compare`` to the command line."""
    parser = commands.add_parser(
        "compare",
        help="compare runs: protocol differences and metric differences side by side",
        description="Each RUN is a carlib eval folder (metrics.json) or a carlib segment result (result.json). "
        "Prints every protocol-card entry that differs, every metric and each class's IoU beside the "
        "first run's, and says whether the runs are comparable (same samples, same labels). Runs that "
        "are not comparable get the table too, headed NOT COMPARABLE; that is not an error.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders or metrics.json / result.json files")
    parser.add_argument("--out", type=Path, default=None, help="also write the comparison to this markdown file")
    parser.set_defaults(handler=_compare_command)


def _compare_command(args: argparse.Namespace) -> int:
    from carlib.evaluation.compare import compare_runs
    from carlib.files import atomic_write_text

    markdown = compare_runs(args.runs)
    print(markdown, end="")
    if args.out is not None:
        atomic_write_text(markdown, args.out)
    return 0
