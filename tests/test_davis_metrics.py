"""The DAVIS 2017 measures: J, F (boundary within 0.008 of the diagonal), per-object statistics, J&F, shards."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from carlib.evaluation.davis_metrics import (
    VideoScores,
    boundary_map,
    boundary_precision_recall,
    boundary_radius,
    contour_accuracy,
    disk,
    region_similarity,
    statistics,
    summarize,
)
from carlib.labels import paint_referred_objects


def _square(shift: int = 0) -> np.ndarray:
    """A 6 x 6 square (rows 5..10, columns 5..10) in a 20 x 20 frame, moved right by ``shift`` pixels."""
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:11, 5 + shift:11 + shift] = True
    return mask


def test_a_20_pixel_frame_has_a_one_pixel_tolerance_and_davis_frames_eight():
    assert boundary_radius((20, 20)) == 1  # ceil(0.008 * 28.3)
    assert boundary_radius((480, 854)) == 8  # ceil(0.008 * 979.7): DAVIS's 480p frames
    assert boundary_radius((480, 854), tolerance=3) == 3  # a tolerance of 1 or more is pixels


def test_boundary_is_drawn_half_a_pixel_towards_the_origin():
    mask = np.zeros((5, 5), dtype=bool)
    mask[1:3, 1:3] = True
    # Every pixel that differs from its right, lower or lower-right neighbour: the 3 x 3 outline at rows and
    # columns 0..2, except its bottom-right corner, whose three neighbours are all background like itself.
    expected = np.array([[1, 1, 1, 0, 0],
                         [1, 0, 1, 0, 0],
                         [1, 1, 1, 0, 0],
                         [0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0]], dtype=bool)
    expected[2, 2] = True  # inside the square, its lower and right neighbours are background
    assert (boundary_map(mask) == expected).all()
    # At the right and bottom borders only changes along the border count; the corner pixel never.
    full = np.ones((3, 3), dtype=bool)
    assert not boundary_map(full).any()
    column = np.zeros((3, 3), dtype=bool)
    column[:, 2] = True
    assert boundary_map(column)[:, 1].tolist() == [True, True, True] and not boundary_map(column)[:, 2].any()


def test_disk_is_scikit_images():
    from skimage.morphology import disk as skimage_disk

    for radius in range(0, 12):
        assert (disk(radius) == skimage_disk(radius)).all(), radius


def test_a_square_shifted_by_one_pixel():
    truth, moved = _square(), _square(1)
    assert region_similarity(moved, truth) == pytest.approx(30 / 42)  # 6 x 5 shared, 6 x 7 together
    # Both outlines are 7 x 7 rings (24 pixels) one column apart: every pixel of each is within one pixel
    # (a 4-neighbour, the radius-1 disk) of the other.
    assert boundary_precision_recall(moved, truth) == (1.0, 1.0)
    assert contour_accuracy(moved, truth) == 1.0


def test_a_square_shifted_by_two_pixels():
    truth, moved = _square(), _square(2)
    assert region_similarity(moved, truth) == pytest.approx(24 / 48)
    # The moved ring: columns 6 and 12 (rows 4..10) and rows 4 and 10 (columns 7..11). Within one pixel of the
    # true ring (columns 4 and 10, rows 4 and 10, columns 5..9): rows 4 and 10 entirely (10 pixels: columns 7..9
    # lie on it, 10 and 11 touch column 10), and column 6 at rows 4, 5, 9, 10 (4 pixels); column 12 and column
    # 6's middle (rows 6..8) are not. 14 of 24, and by symmetry the same for recall.
    precision, recall = boundary_precision_recall(moved, truth)
    assert precision == pytest.approx(14 / 24) and recall == pytest.approx(14 / 24)
    assert contour_accuracy(moved, truth) == pytest.approx(14 / 24)


def test_empty_predictions_and_empty_ground_truth():
    truth, empty = _square(), np.zeros((20, 20), dtype=bool)
    assert region_similarity(empty, truth) == 0.0
    assert boundary_precision_recall(empty, truth) == (1.0, 0.0)  # a missed object
    assert contour_accuracy(empty, truth) == 0.0
    assert region_similarity(truth, empty) == 0.0
    assert boundary_precision_recall(truth, empty) == (0.0, 1.0)  # an object where there is none
    assert contour_accuracy(truth, empty) == 0.0
    assert region_similarity(empty, empty) == 1.0 and contour_accuracy(empty, empty) == 1.0
    with pytest.raises(ValueError, match="differ in size"):
        region_similarity(empty, np.zeros((20, 21), dtype=bool))


def test_f_agrees_with_distances_to_the_other_boundary():
    """Dilating with the radius-r disk marks exactly the pixels within Euclidean distance r of the boundary."""
    rng = np.random.default_rng(0)
    for trial in range(40):
        height, width = rng.integers(8, 140, size=2)
        truth = ndimage.binary_dilation(rng.random((height, width)) < 0.02, iterations=int(rng.integers(1, 6)))
        prediction = np.roll(truth, tuple(rng.integers(-4, 5, size=2)), axis=(0, 1)) ^ (rng.random(truth.shape) < 0.01)
        radius = boundary_radius(truth.shape)
        predicted_boundary, true_boundary = boundary_map(prediction), boundary_map(truth)
        if not predicted_boundary.any() or not true_boundary.any():
            continue
        to_truth = ndimage.distance_transform_edt(~true_boundary)
        to_prediction = ndimage.distance_transform_edt(~predicted_boundary)
        precision = (to_truth[predicted_boundary] <= radius).mean()
        recall = (to_prediction[true_boundary] <= radius).mean()
        expected = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        assert contour_accuracy(prediction, truth) == pytest.approx(expected, abs=1e-12), trial


def test_statistics_mean_recall_and_decay_by_hand():
    values = [1, 1, 0, 0, 1, 0, 0, 0]
    # Decay: 8 frames split at round(linspace(1, 8, 5)) - 1 = 0, 2, 4, 5, 7; the first run is frames 0..2
    # (mean 2/3), the last frames 5..7 (mean 0).
    assert statistics(values) == pytest.approx({"mean": 3 / 8, "recall": 3 / 8, "decay": 2 / 3})
    assert np.isnan(statistics([])["mean"])


def _video(name: str, predictions: list[np.ndarray], truths: list[np.ndarray], objects=(1, 2),
           expression_set: str = "annot1-full-video") -> VideoScores:
    scores = VideoScores(expression_set, name, objects)
    for index, (prediction, truth) in enumerate(zip(predictions, truths)):
        scores.add_frame(f"{index:05d}", prediction, truth)
    return scores


def test_per_object_means_then_the_mean_over_objects_and_j_and_f():
    truth = np.zeros((20, 20), dtype=np.int64)
    truth[_square()] = 1
    truth[15:19, 0:4] = 2
    good = truth.copy()
    shifted = np.zeros_like(truth)
    shifted[_square(2)] = 1  # object 1 shifted by two pixels (J 1/2, F 7/12), object 2 missed (J 0, F 0)
    scores = _video("clip", [good, shifted], [truth, truth])
    referred = {row["object"]: row for row in scores.referred()}
    assert referred["clip_1"]["J"] == pytest.approx((1 + 0.5) / 2)
    assert referred["clip_1"]["F"] == pytest.approx((1 + 7 / 12) / 2)
    assert referred["clip_2"]["J"] == pytest.approx(0.5) and referred["clip_2"]["F"] == pytest.approx(0.5)
    summary = summarize([scores])
    assert summary["J"] == pytest.approx((0.75 + 0.5) / 2)
    assert summary["F"] == pytest.approx(((1 + 7 / 12) / 2 + 0.5) / 2)
    assert summary["J&F"] == pytest.approx((summary["J"] + summary["F"]) / 2)
    assert summary["per_object"]["annot1-full-video"]["clip_2"]["J"] == pytest.approx(0.5)
    assert summary["objects"] == 2 and summary["frames"] == 2 and summary["videos"] == 1


def test_the_unsupervised_task_matches_swapped_ids_the_referring_score_does_not():
    truth = np.zeros((20, 20), dtype=np.int64)
    truth[_square()] = 1
    truth[15:19, 0:4] = 2
    swapped = np.where(truth == 1, 2, np.where(truth == 2, 1, 0))
    summary = summarize([_video("clip", [swapped], [truth])])
    assert summary["J"] == 0.0 and summary["F"] == 0.0
    assert summary["unsupervised_task"]["J&F"] == 1.0
    matched = {row["object"]: row["matched_to"] for row in _video("clip", [swapped], [truth]).matched()}
    assert matched == {"clip_1": 2, "clip_2": 1}


def test_sets_are_averaged_and_shards_merge_to_the_same_figures():
    rng = np.random.default_rng(1)
    videos = []
    for expression_set in ("annot1-first-frame", "annot2-full-video"):
        for name in ("a", "b", "c"):
            truths = [rng.integers(0, 3, size=(12, 16)) for _ in range(4)]
            predictions = [np.where(rng.random(t.shape) < 0.7, t, rng.integers(0, 3, size=t.shape)) for t in truths]
            videos.append(_video(name, predictions, truths, expression_set=expression_set))
    whole = summarize(videos)
    per_set = whole["per_set"]
    assert whole["J"] == pytest.approx((per_set["annot1-first-frame"]["J"] + per_set["annot2-full-video"]["J"]) / 2)
    # Two ranks each hold some videos; their records travel as plain dicts and are summarised together.
    shards = [[video.to_record() for video in videos[rank::2]] for rank in range(2)]
    gathered = [VideoScores.from_record(record) for shard in shards for record in shard]
    assert summarize(gathered, ["annot1-first-frame", "annot2-full-video"]) == whole  # videos are sorted first


def test_overlapping_objects_go_to_the_stronger_one():
    first, second = np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool)
    first[:, :3], second[:, 1:] = True, True
    strength_first = np.full((4, 4), 0.6)
    strength_second = np.tile(np.array([0.1, 0.5, 0.7, 0.9]), (4, 1))
    labels = paint_referred_objects([first, second], [strength_first, strength_second], [3, 5])
    assert labels[0].tolist() == [3, 3, 5, 5] and labels.dtype == np.uint8
    tie = paint_referred_objects([first, second], [np.ones((4, 4)), np.ones((4, 4))], [3, 5])
    assert tie[0].tolist() == [3, 3, 3, 5]  # ties go to the first object
    with pytest.raises(ValueError, match="1..255"):
        paint_referred_objects([first], [strength_first], [0])
