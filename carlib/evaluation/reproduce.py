"""`carlib reproduce`: every table of the registry (:mod:`carlib.evaluation.registry`) beside ours.

Two ways to fill the "ours" column:

- **ShapesWorld** (offline, the default): the table's analogue on held-out
  ShapesWorld scenes, through :func:`carlib.evaluation.shapesworld.evaluate_car_on_world`
  and the rows of :mod:`carlib.evaluation.ablation` (:class:`WorldRuns`).
  Same code path, different model and world: for orientation, not equality.
- **Real data**: each command's ``metrics.json`` under ``--out``
  (:func:`read_real_numbers`), after running the commands that have none yet.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from carlib.evaluation.ablation_rows import Row, table_rows
from carlib.evaluation.registry import (
    DATASET_DOCS,
    FIELD_METHODS,
    METHOD_SOURCES,
    METHODS_TABLE,
    PLACEHOLDERS,
    TABLE_NUMBERS,
    Command,
    EvalRun,
    PaperRow,
    PaperTable,
    Published,
    WorldAnalogue,
    fill,
    get_table,
    paper_tables,
    published_for_run,
    registry_tables,
    weights_needed,
)
from carlib.presets import get_preset

__all__ = [  # the registry's names too: reproduce is where users meet the tables
    "DATASET_DOCS",
    "FIELD_METHODS",
    "METHODS_TABLE",
    "METHOD_SOURCES",
    "PLACEHOLDERS",
    "TABLE_NUMBERS",
    "Command",
    "EvalRun",
    "Measured",
    "PaperRow",
    "PaperTable",
    "Published",
    "Report",
    "WorldAnalogue",
    "WorldRuns",
    "fill",
    "format_number",
    "get_table",
    "heading",
    "listing",
    "missing_commands",
    "paper_tables",
    "published_decimals",
    "published_for_run",
    "read_real_numbers",
    "registry_tables",
    "weights_needed",
    "world_numbers",
]


# --- the "ours" column --------------------------------------------------------------------------------------


@dataclass
class Measured:
    """Our number for one row: a value (mIoU %), a spread, or nothing, and where it came from."""

    value: Published | None = None
    source: str = ""


def format_number(value: Published | None, decimals: int = 1) -> str:
    """A percentage or a spread for a table cell ("—" for none)."""
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return f"{value[0]:.{decimals}f}–{value[1]:.{decimals}f}"
    return f"{value:.{decimals}f}"


def published_decimals(value: Published) -> int:
    """As many decimals as the paper prints (Table 7 has two, the others one)."""
    first = value[0] if isinstance(value, tuple) else value
    return 2 if round(first, 1) != round(first, 2) else 1


def _read_metric(path: Path, metric: str | None = None) -> tuple[float | None, str]:
    record = json.loads(path.read_text())
    for key in (metric,) if metric else ("mIoU", "gIoU"):
        if isinstance(record.get(key), (int, float)):
            return float(record[key]) * 100, key
    return None, ""


def read_real_numbers(table: PaperTable, out_dir: Path) -> dict[str, Measured]:
    """Our numbers from the ``metrics.json`` files the table's commands wrote under ``out_dir``.

    A row whose file is missing gets no value and says which file it waits for.
    """
    found: dict[str, Measured] = {}
    for row in table.rows:
        if row.metrics is None:
            found[row.label] = Measured(source=row.note or "no command")
            continue
        paths = sorted(Path(p) for p in glob.glob(str(Path(out_dir) / row.metrics)))
        read = [(path, *_read_metric(path, row.metric)) for path in paths]
        values = [(path, value, key) for path, value, key in read if value is not None]
        if not values:
            found[row.label] = Measured(source=f"no {row.metrics} yet")
        elif "*" in row.metrics:
            numbers = [value for _, value, _ in values]
            found[row.label] = Measured((min(numbers), max(numbers)), f"{len(numbers)} runs, {row.metrics}")
        else:
            _path, value, key = values[0]
            found[row.label] = Measured(value, f"{row.metrics}" + ("" if key in ("mIoU", row.metric) else f" ({key})"))
    return found


def missing_commands(table: PaperTable, out_dir: Path) -> list[Command]:
    """The table's commands that have not yet written every ``metrics.json`` they are expected to."""
    missing = []
    for command in table.commands():
        for row in table.rows:
            if row.command == command and row.metrics is not None and not glob.glob(str(Path(out_dir) / row.metrics)):
                missing.append(command)
                break
    return missing


