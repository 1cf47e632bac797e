"""Notebook 07's tables: a small live ShapesWorld sample beside the documented 200-scene figures and the paper.

Rankings are computed here from the numbers, never typed, so the notebook's
sentences cannot drift from its tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from carlib.evaluation.reproduce import WorldRuns, get_table
from carlib.tutorial.documented import DocumentedFigures
from carlib.tutorial.documented.nb07 import TABLE_ROWS, row_key, table_rows

__all__ = [
    "PAPER_TABLE",
    "TABLE_ROWS",
    "best",
    "documented_rows",
    "live_rows",
    "paper_rankings",
    "published",
    "ranked",
    "ranking_text",
    "rankings",
    "side_by_side",
    "table_rows",
]

PAPER_TABLE = {"recurrence": "2", "prompts": "4", "background": "6"}
"""The paper's table behind each ``carlib ablate`` table the notebook runs."""


def published(table: str) -> dict[str, float]:
    """The paper's VOC-21 mIoU % of each row of ``carlib ablate --table TABLE`` that it publishes."""
    # These tables publish single numbers, never a (low, high) spread.
    return {
        row.label: row.published
        for row in get_table(PAPER_TABLE[table]).rows
        if row.published is not None and not isinstance(row.published, tuple)
    }


def live_rows(table: str, runs: WorldRuns) -> dict[str, float]:
    """mIoU in [0, 1] of the notebook's rows of ``table`` on the live sample."""
    return {row.name: runs.row(row) for row in table_rows(table)}


def documented_rows(table: str, stored: DocumentedFigures) -> dict[str, float]:
    """The same rows' documented mIoU in [0, 1]."""
    return {name: stored[row_key(table, name)] for name in TABLE_ROWS[table]}


def ranked(values: Mapping[str, float]) -> list[str]:
    """Names, best first (ties keep the given order)."""
    return sorted(values, key=lambda name: -values[name])


def ranking_text(values: Mapping[str, float], *, percent: bool = False) -> str:
    """``a (62.2) > b (61.0) = c (61.0) > ...``, best first; ``=`` where the printed values tie."""
    scale = 1.0 if percent else 100.0
    names = ranked(values)
    text = ""
    for position, name in enumerate(names):
        shown = f"{values[name] * scale:.1f}"
        if position:
            text += " = " if shown == f"{values[names[position - 1]] * scale:.1f}" else " > "
        text += f"{name} ({shown})"
    return text


def best(values: Mapping[str, float]) -> list[str]:
    """The rows tied for the best printed value (one decimal of a percentage)."""
    top = round(max(values.values()) * 100, 1)
    return [name for name in ranked(values) if round(values[name] * 100, 1) == top]


def side_by_side(table: str, live: Mapping[str, float], stored: DocumentedFigures, live_scenes: int) -> str:
    """Markdown: each row's mIoU % on the live sample, on the documented scenes, and in the paper (VOC-21)."""
    paper = published(table)
    documented = documented_rows(table, stored)
    lines = [
        f"**Table {PAPER_TABLE[table]} analogue** (`carlib ablate --table {table}`), mIoU %:",
        "",
        f"| setting | this run ({live_scenes} scenes) | documented ({stored.scenes} scenes) | paper (VOC-21) |",
        "|---|---|---|---|",
    ]
    for name in TABLE_ROWS[table]:
        shown = f"{paper[name]:.1f}" if name in paper else "—"
        lines.append(f"| {name} | {live[name] * 100:.1f} | {documented[name] * 100:.1f} | {shown} |")
    return "\n".join(lines)


def rankings(table: str, live: Mapping[str, float], stored: DocumentedFigures, live_scenes: int) -> str:
    """Three ranking lines (live, documented, paper), and whether the live sample picks the documented winner."""
    documented = documented_rows(table, stored)
    paper = published(table)
    lines = [
        f"- this run, {live_scenes} scenes: {ranking_text(live)}",
        f"- documented, {stored.scenes} scenes: {ranking_text(documented)}",
        f"- paper, VOC-21: {ranking_text(paper, percent=True)}",
    ]
    same = ranked(documented)[0] in best(live)
    lines.append(
        f"- the live sample {'agrees' if same else 'does not agree'} with the documented scenes on the best "
        f"row ({' = '.join(best(live))} vs {ranked(documented)[0]}); the largest gap between a live and a "
        f"documented row is {max(abs(live[n] - documented[n]) for n in live) * 100:.1f} points"
    )
    return "\n".join(lines)


def paper_rankings(tables: Sequence[str] = ("2", "4", "6")) -> str:
    """The paper's own rankings of its ablation tables, read from the reproduce registry."""
    lines = []
    for number in tables:
        table = get_table(number)
        values = {row.label: row.published for row in table.rows if isinstance(row.published, float)}
        lines.append(f"- Table {number} ({table.title}): {ranking_text(values, percent=True)}")
    return "\n".join(lines)
