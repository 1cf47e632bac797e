"""CLIP-ES class-aware affinity on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

import carlib
from carlib.cam import compute_cams
from carlib.clip_es import affinity_from_attention, box_mask, cam_boxes, clip_es_refine, sinkhorn

# Two blocks of two patches that attend only within their block: already
# doubly stochastic and symmetric, and idempotent (A·A = A).
BLOCK_ATTENTION = np.array(
    [[0.5, 0.5, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]]
)


def test_hand_computed_refinement_spreads_within_the_attended_block():
    cam = np.array([[[1.0, 0.0], [0.0, 0.0]]], dtype=np.float32)
    # Box of the hot patch: (0,0)-(1,1), so B = [1, 0, 0, 0]; A·A = A; refined =
    # A[:, 0] * 1 = [.5, .5, 0, 0] -> min-max -> [1, 1, 0, 0].
    refined = clip_es_refine(cam, BLOCK_ATTENTION, threshold=0.4)
    np.testing.assert_allclose(refined[0], [[1.0, 1.0], [0.0, 0.0]], atol=1e-6)


def test_box_mask_is_applied_on_the_source_side():
    # 2x3 grid; patches attend in pairs (p0,p1), (p3,p4), (p2,p5).
    attention = np.zeros((6, 6))
    for a, b in [(0, 1), (3, 4), (2, 5)]:
        attention[np.ix_([a, b], [a, b])] = 0.5
    cam = np.array([[[1.0, 0.0, 0.0], [0.3, 0.0, 0.0]]], dtype=np.float32)
    # λ = 0.5 boxes only p0: p3's warmth is outside the box, so it reaches nobody.
    boxed = clip_es_refine(cam, attention, threshold=0.5, reference_edge_clip=False)
    np.testing.assert_allclose(boxed[0], [[1, 1, 0], [0, 0, 0]], atol=1e-6)
    # λ = 0.1 boxes column 0 (p0 and p3): p4 now borrows 0.5 · 0.3 from p3.
    wider = clip_es_refine(cam, attention, threshold=0.1, reference_edge_clip=False)
    np.testing.assert_allclose(wider[0], [[1, 1, 0], [0.3, 0.3, 0]], atol=1e-6)


def test_sinkhorn_is_nearly_doubly_stochastic():
    attention = np.random.default_rng(0).random((30, 30)) ** 3 + 1e-3
    balanced = sinkhorn(attention, rounds=3)
    np.testing.assert_allclose(balanced.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(balanced.sum(axis=0), 1.0, atol=2e-2)
    raw_column_error = np.abs(attention / attention.sum(axis=1, keepdims=True)).sum(axis=0) - 1
    assert np.abs(balanced.sum(axis=0) - 1).max() < np.abs(raw_column_error).max() / 5


def test_affinity_is_symmetric_and_squared_once():
    attention = np.random.default_rng(1).random((12, 12))
    affinity = affinity_from_attention(attention)
    np.testing.assert_allclose(affinity, affinity.T, atol=1e-12)
    half = affinity_from_attention(attention, power=0)
    np.testing.assert_allclose(affinity, half @ half, atol=1e-12)


def test_every_contour_gets_a_box():
    cam = np.zeros((8, 8), dtype=np.float32)
    cam[1:3, 1:3] = 1.0
    cam[5:7, 4:8] = 0.8
    boxes = sorted(cam_boxes(cam, 0.4, reference_edge_clip=False))
    assert boxes == [(1, 1, 3, 3), (4, 5, 8, 7)]
    # The reference clips exclusive ends to width - 1: the box at the right edge loses a column.
    assert sorted(cam_boxes(cam, 0.4)) == [(1, 1, 3, 3), (4, 5, 7, 7)]


def test_inner_contours_count_too():
    ring = np.zeros((9, 9), dtype=np.float32)
    ring[1:8, 1:8] = 1.0
    ring[3:6, 3:6] = 0.0
    boxes = cam_boxes(ring, 0.5, reference_edge_clip=False)
    assert len(boxes) == 2  # RETR_TREE: the outer boundary and the hole's boundary
    assert (1, 1, 8, 8) in boxes


def test_threshold_is_strict_and_lowered_until_something_passes():
    cam = np.zeros((4, 4), dtype=np.float32)
    cam[1, 1] = 1.0
    # λ = 1.2 -> int(1.2·255) = 306, 1.1 -> 280, 1.0 -> 255: nothing is strictly above.
    mask, used = box_mask(cam, 1.2)
    assert used == pytest.approx(0.9)
    assert mask.sum() == 1 and mask[1, 1] == 1
    mask, used = box_mask(cam, 0.4)
    assert used == pytest.approx(0.4)


def test_all_zero_cam_gives_an_empty_box_and_zero_refinement():
    mask, used = box_mask(np.zeros((3, 3), dtype=np.float32), 0.4)
    assert mask.sum() == 0 and used == 0.0
    refined = clip_es_refine(np.zeros((1, 2, 2), dtype=np.float32), BLOCK_ATTENTION)
    assert refined.sum() == 0


def test_bad_shapes_are_explained():
    with pytest.raises(ValueError, match="same forward pass"):
        clip_es_refine(np.zeros((1, 3, 3), dtype=np.float32), BLOCK_ATTENTION)
    with pytest.raises(ValueError, match="square"):
        sinkhorn(np.ones((2, 3)))


def test_refinement_of_real_attention_is_at_image_size(vit_b16, noise_image):
    result = compute_cams(vit_b16, noise_image, ["a", "b", "c"], ["d"])
    assert result.attention.shape == (280, 280)
    # Softmax rows sum to 1 over all tokens; dropping the class token's column removes a little.
    row_sums = result.attention.sum(axis=1)
    assert (row_sums <= 1.0 + 1e-5).all() and (row_sums > 0.5).all()
    refined = carlib.clip_es_refine(result.cams, result.attention, threshold=0.4, output_size=(224, 320))
    assert refined.shape == (3, 224, 320) and refined.dtype == np.float32
    assert refined.min() >= 0 and refined.max() <= 1
    on_grid = carlib.clip_es_refine(result.cams, result.attention, threshold=0.4)
    assert on_grid.shape == (3, 14, 20)
    np.testing.assert_allclose(on_grid.max(axis=(1, 2)), 1.0, atol=1e-6)
