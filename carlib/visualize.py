"""Pictures of results: label maps over images with a legend, palette PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

from carlib.files import atomic_write
from carlib.images import fit_within

OVERLAY_MAX_SIDE = 1200
"""Pictures are shrunk to this longer side before being drawn into the 600 px overlay figure."""


def voc_palette(num_colours: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: num_colours x 3 uint8, label 0 black, 255 near white.

    Each label's bits are spread over the three channels from the most
    significant bit down, which keeps neighbouring labels visually distinct.
    """
    palette = np.zeros((num_colours, 3), dtype=np.uint8)
    for label in range(num_colours):
        value, red, green, blue = label, 0, 0, 0
        for shift in range(7, -1, -1):
            red |= (value & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[label] = (red, green, blue)
    return palette


def save_palette_png(label_map: np.ndarray, path: Path) -> Path:
    """Write an H x W label map (values 0..255) as a palette ("P" mode) PNG, atomically."""
    if label_map.min(initial=0) < 0 or label_map.max(initial=0) > 255:
        raise ValueError("a palette PNG holds labels 0..255; got values outside that range")
    image = Image.fromarray(label_map.astype(np.uint8), mode="P")
    image.putpalette(voc_palette().flatten().tolist())
    return atomic_write(lambda target: image.save(target, format="PNG"), Path(path))


def overlay(image: np.ndarray, label_map: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend label colours over an RGB image (background left as is): HxWx3 uint8."""
    colours = voc_palette()[np.clip(label_map, 0, 255)]
    blended = image.astype(np.float32)
    painted = label_map > 0
    blended[painted] = (1 - alpha) * blended[painted] + alpha * colours[painted]
    return blended.round().astype(np.uint8)


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
    from carlib.plotting import segmentation_figure

    # The figure is 600 px wide: drawing a 12 MP photo into it would only cost time and memory.
    shown = fit_within(np.asarray(image), OVERLAY_MAX_SIDE)
    if shown.shape[:2] != label_map.shape:
        label_map = cv2.resize(label_map.astype(np.int32), shown.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    figure = segmentation_figure(shown, label_map, names, title=title, scores=scores, size=6.0, dpi=100)
    return atomic_write(lambda target: figure.savefig(target, format="png", dpi=100), Path(path))
