"""Documented figures of ``04_recurrence``: CaR with and without the recurrence, its keep/drop rates, and why a
small sample of scenes reads higher than the 200-scene figure.

The mIoU of :class:`carlib.evaluation.metrics.ConfusionMatrix` (the code's, and
the paper's VOC protocol) is, per label, a ratio of pixel counts summed over
all the scenes measured, averaged over the labels *present in the ground
truth* of those scenes. Two things make a sample of 8-20 scenes read higher
than 200 scenes, and both are measured here, on the 200 scenes split into
disjoint samples of the notebooks' live sizes (:data:`SAMPLE_SIZES`):

- a class absent from every scene of a sample drops out of the mean, and with
  it its IoU of 0 where CaR painted it anyway; mmseg's rule (every label with
  a non-empty union, :func:`miou_over_union`) would count it;
- CaR's wrong pixels come in lumps: in a few scenes one wrongly kept or
  inverted word paints most of the picture (:data:`LUMP_SHARE`). Summed over
  200 scenes those lumps weigh on every class they touch; most small samples
  contain none, and score higher, while the few that do score lower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from carlib.car import CaR
from carlib.evaluation.metrics import ConfusionMatrix
from carlib.tutorial.documented import Figure
from carlib.world.classes import CLASS_NAMES
from carlib.world.scene import Scene

NOTEBOOK = "04_recurrence"

SAMPLE_SIZES: tuple[int, ...] = (8, 10, 20)
"""The live sample sizes of the series: notebook 07 runs 8 scenes, 04 runs 10, 05 and 06 run 20."""

LUMP_SHARE = 0.5
"""A scene is a *lump* when one class's wrongly painted pixels cover more than this share of the picture."""

LABEL_NAMES: tuple[str, ...] = ("background",) + tuple(CLASS_NAMES)
"""Label ``l`` of a confusion matrix is ``LABEL_NAMES[l]``."""


def miou_over_present(matrix: np.ndarray) -> float:
    """mIoU over the labels present in the ground truth (rows of ``matrix`` with pixels): the code's rule.

    Arguments:
        matrix: L x L confusion matrix, ground truth x prediction.
    """
    confusion = ConfusionMatrix(len(matrix))
    confusion.matrix = np.asarray(matrix, dtype=np.int64)
    return confusion.miou()


def miou_over_union(matrix: np.ndarray) -> float:
    """mIoU over every label with a non-empty union (in the ground truth *or* the prediction): mmseg's rule.

    A label CaR paints where the scenes have none counts, with IoU 0.

    Arguments:
        matrix: L x L confusion matrix, ground truth x prediction.
    """
    confusion = ConfusionMatrix(len(matrix))
    confusion.matrix = np.asarray(matrix, dtype=np.int64)
    return float(np.nanmean(confusion.iou()))


@dataclass
class SceneRecords:
    """CaR's answer on each scene, kept per scene so samples of any size can be formed afterwards.

    Attributes:
        matrices: one L x L confusion matrix per scene (L = 1 + number of classes).
        kept_present, dropped_absent: one bool per present / absent query of every scene.
        steps: recurrence steps per scene.
    """

    matrices: list[np.ndarray] = field(default_factory=list)
    kept_present: list[bool] = field(default_factory=list)
    dropped_absent: list[bool] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    def total(self) -> np.ndarray:
        """The confusion matrix of all scenes together."""
        return np.sum(self.matrices, axis=0)


def record_scenes(car: CaR, scenes: Sequence[Scene]) -> SceneRecords:
    """Run ``car`` on each scene with every class name queried, keeping a confusion matrix per scene."""
    names = list(CLASS_NAMES)
    records = SceneRecords()
    for scene in scenes:
        result = car.segment(scene.image, names)
        matrix = ConfusionMatrix(len(names) + 1)
        matrix.update(result.label_map, scene.class_map)
        records.matrices.append(matrix.matrix.copy())
        present = set(scene.class_names_present)
        for name, kept in zip(names, result.kept, strict=True):
            if name in present:
                records.kept_present.append(bool(kept))
            else:
                records.dropped_absent.append(not kept)
        records.steps.append(result.num_steps)
    return records


