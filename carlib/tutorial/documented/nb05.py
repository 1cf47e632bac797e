"""Documented figures of ``05_background_words``: CaR + dense CRF with each set of background words."""

from __future__ import annotations

from carlib.background import BACKGROUND_SETS
from carlib.evaluation.shapesworld import evaluate_car_on_world
from carlib.pipeline import load_models
from carlib.presets import get_preset
from carlib.tutorial.documented import Figure
from carlib.vocabularies import shapes_background_words

NOTEBOOK = "05_background_words"

WORD_SETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "surfaces": shapes_background_words(),
    "default": BACKGROUND_SETS["default"],
    "terrestrial": BACKGROUND_SETS["terrestrial"],
    "aquatic_atmospheric": BACKGROUND_SETS["aquatic_atmospheric"],
    "man_made": BACKGROUND_SETS["man_made"],
    "all_groups": BACKGROUND_SETS["all_groups"],
}
"""The background-word settings measured: the notebook's settings plus the world's own four surface words."""

DESCRIPTIONS = {
    "none": "no background words",
    "surfaces": "ShapesWorld's four surface words (grass, sky, water, sand)",
    "default": "the reference code's default 23 words",
    "terrestrial": "the supplementary's terrestrial group (32 words)",
    "aquatic_atmospheric": "the supplementary's aquatic-atmospheric group (44 words)",
    "man_made": "the supplementary's man-made group (36 words)",
    "all_groups": "all three groups (112 words)",
}


def compute(n: int, seed: int) -> dict[str, Figure]:
    preset = get_preset("shapes")
    models = load_models(preset, "shapes")
    figures = {}
    for name, words in WORD_SETS.items():
        report = evaluate_car_on_world(
            n, seed=seed, preset=preset.replace(background=words), models=models, variants=("car_crf",), progress=False
        )
        figures[f"{name}_miou"] = Figure(report.miou["car_crf"], f"mIoU, CaR + CRF, {DESCRIPTIONS[name]}")
        figures[f"{name}_present_kept"] = Figure(report.present_kept, f"present queries kept, {DESCRIPTIONS[name]}")
        figures[f"{name}_absent_dropped"] = Figure(
            report.absent_dropped, f"absent queries dropped, {DESCRIPTIONS[name]}"
        )
    return figures
