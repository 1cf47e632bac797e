"""Figures of each CaR stage, for the notebooks, the explorer and the saved pictures (``overlay.png``).

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot, so nothing is shown twice in a notebook and nothing changes the
session's backend; display it (a notebook does so when it is the cell's last
value) or ``figure.savefig(path)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from carlib.files import atomic_write
from carlib.images import fit_within
from carlib.labels import label_colours, overlay

OVERLAY_MAX_SIDE = 1200
"""Pictures are shrunk to this longer side before being drawn into the 600 px overlay figure."""

NOTEBOOK_DPI = 60
"""Figures in stored notebooks are drawn at this resolution to keep the repository small."""

HEATMAP = "jet"


def _grid(rows: int, cols: int, panel: float, extra_width: float = 0.0) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=(cols * panel + extra_width, rows * panel), dpi=NOTEBOOK_DPI, layout="constrained")
    axes = np.atleast_2d(figure.subplots(rows, cols, squeeze=False))
    for axis in axes.flat:
        axis.set_axis_off()
    return figure, axes


def show_images(
    images: Sequence[np.ndarray],
    titles: Optional[Sequence[str]] = None,
    *,
    cols: Optional[int] = None,
    panel: float = 2.2,
    cmap: Optional[str] = None,
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    suptitle: str = "",
) -> Figure:
    """Pictures (RGB, or 2-D maps drawn with ``cmap``) in a grid with titles."""
    count = len(images)
    if count == 0:
        raise ValueError("show_images needs at least one image")
    cols = cols or min(count, 5)
    rows = -(-count // cols)
    figure, axes = _grid(rows, cols, panel)
    for index, image in enumerate(images):
        axis = axes.flat[index]
        axis.imshow(image, cmap=cmap if np.ndim(image) == 2 else None, vmin=vmin, vmax=vmax)
        if titles is not None:
            axis.set_title(titles[index], fontsize=9)
    if suptitle:
        figure.suptitle(suptitle, fontsize=10)
    return figure


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """A [0, 1] map drawn with the jet colour map over an RGB image: H x W x 3 uint8."""
    from matplotlib import colormaps

    if heat.shape != image.shape[:2]:
        raise ValueError(f"heat map {heat.shape} and image {image.shape[:2]} differ in size")
    colours = colormaps[HEATMAP](np.clip(heat, 0, 1))[..., :3] * 255.0
    return ((1 - alpha) * image.astype(np.float32) + alpha * colours).round().astype(np.uint8)


def show_heatmaps(
    image: np.ndarray,
    maps: np.ndarray,
    titles: Sequence[str],
    *,
    cols: Optional[int] = None,
    panel: float = 2.2,
    suptitle: str = "",
    with_image: bool = True,
) -> Figure:
    """The image, then each N x H x W map in [0, 1] over it."""
    panels = [heat_overlay(image, m) for m in maps]
    names = list(titles)
    if with_image:
        panels.insert(0, image)
        names.insert(0, "image")
    return show_images(panels, names, cols=cols, panel=panel, suptitle=suptitle)


LEGEND_ENTRIES = 24
"""At most this many labels in a legend (the highest-scoring when scores are given), then "+ N more"."""


def _legend(axis, names: Sequence[str], labels: Sequence[int], scores: Optional[Sequence[float]]) -> None:
    labels = list(labels)
    hidden = 0
    if len(labels) > LEGEND_ENTRIES:
        if scores is not None:
            labels = sorted(labels, key=lambda label: -float(scores[label - 1]))
        hidden = len(labels) - LEGEND_ENTRIES
        labels = sorted(labels[:LEGEND_ENTRIES])
    colours = label_colours(np.asarray(labels, dtype=np.int64)) / 255.0
    handles = [
        Patch(color=colour, label=names[label - 1] + ("" if scores is None else f" ({scores[label - 1]:.2f})"))
        for label, colour in zip(labels, colours)
    ] or [Patch(color=(0, 0, 0), label="(nothing found)")]
    if hidden:
        handles.append(Patch(color=(1, 1, 1), label=f"+ {hidden} more labels"))
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)


def segmentation_figure(
    image: np.ndarray,
    label_map: np.ndarray,
    names: Sequence[str],
    *,
    title: str = "",
    scores: Optional[Sequence[float]] = None,
    size: float = 4.0,
    dpi: int = NOTEBOOK_DPI,
) -> Figure:
    """The label map (0 = background, i + 1 = ``names[i]``) over the image, with a legend."""
    height, width = label_map.shape
    figure = Figure(figsize=(size * width / max(height, width) + 2.0, size * height / max(height, width)), dpi=dpi,
                    layout="constrained")
    axis = figure.subplots()
    axis.imshow(overlay(image, label_map))
    axis.set_axis_off()
    _legend(axis, names, [int(v) for v in np.unique(label_map) if v > 0], scores)
    if title:
        axis.set_title(title, fontsize=9)
    return figure


def compare_segmentations(
    image: np.ndarray,
    label_maps: Sequence[np.ndarray],
    titles: Sequence[str],
    names: Sequence[str],
    *,
    panel: float = 2.6,
) -> Figure:
    """Several label maps of one image side by side, one shared legend."""
    figure, axes = _grid(1, len(label_maps), panel, extra_width=1.6)
    for axis, labels, title in zip(axes.flat, label_maps, titles):
        axis.imshow(overlay(image, labels))
        axis.set_title(title, fontsize=9)
    present = sorted({int(v) for labels in label_maps for v in np.unique(labels) if v > 0})
    _legend(axes.flat[-1], names, present, None)
    return figure


def trace_figure(image: np.ndarray, result, *, threshold: Optional[float] = None, panel: float = 1.8,
                 upto_step: Optional[int] = None) -> Figure:
    """The recurrence step by step: one row per step, one column per query.

    Each panel shows that step's proposal for the query over the image, and
    its classifier score; queries dropped at that step are titled in red,
    queries no longer alive are left blank.

    Arguments:
        image: the segmented image (H x W x 3 uint8).
        result: a :class:`carlib.CarResult`.
        threshold: θ, written in the title when given.
        panel: inches per panel.
        upto_step: draw only the first ``upto_step`` steps (the explorer's step slider).
    """
    steps = result.steps if upto_step is None else result.steps[: max(1, upto_step)]
    figure, axes = _grid(len(steps), len(result.queries), panel)
    for row, trace in enumerate(steps):
        for k, index in enumerate(trace.alive):
            axis = axes[row, index]
            axis.imshow(heat_overlay(image, trace.proposals[k]))
            dropped = index not in trace.kept
            axis.set_title(f"{result.queries[index]}: {trace.scores[k]:.2f}", fontsize=8,
                           color="red" if dropped else "black")
        axes[row, 0].text(-0.08, 0.5, f"step {trace.step}", transform=axes[row, 0].transAxes, rotation=90,
                          va="center", ha="right", fontsize=9)
    caption = "proposal per step, classifier score in the title (red: dropped)"
    if threshold is not None:
        caption += f"; θ = {threshold:g}"
    figure.suptitle(caption, fontsize=9)
    return figure


def step_figure(image: np.ndarray, result, step: int, *, threshold: Optional[float] = None,
                panel: float = 2.0) -> Figure:
    """One step of the recurrence: the final segmentation, then that step's proposals and scores.

    Arguments:
        image: the segmented image (H x W x 3 uint8).
        result: a :class:`carlib.CarResult`.
        step: 1-based step number (clamped to the steps that ran).
        threshold: θ, written in the title when given.
        panel: inches per panel.
    """
    trace = result.steps[min(max(step, 1), len(result.steps)) - 1]
    figure, axes = _grid(1, 1 + len(trace.alive), panel, extra_width=1.6)
    axes[0, 0].imshow(overlay(image, result.label_map))
    axes[0, 0].set_title("final segmentation", fontsize=9)
    _legend(axes[0, -1], result.queries, [int(v) for v in np.unique(result.label_map) if v > 0], None)
    for k, index in enumerate(trace.alive):
        axis = axes[0, 1 + k]
        axis.imshow(heat_overlay(image, trace.proposals[k]))
        axis.set_title(f"{result.queries[index]}: {trace.scores[k]:.2f}", fontsize=9,
                       color="black" if index in trace.kept else "red")
    caption = f"step {trace.step} of {len(result.steps)}: proposals and scores (red: dropped)"
    if threshold is not None:
        caption += f", θ = {threshold:.2f}"
    figure.suptitle(caption, fontsize=9)
    return figure


def scores_figure(result, threshold: float, *, width: float = 6.0) -> Figure:
    """Classifier scores of every query at every step, against θ (dropped queries fall below the line)."""
    figure = Figure(figsize=(width, 2.6), dpi=NOTEBOOK_DPI, layout="constrained")
    axis = figure.subplots()
    count = len(result.queries)
    bar = 0.8 / max(1, len(result.steps))
    for row, trace in enumerate(result.steps):
        values = np.full(count, np.nan)
        for k, index in enumerate(trace.alive):
            values[index] = trace.scores[k]
        axis.bar(np.arange(count) + row * bar, values, width=bar, label=f"step {trace.step}")
    axis.axhline(threshold, color="red", linestyle="--", linewidth=1, label=f"θ = {threshold:g}")
    axis.set_xticks(np.arange(count) + 0.4 - bar / 2, result.queries, rotation=30, ha="right", fontsize=8)
    axis.set_ylabel("score")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8, frameon=False, loc="upper right")
    return figure


def bar_figure(values: dict[str, float], *, ylabel: str = "mIoU", title: str = "", width: float = 5.0,
               reference: Optional[dict[str, float]] = None) -> Figure:
    """A labelled bar chart (e.g. mIoU per setting), with optional reference bars beside them."""
    figure = Figure(figsize=(width, 2.6), dpi=NOTEBOOK_DPI, layout="constrained")
    axis = figure.subplots()
    names = list(values)
    positions = np.arange(len(names))
    offset = 0.2 if reference else 0.0
    axis.bar(positions - offset, [values[n] for n in names], width=0.4 if reference else 0.6, label="ours")
    if reference:
        axis.bar(positions + offset, [reference.get(n, np.nan) for n in names], width=0.4, label="paper")
        axis.legend(fontsize=8, frameon=False)
    for x, name in zip(positions, names):
        axis.text(x - offset, values[name], f"{values[name]:.2f}", ha="center", va="bottom", fontsize=8)
    axis.set_xticks(positions, names, rotation=20, ha="right", fontsize=8)
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title, fontsize=9)
    return figure


def figure_png(figure: Figure) -> bytes:
    """A figure as PNG bytes, at the figure's own resolution."""
    from io import BytesIO

    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    return buffer.getvalue()


def enable_notebook_display() -> bool:
    """Let IPython show pyplot-free figures as PNG; True when running under IPython.

    The figures here are built without pyplot (so they are never shown twice
    and never switch the backend), and IPython only knows how to draw pyplot's
    once ``%matplotlib inline`` has run; this registers the PNG formatter directly.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)
    return True


def matrix_figure(
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    vmin: Optional[float] = 0.0,
    vmax: Optional[float] = 1.0,
    cell: float = 0.5,
    cmap: str = "viridis",
) -> Figure:
    """A labelled R x C matrix as a heat map with each value written in its cell (2 decimals).

    For small tables of numbers such as CaR's classifier matrix (prompted image
    x query, :attr:`carlib.StepTrace.classifier`) or a score per setting and query.
    ``cell`` is inches per cell; NaN cells are left blank.
    """
    values = np.asarray(matrix, dtype=float)
    if values.ndim != 2 or values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"matrix {values.shape} does not match {len(row_labels)} row and {len(col_labels)} column labels")
    rows, cols = values.shape
    label_width = 0.4 + 0.075 * max((len(str(label)) for label in row_labels), default=0)  # y tick labels
    width = max(cols * cell + label_width + 0.6, 0.075 * len(title) + label_width)  # room for the title
    figure = Figure(figsize=(width, rows * cell + 1.0), dpi=NOTEBOOK_DPI, layout="constrained")
    axis = figure.subplots()
    axis.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    low = np.nanmin(values) if vmin is None else vmin
    high = np.nanmax(values) if vmax is None else vmax
    middle = (low + high) / 2
    for (row, col), value in np.ndenumerate(values):
        if np.isfinite(value):
            axis.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=8,
                      color="black" if value > middle else "white")
    axis.set_xticks(np.arange(cols), list(col_labels), rotation=30, ha="right", fontsize=8)
    axis.set_yticks(np.arange(rows), list(row_labels), fontsize=8)
    axis.set_xlabel(xlabel, fontsize=9)
    axis.set_ylabel(ylabel, fontsize=9)
    if title:
        axis.set_title(title, fontsize=9)
    return figure


def line_figure(
    series: dict[str, Sequence[float]],
    *,
    x: Optional[Sequence[float]] = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    log_y: bool = False,
    width: float = 4.0,
) -> Figure:
    """Curves over a shared x axis, one labelled line per entry of ``series`` (e.g. an error per iteration).

    ``x`` defaults to 0, 1, 2...; ``log_y`` draws the y axis on a log scale
    (values that are not positive are left out there).
    """
    figure = Figure(figsize=(width, 2.6), dpi=NOTEBOOK_DPI, layout="constrained")
    axis = figure.subplots()
    for label, values in series.items():
        values = np.asarray(values, dtype=float)
        positions = np.arange(len(values)) if x is None else np.asarray(x, dtype=float)
        if log_y:
            values = np.where(values > 0, values, np.nan)
        axis.plot(positions, values, marker="o", markersize=3, label=label)
    if log_y:
        axis.set_yscale("log")
    axis.set_xlabel(xlabel, fontsize=9)
    axis.set_ylabel(ylabel, fontsize=9)
    axis.legend(fontsize=8, frameon=False)
    if title:
        axis.set_title(title, fontsize=9)
    return figure


def save_overlay_figure(
    image: np.ndarray,
    label_map: np.ndarray,
    names: Sequence[str],
    path: Path,
    *,
    title: str = "",
    scores: Sequence[float] | None = None,
) -> Path:
    """Save the image with its label map and a legend of the labels present.

    Arguments:
        image: HxWx3 uint8 RGB.
        label_map: H x W int, 0 = background, i + 1 = names[i].
        names: the query names.
        path: PNG path (written atomically).
        title: figure title.
        scores: optional per-name scores shown in the legend.

    Returns:
        ``path``.
    """
    # The figure is 600 px wide: drawing a 12 MP photo into it would only cost time and memory.
    shown = fit_within(np.asarray(image), OVERLAY_MAX_SIDE)
    if shown.shape[:2] != label_map.shape:
        label_map = cv2.resize(label_map.astype(np.int32), shown.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    figure = segmentation_figure(shown, label_map, names, title=title, scores=scores, size=6.0, dpi=100)
    return atomic_write(lambda target: figure.savefig(target, format="png", dpi=100), Path(path))
