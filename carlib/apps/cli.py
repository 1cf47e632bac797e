"""The ``carlib`` command line: one sub-command group per concern."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The ``carlib`` parser with every sub-command of :mod:`carlib.apps`."""
    parser = argparse.ArgumentParser(
        prog="carlib",
        description="CLIP as RNN (CaR): training-free open-vocabulary segmentation.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    # Imported here, not at the top: `carlib --help` should not pay for torch until a command needs it.
    from carlib.apps import (ablate, compare, data, demo, documented, eval, families, gallery, reproduce, segment,
                             weights, world)

    for app in (demo, weights, families, segment, eval, compare, data, ablate, reproduce, world, gallery, documented):
        app.register(commands)
    return parser


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
