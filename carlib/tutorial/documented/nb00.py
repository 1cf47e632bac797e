"""Documented figures of ``00_quickstart``: how good the three lines are, and what the recurrence adds.

The 200-scene figures come from :func:`carlib.evaluation.shapesworld.evaluate_car_on_world`
(every scene asked about all eight class names); :func:`measure_car` computes
the same figures on the notebook's bundled scenes.
"""

from __future__ import annotations

from collections.abc import Sequence

from carlib.car import CaR
from carlib.evaluation.metrics import ConfusionMatrix
from carlib.tutorial.documented import Figure
from carlib.world.classes import CLASS_NAMES
from carlib.world.scene import Scene

NOTEBOOK = "00_quickstart"


def measure_car(car: CaR, scenes: Sequence[Scene]) -> dict[str, float]:
    """mIoU (background + every class, as VOC-21) and keep/drop rates of ``car`` on ``scenes``, all classes queried.

    Returns:
        ``{"miou": ..., "present_kept": ..., "absent_dropped": ...}``.
    """
    names = list(CLASS_NAMES)
    matrix = ConfusionMatrix(len(names) + 1)
    kept_present: list[bool] = []
    dropped_absent: list[bool] = []
    for scene in scenes:
        result = car.segment(scene.image, names)
        matrix.update(result.label_map, scene.class_map)
        for name, kept in zip(names, result.kept, strict=True):
            (kept_present if name in scene.class_names_present else dropped_absent).append(
                bool(kept) if name in scene.class_names_present else not kept
            )
    return {
        "miou": matrix.miou(),
        "present_kept": sum(kept_present) / len(kept_present),
        "absent_dropped": sum(dropped_absent) / max(len(dropped_absent), 1),
    }


def compute(n: int, seed: int) -> dict[str, Figure]:
    from carlib.evaluation.shapesworld import evaluate_car_on_world

    report = evaluate_car_on_world(n, seed=seed, variants=("car_crf", "single_pass_crf"), progress=False)
    return {
        "car_crf_miou": Figure(report.miou["car_crf"], "mIoU, CaR + dense CRF (the shapes preset)"),
        "single_pass_crf_miou": Figure(
            report.miou["single_pass_crf"], "mIoU, baseline: one pass with every query kept + CRF (no recurrence)"
        ),
        "present_kept": Figure(report.present_kept, "share of present queries CaR keeps"),
        "absent_dropped": Figure(report.absent_dropped, "share of absent queries CaR drops"),
    }
