"""The DAVIS 2017 measures of video object segmentation: J (region), F (contour), their means and J&F.

As the DAVIS 2017 evaluation toolkit (davisvideochallenge/davis2017-evaluation,
``davis2017/metrics.py``, ``utils.py``, ``evaluation.py``) defines them:

- **J**, region similarity: the IoU of the predicted and the true mask of one
  object in one frame; 1 when both are empty.
- **F**, contour accuracy: both masks' boundaries are thinned to one pixel
  (:func:`boundary_map`, Martin's ``seg2bmap``: a pixel is on the boundary
  when it differs from its right, lower or lower-right neighbour), each is
  dilated with a disk of radius ``ceil(0.008 * image diagonal)`` pixels
  (:func:`boundary_radius`), and precision (predicted boundary pixels near
  the true boundary) and recall (true boundary pixels near the predicted
  one) give F = 2PR / (P + R). An empty predicted boundary against a
  non-empty true one scores P = 1, R = 0; the reverse P = 0, R = 1; both
  empty P = R = 1 (so F is 0, 0 and 1).
- Per object: the mean over its frames (``M``), the share of frames above
  0.5 (recall, ``R``) and the decay (mean of the first quarter of the frames
  minus the last quarter, ``D``). Per benchmark: the mean over objects of
  each object's mean; **J&F** = (J + F) / 2.

Which frames count is the task's choice. The semi-supervised task drops the
first frame (its mask is given) and the last; the unsupervised task, which
the referring-video papers use (ReferFormer's ``eval_davis.py`` runs the
toolkit with ``--task unsupervised``), scores every frame, and first matches
predicted ids to true ids with the Hungarian method on each pair's mean
J&F (:func:`match_like_unsupervised_task`). :class:`VideoScores` keeps both:
each expression scored against the object it names (the referring
definition), and the toolkit's matched figure.

The toolkit's void pixels never take effect (it compares boolean masks with
255), so there are none here either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

BOUNDARY_TOLERANCE = 0.008
"""The toolkit's ``bound_th``: the boundary tolerance as a fraction of the image diagonal."""

RECALL_THRESHOLD = 0.5
DECAY_BINS = 4


