"""What an eval run folder ends with: ``metrics.json`` and ``report.md``, beside the published number.

The published numbers are read from the reproduce registry (:func:`carlib.evaluation.reproduce.published_for_run`),
the only place they are written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from carlib.dense_methods import METHOD_SPECS
from carlib.evaluation.registry import METHOD_SOURCES, EvalRun, published_for_run
from carlib.evaluation.tasks import EvalTask, VideoTask
from carlib.files import atomic_write_text

HEADLINE_METRIC = {"gres": "gIoU", "refdavis17": "J&F"}
"""The metric ``carlib eval`` prints and ``report.md`` leads with, where it is not mIoU."""

VIDEO_METRICS = ("J&F", "J", "F")


@dataclass
class EvalSummary:
    """What ``carlib eval`` measured."""

    preset: str
    split: str
    images: int
    metrics: dict
    errors: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    model_seconds: float = 0.0  # of ``seconds``, spent in the recurrences (model work)
    paper: float | None = None  # the published figure its headline is compared with (None: none published)

    @property
    def model_busy(self) -> float:
        """The fraction of the wall time the models were working (the rest: reading, CRF, writing not overlapped)."""
        return self.model_seconds / self.seconds if self.seconds else 0.0


def headline_metric(preset_name: str) -> str:
    """The metric a run of ``preset_name`` is summed up by (:data:`HEADLINE_METRIC`, else mIoU)."""
    return HEADLINE_METRIC.get(preset_name, "mIoU")


def count_unit(preset_name: str) -> str:
    """What ``carlib eval`` counts for a preset: frames (video, headline J&F), expressions (GRES) or images."""
    return {"J&F": "frames", "gIoU": "expressions"}.get(headline_metric(preset_name), "images")


def published_figures(run: EvalRun, semantic: bool) -> tuple[dict[str, float], float | None]:
    """The registry's published figures for a run (:func:`carlib.evaluation.registry.published_for_run`) and the
    one its headline metric is compared with (None where nothing is published).

    Arguments:
        semantic: a semantic benchmark (its published numbers do not depend on the split).
    """
    published = published_for_run(run, semantic)
    return published, published.get("headline", published.get(headline_metric(run.preset)))


def write_reports(
    out_dir: Path,
    summary: EvalSummary,
    task: EvalTask,
    run: EvalRun,
    published: dict[str, float],
    *,
    models_description: str,
    card: dict | None = None,
) -> None:
    """Write ``metrics.json`` (figures, published number, protocol card) and ``report.md`` into ``out_dir``.

    Arguments:
        summary: what was measured.
        task: the run's :class:`carlib.evaluation.tasks.EvalTask` (its report table; a video task's extra fields).
        run: the run's settings (:class:`carlib.evaluation.registry.EvalRun`).
        published: the registry's figures for it (:func:`published_figures`).
        models_description: the models, in words.
        card: the run's protocol card.
    """
    headline = headline_metric(summary.preset)
    paper = summary.paper
    video_fields = {}
    if isinstance(task, VideoTask):
        figures = {metric: published[metric] for metric in VIDEO_METRICS if metric in published}
        video_fields = task.report_fields(figures or None)
    method = run.method
    payload = {
        "method": method or "CaR",
        "preset": summary.preset,
        "split": summary.split,
        "images": summary.images,
        "errors": summary.errors,
        "seconds": round(summary.seconds, 2),
        "model_busy": round(summary.model_busy, 3),  # rank 0: share of its wall time in model work
        "models": models_description,
        "post": run.post,
        "split_by": run.split_by,
        "headline": headline,  # the metric paper_mIoU is compared with
        "paper_mIoU": paper,
        **({"paper_source": METHOD_SOURCES[method]} if method is not None else {}),
        **video_fields,
        **summary.metrics,
        "protocol": card,
    }
    atomic_write_text(json.dumps(payload, indent=2), out_dir / "metrics.json")
    ours = summary.metrics[headline] * 100
    title = "CaR" if method is None else f"{METHOD_SPECS[method].title} alone"
    lines = [
        f"# {title} on {summary.preset} ({summary.split})",
        "",
        f"- models: {models_description}",
        f"- {count_unit(summary.preset)}: {summary.images}; unreadable: {len(summary.errors)}",
        f"- **{headline}: {ours:.2f}%**"
        + (f" (paper: {paper:.2f}%)" if paper is not None else " (no published number)"),
        "",
        *task.report_lines(summary.metrics),
    ]
    if summary.errors:
        lines += ["", "## Unreadable samples", ""] + [f"- {e['id']}: {e['error']}" for e in summary.errors]
    atomic_write_text("\n".join(lines) + "\n", out_dir / "report.md")