HEADLINE = ("single_pass_crf", "car_none", "car_crf", "oracle_crf", "car_sam")
"""The :func:`evaluate_car_on_world` variants a :class:`WorldRuns` measures (Table 1's analogues and baselines)."""


class WorldRuns:
    """CaR + dense CRF on ``n`` held-out ShapesWorld scenes, one run per distinct setting.

    Rows that amount to the same settings (Table 2's "recurrence + CLIP-ES",
    Table 4's "blur" and Table 6's "all groups" are all the ``shapes`` preset)
    are measured once and shared.
    """

    def __init__(
        self,
        n: int,
        *,
        seed: int | None = None,
        models=None,
        progress: bool = False,
        variants: Sequence[str] = HEADLINE,
    ) -> None:
        from carlib.evaluation.shapesworld import EVAL_SEED

        if n < 1:
            raise ValueError(f"n (ShapesWorld scenes per row) must be at least 1, got {n}")
        self.n = n
        self.seed = EVAL_SEED if seed is None else seed
        self.preset = get_preset("shapes")
        self._models = models
        self.progress = progress
        self.variants = tuple(variants)
        self._miou: dict[str, float] = {}
        self._headline = None

    @property
    def models(self):
        """The ShapesWorld CLIPs, loaded on first use (a prefetching parent never needs them)."""
        if self._models is None:
            from carlib.pipeline import load_models

            self._models = load_models(self.preset, "shapes")
        return self._models

    def method(self, name: str) -> float:
        """mIoU in [0, 1] of a dense method alone (carlib's protocol) on the scenes (measured once)."""
        key = f"method alone: {name}"
        if key not in self._miou:
            from carlib.evaluation.shapesworld import evaluate_method_on_world

            self._miou[key] = evaluate_method_on_world(
                self.n, name, seed=self.seed, preset=self.preset, models=self.models, progress=self.progress
            )[0]
        return self._miou[key]

    def _key(self, row: Row) -> str:
        options = dict(row.car_options)
        settings = self.preset.replace(**row.preset_changes).settings
        return repr(settings.replace(post="crf", **options))

    def headline(self):
        """:class:`carlib.evaluation.shapesworld.CarWorldReport` of :attr:`HEADLINE`'s variants (measured once)."""
        if self._headline is None:
            from carlib.evaluation.shapesworld import evaluate_car_on_world
            from carlib.postprocess import ColourRegionMaskSource

            sam_source = ColourRegionMaskSource() if "car_sam" in self.variants else None
            self._store_headline(
                evaluate_car_on_world(
                    self.n,
                    seed=self.seed,
                    preset=self.preset,
                    models=self.models,
                    variants=self.variants,
                    progress=self.progress,
                    sam_source=sam_source,
                )
            )
        return self._headline

    def row(self, row: Row) -> float:
        """mIoU in [0, 1] of one ablation row (CaR + dense CRF with the row's changes)."""
        key = self._key(row)
        if key not in self._miou:
            from carlib.evaluation.shapesworld import evaluate_car_on_world

            report = evaluate_car_on_world(
                self.n,
                seed=self.seed,
                preset=self.preset.replace(**row.preset_changes),
                models=self.models,
                variants=("car_crf",),
                progress=self.progress,
                car_options=row.car_options,
            )
            self._miou[key] = report.miou["car_crf"]
        return self._miou[key]

    def prefetch(self, rows: Sequence[Row], *, headline: bool = True, workers: int | None = None) -> None:
        """Measure the headline variants and ``rows`` in ``workers`` processes at once (every job is independent).

        Each worker loads the ShapesWorld CLIP itself and runs on one thread,
        as the notebooks do; each variant and row gives the number
        :meth:`headline` and :meth:`row` would (one CaR per variant either way).
        ``workers=None`` starts one process per job.
        """
        import multiprocessing

        jobs: list[tuple[str, str | Row]] = (
            [("variant", name) for name in self.variants] if headline and self._headline is None else []
        )
        covered = set(self._miou)
        if jobs:  # rows with the preset's own settings, or the single pass, come with the headline
            covered |= {
                key
                for key, variant in (
                    (self._key(Row("", {}, {})), "car_crf"),
                    (self._key(Row("", {}, {"recurrent": False})), "single_pass_crf"),
                )
                if variant in self.variants
            }
        todo = {self._key(row): row for row in rows if self._key(row) not in covered}
        jobs += [("row", row) for row in todo.values()]
        if not jobs:
            return
        workers = len(jobs) if workers is None else workers
        # A multiprocessing pool, not concurrent.futures: leaving its block terminates the workers, so an
        # interrupt does not wait minutes for the jobs already running.
        processes = max(1, min(workers, len(jobs)))
        with multiprocessing.get_context("spawn").Pool(processes, initializer=_start_worker) as pool:
            futures = [
                (kind, job, pool.apply_async(_measure_job, (kind, job, self.n, self.seed))) for kind, job in jobs
            ]
            reports = {}
            for kind, job, future in futures:
                if kind == "variant":
                    reports[job] = future.get()
                else:
                    assert isinstance(job, Row)  # kind "row"
                    self._miou[self._key(job)] = future.get()
        if reports:
            self._store_headline(_merge_reports(self.n, reports))

    def _store_headline(self, report) -> None:
        self._headline = report
        # The same settings as two ablation rows (the preset itself, and Table 2's single pass): reuse them.
        if "car_crf" in report.miou:
            self._miou[self._key(Row("", {}, {}))] = report.miou["car_crf"]
        if "single_pass_crf" in report.miou:
            self._miou[self._key(Row("", {}, {"recurrent": False}))] = report.miou["single_pass_crf"]

    def ablation(self, table: str) -> list[tuple[Row, float]]:
        """Every row of ``carlib ablate --table TABLE --preset shapes`` with its mIoU in [0, 1]."""
        return [(row, self.row(row)) for row in table_rows(table, self.preset)]

    def measure(self, analogue: WorldAnalogue) -> Measured:
        """Our number (mIoU %) for a published row's analogue."""
        if analogue.kind == "headline":
            return Measured(self.headline().miou[analogue.name] * 100, f"ShapesWorld {analogue.name}")
        if analogue.kind == "ablation":
            (row,) = [row for row in table_rows(analogue.name, self.preset) if row.name == analogue.row]
            return Measured(self.row(row) * 100, f"ShapesWorld `ablate --table {analogue.name}`")
        if analogue.kind == "method":
            return Measured(self.method(analogue.name) * 100, f"ShapesWorld, {analogue.name} alone")
        if analogue.kind == "spread":
            values = [value * 100 for _, value in self.ablation(analogue.name)]
            return Measured((min(values), max(values)), f"ShapesWorld, {len(values)} settings")
        raise ValueError(f"unknown analogue kind {analogue.kind!r}")


