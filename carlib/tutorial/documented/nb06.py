"""Documented figures of ``06_post_processing``: CaR with no post-processing, dense CRF and region snapping."""

from __future__ import annotations

from carlib.evaluation.shapesworld import evaluate_car_on_world
from carlib.postprocess import ColourRegionMaskSource
from carlib.tutorial.documented import Figure

NOTEBOOK = "06_post_processing"


def compute(n: int, seed: int) -> dict[str, Figure]:
    report = evaluate_car_on_world(
        n, seed=seed, variants=("car_none", "car_crf", "car_sam"), sam_source=ColourRegionMaskSource(), progress=False
    )
    return {
        "car_none_miou": Figure(report.miou["car_none"], "mIoU, CaR, proposals cut at η (no post-processing)"),
        "car_crf_miou": Figure(report.miou["car_crf"], "mIoU, CaR + dense CRF (the shapes preset)"),
        "car_sam_miou": Figure(
            report.miou["car_sam"], "mIoU, CaR + region snapping (ColourRegionMaskSource, the SAM stand-in)"
        ),
    }
