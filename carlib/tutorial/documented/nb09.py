"""Documented figures of ``09_other_vlms``: the two ShapesWorld families in each stage, under each score rule.

CaR + dense CRF for every proposal x classifier pairing of ``shapes`` (contrastive, open_clip ViT with a class
token) and ``shapes-siglip`` (sigmoid loss, timm ViT with a MAP head, no class token), under the softmax rule
and, where a sigmoid-trained model takes part, the ``as_trained`` rule (Table 3's analogue across families,
:func:`carlib.evaluation.ablation.backbone_rows_on_world`); and each model's Grad-CAM localisation and
zero-shot accuracy (:func:`carlib.evaluation.shapesworld_report.evaluate_world`).
"""

from __future__ import annotations

from carlib.evaluation.ablation import SHAPES_FAMILIES, backbone_rows_on_world, world_row
from carlib.evaluation.shapesworld_report import evaluate_world
from carlib.presets import get_preset
from carlib.scores import ScoreKind
from carlib.tutorial.documented import Figure

NOTEBOOK = "09_other_vlms"
MODEL_FOLDERS = ("shapes_clip", "shapes_siglip")
SHORT = {"shapes": "clip", "shapes-siglip": "siglip"}
LOCALISATION: tuple[tuple[str, ScoreKind], ...] = (
    ("shapes", "softmax"),
    ("shapes-siglip", "softmax"),
    ("shapes-siglip", "sigmoid"),
)
"""Each model under each Grad-CAM target its training allows."""


def pair_key(proposal: str, classifier: str, rule: str) -> str:
    """The figure-name stem of one pairing, e.g. ``car_siglip_clip_as_trained``."""
    return f"car_{SHORT[proposal]}_{SHORT[classifier]}_{rule}"


def measure_pairs(n: int, seed: int, progress: bool = False) -> dict[str, Figure]:
    """CaR + CRF mIoU and keep/drop rates of every pairing and rule on ``n`` test scenes."""
    preset = get_preset("shapes")
    loaded: dict = {}
    figures = {}
    for row in backbone_rows_on_world():
        proposal, classifier = row.preset_changes["proposal_model"], row.preset_changes["classifier_model"]
        stem = pair_key(proposal, classifier, row.car_options["score_rule"])
        report = world_row(preset, row, n, seed=seed, loaded=loaded, progress=progress)
        figures[f"{stem}_miou"] = Figure(report.miou["car_crf"], f"mIoU, CaR + CRF, {row.name}")
        figures[f"{stem}_present_kept"] = Figure(report.present_kept, f"present queries kept, {row.name}")
        figures[f"{stem}_absent_dropped"] = Figure(report.absent_dropped, f"absent queries dropped, {row.name}")
    return figures


def measure_localisation(n: int, seed: int) -> dict[str, Figure]:
    """Zero-shot accuracy, Grad-CAM and Grad-CAM + CLIP-ES IoU of each model and Grad-CAM target."""
    figures = {}
    for name, kind in LOCALISATION:
        report = evaluate_world(name=name, score_kind=kind, n=n, seed=seed)
        what = f"{name} ({SHAPES_FAMILIES[name]}), {kind} target"
        stem = f"loc_{SHORT[name]}_{kind}"
        figures[f"{stem}_gradcam"] = Figure(report.gradcam_miou, f"Grad-CAM IoU of present classes, {what}")
        figures[f"{stem}_clip_es"] = Figure(report.clip_es_miou, f"Grad-CAM + CLIP-ES IoU, {what}")
        figures[f"{stem}_zero_shot"] = Figure(report.zero_shot_accuracy, f"zero-shot accuracy, {what}")
    return figures


def compute(n: int, seed: int) -> dict[str, Figure]:
    return {**measure_pairs(n, seed), **measure_localisation(n, seed)}
