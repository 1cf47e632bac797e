"""Ctrl-C and SIGTERM end a command with one line saying how far it got, exit status 130, and no traceback.

:func:`stop_signals_interrupt` is entered once, by :func:`carlib.apps.cli.main`:
SIGTERM (what ``kill``, ``timeout``, a batch scheduler and ``torchrun`` send)
then raises :class:`KeyboardInterrupt` just as Ctrl-C does, so both unwind
the same way. Every output is written atomically (:mod:`carlib.files`), so
the unwinding leaves only complete files. At the first signal the counts of
the loops running (:mod:`carlib.progress`) are kept for the message; further
signals while the command cleans up are ignored (``torchrun`` forwards the
terminal's Ctrl-C to ranks that already got it).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from carlib import progress

INTERRUPTED_STATUS = 130
"""The exit status of an interrupted command (128 + SIGINT, as shells report Ctrl-C)."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _State:
    depth = 0
    interrupted = False
    counts: tuple[progress.Count, ...] | None = None


def _on_stop_signal(number: int, frame) -> None:
    if _State.interrupted:
        return
    _State.interrupted = True
    _State.counts = progress.open_counts()
    raise KeyboardInterrupt


@contextmanager
def stop_signals_interrupt() -> Iterator[bool]:
    """While inside, SIGINT and SIGTERM raise :class:`KeyboardInterrupt` (the first one only).

    A signal the process was started to ignore (``nohup``, a shell's
    background job) stays ignored. Nested uses (``carlib reproduce`` runs
    other commands through the same ``main``) change nothing.

    Yields:
        True for the outermost use, the one that should report the interrupt.
    """
    outermost = _State.depth == 0
    _State.depth += 1
    previous: dict[int, Callable[[int, FrameType | None], Any] | int | signal.Handlers | None] = {}
    try:
        if outermost:
            _State.interrupted, _State.counts = False, None
            progress.forget()
            if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
                for number in STOP_SIGNALS:
                    if signal.getsignal(number) is not signal.SIG_IGN:
                        previous[number] = signal.signal(number, _on_stop_signal)
        yield outermost
    finally:
        for signal_number, handler in previous.items():
            signal.signal(signal_number, handler)
        _State.depth -= 1


def interrupted_message(command: str) -> str:
    """The one line an interrupted ``command`` ends with.

    ``"carlib segment: interrupted after 3 of 8 images; rerun the same command to resume"``; under
    ``torchrun`` the rank follows the command; nested loops are listed outermost first.
    """
    counts = _State.counts if _State.counts is not None else progress.open_counts()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    where = f"{command} (rank {os.environ.get('RANK', '0')})" if world_size > 1 else command
    resumes = all(count.resumable for count in counts)
    advice = "rerun the same command to resume" if counts and resumes else "rerun the same command to start again"
    if not counts:
        return f"{where}: interrupted; {advice}"
    return f"{where}: interrupted after {', '.join(count.describe() for count in counts)}; {advice}"


def close_progress_bars() -> None:
    """End every open tqdm bar's line, so the message that follows starts a line of its own."""
    from tqdm import tqdm

    # The bars of the interrupted loops stay open until their frames are freed, after the message
    # would be printed; tqdm keeps the open ones in this class attribute (as tqdm.write uses it).
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
