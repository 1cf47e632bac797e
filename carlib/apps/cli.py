"""The ``carlib`` command line: one sub-command group per concern."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from carlib.apps.interrupts import INTERRUPTED_STATUS, close_progress_bars, interrupted_message, stop_signals_interrupt
from carlib.files import WriteError

WRITE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG)
SUBCOMMANDS = ("world_command", "data_command", "action")  # the dests of the groups' sub-parsers


def build_parser() -> argparse.ArgumentParser:
    """The ``carlib`` parser with every sub-command of :mod:`carlib.apps`."""
    parser = argparse.ArgumentParser(
        prog="carlib",
        description="CLIP as RNN (CaR): training-free open-vocabulary segmentation.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    # Imported here, not at the top: `carlib --help` should not pay for torch until a command needs it.
    from carlib.apps import (
        ablate,
        compare,
        data,
        demo,
        documented,
        eval,
        families,
        gallery,
        reproduce,
        segment,
        weights,
        world,
    )

    for app in (demo, weights, families, segment, eval, compare, data, ablate, reproduce, world, gallery, documented):
        app.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status.

    Problems a user can fix end with one line on stderr and status 2 (an output
    that cannot be written names its path and the reason); Ctrl-C and SIGTERM
    end with one line saying how far the command got and status 130
    (:mod:`carlib.apps.interrupts`).
    """
    command = "carlib"
    with stop_signals_interrupt() as outermost:
        try:
            args = build_parser().parse_args(argv)
            command = _command_name(args)
            return int(args.handler(args) or 0)
        except KeyboardInterrupt:
            if not outermost:
                raise
            close_progress_bars()
            print(interrupted_message(command), file=sys.stderr)
            return INTERRUPTED_STATUS
        except (ValueError, FileNotFoundError, RuntimeError, OSError) as error:
            # Users get one readable line, not a traceback, for problems they can fix.
            print(f"{command}: error: {_one_line(error)}", file=sys.stderr)
            return 2


def _command_name(args: argparse.Namespace) -> str:
    """``carlib world train``: the command and its sub-command, as the error and interrupt lines start."""
    subcommands = [getattr(args, dest) for dest in SUBCOMMANDS if getattr(args, dest, None)]
    return " ".join(["carlib", args.command, *subcommands])


def _one_line(error: Exception) -> str:
    if isinstance(error, OSError) and not isinstance(error, (FileNotFoundError, WriteError)) and error.filename:
        # A bare OSError names neither side; a full or read-only disk can only be met writing.
        doing = "cannot write" if error.errno in WRITE_ERRNOS else "cannot use"
        return f"{doing} {os.fsdecode(error.filename)}: {error.strerror}"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
