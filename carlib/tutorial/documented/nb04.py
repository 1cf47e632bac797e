"""Documented figures of ``04_recurrence``: CaR with and without the recurrence, and its keep/drop rates."""

from __future__ import annotations

from carlib.evaluation.shapesworld import evaluate_car_on_world
from carlib.tutorial.documented import Figure

NOTEBOOK = "04_recurrence"


def compute(n: int, seed: int) -> dict[str, Figure]:
    report = evaluate_car_on_world(n, seed=seed, variants=("car_crf", "car_none", "single_pass_crf"))
    return {
        "car_crf_miou": Figure(report.miou["car_crf"], "mIoU, CaR + dense CRF (the shapes preset)"),
        "car_none_miou": Figure(report.miou["car_none"], "mIoU, CaR without post-processing"),
        "single_pass_crf_miou": Figure(report.miou["single_pass_crf"],
                                       "mIoU, one pass with every query kept + CRF (no recurrence)"),
        "present_kept": Figure(report.present_kept, "share of present queries CaR keeps"),
        "absent_dropped": Figure(report.absent_dropped, "share of absent queries CaR drops"),
        "mean_steps": Figure(report.mean_steps, "mean recurrence steps until the query set is stable"),
    }