def region_similarity(prediction: np.ndarray, truth: np.ndarray) -> float:
    """J: the IoU of two H x W masks (bool or 0/1), 1.0 when both are empty."""
    predicted, target = _pair(prediction, truth)
    union = np.logical_or(predicted, target).sum()
    return 1.0 if union == 0 else float(np.logical_and(predicted, target).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The one-pixel boundary of a mask, as the toolkit's ``seg2bmap`` draws it.

    A pixel is on the boundary when its value differs from its right, lower or
    lower-right neighbour (outside the image counts as background), so the
    boundary sits half a pixel towards the origin. In the last row only a
    change to the right counts, in the last column only a change downwards,
    and the bottom-right pixel is never on it.

    Arguments:
        mask: H x W bool (or 0/1) mask.

    Returns:
        H x W bool boundary map.
    """
    segment = np.asarray(mask).astype(bool)
    if segment.ndim != 2:
        raise ValueError(f"need an H x W mask, got shape {segment.shape}")
    right = np.zeros_like(segment)
    right[:, :-1] = segment[:, 1:]
    below = np.zeros_like(segment)
    below[:-1, :] = segment[1:, :]
    diagonal = np.zeros_like(segment)
    diagonal[:-1, :-1] = segment[1:, 1:]
    boundary = (segment ^ right) | (segment ^ below) | (segment ^ diagonal)
    boundary[-1, :] = segment[-1, :] ^ right[-1, :]
    boundary[:, -1] = segment[:, -1] ^ below[:, -1]
    boundary[-1, -1] = False
    return boundary


def boundary_radius(shape: Sequence[int], tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """The dilation radius in pixels: ``ceil(tolerance * diagonal)``, or ``tolerance`` itself when it is ≥ 1.

    Arguments:
        shape: (H, W) of the frame.
        tolerance: a fraction of the diagonal (the toolkit's 0.008), or a radius in pixels.

    Returns:
        the radius (480 x 854 DAVIS frames: ceil(0.008 * 979.7) = 8).
    """
    if tolerance >= 1:
        return int(tolerance)
    height, width = shape[:2]
    return int(math.ceil(tolerance * math.hypot(height, width)))


def disk(radius: int) -> np.ndarray:
    """The (2r+1) x (2r+1) uint8 disk: 1 where x² + y² ≤ r² (scikit-image's ``disk``)."""
    offsets = np.arange(-radius, radius + 1)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).astype(np.uint8)


def boundary_precision_recall(
    prediction: np.ndarray, truth: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE
) -> tuple[float, float]:
    """Boundary precision and recall of a predicted mask against the true one (see the module docstring).

    Returns:
        (precision, recall), each in [0, 1].
    """
    predicted, target = _pair(prediction, truth)
    predicted_boundary, true_boundary = boundary_map(predicted), boundary_map(target)
    predicted_count, true_count = int(predicted_boundary.sum()), int(true_boundary.sum())
    if predicted_count == 0 or true_count == 0:
        # Empty boundaries: (1, 0) for a missed object, (0, 1) for a false one, (1, 1) for neither.
        return (1.0 if predicted_count == 0 else 0.0), (1.0 if true_count == 0 else 0.0)
    element = disk(boundary_radius(target.shape, tolerance))
    near_truth = cv2.dilate(true_boundary.astype(np.uint8), element).astype(bool)
    near_prediction = cv2.dilate(predicted_boundary.astype(np.uint8), element).astype(bool)
    precision = (predicted_boundary & near_truth).sum() / predicted_count
    recall = (true_boundary & near_prediction).sum() / true_count
    return float(precision), float(recall)


def contour_accuracy(prediction: np.ndarray, truth: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """F: the F-measure of boundary precision and recall (0 when both are 0).

    Arguments:
        prediction: H x W bool predicted mask.
        truth: H x W bool true mask.
        tolerance: boundary tolerance, a fraction of the diagonal (or pixels if ≥ 1).

    Returns:
        F in [0, 1]; 1 when both masks are empty.
    """
    precision, recall = boundary_precision_recall(prediction, truth, tolerance)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def statistics(per_frame: Sequence[float]) -> dict[str, float]:
    """An object's mean, recall and decay over its frames (the toolkit's ``db_statistics``).

    Arguments:
        per_frame: J or F of each scored frame, in frame order.

    Returns:
        ``{"mean", "recall", "decay"}``: recall is the share of frames above
        0.5; decay is the mean of the first of four equal runs of frames minus
        the mean of the last (the runs' ends are ``round(linspace(1, n, 5)) - 1``
        and each run includes its end frame). NaN for no frames.
    """
    values = np.asarray(per_frame, dtype=np.float64)
    if values.size == 0:
        return {"mean": float("nan"), "recall": float("nan"), "decay": float("nan")}
    ends = (np.round(np.linspace(1, values.size, DECAY_BINS + 1) + 1e-10) - 1).astype(np.int64)
    runs = [values[ends[i] : ends[i + 1] + 1] for i in range(DECAY_BINS)]
    return {
        "mean": float(values.mean()),
        "recall": float((values > RECALL_THRESHOLD).mean()),
        "decay": float(runs[0].mean() - runs[-1].mean()),
    }


def match_like_unsupervised_task(j_means: np.ndarray, f_means: np.ndarray) -> np.ndarray:
    """Which predicted id scores each true object under the toolkit's unsupervised task.

    The toolkit pairs predicted and true objects by the Hungarian method,
    maximising the sum of each pair's (mean J + mean F) / 2.

    Arguments:
        j_means: P x G mean J over the frames of predicted id p + 1 against true object g + 1.
        f_means: the same for F.

    Returns:
        G ints: the predicted index (0-based) matched to each true object (-1: none, counted as an empty prediction).
    """
    from scipy.optimize import linear_sum_assignment

    quality = (np.asarray(j_means) + np.asarray(f_means)) / 2
    rows, columns = linear_sum_assignment(-quality)
    matched = np.full(quality.shape[1], -1, dtype=np.int64)
    matched[columns] = rows
    return matched


@dataclass
class VideoScores:
    """J and F of every object of one video under one expression set, frame by frame.

    ``object_ids[k]`` is the k-th true object; the prediction of object k is
    the label map's pixels equal to ``object_ids[k]`` (the id its expression
    names). ``pair_j[p][g]`` and ``pair_f[p][g]`` also score predicted id
    ``object_ids[p]`` against true object ``object_ids[g]``, for the toolkit's
    unsupervised matching (:func:`match_like_unsupervised_task`).

    Attributes:
        expression_set: the expression set (``"annot1-full-video"``...).
        video: the video's name.
        object_ids: the true objects' ids, ascending.
        frames: the scored frames' names, in order.
        pair_j, pair_f: [predicted][true] lists of per-frame values.
    """

    expression_set: str
    video: str
    object_ids: tuple[int, ...]
    frames: list[str] = field(default_factory=list)
    pair_j: list[list[list[float]]] = field(default_factory=list)
    pair_f: list[list[list[float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.object_ids = tuple(int(i) for i in self.object_ids)
        count = len(self.object_ids)
        if not self.pair_j:
            self.pair_j = [[[] for _ in range(count)] for _ in range(count)]
            self.pair_f = [[[] for _ in range(count)] for _ in range(count)]

    def add_frame(
        self, frame: str, prediction: np.ndarray, truth: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE
    ) -> None:
        """Score one frame.

        Arguments:
            frame: the frame's name.
            prediction: H x W int label map (0 background, object ids elsewhere).
            truth: H x W int true label map, same size.
            tolerance: the boundary tolerance.
        """
        if prediction.shape != truth.shape:
            raise ValueError(
                f"{self.video}/{frame}: prediction {prediction.shape} and ground truth {truth.shape} differ in size"
            )
        self.frames.append(frame)
        for p, predicted_id in enumerate(self.object_ids):
            predicted = prediction == predicted_id
            for g, true_id in enumerate(self.object_ids):
                target = truth == true_id
                self.pair_j[p][g].append(region_similarity(predicted, target))
                self.pair_f[p][g].append(contour_accuracy(predicted, target, tolerance))

    def object_name(self, index: int) -> str:
        """The toolkit's per-object key: ``<video>_<object id>``."""
        return f"{self.video}_{self.object_ids[index]}"

    def referred(self) -> list[dict[str, Any]]:
        """Each object scored by its own expression's prediction: J and F statistics, J&F."""
        scores = []
        for k in range(len(self.object_ids)):
            j, f = statistics(self.pair_j[k][k]), statistics(self.pair_f[k][k])
            scores.append(
                {
                    "object": self.object_name(k),
                    "J": j["mean"],
                    "F": f["mean"],
                    "J&F": (j["mean"] + f["mean"]) / 2,
                    "J_recall": j["recall"],
                    "J_decay": j["decay"],
                    "F_recall": f["recall"],
                    "F_decay": f["decay"],
                    "frames": len(self.frames),
                }
            )
        return scores

    def matched(self) -> list[dict[str, Any]]:
        """Each object scored as the toolkit's unsupervised task does: by the predicted id matched to it."""
        count = len(self.object_ids)
        if not count or not self.frames:
            return []
        j_means = np.array([[np.mean(self.pair_j[p][g]) for g in range(count)] for p in range(count)])
        f_means = np.array([[np.mean(self.pair_f[p][g]) for g in range(count)] for p in range(count)])
        matched = match_like_unsupervised_task(j_means, f_means)
        return [
            {
                "object": self.object_name(g),
                "matched_to": int(self.object_ids[p]),
                "J": float(j_means[p, g]),
                "F": float(f_means[p, g]),
            }
            for g, p in enumerate(matched)
        ]

    def to_record(self) -> dict[str, Any]:
        """A plain dict (JSON- and pickle-friendly) that :meth:`from_record` reads back, for merging shards."""
        return {
            "expression_set": self.expression_set,
            "video": self.video,
            "object_ids": list(self.object_ids),
            "frames": list(self.frames),
            "pair_j": self.pair_j,
            "pair_f": self.pair_f,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> VideoScores:
        return cls(
            record["expression_set"],
            record["video"],
            tuple(record["object_ids"]),
            list(record["frames"]),
            record["pair_j"],
            record["pair_f"],
        )


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def summarize(videos: Sequence[VideoScores], expression_sets: Sequence[str] | None = None) -> dict[str, Any]:
    """The benchmark's figures from every video's scores (possibly gathered from several ranks).

    Arguments:
        videos: one :class:`VideoScores` per (expression set, video).
        expression_sets: the sets, in report order (default: as they first appear).

    Returns:
        dict with top-level ``J``, ``F``, ``J&F`` (fractions: the mean over
        expression sets of each set's mean over objects), ``per_set`` (each
        set's J, F, J&F, recalls and decays, object count), ``per_object``
        (set -> object -> J, F, J&F), ``unsupervised_task`` (the same top-level
        figures with the toolkit's Hungarian matching, overall and per set),
        and ``videos`` / ``objects`` / ``frames`` counts.
    """
    order = (
        list(expression_sets) if expression_sets is not None else list(dict.fromkeys(v.expression_set for v in videos))
    )
    per_set: dict[str, Any] = {}
    per_object: dict[str, Any] = {}
    unsupervised: dict[str, Any] = {}
    frames = 0
    for name in order:
        members = sorted((v for v in videos if v.expression_set == name), key=lambda v: v.video)
        referred = [score for video in members for score in video.referred()]
        matched = [score for video in members for score in video.matched()]
        j, f = _mean([s["J"] for s in referred]), _mean([s["F"] for s in referred])
        per_set[name] = {
            "J": j,
            "F": f,
            "J&F": (j + f) / 2,
            **{key: _mean([s[key] for s in referred]) for key in ("J_recall", "J_decay", "F_recall", "F_decay")},
            "objects": len(referred),
            "frames": sum(len(video.frames) for video in members),
        }
        per_object[name] = {s["object"]: {"J": s["J"], "F": s["F"], "J&F": s["J&F"]} for s in referred}
        uj, uf = _mean([s["J"] for s in matched]), _mean([s["F"] for s in matched])
        unsupervised[name] = {"J": uj, "F": uf, "J&F": (uj + uf) / 2}
        frames = max(frames, per_set[name]["frames"])
    overall = {key: _mean([per_set[name][key] for name in order]) for key in ("J", "F")}
    matched_overall = {key: _mean([unsupervised[name][key] for name in order]) for key in ("J", "F")}
    return {
        "J": overall["J"],
        "F": overall["F"],
        "J&F": (overall["J"] + overall["F"]) / 2,
        "expression_sets": order,
        "per_set": per_set,
        "unsupervised_task": {
            "J": matched_overall["J"],
            "F": matched_overall["F"],
            "J&F": (matched_overall["J"] + matched_overall["F"]) / 2,
            "per_set": unsupervised,
        },
        "per_object": per_object,
        "videos": len({video.video for video in videos}),
        "objects": max((per_set[name]["objects"] for name in order), default=0),
        "frames": frames,
    }


def _pair(prediction: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted, target = np.asarray(prediction).astype(bool), np.asarray(truth).astype(bool)
    if predicted.shape != target.shape:
        raise ValueError(f"prediction {predicted.shape} and ground truth {target.shape} differ in size")
    return predicted, target
