"""Metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carlib.evaluation.metrics import ConfusionMatrix, ReferringMetrics, foreground_only


def test_confusion_matrix_by_hand():
    truth = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    prediction = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
    matrix = ConfusionMatrix(4)
    matrix.update(prediction, truth)
    # class 0: TP 1, FP 2 (one from class 1, one from class 2), FN 1 -> 1/4
    # class 1: TP 2, FP 1, FN 1 -> 2/4; class 2: TP 1, FP 0 (255 ignored), FN 1 -> 1/2
    np.testing.assert_allclose(matrix.iou()[:3], [0.25, 0.5, 0.5])
    assert math.isnan(matrix.iou()[3])
    # Class 3 never occurs in the ground truth: not averaged.
    assert matrix.miou() == pytest.approx((0.25 + 0.5 + 0.5) / 3)
    assert matrix.miou(classes=[1, 2]) == pytest.approx(0.5)
    assert matrix.pixel_accuracy() == pytest.approx(4 / 7)


def test_one_matrix_over_the_split_not_a_mean_of_images():
    first, second = np.array([[1, 1]]), np.array([[1, 0, 0, 0]])
    split = ConfusionMatrix(2)
    split.update(np.array([[1, 1]]), first)
    split.update(np.array([[0, 0, 0, 0]]), second)
    # Class 1 over the split: TP 2, FN 1 -> 2/3 (a per-image mean would give 0.5).
    assert split.iou()[1] == pytest.approx(2 / 3)


def test_merge_equals_a_single_pass():
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 5, (8, 8)), rng.integers(0, 5, (8, 8))) for _ in range(4)]
    whole, part_a, part_b = ConfusionMatrix(5), ConfusionMatrix(5), ConfusionMatrix(5)
    for index, (prediction, truth) in enumerate(pairs):
        whole.update(prediction, truth)
        (part_a if index % 2 else part_b).update(prediction, truth)
    part_a.merge(part_b)
    np.testing.assert_array_equal(part_a.matrix, whole.matrix)


def test_bad_labels_and_sizes_are_explained():
    matrix = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="differ in size"):
        matrix.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="outside"):
        matrix.update(np.full((1, 1), 3), np.zeros((1, 1)))


def test_foreground_only_drops_background_pixels():
    truth = np.array([[0, 1, 2, 255]])
    np.testing.assert_array_equal(foreground_only(None, truth), [[255, 0, 1, 255]])


def test_referring_metrics_by_hand():
    metrics = ReferringMetrics()
    a = np.zeros((4, 4), bool)
    a[:2] = True  # 8 pixels
    b = np.zeros((4, 4), bool)
    b[1:3] = True  # 8 pixels, overlap 4 -> IoU 4/12
    assert metrics.update(a, b) == pytest.approx(1 / 3)
    assert metrics.update(a, a) == 1.0
    summary = metrics.summary()
    assert summary["mIoU"] == pytest.approx((1 / 3 + 1) / 2)
    assert summary["oIoU"] == pytest.approx((4 + 8) / (12 + 8))
    assert summary["P@0.5"] == 0.5 and summary["P@0.9"] == 0.5
