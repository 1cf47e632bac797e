"""Figures of each CaR stage, for the notebooks, the explorer and the saved pictures (``overlay.png``).

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot, so nothing is shown twice in a notebook and nothing changes the
session's backend; display it (a notebook does so when it is the cell's last
value) or ``figure.savefig(path)``.

Readability rules, shared by every figure (they are what the tests check):

- drawn at :data:`NOTEBOOK_DPI` with fonts of at least :data:`SMALL_FONT` pt
  (13 px at that resolution); a panel is never smaller than
  :data:`MIN_PANEL` inches, and a figure is at most :data:`MAX_WIDTH` inches
  wide (1100 px: a notebook column of about 900 px shows it at 80 % or more),
  so grids wrap into rows (:func:`grid_columns`) instead of growing wider;
- heat maps (CAMs, proposals, affinities) are drawn in :data:`HEATMAP`
  (inferno, perceptually uniform: brightness follows the value) over a grey
  copy of the picture, and carry a colourbar: :func:`heat_overlay` marks its
  picture as a :class:`HeatOverlay`, so :func:`show_images` adds the
  colourbar by itself;
- a label map is always drawn beside the input picture, over a grey copy of
  the picture with each region outlined (:func:`label_picture`), and every
  class name has one colour in every figure of the series and the explorer
  (:func:`class_colours`, :data:`CLASS_COLOURS`): "orange" is the same blue
  in notebook 00, in notebook 06 and in the explorer, whatever its position in
  the query list. ShapesWorld's objects and backgrounds between them use nearly
  every hue, so no palette can avoid them all: taking the colour out of the
  picture under the labels is what makes a colour in that panel mean a label,
  and only a label; the outlines separate neighbouring regions whose colours
  are close. Pure red is left out of the palette, as it is the colour CaR
  draws its visual prompts with;
- legends sit outside the axes they describe (in an otherwise empty panel of
  the grid when there is one);
- small pictures are enlarged without smoothing, so a one-pixel prompt line
  stays a solid line; :func:`outline_thickness` gives the line width (in
  image pixels) that shows at least :data:`OUTLINE_PIXELS` screen pixels.

Stored notebooks hold their figures as PNG (:func:`figure_png`, RGB).
"""

from __future__ import annotations

import hashlib
import math
import textwrap
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from carlib.files import atomic_write
from carlib.images import fit_within
from carlib.labels import label_colours, overlay

OVERLAY_MAX_SIDE = 1200
"""Pictures are shrunk to this longer side before being drawn into the 600 px overlay figure."""

NOTEBOOK_DPI = 110
"""Figures in notebooks are drawn at this resolution: 1 pt of font is 1.5 px."""

TITLE_FONT = 11
"""Point size of titles (17 px at :data:`NOTEBOOK_DPI`)."""

FONT = 10
"""Point size of axis labels and captions."""

SMALL_FONT = 9
"""Point size of tick labels, legends and numbers in cells: the smallest text drawn (13.75 px)."""

MIN_PANEL = 2.3
"""Inches per picture panel at least (253 px at :data:`NOTEBOOK_DPI`, over 200 px of picture under its title)."""

MAX_WIDTH = 10.0
"""Widest figure in inches (1100 px at :data:`NOTEBOOK_DPI`): grids wrap into rows rather than grow past it."""

COLOURBAR_WIDTH = 0.8
"""Inches a colourbar with its ticks and label takes beside a grid of panels."""

OUTLINE_PIXELS = 3
"""Screen pixels a prompt or region outline should be at least, at the displayed size."""

HEATMAP = "inferno"
"""Colour map of every heat map: perceptually uniform, dark at 0 and bright at 1, so brightness reads as the value."""

HEAT_ALPHA = 0.55
"""Opacity of the heat colours over the grey picture (the picture stays readable under a map)."""

DIFFERENCE_MAP = "RdBu_r"
"""Colour map of the signed difference of two maps (white at 0, red above, blue below): :func:`difference_overlay`."""

LEGEND_ENTRIES = 24
"""At most this many labels in a legend (the highest-scoring when scores are given), then "+ N more"."""

LABEL_PALETTE = np.array(
    [
        (31, 119, 180),
        (44, 160, 44),
        (23, 190, 207),
        (148, 103, 189),
        (188, 189, 34),
        (227, 119, 194),
        (140, 86, 75),
        (152, 223, 138),
        (174, 199, 232),
        (197, 176, 213),
        (219, 219, 141),
        (247, 182, 210),
        (196, 156, 148),
        (158, 218, 229),
        (255, 187, 120),
        (255, 127, 14),
    ],
    dtype=np.uint8,
)
"""The tutorial's label colours: matplotlib's tab10 and tab20 without red and grey (16 colours).

Red is the visual prompts' colour; grey is the picture under the labels.
:func:`class_colours` hands them out by class name; regions that are not
classes (a region source's regions) take them by label number
(:func:`tutorial_label_colours`). Labels past the palette take
:func:`carlib.labels.label_colours` (the VOC rule), so hundreds of queries
still get distinct colours.
"""

CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "orange": (31, 119, 180),  # blue
    "lemon": (148, 103, 189),  # purple
    "starfish": (44, 160, 44),  # green
    "kite": (188, 189, 34),  # olive
    "tent": (227, 119, 194),  # pink
    "wheel": (140, 86, 75),  # brown
    "balloon": (23, 190, 207),  # cyan
    "dice": (152, 223, 138),  # light green
}
"""The colour of each ShapesWorld class in every figure of the series and the explorer.

Eight different entries of :data:`LABEL_PALETTE`, each far from its own
object's colour (an orange labelled "orange" never looks like the unlabelled
orange) and none of them orange, so no class is painted the colour of another
class's name. The default words of the notebooks (orange, starfish, balloon)
take the palette's first three, hues no ShapesWorld object has.
"""