@dataclass(frozen=True)
class SampleMious:
    """Disjoint consecutive samples of ``size`` scenes (the first is the notebooks' live sample).

    Attributes:
        present: each sample's mIoU over the labels present in its ground truth (the code's rule).
        union: each sample's mIoU over the labels with a non-empty union (mmseg's rule).
        absent: how many classes each sample's ground truth lacks.
        painted_absent: how many of those classes CaR painted somewhere in the sample.
    """

    size: int
    present: list[float]
    union: list[float]
    absent: list[int]
    painted_absent: list[int]


def class_ious(matrix: np.ndarray) -> np.ndarray:
    """IoU of every label (NaN where the union is empty): ``len(matrix)`` floats."""
    confusion = ConfusionMatrix(len(matrix))
    confusion.matrix = np.asarray(matrix, dtype=np.int64)
    return confusion.iou()


def lump_scenes(matrices: Sequence[np.ndarray], share: float = LUMP_SHARE) -> list[int]:
    """Indices of the scenes where one class's wrongly painted pixels cover more than ``share`` of the picture."""
    found = []
    for index, matrix in enumerate(matrices):
        wrong = (np.asarray(matrix).sum(axis=0) - np.diag(matrix))[1:]  # predicted as the class, truly something else
        if wrong.max(initial=0) > share * np.asarray(matrix).sum():
            found.append(index)
    return found


def sample_mious(matrices: Sequence[np.ndarray], size: int) -> SampleMious:
    """Split per-scene confusion matrices into disjoint samples of ``size`` scenes and measure each.

    A trailing part shorter than ``size`` is left out.
    """
    if size < 1 or size > len(matrices):
        raise ValueError(f"a sample of {size} scenes needs 1 <= size <= {len(matrices)} scenes")
    present, union, absent, painted = [], [], [], []
    for start in range(0, len(matrices) - size + 1, size):
        matrix = np.sum(matrices[start : start + size], axis=0)
        present.append(miou_over_present(matrix))
        union.append(miou_over_union(matrix))
        missing = matrix.sum(axis=1)[1:] == 0  # classes (not the background) absent from the ground truth
        absent.append(int(missing.sum()))
        painted.append(int((missing & (matrix.sum(axis=0)[1:] > 0)).sum()))
    return SampleMious(size, present, union, absent, painted)


