"""Documented figures of ``02_clip_es_affinity``: what CLIP-ES adds to Grad-CAM and to MaskCLIP.

The Grad-CAM and CLIP-ES figures are the ShapesWorld report's
(:func:`carlib.evaluation.shapesworld_report.evaluate_world`), with the CAMs cut
at the ``shapes`` preset's η, where CaR cuts its proposals; MaskCLIP is measured
the same way by :func:`measure_maskclip`, which the notebook also runs on its
bundled scenes.

The field's dense methods (MaskCLIP, SCLIP, ClearCLIP, NACLIP) alone and under
CaR + CRF, with both ShapesWorld models, are ``carlib ablate --table methods``
(:func:`carlib.evaluation.methods_table.methods_table`), stored here cell by
cell (:func:`methods_figures`) so the notebook and docs/shapesworld.md print
them from one file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from carlib.clip_es import clip_es_refine
from carlib.evaluation.metrics import iou
from carlib.maskclip import compute_maskclip
from carlib.models import ClipBundle
from carlib.tutorial.documented import Figure
from carlib.world.classes import CLASS_NAMES
from carlib.world.scene import Scene, split_scene

NOTEBOOK = "02_clip_es_affinity"
MODEL_FOLDERS = ("shapes_clip", "shapes_siglip")
METHOD_CELLS = ("alone", "car_crf", "car_clip_es_crf")
"""The methods table's columns (:class:`carlib.evaluation.methods_table.MethodsRow`)."""


def method_key(model: str, proposals: str, cell: str) -> str:
    """The figure name of one cell of the methods table, e.g. ``methods_shapes-siglip_sclip_alone``."""
    return f"methods_{model}_{proposals}_{cell}"


def methods_figures(rows: Sequence) -> dict[str, Figure]:
    """The methods table's rows (:class:`carlib.evaluation.methods_table.MethodsRow`) as figures."""
    from carlib.evaluation.methods_table import TITLES

    figures = {}
    for row in rows:
        for cell in METHOD_CELLS:
            value = getattr(row, cell)
            if value is not None:
                figures[method_key(row.model, row.proposals, cell)] = Figure(
                    value, f"mIoU, {TITLES[row.proposals]} {cell.replace('_', ' ')}, {row.model}"
                )
    return figures


def methods_rows(figures) -> list:
    """The methods table's rows back from stored figures (a :class:`DocumentedFigures` or a name -> value map)."""
    from carlib.evaluation.methods_table import METHODS_TABLE_MODELS, PROPOSALS, MethodsRow

    names = set(figures.figures) if hasattr(figures, "figures") else set(figures)
    rows = []
    for model in METHODS_TABLE_MODELS:
        for proposals in PROPOSALS:
            if method_key(model, proposals, "car_crf") not in names:
                continue
            alone = method_key(model, proposals, "alone")
            rows.append(
                MethodsRow(
                    proposals,
                    model,
                    figures[alone] if alone in names else None,
                    figures[method_key(model, proposals, "car_crf")],
                    figures[method_key(model, proposals, "car_clip_es_crf")],
                )
            )
    return rows


def measure_maskclip(
    proposal: ClipBundle, scenes: Sequence[Scene], background: Sequence[str], threshold: float, clip_es_threshold: float
) -> dict[str, list[float]]:
    """IoU of every present object's MaskCLIP map, before and after CLIP-ES, each scene asked about every class.

    Returns:
        ``{"maskclip": [...], "maskclip_clip_es": [...]}``, one IoU per (scene, present class).
    """
    names = list(CLASS_NAMES)
    ious: dict[str, list[float]] = {"maskclip": [], "maskclip_clip_es": []}
    for scene in scenes:
        dense = compute_maskclip(proposal, scene.image, names, list(background))
        refined = clip_es_refine(dense.cams, dense.attention, threshold=clip_es_threshold, output_size=dense.image_size)
        plain = dense.upsampled()
        for name in scene.class_names_present:
            truth = scene.class_mask(name)
            ious["maskclip"].append(iou(plain[names.index(name)] > threshold, truth))
            ious["maskclip_clip_es"].append(iou(refined[names.index(name)] > threshold, truth))
    return ious


def compute(n: int, seed: int) -> dict[str, Figure]:
    from carlib.evaluation.methods_table import methods_table
    from carlib.evaluation.shapesworld_report import evaluate_world
    from carlib.pipeline import load_models
    from carlib.presets import get_preset

    settings = get_preset("shapes").settings
    eta, lam = settings.mask_threshold, settings.clipes_threshold
    report = evaluate_world(n=n, seed=seed, cam_threshold=eta, clip_es_threshold=lam, background=settings.background)
    proposal = load_models(get_preset("shapes"), "shapes", device="cpu").proposal
    dense = measure_maskclip(
        proposal, [split_scene("test", index, seed) for index in range(n)], settings.background, eta, lam
    )
    cut = f"cut at η = {eta}, CLIP-ES λ = {lam}"
    return {
        "gradcam_miou": Figure(report.gradcam_miou, f"mean IoU of present objects, Grad-CAM, {cut}"),
        "clip_es_miou": Figure(report.clip_es_miou, f"mean IoU of present objects, Grad-CAM + CLIP-ES, {cut}"),
        "clip_es_gain": Figure(report.clip_es_miou - report.gradcam_miou, "CLIP-ES minus Grad-CAM mean IoU"),
        "full_image_miou": Figure(report.full_image_miou, "mean IoU of present objects, baseline: the whole image"),
        "maskclip_miou": Figure(float(np.mean(dense["maskclip"])), f"mean IoU of present objects, MaskCLIP, {cut}"),
        "maskclip_clip_es_miou": Figure(
            float(np.mean(dense["maskclip_clip_es"])), f"mean IoU of present objects, MaskCLIP + CLIP-ES, {cut}"
        ),
        **methods_figures(methods_table(n, seed=seed, progress=True)[0]),
    }