def _start_worker() -> None:
    import signal

    import torch

    # Ctrl-C reaches every process of the terminal's group: the main process ends the pool, quietly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


_WORKER_MODELS: list = []  # a worker process loads the ShapesWorld CLIP once for all its jobs


def _measure_job(kind: str, job, n: int, seed: int):
    """One :meth:`WorldRuns.prefetch` job, in a worker process: a headline variant (its report) or a row (mIoU)."""
    variants = (job,) if kind == "variant" else HEADLINE
    runs = WorldRuns(n, seed=seed, variants=variants, models=_WORKER_MODELS[0] if _WORKER_MODELS else None)
    if not _WORKER_MODELS:
        _WORKER_MODELS.append(runs.models)
    return runs.headline() if kind == "variant" else runs.row(job)


def _merge_reports(n: int, reports: dict):
    """One report from single-variant ones; keep and drop rates and steps are ``car_crf``'s, as in one run."""
    from carlib.evaluation.shapesworld import CarWorldReport

    merged = CarWorldReport(scenes=n)
    for name, report in reports.items():
        merged.miou[name] = report.miou[name]
        merged.per_class_iou[name] = report.per_class_iou[name]
    source = reports.get("car_crf") or next(iter(reports.values()))
    merged.present_kept, merged.absent_dropped = source.present_kept, source.absent_dropped
    merged.mean_steps, merged.seconds_per_scene = source.mean_steps, source.seconds_per_scene
    return merged


