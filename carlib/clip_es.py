"""CLIP-ES class-aware attention affinity: sharpening a Grad-CAM with CLIP's own attention.

Spec section 3. The head-averaged attention of the last 8 blocks is turned
into a symmetric affinity A (Sinkhorn, then (D + Dᵀ)/2), squared once, masked
on its source (column) side by boxes around the CAM's hot regions, and
multiplied with the CAM: pixels borrow evidence from pixels they attend to.

Two precisions. float64 (the default) computes in numpy. float32 is the
official code's: it computes in torch, in the order of the official
``clipcam.py`` (sums with ``torch.sum``, products with ``torch.matmul``, the box
mask applied to the affinity before the product with each CAM, then its
``scale_cam_image``), so that with the same inputs it gives the same bits
(``CarSettings.official_numerics``; float32 numpy sums and products round
differently, and min-max normalisation of the refined maps multiplies such
differences by a few hundred).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from carlib.cam import minmax_normalize, resize_maps


def sinkhorn(attention: np.ndarray, rounds: int = 3, dtype: type = np.float64) -> np.ndarray:
    """Alternately normalise columns then rows, ``rounds`` times (CLIP-ES uses 3).

    Arguments:
        attention: n x n non-negative matrix.
        rounds: number of (column, row) normalisation rounds.
        dtype: the precision to compute in: float64 in numpy, or float32 in
            torch in the official code's order (see the module docstring).

    Returns:
        ``dtype`` n x n matrix, rows summing to 1 and columns close to 1.
    """
    matrix: np.ndarray = np.asarray(attention, dtype=dtype)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"attention must be a square n x n matrix, got shape {matrix.shape}")
    if (matrix < 0).any():
        raise ValueError("attention must be non-negative (softmax weights)")
    if matrix.dtype == np.float32:
        return _official_sinkhorn(torch.from_numpy(np.ascontiguousarray(matrix)), rounds).numpy()
    for _ in range(rounds):
        matrix = matrix / matrix.sum(axis=0, keepdims=True)
        matrix = matrix / matrix.sum(axis=1, keepdims=True)
    return matrix


def affinity_from_attention(
    attention: np.ndarray, sinkhorn_rounds: int = 3, power: int = 1, dtype: type = np.float64
) -> np.ndarray:
    """Symmetric affinity (D + Dᵀ)/2 of the Sinkhorn-normalised attention, squared ``power`` times.

    Arguments:
        attention: n x n head-averaged attention without the class token.
        sinkhorn_rounds: see :func:`sinkhorn`.
        power: how many times A is replaced by A·A (CaR: once).
        dtype: the precision to compute in: float64 in numpy, or float32 in
            torch in the official code's order (``CarSettings.official_numerics``).

    Returns:
        ``dtype`` n x n symmetric affinity.
    """
    doubly_stochastic = sinkhorn(attention, sinkhorn_rounds, dtype)
    if doubly_stochastic.dtype == np.float32:
        return _official_symmetric_power(torch.from_numpy(doubly_stochastic), power).numpy()
    affinity = (doubly_stochastic + doubly_stochastic.T) / 2.0
    for _ in range(power):
        affinity = affinity @ affinity
    return affinity


def _official_sinkhorn(matrix: torch.Tensor, rounds: int) -> torch.Tensor:
    """Sinkhorn in float32 torch as the official code writes it: divide by the column sums, then the row sums."""
    for _ in range(rounds):
        matrix = matrix / torch.sum(matrix, dim=0, keepdim=True)
        matrix = matrix / torch.sum(matrix, dim=1, keepdim=True)
    return matrix


def _official_symmetric_power(matrix: torch.Tensor, power: int) -> torch.Tensor:
    """(D + Dᵀ)/2 squared ``power`` times with ``torch.matmul``, as the official code does."""
    matrix = (matrix + matrix.transpose(1, 0)) / 2
    for _ in range(power):
        matrix = torch.matmul(matrix, matrix)
    return matrix


def cam_boxes(
    cam: np.ndarray, threshold: float, *, reference_edge_clip: bool = True
) -> list[tuple[int, int, int, int]]:
    """Bounding boxes of every contour of the CAM thresholded at ``threshold`` · max.

    As CLIP-ES's ``scoremap2bbox`` with ``multi_contour_eval=True``: the CAM is
    cast to uint8 (x·255, truncated); pixels strictly above
    ``int(threshold · max)`` pass; ``cv2.findContours`` with ``RETR_TREE`` finds
    external and inner contours, and each gives a box.

    Arguments:
        cam: h x w float map in [0, 1].
        threshold: λ, a fraction of the map's maximum.
        reference_edge_clip: the reference clips each box's exclusive end to
            ``width - 1`` / ``height - 1``, so a box touching the right or bottom
            edge loses its last column or row. True keeps that behaviour; False
            keeps whole boxes.

    Returns:
        list of (x0, y0, x1, y1) boxes, end-exclusive; empty if nothing passes.
    """
    height, width = cam.shape
    as_uint8 = (np.asarray(cam, dtype=np.float32) * 255).astype(np.uint8)
    _, binary = cv2.threshold(as_uint8, int(threshold * int(as_uint8.max())), 255, cv2.THRESH_BINARY)
    contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        x1, y1 = x + w, y + h
        if reference_edge_clip:
            x1, y1 = min(x1, width - 1), min(y1, height - 1)
        boxes.append((x, y, x1, y1))
    return boxes


def box_mask(
    cam: np.ndarray, threshold: float, *, step: float = 0.1, reference_edge_clip: bool = True
) -> tuple[np.ndarray, float]:
    """The CLIP-ES box mask B_c, lowering λ by ``step`` until some contour passes.

    Arguments:
        cam: h x w float map in [0, 1].
        threshold: the starting λ (``clipes_threshold``).
        step: how much λ drops each time nothing passes.
        reference_edge_clip: see :func:`cam_boxes`.

    Returns:
        (h x w float32 mask with 1 inside any box, the λ actually used). An
        all-zero CAM has no contour at any λ and gives an empty mask.
    """
    mask = np.zeros(cam.shape, dtype=np.float32)
    level = threshold
    while True:
        boxes = cam_boxes(cam, level, reference_edge_clip=reference_edge_clip)
        if boxes or level <= 0:
            break
        level = max(0.0, round(level - step, 10))
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = 1.0
    return mask, level


def clip_es_refine(
    cams: np.ndarray,
    attention: np.ndarray | None,
    *,
    threshold: float = 0.4,
    output_size: tuple[int, int] | None = None,
    sinkhorn_rounds: int = 3,
    power: int = 1,
    reference_edge_clip: bool = True,
    dtype: type = np.float64,
) -> np.ndarray:
    """Refine patch-grid CAMs with CLIP-ES class-aware attention affinity.

    Refined CAM_c = (A with column j scaled by B_c[j]) · vec(CAM_c), reshaped to
    the grid, min-max normalised, and resized to ``output_size``.

    Arguments:
        cams: N x h x w float CAMs in [0, 1] on the patch grid
            (:attr:`carlib.cam.CamResult.cams`).
        attention: n x n head-averaged attention of the last blocks, n = h·w
            (:attr:`carlib.cam.CamResult.attention`; None, from CAMs computed without
            attention layers, is refused).
        threshold: λ for the box mask (``clipes_threshold``: 0.4 VOC, 0.5 COCO...).
        output_size: (H, W) to resize to; None keeps the grid.
        sinkhorn_rounds, power: see :func:`affinity_from_attention`.
        reference_edge_clip: see :func:`cam_boxes`.
        dtype: the precision of the affinity and the refinement (see
            :func:`affinity_from_attention`); float32 refines as the official
            code does (:func:`refine_with_affinity`).

    Returns:
        float32 N x H x W (or N x h x w) refined CAMs in [0, 1].

    Raises:
        ValueError: no attention, or CAMs and attention of different grids.
    """
    if attention is None:
        raise ValueError("no attention to refine with: compute the CAMs with attention_layers > 0 (CLIP-ES)")
    cams = _check_cams(cams, attention)
    affinity = affinity_from_attention(attention, sinkhorn_rounds, power, dtype)
    return refine_with_affinity(
        cams, affinity, threshold=threshold, output_size=output_size, reference_edge_clip=reference_edge_clip
    )


def refine_with_affinity(
    cams: np.ndarray,
    affinity: np.ndarray,
    *,
    threshold: float = 0.4,
    output_size: tuple[int, int] | None = None,
    reference_edge_clip: bool = True,
) -> np.ndarray:
    """The class-aware part of :func:`clip_es_refine`, given the affinity of :func:`affinity_from_attention`.

    The affinity depends on the image only, so a recurrence computes it once
    per image and calls this for every step's CAMs. A float64 affinity is
    used in numpy; a float32 one (the official numerics) in torch, in the
    official code's order: per CAM, the affinity's columns times the box mask,
    ``torch.matmul`` with the CAM as an n x 1 column, then its min-max
    ``(x - min) / (1e-15 + max)`` and the bilinear resize.

    Returns:
        float32 N x H x W (or N x h x w) refined CAMs in [0, 1].
    """
    cams = _check_cams(cams, affinity)
    if affinity.dtype == np.float32:
        return _official_refine(cams, affinity, threshold, output_size, reference_edge_clip)
    count, height, width = cams.shape
    refined = np.zeros_like(cams)
    for index in range(count):
        boxes, _ = box_mask(cams[index], threshold, reference_edge_clip=reference_edge_clip)
        # (A with column j scaled by B[j]) · c = A · (B ⊙ c): every product is the same number (B is 0 or 1),
        # so the result is the same bit for bit, without an n x n copy of A per CAM.
        masked_cam = (boxes.reshape(-1) * cams[index].reshape(-1)).astype(affinity.dtype)
        refined[index] = (affinity @ masked_cam).reshape(height, width)
    refined = minmax_normalize(torch.from_numpy(refined)).numpy()
    return refined if output_size is None else resize_maps(refined, output_size)


OFFICIAL_EPSILON = 1e-15
"""The official ``scale_cam_image`` divides by ``1e-15 + max``."""


def _official_refine(
    cams: np.ndarray,
    affinity: np.ndarray,
    threshold: float,
    output_size: tuple[int, int] | None,
    reference_edge_clip: bool,
) -> np.ndarray:
    """:func:`refine_with_affinity` in float32, in the official code's order of operations."""
    count, height, width = cams.shape
    transition = torch.from_numpy(np.ascontiguousarray(affinity))
    size = (height, width) if output_size is None else tuple(output_size)
    refined = np.empty((count, *size), dtype=np.float32)
    for index in range(count):
        boxes, _ = box_mask(cams[index], threshold, reference_edge_clip=reference_edge_clip)
        masked = transition * torch.from_numpy(boxes).view(1, height * width)
        column = torch.from_numpy(np.ascontiguousarray(cams[index])).view(-1, 1)
        single = torch.matmul(masked, column).reshape(height, width).numpy().astype(np.float32)
        single = single - np.min(single)
        # The official code ran numpy 1.x, where float32 + a Python float is a float64 scalar, and an
        # array divided by it is float32 divided by that scalar rounded to float32.
        single = single / np.float32(OFFICIAL_EPSILON + float(np.max(single)))
        refined[index] = single if output_size is None else cv2.resize(single, (size[1], size[0]))
    return refined


def _check_cams(cams: np.ndarray, square: np.ndarray) -> np.ndarray:
    cams = np.asarray(cams, dtype=np.float32)
    if cams.ndim != 3:
        raise ValueError(f"cams must be N x h x w, got shape {cams.shape}")
    cells = cams.shape[1] * cams.shape[2]
    if square.shape != (cells, cells):
        raise ValueError(
            f"attention is {square.shape} but the CAM grid {cams.shape[1]}x{cams.shape[2]} needs "
            f"{cells}x{cells}; pass the attention from the same forward pass"
        )
    return cams
