"""How far the long loops have got, so an interrupted command can say so ("interrupted after 40 of 100 images").

A loop that may run for minutes opens a :class:`Count` with :func:`counting`
(and calls :meth:`Count.advance` as each item is finished and stored) or
iterates through :func:`counted`. Counts nest: ``carlib reproduce`` counts
its commands while the ``carlib eval`` inside counts images. Nothing here
prints or changes what a loop does; the command line reads
:func:`open_counts` when Ctrl-C or SIGTERM stops a run
(:mod:`carlib.apps.interrupts`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

Item = TypeVar("Item")


@dataclass(eq=False)  # counts are removed by identity: two loops may count alike
class Count:
    """One loop's progress.

    Attributes:
        total: items the loop will go through (this rank's share under torchrun).
        unit: what an item is, plural ("images", "steps", "rows").
        done: items finished so far (those a rerun skips, when ``resumable``).
        resumable: whether a rerun of the same command keeps the finished items.
        note: what is stored besides, e.g. "resume.pt holds step 100".
    """

    total: int
    unit: str
    done: int = 0
    resumable: bool = True
    note: str = ""

    def advance(self, items: int = 1) -> None:
        """Count ``items`` more as finished."""
        self.done += items

    def describe(self) -> str:
        """``"40 of 100 images"``, with the note in brackets when there is one."""
        return f"{self.done} of {self.total} {self.unit}" + (f" ({self.note})" if self.note else "")


_OPEN: list[Count] = []
_FINISHED: list[Count] = []  # the last outermost count that ran to its end


@contextmanager
def counting(total: int, unit: str, *, done: int = 0, resumable: bool = True, note: str = "") -> Iterator[Count]:
    """Open a :class:`Count` for the length of the block (see :class:`Count` for the arguments).

    Yields:
        the count; call :meth:`Count.advance` as items are finished.
    """
    count = Count(total, unit, done, resumable, note)
    _OPEN.append(count)
    try:
        yield count
        if _OPEN and _OPEN[0] is count:  # ran to its end (an exception skips this)
            _FINISHED[:] = [count]
    finally:
        if count in _OPEN:  # forget() may have dropped it
            _OPEN.remove(count)


def counted(items: Sequence[Item], unit: str, *, resumable: bool = True) -> Iterator[Item]:
    """Iterate over ``items``, counting an item as finished when the loop asks for the next one."""
    with counting(len(items), unit, resumable=resumable) as count:
        for item in items:
            yield item
            count.advance()


def open_counts() -> tuple[Count, ...]:
    """Copies of the counts of the loops running now, outermost first.

    When none runs, the last outermost one that ran to its end: a command
    stopped while it writes its summary (or, under torchrun, waits for the
    other ranks) has done all of that loop.
    """
    return tuple(replace(count) for count in (_OPEN or _FINISHED))


def forget() -> None:
    """Start afresh (a new command starts): drop the finished loop, and the counts of loops abandoned by an
    earlier interrupt in this process whose generators are not collected yet."""
    _OPEN.clear()
    _FINISHED.clear()