GREY_LIGHTEN = 0.35
"""The grey picture under a label map is pulled this far towards white, so the labels' colours stand out."""

LABEL_ALPHA = 0.65
"""Opacity of a label's colour over the grey picture."""


class HeatOverlay(np.ndarray):
    """An RGB picture (H x W x 3 uint8) whose colours are :data:`HEATMAP` on [0, 1]: :func:`show_images` adds its
    colourbar.

    A plain ndarray otherwise (a view: no copy, equal to the array it wraps).
    """


def grey_picture(image: np.ndarray, lighten: float = 0.0) -> np.ndarray:
    """The picture's luminance (H x W float32 in [0, 255]), pulled ``lighten`` of the way towards white."""
    grey = cv2.cvtColor(np.ascontiguousarray(image[..., :3], dtype=np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return grey + lighten * (255.0 - grey)


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = HEAT_ALPHA) -> HeatOverlay:
    """A [0, 1] map in :data:`HEATMAP` over a grey copy of an RGB image: H x W x 3 uint8, marked as a heat map.

    The picture is drawn in grey so that every colour in the panel is the map's
    (a colour picture under a colour map mixes the two).

    Arguments:
        image: H x W x 3 uint8 RGB.
        heat: H x W map, clipped to [0, 1].
        alpha: opacity of the map's colours.
    """
    if heat.shape != image.shape[:2]:
        raise ValueError(f"heat map {heat.shape} and image {image.shape[:2]} differ in size")
    colours = colormaps[HEATMAP](np.clip(heat, 0, 1))[..., :3] * 255.0
    blended = (1 - alpha) * grey_picture(image)[..., None] + alpha * colours
    return blended.round().astype(np.uint8).view(HeatOverlay)


def difference_overlay(image: np.ndarray, difference: np.ndarray, alpha: float = HEAT_ALPHA) -> np.ndarray:
    """A signed map in [-1, 1] (one map minus another) in :data:`DIFFERENCE_MAP` over a grey copy of the picture.

    Draw it with ``show_images(..., colourbar=True, cmap=DIFFERENCE_MAP, vmin=-1, vmax=1)`` so the colourbar
    gives the scale. Returns H x W x 3 uint8.
    """
    if difference.shape != image.shape[:2]:
        raise ValueError(f"difference map {difference.shape} and image {image.shape[:2]} differ in size")
    colours = colormaps[DIFFERENCE_MAP]((np.clip(difference, -1, 1) + 1) / 2)[..., :3] * 255.0
    return ((1 - alpha) * grey_picture(image)[..., None] + alpha * colours).round().astype(np.uint8)


def tutorial_label_colours(labels: np.ndarray) -> np.ndarray:
    """The colour of each label number (any shape of non-negative ints), for regions that are not classes:
    ... x 3 uint8; 0 is black.

    Labels 1..16 take :data:`LABEL_PALETTE`, later ones the VOC rule. Class
    label maps are coloured by name instead (:func:`class_colours`).
    """
    labels = np.asarray(labels, dtype=np.int64)
    colours = label_colours(labels)
    listed = (labels >= 1) & (labels <= len(LABEL_PALETTE))
    colours[listed] = LABEL_PALETTE[labels[listed] - 1]
    return colours


def _name_slot(name: str) -> int:
    """A palette position that depends on the name alone (a stable hash, not Python's salted one)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=4).digest(), "big") % len(LABEL_PALETTE)


def class_colours(names: Sequence[str]) -> np.ndarray:
    """The colour of each class name, the same in every figure of the tutorial and the explorer: N x 3 uint8.

    ShapesWorld's classes take :data:`CLASS_COLOURS`. Any other name (real
    CLIP's words) takes the palette colour its name hashes to, so it too keeps
    its colour from one figure to the next; when two names of one call want
    the same colour, the later one takes the next colour no other name of the
    call has. Past the palette's 16 colours, a name takes the VOC colour of its
    position (hundreds of queries stay distinct). Call this wherever a class
    is drawn, so a new figure keeps the series' colours.

    Arguments:
        names: the class names, e.g. a query list (label ``i + 1`` is ``names[i]``).

    Returns:
        N x 3 uint8 RGB.
    """
    names = list(names)
    colours = np.zeros((len(names), 3), dtype=np.uint8)
    fixed = {tuple(colour) for colour in CLASS_COLOURS.values()}
    palette = [(int(red), int(green), int(blue)) for red, green, blue in LABEL_PALETTE]  # N x 3
    taken: set[tuple[int, int, int]] = {CLASS_COLOURS[name] for name in names if name in CLASS_COLOURS}
    for index, name in enumerate(names):
        if name in CLASS_COLOURS:
            colours[index] = CLASS_COLOURS[name]
            continue
        start = _name_slot(name)
        # ShapesWorld's colours are tried last, so a real word rarely looks like a ShapesWorld class.
        order = [palette[(start + step) % len(palette)] for step in range(len(palette))]
        order = [c for c in order if c not in fixed] + [c for c in order if c in fixed]
        free = next((colour for colour in order if colour not in taken), None)
        if free is None:
            colours[index] = label_colours(np.array([len(LABEL_PALETTE) + index + 1]))[0]
        else:
            colours[index] = free
            taken.add(free)
    return colours


def outline_thickness(
    image: np.ndarray, panel: float = MIN_PANEL, *, dpi: float = NOTEBOOK_DPI, pixels: int = OUTLINE_PIXELS
) -> int:
    """Line thickness in image pixels that shows at least ``pixels`` screen pixels once the picture is drawn.

    For :func:`carlib.apply_visual_prompts`'s ``thickness`` when illustrating
    prompts (say so in the text: the classifier's own prompts are drawn with
    the preset's thickness), and for region outlines. A picture drawn in a panel
    of ``panel`` inches at ``dpi`` is about ``0.85 * panel * dpi`` pixels along its
    longer side (the rest is the panel's title).

    Arguments:
        image: the picture (H x W [x 3]); only its size is used.
        panel: inches of the panel it is drawn in.
        dpi: the figure's resolution.
        pixels: the wanted screen thickness.
    """
    if panel <= 0 or dpi <= 0 or pixels <= 0:
        raise ValueError(f"panel ({panel}), dpi ({dpi}) and pixels ({pixels}) must be positive")
    shown = 0.85 * panel * dpi
    return max(1, math.ceil(pixels * max(np.shape(image)[:2]) / shown))


def label_picture(
    image: np.ndarray, label_map: np.ndarray, *, names: Sequence[str] | None = None, thickness: int = 1
) -> np.ndarray:
    """A label map drawn over a grey copy of the picture, each region outlined: H x W x 3 uint8.

    Background (0) shows the grey picture; label ``l`` is blended at
    :data:`LABEL_ALPHA` in the colour of its class ``names[l - 1]``
    (:func:`class_colours`), or, without ``names``, in the colour of its number
    (:func:`tutorial_label_colours`, for regions that are not classes); pixels
    where the label changes are drawn black, ``thickness`` image pixels wide
    (:func:`outline_thickness`).

    Arguments:
        image: H x W x 3 uint8 RGB.
        label_map: H x W int, 0 = background, ``l`` = ``names[l - 1]``.
        names: the class of each label; None colours labels by number.
        thickness: outline width in image pixels.
    """
    label_map = np.asarray(label_map)
    if label_map.shape != image.shape[:2]:
        raise ValueError(f"label map {label_map.shape} and image {image.shape[:2]} differ in size")
    labels = np.maximum(label_map, 0).astype(np.int64)
    drawn = np.repeat(grey_picture(image, GREY_LIGHTEN)[..., None], 3, axis=2)
    painted = labels > 0
    if names is None:
        colours = tutorial_label_colours(labels).astype(np.float32)
    else:
        if labels.max(initial=0) > len(names):
            raise ValueError(f"label {labels.max()} has no name: only {len(names)} names given")
        lookup = np.concatenate([np.zeros((1, 3), dtype=np.uint8), class_colours(names)]).astype(np.float32)
        colours = lookup[labels]
    drawn[painted] = (1 - LABEL_ALPHA) * drawn[painted] + LABEL_ALPHA * colours[painted]
    edges = np.zeros(label_map.shape, dtype=bool)
    edges[:, 1:] |= label_map[:, 1:] != label_map[:, :-1]
    edges[1:, :] |= label_map[1:, :] != label_map[:-1, :]
    if thickness > 1:
        edges = cv2.dilate(edges.astype(np.uint8), np.ones((thickness, thickness), np.uint8)).astype(bool)
    drawn[edges] = 0.0
    return drawn.round().astype(np.uint8)


def grid_columns(count: int, cols: int | None = None, *, extra_width: float = 0.0) -> int:
    """Panels per row for ``count`` panels, so the row fits :data:`MAX_WIDTH` at :data:`MIN_PANEL` per panel.

    Given ``cols`` is kept (a caller that needs a row per something may ask
    for a wider figure); without it, the fewest rows that fit, and among
    those the fewest empty panels (5 panels: 3 + 2, not 4 + 1).

    Arguments:
        count: panels to place (at least 1).
        cols: wanted panels per row, or None.
        extra_width: inches beside the panels (a colourbar: :data:`COLOURBAR_WIDTH`).
    """
    if cols:
        return max(1, min(cols, count))
    return min(
        range(1, min(count, max_columns(extra_width)) + 1), key=lambda c: (-(-count // c), -(-count // c) * c - count)
    )


def max_columns(extra_width: float = 0.0) -> int:
    """How many :data:`MIN_PANEL` panels fit in a row of :data:`MAX_WIDTH` beside ``extra_width`` inches."""
    return max(1, int((MAX_WIDTH - extra_width) / MIN_PANEL + 1e-9))


def _panel_inches(panel: float, cols: int, extra_width: float = 0.0) -> float:
    """``panel`` raised to :data:`MIN_PANEL`, and shrunk so ``cols`` panels fit :data:`MAX_WIDTH` where that allows."""
    return max(MIN_PANEL, min(panel, (MAX_WIDTH - extra_width) / max(cols, 1)))


def _grid(
    rows: int,
    cols: int,
    panel: float,
    extra_width: float = 0.0,
    *,
    count: int | None = None,
    dpi: float = NOTEBOOK_DPI,
    extra_height: float = 0.0,
) -> tuple[Figure, np.ndarray]:
    """A rows x cols grid of bare axes; with ``count``, the axes past it are removed from the figure."""
    figure = Figure(figsize=(cols * panel + extra_width, rows * panel + extra_height), dpi=dpi, layout="constrained")
    axes = np.atleast_2d(figure.subplots(rows, cols, squeeze=False))
    for index, axis in enumerate(axes.flat):
        axis.set_axis_off()
        if count is not None and index >= count:
            axis.remove()
    return figure, axes


def _interpolation(image: np.ndarray, panel: float, dpi: float) -> str:
    """Enlarge without smoothing (lines stay solid, pixels honest); shrink with antialiasing."""
    return "nearest" if max(np.shape(image)[:2]) <= panel * dpi else "antialiased"


def _colourbar(
    figure: Figure, axes: Sequence, label: str, *, cmap: str = HEATMAP, vmin: float = 0.0, vmax: float = 1.0
) -> None:
    bar = figure.colorbar(
        ScalarMappable(Normalize(vmin, vmax), colormaps[cmap]), ax=list(axes), shrink=0.9, aspect=15, pad=0.02
    )
    bar.set_label(label, fontsize=FONT)
    bar.ax.tick_params(labelsize=SMALL_FONT)
    bar.ax.set_label("colourbar")


def show_images(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    *,
    cols: int | None = None,
    panel: float = 2.2,
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    suptitle: str = "",
    colourbar: bool | None = None,
    colourbar_label: str = "map value",
    dpi: float = NOTEBOOK_DPI,
) -> Figure:
    """Pictures (RGB, or 2-D maps drawn with ``cmap``) in a grid with titles.

    Arguments:
        images: the pictures; :class:`HeatOverlay` ones (from :func:`heat_overlay`) are heat maps.
        titles: one per picture.
        cols: panels per row (default: :func:`grid_columns`, at most 4 so the figure fits :data:`MAX_WIDTH`).
        panel: inches per panel (raised to :data:`MIN_PANEL`; shrunk towards :data:`MAX_WIDTH` per row).
        cmap, vmin, vmax: how 2-D maps are drawn.
        suptitle: the figure's title.
        colourbar: None (default) adds a :data:`HEATMAP` colourbar on [0, 1] when any picture is a
            :class:`HeatOverlay`; True adds one anyway (for 2-D maps: ``cmap`` on ``vmin``..``vmax``,
            default [0, 1]); False never. Binary masks want False.
        colourbar_label: what the colourbar measures.
        dpi: the figure's resolution.
    """
    count = len(images)
    if count == 0:
        raise ValueError("show_images needs at least one image")
    if titles is not None and len(titles) != count:
        raise ValueError(f"show_images got {count} images but {len(titles)} titles")
    heat = any(isinstance(image, HeatOverlay) for image in images)
    bar = bool(colourbar or (colourbar is None and heat))
    extra = COLOURBAR_WIDTH if bar else 0.0
    cols = grid_columns(count, cols, extra_width=extra)
    rows = -(-count // cols)
    panel = _panel_inches(panel, cols, extra)
    figure, axes = _grid(rows, cols, panel, extra, count=count, dpi=dpi)
    for index, image in enumerate(images):
        axis = axes.flat[index]
        axis.set_label("heat" if isinstance(image, HeatOverlay) else "image")
        axis.imshow(
            np.asarray(image),
            cmap=cmap if np.ndim(image) == 2 else None,
            vmin=vmin,
            vmax=vmax,
            interpolation=_interpolation(image, panel, dpi),
        )
        if titles is not None:
            axis.set_title(titles[index], fontsize=FONT)
    if bar:
        shown = list(axes.flat[:count])
        if heat:
            _colourbar(figure, shown, colourbar_label)
        else:
            _colourbar(
                figure,
                shown,
                colourbar_label,
                cmap=cmap or "viridis",
                vmin=0.0 if vmin is None else vmin,
                vmax=1.0 if vmax is None else vmax,
            )
    if suptitle:
        figure.suptitle(suptitle, fontsize=TITLE_FONT)
    return figure


def show_heatmaps(
    image: np.ndarray,
    maps: np.ndarray,
    titles: Sequence[str],
    *,
    cols: int | None = None,
    panel: float = 2.2,
    suptitle: str = "",
    with_image: bool = True,
    colourbar_label: str = "map value",
) -> Figure:
    """The image (unless ``with_image`` is False), then each N x H x W map in [0, 1] over it, with a colourbar."""
    panels: list[np.ndarray] = [heat_overlay(image, m) for m in maps]
    names = list(titles)
    if with_image:
        panels.insert(0, image)
        names.insert(0, "image")
    return show_images(panels, names, cols=cols, panel=panel, suptitle=suptitle, colourbar_label=colourbar_label)


def _legend_handles(
    names: Sequence[str], labels: Sequence[int], scores: Sequence[float] | None, palette: str
) -> list[Patch]:
    labels = list(labels)
    hidden = 0
    if len(labels) > LEGEND_ENTRIES:
        if scores is not None:
            labels = sorted(labels, key=lambda label: -float(scores[label - 1]))
        hidden = len(labels) - LEGEND_ENTRIES
        labels = sorted(labels[:LEGEND_ENTRIES])
    chosen = np.asarray(labels, dtype=np.int64)
    if palette == "tutorial":
        colours = class_colours(names)[chosen - 1] / 255.0 if len(chosen) else np.zeros((0, 3))
    else:
        colours = label_colours(chosen) / 255.0
    handles = [
        Patch(
            facecolor=colour,
            edgecolor="black",
            linewidth=0.8,
            label=names[label - 1] + ("" if scores is None else f" ({scores[label - 1]:.2f})"),
        )
        for label, colour in zip(labels, colours, strict=True)
    ] or [Patch(color=(0, 0, 0), label="(nothing found)")]
    if hidden:
        handles.append(Patch(color=(1, 1, 1), label=f"+ {hidden} more labels"))
    return handles


def _legend(
    axis, names: Sequence[str], labels: Sequence[int], scores: Sequence[float] | None, palette: str = "tutorial"
) -> None:
    """The labels' legend to the right of ``axis``, outside it."""
    axis.legend(
        handles=_legend_handles(names, labels, scores, palette),
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize=SMALL_FONT,
        frameon=False,
    )


def _figure_legend(figure: Figure, handles: list[Patch]) -> None:
    """A legend under the whole figure, outside every axes."""
    figure.legend(
        handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=SMALL_FONT, frameon=False
    )


def _slot_legend(axis, handles: list[Patch]) -> None:
    """A legend in an otherwise empty panel of a grid (the panel keeps no picture, so nothing is covered)."""
    axis.set_label("legend")
    axis.legend(handles=handles, loc="center left", fontsize=SMALL_FONT, frameon=False, borderaxespad=0.0)


def _legend_in_grid(figure: Figure, axes: np.ndarray, count: int, handles: list[Patch]) -> None:
    """The legend in the grid's first empty panel when it has one (no blank panel is left), else under the figure."""
    if axes.size > count:
        spare = axes.flat[count]
        spare.set_axis_off()
        _slot_legend(spare, handles)
    else:
        _figure_legend(figure, handles)


def _check_palette(palette: str) -> None:
    if palette not in ("tutorial", "voc"):
        raise ValueError(f"palette must be 'tutorial' or 'voc', got {palette!r}")


def _draw_labels(
    axis, image: np.ndarray, label_map: np.ndarray, panel: float, dpi: float, palette: str, names: Sequence[str]
) -> None:
    if palette == "voc":
        axis.imshow(overlay(image, label_map), interpolation=_interpolation(image, panel, dpi))
    else:
        thickness = outline_thickness(image, panel, dpi=dpi, pixels=2)
        axis.imshow(
            label_picture(image, label_map, names=names, thickness=thickness),
            interpolation=_interpolation(image, panel, dpi),
        )
    axis.set_label("labels")


def segmentation_figure(
    image: np.ndarray,
    label_map: np.ndarray,
    names: Sequence[str],
    *,
    title: str = "",
    scores: Sequence[float] | None = None,
    size: float = 3.0,
    dpi: float = NOTEBOOK_DPI,
    with_image: bool = True,
    palette: str = "tutorial",
) -> Figure:
    """The input picture, then its label map (0 = background, i + 1 = ``names[i]``) with a legend beside it.

    Arguments:
        image: H x W x 3 uint8.
        label_map: H x W int.
        names: the query names.
        title: written over the label map.
        scores: per-name scores shown in the legend (the best are listed when there are many labels).
        size: inches of each picture's longer side.
        dpi: the figure's resolution.
        with_image: draw the input picture to the left of the label map.
        palette: "tutorial" (:func:`label_picture`, each name in its :func:`class_colours`) or "voc" (VOC
            colours blended over the colour picture,
            the colours of the label PNG that ``carlib segment`` writes).

    The label map's axes is ``figure.axes[0]`` and holds the legend.
    """
    _check_palette(palette)
    height, width = label_map.shape
    panel_width = size * width / max(height, width)
    columns = 2 if with_image else 1
    figure = Figure(
        figsize=(columns * panel_width + 2.0, size * height / max(height, width) + 0.3), dpi=dpi, layout="constrained"
    )
    grid = figure.add_gridspec(1, columns)
    axis = figure.add_subplot(grid[0, columns - 1])
    _draw_labels(axis, image, label_map, size, dpi, palette, names)
    axis.set_axis_off()
    _legend(axis, names, [int(v) for v in np.unique(label_map) if v > 0], scores, palette)
    if title:
        axis.set_title(title, fontsize=FONT)
    if with_image:
        picture = figure.add_subplot(grid[0, 0])
        picture.imshow(image, interpolation=_interpolation(image, size, dpi))
        picture.set_axis_off()
        picture.set_label("image")
        picture.set_title("image", fontsize=FONT)
    return figure


def compare_segmentations(
    image: np.ndarray,
    label_maps: Sequence[np.ndarray],
    titles: Sequence[str],
    names: Sequence[str],
    *,
    panel: float = 2.6,
    cols: int | None = None,
) -> Figure:
    """The input picture, then several label maps of it, and one shared legend (in a spare panel, or under them).

    ``cols`` panels per row (default: :func:`grid_columns`, at most 4).
    """
    if len(label_maps) != len(titles):
        raise ValueError(f"compare_segmentations got {len(label_maps)} label maps but {len(titles)} titles")
    count = 1 + len(label_maps)
    cols = grid_columns(count, cols)
    rows = -(-count // cols)
    panel = _panel_inches(panel, cols)
    spare = rows * cols > count
    figure, axes = _grid(rows, cols, panel, count=count + 1 if spare else count, extra_height=0.0 if spare else 0.4)
    axes.flat[0].imshow(image, interpolation=_interpolation(image, panel, NOTEBOOK_DPI))
    axes.flat[0].set_title("image", fontsize=FONT)
    axes.flat[0].set_label("image")
    # A grid with a spare last axis has one more axis than label maps: zip stops at the maps.
    for axis, labels, title in zip(axes.flat[1:], label_maps, titles, strict=False):
        _draw_labels(axis, image, labels, panel, NOTEBOOK_DPI, "tutorial", names)
        axis.set_title(title, fontsize=FONT)
    present = sorted({int(v) for labels in label_maps for v in np.unique(labels) if v > 0})
    _legend_in_grid(figure, axes, count, _legend_handles(names, present, None, "tutorial"))
    return figure


def _step_title(axis, result, trace, k: int, index: int) -> None:
    dropped = index not in trace.kept
    axis.set_title(
        f"{result.queries[index]}: {trace.scores[k]:.2f}",
        fontsize=FONT,
        color="red" if dropped else "black",
        fontweight="bold" if dropped else "normal",
    )


def trace_figure(
    image: np.ndarray,
    result,
    *,
    threshold: float | None = None,
    panel: float = 1.8,
    cols: int = 4,
    upto_step: int | None = None,
) -> Figure:
    """The recurrence step by step: each step's proposals for the queries still alive, ``cols`` per row.

    Each step starts a new row (labelled "step t") and takes as many rows as
    its alive queries need; each panel shows that step's proposal for one
    query over the image, with its classifier score in the title, red where
    the query dropped out at that step. Queries that died earlier are not
    drawn. One colourbar for the proposals.

    Arguments:
        image: the segmented image (H x W x 3 uint8).
        result: a :class:`carlib.CarResult`.
        threshold: θ, written in the title when given.
        panel: inches per panel (at least :data:`MIN_PANEL`).
        cols: panels per row (shrunk to what fits :data:`MAX_WIDTH` beside the colourbar).
        upto_step: draw only the first ``upto_step`` steps.

    Axes are labelled by role (``axis.get_label()``): "heat" (one per proposal drawn), "colourbar".
    """
    steps = result.steps if upto_step is None else result.steps[: max(1, upto_step)]
    widest = max(len(trace.alive) for trace in steps)
    cols = max(1, min(cols, widest, max_columns(COLOURBAR_WIDTH)))
    panel = _panel_inches(panel, cols, COLOURBAR_WIDTH)
    starts, rows = [], 0
    for trace in steps:
        starts.append(rows)
        rows += -(-len(trace.alive) // cols)
    figure, axes = _grid(rows, cols, panel, COLOURBAR_WIDTH, extra_height=0.3)
    shown = []
    interpolation = _interpolation(image, panel, NOTEBOOK_DPI)
    for trace, start in zip(steps, starts, strict=True):
        block = axes[start : start + -(-len(trace.alive) // cols)].flat
        for k, index in enumerate(trace.alive):
            axis = block[k]
            axis.set_label("heat")
            axis.imshow(heat_overlay(image, trace.proposals[k]), interpolation=interpolation)
            _step_title(axis, result, trace, k, index)
            shown.append(axis)
        for spare in list(block)[len(trace.alive) :]:
            spare.remove()
        axes[start, 0].text(
            -0.06,
            0.5,
            f"step {trace.step}",
            transform=axes[start, 0].transAxes,
            rotation=90,
            va="center",
            ha="right",
            fontsize=TITLE_FONT,
        )
    _colourbar(figure, shown, "proposal value")
    caption = "each step's proposals for the words still alive, classifier score in the title (red: dropped)"
    if threshold is not None:
        caption += f"; θ = {threshold:g}"
    figure.suptitle(caption, fontsize=TITLE_FONT)
    return figure


def step_figure(
    image: np.ndarray, result, step: int, *, threshold: float | None = None, panel: float = 2.0, cols: int | None = None
) -> Figure:
    """One step of the recurrence: the input, the final segmentation, then that step's proposals and scores.

    The legend of the segmentation takes the grid's spare panel when there is
    one, so no panel is left blank; otherwise it sits under the figure.

    Arguments:
        image: the segmented image (H x W x 3 uint8).
        result: a :class:`carlib.CarResult`.
        step: 1-based step number (clamped to the steps that ran).
        threshold: θ, written in the title when given.
        panel: inches per panel (at least :data:`MIN_PANEL`).
        cols: panels per row (default: :func:`grid_columns` beside the colourbar).

    Axes are labelled by role (``axis.get_label()``): "image", "labels", "heat" (one per proposal,
    in the order of ``trace.alive``), "legend" (when in a spare panel), "colourbar".
    """
    trace = result.steps[min(max(step, 1), len(result.steps)) - 1]
    count = 2 + len(trace.alive)
    cols = grid_columns(count, cols, extra_width=COLOURBAR_WIDTH)
    rows = -(-count // cols)
    panel = _panel_inches(panel, cols, COLOURBAR_WIDTH)
    spare = rows * cols > count
    figure, axes = _grid(
        rows, cols, panel, COLOURBAR_WIDTH, count=count + 1 if spare else count, extra_height=0.3 if spare else 0.7
    )
    shown = list(axes.flat[:count])
    interpolation = _interpolation(image, panel, NOTEBOOK_DPI)
    shown[0].imshow(image, interpolation=interpolation)
    shown[0].set_title("image", fontsize=FONT)
    shown[0].set_label("image")
    _draw_labels(shown[1], image, result.label_map, panel, NOTEBOOK_DPI, "tutorial", result.queries)
    shown[1].set_title("final segmentation", fontsize=FONT)
    for k, index in enumerate(trace.alive):
        axis = shown[2 + k]
        axis.set_label("heat")
        axis.imshow(heat_overlay(image, trace.proposals[k]), interpolation=interpolation)
        _step_title(axis, result, trace, k, index)
    _colourbar(figure, shown[2:], "proposal value")
    _legend_in_grid(
        figure,
        axes,
        count,
        _legend_handles(result.queries, [int(v) for v in np.unique(result.label_map) if v > 0], None, "tutorial"),
    )
    caption = f"step {trace.step} of {len(result.steps)}: proposals and scores (red: dropped)"
    if threshold is not None:
        caption += f", θ = {threshold:.2f}"
    figure.suptitle(caption, fontsize=TITLE_FONT)
    return figure


def _chart(width: float, height: float = 3.0) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), dpi=NOTEBOOK_DPI, layout="constrained")
    axis = figure.subplots()
    axis.tick_params(labelsize=SMALL_FONT)
    return figure, axis


def _outside_legend(axis) -> None:
    """The axis' legend to its right, outside the plotting area (never over bars or lines)."""
    axis.legend(fontsize=SMALL_FONT, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def scores_figure(result, threshold: float, *, width: float = 6.5) -> Figure:
    """Classifier scores of every query at every step, against θ (dropped queries fall below the line)."""
    figure, axis = _chart(width, 3.2)
    count = len(result.queries)
    bar = 0.8 / max(1, len(result.steps))
    for row, trace in enumerate(result.steps):
        values = np.full(count, np.nan)
        for k, index in enumerate(trace.alive):
            values[index] = trace.scores[k]
        axis.bar(np.arange(count) + row * bar, values, width=bar, label=f"step {trace.step}")
    axis.axhline(threshold, color="red", linestyle="--", linewidth=1.5, label=f"θ = {threshold:g}")
    axis.set_xticks(np.arange(count) + 0.4 - bar / 2, result.queries, rotation=30, ha="right", fontsize=SMALL_FONT)
    axis.set_ylabel("classifier score", fontsize=FONT)
    axis.set_ylim(0, 1)
    _outside_legend(axis)
    return figure


BAR_LABEL_CHARACTERS = 16
"""Bar names of several words longer than this are wrapped onto level lines instead of slanted."""


def bar_figure(
    values: dict[str, float],
    *,
    ylabel: str = "mIoU",
    title: str = "",
    width: float = 5.5,
    reference: dict[str, float] | None = None,
    label: str = "ours",
    reference_label: str = "paper",
    fmt: str = "{:.2f}",
) -> Figure:
    """A labelled bar chart (e.g. mIoU per setting), with optional reference bars beside them, each value written
    over its bar with ``fmt``.

    ``label`` and ``reference_label`` name the two kinds of bars in the legend (shown when there are references).
    """
    figure, axis = _chart(width)
    names = list(values)
    positions = np.arange(len(names))
    offset = 0.2 if reference else 0.0
    axis.bar(positions - offset, [values[n] for n in names], width=0.4 if reference else 0.6, label=label)
    if reference:
        axis.bar(positions + offset, [reference.get(n, np.nan) for n in names], width=0.4, label=reference_label)
        _outside_legend(axis)
    for x, name in zip(positions, names, strict=True):
        axis.text(x - offset, values[name], fmt.format(values[name]), ha="center", va="bottom", fontsize=SMALL_FONT)
        if reference and np.isfinite(reference.get(name, np.nan)):
            axis.text(
                x + offset, reference[name], fmt.format(reference[name]), ha="center", va="bottom", fontsize=SMALL_FONT
            )
    shown = [v for v in list(values.values()) + list((reference or {}).values()) if np.isfinite(v)]
    if shown and max(shown) > 0:
        axis.set_ylim(0, max(shown) * 1.15)  # room for the value written over the tallest bar
    wrapped = [textwrap.fill(name, BAR_LABEL_CHARACTERS, break_long_words=False) for name in names]
    if any("\n" in name for name in wrapped) and all(
        len(line) <= BAR_LABEL_CHARACTERS for name in wrapped for line in name.splitlines()
    ):
        axis.set_xticks(positions, wrapped, fontsize=SMALL_FONT)  # long phrases: level lines (slanted, they overflow)
    else:
        axis.set_xticks(positions, names, rotation=20, ha="right", fontsize=SMALL_FONT)
    axis.set_ylabel(ylabel, fontsize=FONT)
    if title:
        axis.set_title(title, fontsize=TITLE_FONT)
    return figure


def tradeoff_figure(
    points: dict[str, tuple[float, float]],
    *,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    highlight: str | None = None,
    width: float = 6.5,
) -> Figure:
    """One marker per named point (x, y), each its own colour and shape, named in a legend outside the axes.

    For a trade-off between two rates (e.g. absent words kept against present
    words kept, per prompt kind); ``highlight`` draws one point larger, with a
    black edge (the preset's choice).
    """
    figure, axis = _chart(width, 3.6)
    markers = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "h")
    colours = colormaps["tab10"](np.arange(10))
    for index, (name, (x, y)) in enumerate(points.items()):
        chosen = name == highlight
        axis.scatter(
            [x],
            [y],
            s=140 if chosen else 70,
            marker=markers[index % len(markers)],
            color=colours[index % len(colours)],
            edgecolors="black" if chosen else "none",
            linewidths=1.5,
            label=f"{name} (preset)" if chosen else name,
            zorder=3,
        )
    axis.grid(True, alpha=0.3)
    axis.set_xlabel(xlabel, fontsize=FONT)
    axis.set_ylabel(ylabel, fontsize=FONT)
    _outside_legend(axis)
    if title:
        figure.suptitle(title, fontsize=TITLE_FONT)
    return figure


def histogram_figure(
    values: Sequence[float],
    marks: dict[str, float],
    *,
    xlabel: str = "",
    title: str = "",
    bins: int = 10,
    width: float = 7.5,
    label: str = "values",
) -> Figure:
    """A histogram of ``values`` with a labelled vertical line per entry of ``marks`` (e.g. a sample beside the whole).

    Arguments:
        values: the measurements (e.g. one mIoU per sample of scenes).
        marks: label -> x position of a line drawn across the histogram, each in its own colour and style.
        xlabel, title: axis label and title.
        bins: histogram bins over the range of ``values`` and ``marks``.
        width: inches.
        label: what one value is, for the legend ("12 samples").
    """
    figure, axis = _chart(width, 3.2)
    samples = np.asarray(values, dtype=float)
    low = min(samples.min(), *marks.values()) if marks else samples.min()
    high = max(samples.max(), *marks.values()) if marks else samples.max()
    axis.hist(
        samples,
        bins=np.linspace(low, high, bins + 1).tolist(),
        color="#9ecae1",
        edgecolor="#3182bd",
        label=f"{len(samples)} {label}",
    )
    styles = ("-", "--", ":", "-.")
    colours = ("#d62728", "#2ca02c", "#ff7f0e", "#9467bd")  # lines only: no label map is drawn here
    for index, (label, x) in enumerate(marks.items()):
        axis.axvline(
            x,
            color=colours[index % len(colours)],
            linestyle=styles[index % len(styles)],
            linewidth=2.0,
            label=f"{label} ({x:.3f})",
        )
    axis.set_xlabel(xlabel, fontsize=FONT)
    axis.set_ylabel("count", fontsize=FONT)
    locator = axis.yaxis.get_major_locator()
    assert isinstance(locator, MaxNLocator)  # a linear axis' AutoLocator
    locator.set_params(integer=True)
    _outside_legend(axis)
    if title:
        figure.suptitle(title, fontsize=TITLE_FONT)  # over the whole figure: the legend makes the axes narrow
    return figure


def figure_png(figure: Figure) -> bytes:
    """A figure as PNG bytes, at the figure's own resolution, without the alpha channel (figures are opaque).

    A notebook stores every figure it shows. A 256-colour palette would halve
    the bytes, but it bands the colourbars and shifts the heat maps' colours away
    from them, so the figures stay full colour (the notebooks stay within their
    budget: small pictures enlarged without smoothing compress well).
    """
    from PIL import Image

    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    with Image.open(BytesIO(buffer.getvalue())) as rendered:
        rgb = rendered.convert("RGB")
    out = BytesIO()
    rgb.save(out, format="PNG", optimize=True, dpi=(figure.dpi, figure.dpi))
    return out.getvalue()


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
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    cell: float = 0.55,
    cmap: str = "viridis",
    colourbar_label: str = "",
    row_images: Sequence[np.ndarray] | None = None,
) -> Figure:
    """A labelled R x C matrix as a heat map with each value written in its cell (2 decimals), and a colourbar.

    For small tables of numbers such as CaR's classifier matrix (prompted image
    x query, :attr:`carlib.StepTrace.classifier`) or a score per setting and query.
    ``cell`` is inches per cell (at least 0.5, so a value fits); NaN cells are left blank.
    ``row_images`` (one picture per row, e.g. the prompted image each row of a
    classifier matrix scores) are drawn left of the row labels, a cell high
    (cells are then at least :data:`ROW_IMAGE_CELL` inches).
    """
    values = np.asarray(matrix, dtype=float)
    if values.ndim != 2 or values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"matrix {values.shape} does not match {len(row_labels)} row and {len(col_labels)} column labels"
        )
    if row_images is not None and len(row_images) != len(row_labels):
        raise ValueError(f"matrix_figure got {len(row_images)} row images for {len(row_labels)} rows")
    rows, cols = values.shape
    character = SMALL_FONT * 0.6 / 72  # inches per character of tick label, roughly
    label_width = 0.5 + character * max((len(str(label)) for label in row_labels), default=0)
    label_height = 0.5 + 0.7 * character * max((len(str(label)) for label in col_labels), default=0)  # rotated 30°
    bar_width = 1.1
    if row_images is None:
        cell = max(cell, 0.5)
    else:
        # a picture column one cell wide; the cells shrink (not below 0.5 in) to keep the figure within MAX_WIDTH
        cell = max(0.5, min(max(cell, ROW_IMAGE_CELL), (MAX_WIDTH - label_width - bar_width) / (cols + 1)))
        label_width += cell
    width = max(cols * cell + label_width + bar_width, TITLE_FONT * 0.55 / 72 * len(title) + 0.4)
    figure = Figure(figsize=(width, rows * cell + label_height + 0.5), dpi=NOTEBOOK_DPI, layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    bar = figure.colorbar(image, ax=axis, pad=0.02, aspect=max(10, 12 * rows * cell / 3))
    bar.ax.tick_params(labelsize=SMALL_FONT)
    bar.ax.set_label("colourbar")
    if colourbar_label:
        bar.set_label(colourbar_label, fontsize=FONT)
    low = np.nanmin(values) if vmin is None else vmin
    high = np.nanmax(values) if vmax is None else vmax
    middle = (low + high) / 2
    for (row, col), value in np.ndenumerate(values):
        if np.isfinite(value):
            axis.text(
                col,
                row,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=SMALL_FONT,
                color="black" if value > middle else "white",
            )
    axis.set_xticks(np.arange(cols), list(col_labels), rotation=30, ha="right", fontsize=SMALL_FONT)
    axis.set_yticks(np.arange(rows), list(row_labels), fontsize=SMALL_FONT)
    axis.set_xlabel(xlabel, fontsize=FONT)
    axis.set_ylabel(ylabel, fontsize=FONT)
    if row_images is not None:
        _row_thumbnails(figure, axis, row_images, cell)
    if title:
        axis.set_title(title, fontsize=TITLE_FONT)
    return figure


ROW_IMAGE_CELL = 0.85
"""Inches per matrix cell when rows carry pictures (a 96 px scene is drawn about 85 px high)."""


def _row_thumbnails(figure: Figure, axis, images: Sequence[np.ndarray], cell: float) -> None:
    """Each row's picture between its tick label and the matrix, a little less than a cell high.

    The pictures are ``AnnotationBbox`` artists of the axes (so constrained
    layout makes room for them), and the tick labels move left past them.
    """
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    side = 0.9 * cell * 72  # points
    gap = 4.0
    for row, image in enumerate(images):
        picture = np.asarray(image)
        # OffsetImage draws an image pixel as a point (dpi_cor): zoom converts to the wanted size.
        zoom = side / max(picture.shape[:2])
        box = AnnotationBbox(
            OffsetImage(picture, zoom=zoom, interpolation="nearest"),
            (0, row),
            xycoords=("axes fraction", "data"),
            xybox=(-gap, 0),
            boxcoords="offset points",
            box_alignment=(1.0, 0.5),
            frameon=False,
            annotation_clip=False,
        )
        box.set_label("row image")
        axis.add_artist(box)
    axis.tick_params(axis="y", length=0, pad=side + 2 * gap)


def line_figure(
    series: dict[str, Sequence[float]],
    *,
    x: Sequence[float] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    log_y: bool = False,
    width: float = 5.0,
) -> Figure:
    """Curves over a shared x axis, one labelled line per entry of ``series`` (e.g. an error per iteration).

    ``x`` defaults to 0, 1, 2...; ``log_y`` draws the y axis on a log scale
    (values that are not positive are left out there). The legend is outside, to the right.
    """
    figure, axis = _chart(width)
    for label, raw_values in series.items():
        values = np.asarray(raw_values, dtype=float)
        positions = np.arange(len(values)) if x is None else np.asarray(x, dtype=float)
        if log_y:
            values = np.where(values > 0, values, np.nan)
        axis.plot(positions, values, marker="o", markersize=4, linewidth=1.8, label=label)
    if log_y:
        axis.set_yscale("log")
    axis.set_xlabel(xlabel, fontsize=FONT)
    axis.set_ylabel(ylabel, fontsize=FONT)
    _outside_legend(axis)
    if title:
        axis.set_title(title, fontsize=TITLE_FONT)
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
    """Save the image with its label map and a legend of the labels present (``carlib segment``'s overlay.png).

    Drawn in the VOC colours of the label PNG written beside it, so the two
    pictures agree.

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
    figure = segmentation_figure(
        shown, label_map, names, title=title, scores=scores, size=6.0, dpi=100, with_image=False, palette="voc"
    )
    return atomic_write(lambda target: figure.savefig(target, format="png", dpi=100), Path(path))