def compute(n: int, seed: int) -> dict[str, Figure]:
    from carlib.evaluation.shapesworld import evaluate_car_on_world
    from carlib.pipeline import car_from_preset, load_models
    from carlib.presets import get_preset
    from carlib.world.scene import split_scene

    preset = get_preset("shapes")
    models = load_models(preset, "shapes")
    report = evaluate_car_on_world(
        n, seed=seed, preset=preset, models=models, variants=("car_none", "single_pass_crf"), progress=False
    )
    # CaR + CRF scene by scene (evaluate_car_on_world's car_crf, kept per scene for the samples below)
    records = record_scenes(
        car_from_preset(preset, models, post="crf"), [split_scene("test", index, seed) for index in range(n)]
    )
    total = records.total()
    figures = {
        "car_crf_miou": Figure(miou_over_present(total), "mIoU, CaR + dense CRF (the shapes preset)"),
        "car_none_miou": Figure(report.miou["car_none"], "mIoU, CaR without post-processing"),
        "single_pass_crf_miou": Figure(
            report.miou["single_pass_crf"], "mIoU, one pass with every query kept + CRF (no recurrence)"
        ),
        "present_kept": Figure(float(np.mean(records.kept_present)), "share of present queries CaR keeps"),
        "absent_dropped": Figure(float(np.mean(records.dropped_absent)), "share of absent queries CaR drops"),
        "mean_steps": Figure(float(np.mean(records.steps)), "mean recurrence steps until the query set is stable"),
        "car_crf_miou_union": Figure(
            miou_over_union(total), "mIoU, CaR + dense CRF, over every label with a non-empty union (mmseg's rule)"
        ),
    }
    lumps = lump_scenes(records.matrices)
    wrong = [(np.asarray(m).sum(axis=0) - np.diag(m))[1:].sum() for m in records.matrices]
    figures["lump_scenes"] = Figure(
        float(len(lumps)),
        f"scenes where one class's wrongly painted pixels cover more than {LUMP_SHARE:.0%} of the picture",
    )
    figures["lump_wrong_share"] = Figure(
        float(sum(wrong[i] for i in lumps) / max(sum(wrong), 1)),
        "share of all wrongly painted class pixels that lie in those scenes",
    )
    figures["car_crf_miou_without_lumps"] = Figure(
        miou_over_present(np.sum([m for i, m in enumerate(records.matrices) if i not in lumps], axis=0)),
        "mIoU, CaR + dense CRF, the scenes without a lump",
    )
    for label, iou in zip(LABEL_NAMES, class_ious(total), strict=True):
        figures[f"class_iou/{label}"] = Figure(float(iou), f"IoU of {label}, CaR + dense CRF, all scenes together")
    for size in SAMPLE_SIZES:
        if size > n:
            continue
        samples = sample_mious(records.matrices, size)
        count = len(samples.present)
        what = f"CaR + dense CRF on the {count} disjoint {size}-scene samples of these scenes"
        with_lump = [any(start <= i < start + size for i in lumps) for start in range(0, count * size, size)]
        figures.update(
            {
                f"samples{size}_count": Figure(float(count), f"number of {size}-scene samples"),
                f"samples{size}_present_mean": Figure(
                    float(np.mean(samples.present)), f"mean mIoU over labels present in the ground truth, {what}"
                ),
                f"samples{size}_present_min": Figure(float(np.min(samples.present)), f"lowest such mIoU, {what}"),
                f"samples{size}_present_max": Figure(float(np.max(samples.present)), f"highest such mIoU, {what}"),
                f"samples{size}_union_mean": Figure(
                    float(np.mean(samples.union)), f"mean mIoU over labels with a non-empty union, {what}"
                ),
                f"samples{size}_absent_classes": Figure(
                    float(np.mean(samples.absent)), f"mean number of classes absent from a sample, {what}"
                ),
                f"samples{size}_painted_absent": Figure(
                    float(np.mean(samples.painted_absent)), f"mean number of absent classes CaR paints anyway, {what}"
                ),
                f"samples{size}_with_lump": Figure(float(sum(with_lump)), f"samples holding a lump scene, {what}"),
            }
        )
        for key, chosen in (("with_lump", True), ("without_lump", False)):
            values = [v for v, lumpy in zip(samples.present, with_lump, strict=True) if lumpy == chosen]
            if values:
                figures[f"samples{size}_{key}_mean"] = Figure(
                    float(np.mean(values)), f"mean mIoU of the samples {key.replace('_', ' a ')} scene, {what}"
                )
        for k, value in enumerate(samples.present):
            figures[f"samples{size}/{k:02d}"] = Figure(
                float(value), f"mIoU of scenes {k * size}-{(k + 1) * size - 1} (CaR + dense CRF, labels present)"
            )
        if size == 10:
            in_samples = [
                np.sum(records.matrices[start : start + size], axis=0) for start in range(0, count * size, size)
            ]
            for label_index, label in enumerate(LABEL_NAMES):
                values = [class_ious(m)[label_index] for m in in_samples if m.sum(axis=1)[label_index] > 0]
                if values:
                    figures[f"samples10_class_iou/{label}"] = Figure(
                        float(np.mean(values)), f"mean IoU of {label} over the 10-scene samples that contain it"
                    )
    return figures