def world_numbers(table: PaperTable, runs: WorldRuns) -> dict[str, Measured]:
    """Our ShapesWorld number for every row of ``table`` that has an analogue."""
    return {
        row.label: runs.measure(row.world) if row.world else Measured(source="no ShapesWorld analogue")
        for row in table.rows
    }


# --- the report ---------------------------------------------------------------------------------------------


@dataclass
class Report:
    """A table's report: published beside ours, as markdown and as a JSON-ready dict."""

    table: PaperTable
    ours: dict[str, Measured]
    source: str
    commands: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [
            f"### {heading(self.table)}: {self.table.title}",
            "",
            f"Ours: {self.source}.",
            "",
            "| row | published % | ours % | ours from |",
            "|---|---|---|---|",
        ]
        for row in self.table.rows:
            measured = self.ours.get(row.label, Measured())
            decimals = published_decimals(row.published) if row.published is not None else 1
            lines.append(
                f"| {row.label} | {format_number(row.published, decimals)} | {format_number(measured.value)} "
                f"| {measured.source} |"
            )
        for note in (*self.table.notes, *((self.table.world_note,) if self.table.world_note else ())):
            lines += ["", f"- {note}"]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict:
        def plain(value):
            return list(value) if isinstance(value, tuple) else value

        return {
            "table": self.table.number,
            "title": self.table.title,
            "source": self.source,
            "commands": self.commands,
            "rows": [
                {
                    "label": row.label,
                    "method": row.method,
                    "published": plain(row.published),
                    "ours": plain(self.ours.get(row.label, Measured()).value),
                    "ours_from": self.ours.get(row.label, Measured()).source,
                }
                for row in self.table.rows
            ],
        }


def listing(table: PaperTable, **values: str | None) -> str:
    """What a table needs, as markdown: commands, datasets (with their docs), weights."""
    import shlex

    lines = [f"### {heading(table)}: {table.title}", "", "Commands:", "", "```"]
    lines += ["carlib " + shlex.join(fill(command, **values)) for command in table.commands()] or ["(none)"]
    lines += [
        "```",
        "",
        "Datasets: " + ", ".join(f"`{name}` ({DATASET_DOCS.get(name, 'docs/datasets.md')})" for name in table.presets),
        "",
        "Weights:",
    ]
    lines += [f"- {line}" for line in weights_needed(table)]
    if table.world_note:
        lines += ["", f"Offline, on ShapesWorld: {table.world_note}"]
    unmeasured = [row for row in table.rows if row.command is None and row.method == "CaR"]
    if unmeasured:
        lines += [
            "",
            "Published but not run by carlib: " + "; ".join(f"{row.label} ({row.note})" for row in unmeasured),
        ]
    others: dict[bool, dict[str, int]] = {True: {}, False: {}}
    for row in table.rows:
        if row.method != "CaR":
            counts = others[row.command is not None]
            counts[row.method] = counts.get(row.method, 0) + 1
    if others[True]:
        lines += [
            "",
            "Other methods' published numbers, measured by carlib running the method alone (`--method`): "
            + ", ".join(f"{method} ({count})" for method, count in others[True].items()),
        ]
    if others[False]:
        lines += [
            "",
            "Other methods' published numbers, kept for comparison and not run: "
            + ", ".join(f"{method} ({count})" for method, count in others[False].items()),
        ]
    return "\n".join(lines) + "\n"


def heading(table: PaperTable) -> str:
    """``Table N`` for the paper's tables, ``Other methods`` for :data:`METHODS_TABLE`."""
    return f"Table {table.number}" if table.number in TABLE_NUMBERS else "Other methods"
