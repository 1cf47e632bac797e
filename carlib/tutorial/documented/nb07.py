"""Documented figures of ``07_reproduce_tables``: the headline baselines and the ablation tables on ShapesWorld.

Measured by :class:`carlib.evaluation.reproduce.WorldRuns`, the code behind
``carlib reproduce`` and ``carlib ablate --preset shapes``, so the notebook's
few-scene tables and these 200-scene ones differ only in the scenes.
"""

from __future__ import annotations

from carlib.evaluation.ablation import Row
from carlib.evaluation.ablation import table_rows as ablation_rows
from carlib.evaluation.reproduce import WorldRuns
from carlib.presets import get_preset
from carlib.tutorial.documented import Figure

NOTEBOOK = "07_reproduce_tables"

TABLE_ROWS = {
    "recurrence": ("no recurrence (one pass, all queries kept)", "recurrence + Grad-CAM", "recurrence + CLIP-ES"),
    "prompts": ("circle", "contour", "blur", "gray", "black", "circle+blur"),
    "background": ("none", "all groups"),
}
"""The rows of ``carlib ablate --table ...`` that the notebook runs live: the rows the paper publishes
(notebook 05 measures every background group)."""

HEADLINE_WHAT = {
    "single_pass_crf": "mIoU, one pass with every query kept + CRF (no recurrence)",
    "car_none": "mIoU, CaR without post-processing",
    "car_crf": "mIoU, CaR + dense CRF (the shapes preset)",
    "oracle_crf": "mIoU, only the present classes queried + CRF (perfect filtering)",
}


def row_key(table: str, row_name: str) -> str:
    """The figure name of one ablation row, e.g. ``prompts/circle+blur``."""
    return f"{table}/{row_name}"


def headline_key(variant: str) -> str:
    return f"headline/{variant}"


def table_rows(table: str) -> list[Row]:
    """The notebook's rows of one ablation table, as ``carlib ablate --preset shapes`` defines them."""
    rows = {row.name: row for row in ablation_rows(table, get_preset("shapes"))}
    return [rows[name] for name in TABLE_ROWS[table]]


def compute(n: int, seed: int, *, workers: int | None = None) -> dict[str, Figure]:
    """Every figure the notebook prints, on ``n`` test scenes.

    Its 11 runs are independent, so by default each gets its own process: on
    a shared machine that finishes soonest, and the numbers do not depend on it.
    """
    runs = WorldRuns(n, seed=seed, variants=tuple(HEADLINE_WHAT))
    runs.prefetch([row for table in TABLE_ROWS for row in table_rows(table)], workers=workers)
    report = runs.headline()
    figures = {headline_key(name): Figure(report.miou[name], what) for name, what in HEADLINE_WHAT.items()}
    figures["headline/present_kept"] = Figure(report.present_kept, "share of present queries CaR keeps")
    figures["headline/absent_dropped"] = Figure(report.absent_dropped, "share of absent queries CaR drops")
    for table in TABLE_ROWS:
        for row in table_rows(table):
            value = runs.row(row)
            figures[row_key(table, row.name)] = Figure(
                value, f"mIoU, CaR + dense CRF, `ablate --table {table}`: {row.name}"
            )
    return figures
