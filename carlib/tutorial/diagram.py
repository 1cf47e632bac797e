"""The CaR pipeline as one picture, for the quick-start notebook.

The stages are data (:data:`PIPELINE_STAGES`), so the diagram, its test and
the notebook's text name them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

DIAGRAM_DPI = 110
"""Rendered resolution, the notebooks' (at least 110 so the 10 pt labels stay readable; 1081 px wide, within 1100)."""

LABEL_POINTS = 10

PIPELINE_STAGES: tuple[tuple[str, str], ...] = (
    ("image + words", "the picture and the\nquery words"),
    ("Grad-CAM proposals", "CLIP ViT-B/16: one heat\nmap per word (nb 01)"),
    ("CLIP-ES refinement", "attention affinity\nsharpens each map (nb 02)"),
    ("visual prompts", "each map cut at η, drawn\non the image (nb 03)"),
    ("CLIP classifier", "CLIP ViT-L/14 scores every\nprompt against the words"),
    ("keep P[i,i] > θ", "a word survives if its own\nprompt scores above θ"),
    ("dense CRF / SAM", "the final masks follow\nthe image's edges (nb 06)"),
)
"""(name, one-line explanation) of each stage, in order; the recurrence loops from the keep rule back to Grad-CAM."""

LOOP_LABEL = "repeat with the surviving words until the set is stable (nb 04)"

_COLOURS = {"input": "#dbe9f6", "stage": "#fdf1d6", "decision": "#e3f4dd", "output": "#ecdff5"}


def _kind(index: int, count: int) -> str:
    if index == 0:
        return "input"
    if index == count - 1:
        return "output"
    return "decision" if index == count - 2 else "stage"


def pipeline_diagram(
    stages: Sequence[tuple[str, str]] = PIPELINE_STAGES, *, loop_label: str = LOOP_LABEL, dpi: int = DIAGRAM_DPI
) -> Figure:
    """Draw the stages left to right in two rows, with the recurrence as an arrow back to the proposals.

    Arguments:
        stages: (name, explanation) pairs; the second one is where the loop returns,
            the second to last is where it leaves.
        loop_label: text on the loop arrow.
        dpi: figure resolution (>= 110 for a readable notebook figure).

    Returns:
        a matplotlib Figure (not attached to pyplot, so it is not shown twice).
    """
    if len(stages) < 4:
        raise ValueError(
            f"a pipeline diagram needs at least 4 stages (input, proposal, decision, output), got {len(stages)}"
        )
    if dpi < 110:
        raise ValueError(f"dpi {dpi} is too low to read; use at least 110")
    count = len(stages)
    top = (count + 1) // 2
    box_w, box_h, gap_x = 2.6, 1.35, 0.7
    width = top * box_w + (top - 1) * gap_x + 0.6
    figure = Figure(figsize=(width * 0.75, 4.6), dpi=dpi)
    axis = figure.add_axes((0, 0, 1, 1))
    axis.set_xlim(0, width)
    axis.set_ylim(0.9, 6.9)
    axis.axis("off")

    # Top row left to right, bottom row right to left: the reading order stays a continuous line.
    centres = []
    for index in range(count):
        if index < top:
            centres.append((0.3 + box_w / 2 + index * (box_w + gap_x), 5.0))
        else:
            column = top - 1 - (index - top)
            centres.append((0.3 + box_w / 2 + column * (box_w + gap_x), 1.9))
    for index, ((name, explanation), (x, y)) in enumerate(zip(stages, centres, strict=True)):
        axis.add_patch(
            FancyBboxPatch(
                (x - box_w / 2, y - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.05",
                facecolor=_COLOURS[_kind(index, count)],
                edgecolor="#444444",
                linewidth=1.2,
            )
        )
        axis.text(x, y + 0.33, name, ha="center", va="center", fontsize=LABEL_POINTS + 1, fontweight="bold")
        axis.text(x, y - 0.25, explanation, ha="center", va="center", fontsize=LABEL_POINTS - 1, linespacing=1.1)

    def arrow(start, end, **style):
        axis.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-|>",
                mutation_scale=16,
                linewidth=1.4,
                color=style.pop("color", "#333333"),
                **style,
            )
        )

    for index in range(count - 1):
        (x0, y0), (x1, y1) = centres[index], centres[index + 1]
        if y0 == y1:
            step = box_w / 2 + 0.05
            direction = 1 if x1 > x0 else -1
            arrow((x0 + direction * step, y0), (x1 - direction * step, y1))
        else:
            arrow((x0, y0 - box_h / 2 - 0.05), (x1, y1 + box_h / 2 + 0.05))
    # The recurrence: from the keep rule (second to last) back up to the proposals (second).
    (lx, ly), (px, py) = centres[count - 2], centres[1]
    arrow(
        (lx - box_w / 2 + 0.3, ly + box_h / 2 + 0.05),
        (px + 0.3, py - box_h / 2 - 0.05),
        color="#b03030",
        connectionstyle="arc3,rad=-0.15",
        linestyle="--",
    )
    axis.text(
        (lx + px) / 2 + 0.9,
        3.45,
        loop_label,
        ha="center",
        va="center",
        fontsize=LABEL_POINTS,
        color="#b03030",
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5},
    )
    axis.text(
        width / 2,
        6.6,
        "CLIP as RNN: the same frozen CLIPs applied again and again to a shrinking set of words",
        ha="center",
        va="center",
        fontsize=LABEL_POINTS + 2,
    )
    return figure
