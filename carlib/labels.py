"""Label maps: painted from per-query masks and scores (spec section 7), merged for referring, resized, drawn.

A label map is H x W int: 0 is the background, i + 1 the i-th query (or a
dataset class id). This module paints them, merges referring masks, resizes
masks to an image's size, and turns label maps into pictures and files: the
VOC colour map, a palette PNG, a colour overlay on the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from carlib.files import atomic_write


def paint_label_map(masks: np.ndarray, scores: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """Paint binary masks into a label map in ascending score order (the best is painted last).

    Arguments:
        masks: N x H x W bool (or 0/1) masks, one per query.
        scores: N confidence scores; masks with score <= 0 are not painted.
        base: optional H x W int32 label map to paint over (e.g. stuff before things).

    Returns:
        H x W int32 label map: 0 is background, i + 1 is query i.
    """
    masks = np.asarray(masks).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if masks.ndim != 3 or masks.shape[0] != scores.shape[0]:
        raise ValueError(f"need N x H x W masks and N scores, got {masks.shape} and {scores.shape}")
    labels = np.zeros(masks.shape[1:], dtype=np.int32) if base is None else base.astype(np.int32).copy()
    # A stable sort keeps query order among equal scores, so ties resolve the same way every run.
    for index in np.argsort(scores, kind="stable"):
        if scores[index] > 0:
            labels[masks[index]] = index + 1
    return labels


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize N x h x w binary masks to N x H x W, with smooth (not blocky) edges.

    Each mask is resized bilinearly as a 0/255 map and kept where the result
    exceeds 128, just over one half. Masks that never overlap (a CRF's) still
    never overlap: at any pixel the interpolated values of disjoint masks sum
    to at most 255 (256 after rounding each), so at most one exceeds 128.

    Arguments:
        masks: N x h x w bool (or 0/1) masks.
        size: (H, W) to resize to.

    Returns:
        N x H x W bool masks.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"need N x h x w masks, got shape {masks.shape}")
    height, width = size
    resized = np.zeros((masks.shape[0], height, width), dtype=bool)
    for index, mask in enumerate(masks):
        scaled = cv2.resize(mask.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_LINEAR)
        resized[index] = scaled > 128
    return resized


def merge_referring_masks(
    masks: np.ndarray,
    scores: Sequence[float],
    *,
    threshold: float = 0.5,
    min_area_fraction: float = 0.05,
) -> np.ndarray:
    """One mask for a referred object from the masks of all its sentences.

    The score-weighted mean of the sentences' masks is thresholded at
    ``threshold``; if that covers at most ``min_area_fraction`` of the image,
    the union of the masks (every pixel where some mask is positive) is used
    instead, as the reference's ``merge_masks_simple``. All-zero scores give
    equal weights (the reference would divide by zero).

    Arguments:
        masks: S x H x W masks in [0, 1] (binary or soft), one per sentence.
        scores: S confidence scores (all zero gives equal weights).
        threshold: cut-off for the weighted mean.
        min_area_fraction: fallback trigger, as a fraction of the image area.

    Returns:
        H x W bool mask.
    """
    masks = np.asarray(masks, dtype=np.float64)
    weights = np.asarray(scores, dtype=np.float64)
    if masks.ndim != 3 or masks.shape[0] != weights.shape[0] or masks.shape[0] == 0:
        raise ValueError(f"need S >= 1 masks (S x H x W) and S scores, got {masks.shape} and {weights.shape}")
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    merged = np.tensordot(weights / weights.sum(), masks, axes=1) >= threshold
    if merged.sum() <= min_area_fraction * merged.size:
        merged = np.asarray((masks > 0).any(axis=0))  # the reference's union: any positive value
    return merged


def paint_referred_objects(
    masks: Sequence[np.ndarray], strengths: Sequence[np.ndarray], object_ids: Sequence[int]
) -> np.ndarray:
    """One label map of several referred objects, each predicted on its own (a video frame's, in DAVIS's format).

    Where masks overlap, the pixel goes to the object whose strength is
    highest there (ties: the first object), as ReferFormer's DAVIS inference
    gives each pixel to the arg-max of its per-object probabilities.

    Arguments:
        masks: K H x W bool masks, one per object.
        strengths: K H x W float maps (e.g. CaR's soft masks), compared only where masks overlap.
        object_ids: the K objects' ids (1..255), painted as the label.

    Returns:
        H x W uint8 label map: 0 background, ``object_ids[k]`` where object k wins.
    """
    if not (len(masks) == len(strengths) == len(object_ids)):
        raise ValueError(
            f"need one mask and one strength per object, got {len(masks)}, {len(strengths)} and {len(object_ids)}"
        )
    if not len(masks):
        raise ValueError("need at least one object")
    ids = np.asarray(object_ids, dtype=np.int64)
    if ids.min() < 1 or ids.max() > 255:
        raise ValueError(f"object ids must be 1..255, got {ids.tolist()}")
    covered = np.stack([np.asarray(mask, dtype=bool) for mask in masks])
    contest = np.where(covered, np.stack([np.asarray(s, dtype=np.float64) for s in strengths]), -np.inf)
    winner = np.argmax(contest, axis=0)
    return np.where(covered.any(axis=0), ids[winner], 0).astype(np.uint8)


def voc_palette(num_colours: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: num_colours x 3 uint8, label 0 black, 255 near white (:func:`label_colours`)."""
    return label_colours(np.arange(num_colours))


def label_colours(labels: np.ndarray) -> np.ndarray:
    """The VOC colour of each label (any shape of non-negative ints): ... x 3 uint8.

    Each label's bits are spread over the three channels from the most
    significant bit down, which keeps neighbouring labels visually distinct.
    Labels 0..255 get PASCAL VOC's own colours; the rule goes on past 255
    (ADE-847's labels, 300 queries), each label up to 2^24 its own colour.
    """
    value = np.asarray(labels, dtype=np.int64)
    if value.size and value.min() < 0:
        raise ValueError(f"labels must be non-negative, got {value.min()}")
    colours = np.zeros((*value.shape, 3), dtype=np.int64)
    for shift in range(7, -1, -1):
        for channel in range(3):
            colours[..., channel] |= ((value >> channel) & 1) << shift
        value = value >> 3
    return colours.astype(np.uint8)


LABEL_PNG_FORMATS = ("palette-8bit", "gray-16bit")
"""How :func:`save_label_png` stores a label map: a VOC palette PNG when every label fits in a byte (what
benchmark tools read), a 16-bit greyscale PNG otherwise (ADE-847, hundreds of queries)."""


def save_label_png(label_map: np.ndarray, path: Path) -> str:
    """Write an H x W label map losslessly as PNG, atomically; returns the format (:data:`LABEL_PNG_FORMATS`).

    Raises:
        ValueError: a label outside 0..65535.
    """
    label_map = np.asarray(label_map)
    if label_map.min(initial=0) < 0 or label_map.max(initial=0) > 65535:
        raise ValueError("a label PNG holds labels 0..65535; got values outside that range")
    if label_map.max(initial=0) <= 255:
        save_palette_png(label_map, path)
        return LABEL_PNG_FORMATS[0]
    image = Image.fromarray(np.ascontiguousarray(label_map, dtype=np.uint16))
    atomic_write(lambda target: image.save(target, format="PNG"), Path(path))
    return LABEL_PNG_FORMATS[1]


def read_label_png(path: Path) -> np.ndarray:
    """The label map of a PNG written by :func:`save_label_png` (either format): H x W int64."""
    with Image.open(path) as image:
        return np.asarray(image).astype(np.int64)


def palette_image(label_map: np.ndarray) -> Image.Image:
    """A palette ("P" mode) image of an H x W label map with the VOC colours; its pixel values are the labels.

    Raises:
        ValueError: a label outside 0..255 (a palette image holds one byte per pixel).
    """
    label_map = np.asarray(label_map)
    if label_map.min(initial=0) < 0 or label_map.max(initial=0) > 255:
        raise ValueError("a palette PNG holds labels 0..255; got values outside that range")
    labels = np.ascontiguousarray(label_map, dtype=np.uint8)
    image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    image.putpalette(voc_palette().flatten().tolist())
    return image


def save_palette_png(label_map: np.ndarray, path: Path) -> Path:
    """Write an H x W label map (values 0..255) as a palette PNG (:func:`palette_image`), atomically."""
    image = palette_image(label_map)
    return atomic_write(lambda target: image.save(target, format="PNG"), Path(path))


def overlay(image: np.ndarray, label_map: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend label colours over an RGB image (background left as is): HxWx3 uint8."""
    label_map = np.maximum(label_map, 0)
    colours = voc_palette(max(256, int(label_map.max(initial=0)) + 1))[label_map]
    blended = image.astype(np.float32)
    painted = label_map > 0
    blended[painted] = (1 - alpha) * blended[painted] + alpha * colours[painted]
    return blended.round().astype(np.uint8)
