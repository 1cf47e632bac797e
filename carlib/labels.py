"""From per-query masks and scores to what is evaluated: label maps and merged referring masks.

Spec section 7.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


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
        merged = (masks > 0).any(axis=0)  # the reference's union: any positive value
    return merged
