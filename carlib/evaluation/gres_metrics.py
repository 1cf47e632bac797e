"""GRES scores: cIoU, gIoU and the no-target accuracies of generalized referring segmentation.

The GRES benchmark (gRefCOCO; Liu, Ding and Jiang, "GRES: Generalized
Referring Expression Segmentation", CVPR 2023) evaluates one sample per
expression, whose ground truth is the union of every object it refers to:
one, several, or none (a *no-target* expression, empty ground truth).
Its evaluator (henghuiding/ReLA ``gres_model/evaluation/refer_evaluation.py``)
defines:

- **cIoU**: cumulative intersection over cumulative union over all samples.
  A no-target sample adds nothing when predicted empty, and the predicted
  area to the union otherwise (which is what plain I and U give there).
- **gIoU**: the mean of per-sample IoU, where a no-target sample scores 1
  if the prediction is empty and 0 otherwise (a targeted sample whose union
  is empty cannot occur: its ground truth is not empty).
- **N-acc**: the share of no-target samples predicted empty; **T-acc**: the
  share of targeted samples not predicted empty (the paper's definitions).
- **Pr@0.7/0.8/0.9**: the share of *targeted* samples with IoU ≥ the threshold.

ReLA predicts "no target" with a separate head; CaR has none, so a
prediction counts as "no target" exactly when its mask is empty, which is
also what a CaR run that drops every query gives. The released evaluator
computes its accuracies as ``TP / (TP + FN + 1)`` (N-acc) and
``TP / (TP + FP + 1)`` (T-acc, which is a precision of the no-target
prediction, not the paper's T-acc); those two are reported beside the
paper's as ``N_acc_released`` and ``T_acc_released``, so a number can be
compared with either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

GRES_PRECISION_THRESHOLDS: tuple[float, ...] = (0.7, 0.8, 0.9)
"""ReLA's ``pr_thres``; counted over targeted samples, with ≥."""

_FIELDS = (
    "intersection",
    "union",
    "iou_sum",
    "samples",
    "no_target",
    "no_target_empty",
    "targeted_empty",
    "reference_iou_sum",
    *(f"above_{t}" for t in GRES_PRECISION_THRESHOLDS),
)


def sample_overlap(prediction: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """(intersection, union) pixel counts of two H x W masks (bool or 0/1)."""
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction {prediction.shape} and ground truth {truth.shape} differ in size")
    predicted, target = np.asarray(prediction, dtype=bool), np.asarray(truth, dtype=bool)
    return int(np.logical_and(predicted, target).sum()), int(np.logical_or(predicted, target).sum())


@dataclass
class GresMetrics:
    """GRES scores accumulated expression by expression; sums only, so ranks can add them.

    Attributes:
        intersection, union: cumulative pixel counts (cIoU = intersection / union).
        iou_sum: sum of per-sample IoU under the GRES rule (no-target: 1 if empty, else 0).
        samples: expressions seen.
        no_target: no-target expressions seen; no_target_empty: of those, predicted empty.
        targeted_empty: targeted expressions predicted empty.
        reference_iou_sum: sum of per-sample IoU as the official CaR ``evaluate.py``
            computes it for every referring dataset (0 whenever the union is empty,
            so a correctly empty no-target prediction scores 0).
        above: targeted samples with IoU ≥ each of :data:`GRES_PRECISION_THRESHOLDS`.
    """

    intersection: int = 0
    union: int = 0
    iou_sum: float = 0.0
    samples: int = 0
    no_target: int = 0
    no_target_empty: int = 0
    targeted_empty: int = 0
    reference_iou_sum: float = 0.0

    def __post_init__(self) -> None:
        self.above = [0] * len(GRES_PRECISION_THRESHOLDS)

    def update(self, prediction: np.ndarray, truth: np.ndarray, no_target: bool | None = None) -> float:
        """Add one expression.

        Arguments:
            prediction: H x W bool predicted mask (empty = "no target").
            truth: H x W bool union of the referred objects (empty for a no-target expression).
            no_target: the dataset's no-target flag (None: the ground truth is empty). They differ
                only for a targeted ref whose objects are all crowd annotations, which ReLA scores
                as targeted with IoU 0.

        Returns:
            the sample's IoU under the GRES rule.
        """
        intersection, union = sample_overlap(prediction, truth)
        predicted_empty = not np.any(prediction)
        self.samples += 1
        self.intersection += intersection
        self.union += union
        self.reference_iou_sum += intersection / union if union else 0.0
        if no_target is None:
            no_target = not np.any(truth)
        if no_target:
            self.no_target += 1
            self.no_target_empty += int(predicted_empty)
            score = 1.0 if predicted_empty else 0.0
        else:
            self.targeted_empty += int(predicted_empty)
            score = intersection / union if union else 0.0
            for index, threshold in enumerate(GRES_PRECISION_THRESHOLDS):
                self.above[index] += int(score >= threshold)
        self.iou_sum += score
        return score

    def packed(self) -> np.ndarray:
        """Every sum as one float64 vector (:func:`gres_summary` reads it), for adding across ranks."""
        values = [
            self.intersection,
            self.union,
            self.iou_sum,
            self.samples,
            self.no_target,
            self.no_target_empty,
            self.targeted_empty,
            self.reference_iou_sum,
            *self.above,
        ]
        return np.asarray(values, dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """The scores (:func:`gres_summary` of :meth:`packed`)."""
        return gres_summary(self.packed())


def gres_summary(packed: np.ndarray) -> dict[str, Any]:
    """The GRES scores from :meth:`GresMetrics.packed` (possibly summed over ranks).

    Returns:
        dict with ``gIoU``, ``cIoU``, ``N_acc``, ``T_acc`` (fractions in [0, 1];
        NaN where nothing was counted), ``Pr@0.7``... over targeted samples,
        ``N_acc_released`` and ``T_acc_released`` (the released evaluator's
        formulas), ``mIoU_reference_loop`` (the official CaR loop's mean IoU),
        and the counts ``count``, ``no_target_count``, ``targeted_count``.
    """
    if packed.shape != (len(_FIELDS),):
        raise ValueError(f"expected {len(_FIELDS)} packed GRES sums, got shape {packed.shape}")
    sums = dict(zip(_FIELDS, packed.tolist(), strict=True))
    samples, no_target = sums["samples"], sums["no_target"]
    targeted = samples - no_target
    true_no_target = sums["no_target_empty"]  # ReLA's TP
    missed_no_target = no_target - true_no_target  # FN
    false_no_target = sums["targeted_empty"]  # FP

    def ratio(numerator: float, denominator: float) -> float:
        return float(numerator / denominator) if denominator else float("nan")

    result: dict[str, Any] = {
        "gIoU": ratio(sums["iou_sum"], samples),
        "cIoU": ratio(sums["intersection"], sums["union"]),
        "N_acc": ratio(true_no_target, no_target),
        "T_acc": ratio(targeted - false_no_target, targeted),
    }
    for threshold in GRES_PRECISION_THRESHOLDS:
        result[f"Pr@{threshold}"] = ratio(sums[f"above_{threshold}"], targeted)
    # The released evaluator reports 0 for both when the split has no no-target sample.
    has_no_target = no_target > 0
    result["N_acc_released"] = true_no_target / (true_no_target + missed_no_target + 1) if has_no_target else 0.0
    result["T_acc_released"] = true_no_target / (true_no_target + false_no_target + 1) if has_no_target else 0.0
    result["mIoU_reference_loop"] = ratio(sums["reference_iou_sum"], samples)
    result["count"] = int(samples)
    result["no_target_count"] = int(no_target)
    result["targeted_count"] = int(targeted)
    return result
