"""The paper's metrics: semantic mIoU from one confusion matrix, referring IoU and precision.

Spec section 7.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

IGNORE_LABEL = 255
PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


class ConfusionMatrix:
    """Accumulates a (ground truth x prediction) confusion matrix over a whole split.

    Arguments:
        num_classes: number of labels, background included (VOC-21: 21).
        ignore_label: ground-truth value that is not counted (255 in VOC).
    """

    def __init__(self, num_classes: int, ignore_label: int = IGNORE_LABEL) -> None:
        if num_classes < 1:
            raise ValueError("num_classes must be at least 1")
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, prediction: np.ndarray, ground_truth: np.ndarray) -> None:
        """Add one image: H x W integer label maps of the same size."""
        if prediction.shape != ground_truth.shape:
            raise ValueError(
                f"prediction {prediction.shape} and ground truth {ground_truth.shape} differ in size; "
                "predict at the original image size"
            )
        valid = ground_truth != self.ignore_label
        truth = ground_truth[valid].astype(np.int64)
        predicted = prediction[valid].astype(np.int64)
        if truth.size and (truth.max() >= self.num_classes or truth.min() < 0):
            raise ValueError(f"ground-truth label {truth.max()} outside 0..{self.num_classes - 1} (and not ignored)")
        if predicted.size and (predicted.max() >= self.num_classes or predicted.min() < 0):
            raise ValueError(f"predicted label {predicted.max()} outside 0..{self.num_classes - 1}")
        self.matrix += np.bincount(truth * self.num_classes + predicted, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix (e.g. from another process)."""
        if other.matrix.shape != self.matrix.shape:
            raise ValueError("cannot merge confusion matrices of different sizes")
        self.matrix += other.matrix

    def iou(self) -> np.ndarray:
        """Per-class IoU = TP / (TP + FP + FN); NaN for classes absent from ground truth and prediction."""
        true_positive = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - true_positive
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, true_positive / np.maximum(union, 1), np.nan)

    def present(self) -> np.ndarray:
        """bool per class: does it occur in the ground truth?"""
        return self.matrix.sum(axis=1) > 0

    def miou(self, classes: Sequence[int] | None = None) -> float:
        """Mean IoU over the classes present in the ground truth (optionally restricted to ``classes``)."""
        selected = self.present()
        if classes is not None:
            mask = np.zeros(self.num_classes, dtype=bool)
            mask[list(classes)] = True
            selected &= mask
        if not selected.any():
            return float("nan")
        return float(np.mean(self.iou()[selected]))

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")


def foreground_only(prediction: np.ndarray, ground_truth: np.ndarray, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """Ground truth for the "without background" setting (VOC-20, Context-59).

    Only ground-truth foreground pixels count: background pixels become
    ``ignore_label``. Labels shift down by one so class ids start at 0.

    Returns:
        H x W int64 ground truth to pair with ``prediction - 1``.
    """
    truth = ground_truth.astype(np.int64).copy()
    truth[(ground_truth == 0) | (ground_truth == ignore_label)] = ignore_label
    keep = truth != ignore_label
    truth[keep] -= 1
    return truth


@dataclass
class ReferringMetrics:
    """Referring segmentation scores accumulated object by object.

    mIoU is the mean of per-object IoU (the paper's number); overall IoU is
    total intersection over total union; precision@k is the fraction of
    objects with IoU above k.
    """

    ious: list[float] = field(default_factory=list)
    intersection: int = 0
    union: int = 0

    def update(self, prediction: np.ndarray, ground_truth: np.ndarray) -> float:
        """Add one referred object (H x W bool masks); returns its IoU."""
        if prediction.shape != ground_truth.shape:
            raise ValueError(f"prediction {prediction.shape} and ground truth {ground_truth.shape} differ in size")
        predicted, truth = prediction.astype(bool), ground_truth.astype(bool)
        intersection = int(np.logical_and(predicted, truth).sum())
        union = int(np.logical_or(predicted, truth).sum())
        iou = intersection / union if union else 1.0
        self.ious.append(iou)
        self.intersection += intersection
        self.union += union
        return iou

    def summary(self) -> dict[str, float]:
        ious = np.asarray(self.ious, dtype=np.float64)
        result = {
            "mIoU": float(ious.mean()) if ious.size else float("nan"),
            "oIoU": self.intersection / self.union if self.union else float("nan"),
            "count": int(ious.size),
        }
        for threshold in PRECISION_THRESHOLDS:
            result[f"P@{threshold}"] = float((ious > threshold).mean()) if ious.size else float("nan")
        return result


def iou(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two HxW bool masks (1.0 when both are empty)."""
    union = np.logical_or(prediction, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(prediction, truth).sum() / union)
