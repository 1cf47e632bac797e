"""The rows of the paper's ablation tables (2, 3, 4, 5, 6) as data: each row's name and what it changes.

:mod:`carlib.evaluation.ablation` runs them (``carlib ablate``); the reproduce registry
(:mod:`carlib.evaluation.registry`) holds their published numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from carlib.background import BACKGROUND_SETS
from carlib.presets import Preset

TABLES = ("recurrence", "prompts", "background", "backbones", "sweep", "methods")

SWEEP_STEP = 0.1
"""How far the sweep moves η, θ and λ from the preset's values, one at a time (Table 5)."""


@dataclass(frozen=True)
class Row:
    """One line of an ablation table: a name and what changes (its published number, if any, is in the registry:
    :func:`carlib.evaluation.registry.published_ablation`)."""

    name: str
    preset_changes: dict
    car_options: dict


def table_rows(table: str, preset: Preset) -> list[Row]:
    """The rows of one ablation table for a preset.

    Arguments:
        table: ``recurrence`` (Table 2), ``prompts`` (Table 4), ``background``
            (Table 6), ``backbones`` (Table 3) or ``sweep`` (Table 5: η, θ
            and λ each moved by :data:`SWEEP_STEP` either way from the
            preset's values, one at a time, values kept in [0, 1]).
        preset: the preset the rows modify.

    Returns:
        list of :class:`Row`.
    """
    if table == "recurrence":
        return [
            Row("no recurrence (one pass, all queries kept)", {}, {"recurrent": False}),
            Row("recurrence + Grad-CAM", {}, {"use_clip_es": False}),
            Row("recurrence + CLIP-ES", {}, {"use_clip_es": True}),
            Row(
                "recurrence + MaskCLIP (not in the paper)",
                {},
                {"proposal_method": "maskclip", "use_clip_es": False},
            ),
            Row(
                "recurrence + MaskCLIP + CLIP-ES (not in the paper)",
                {},
                {"proposal_method": "maskclip", "use_clip_es": True},
            ),
        ]
    if table == "prompts":
        kinds = ("circle", "contour", "blur", "gray", "black", "circle+blur")
        return [Row(name, {"prompt_kinds": tuple(name.split("+"))}, {}) for name in kinds]
    if table == "background":
        rows = [Row("none", {"background": ()}, {})]
        if preset.name == "shapes":
            from carlib.vocabularies import shapes_background_words

            rows.append(
                Row(
                    "ShapesWorld surfaces (grass, sky, water, sand)",
                    {"background": shapes_background_words()},
                    {},
                )
            )
        rows += [
            Row("default 23 words", {"background": BACKGROUND_SETS["default"]}, {}),
            Row("terrestrial", {"background": BACKGROUND_SETS["terrestrial"]}, {}),
            Row("aquatic-atmospheric", {"background": BACKGROUND_SETS["aquatic_atmospheric"]}, {}),
            Row("man-made", {"background": BACKGROUND_SETS["man_made"]}, {}),
            Row("all groups", {"background": BACKGROUND_SETS["all_groups"]}, {}),
        ]
        return rows
    if table == "backbones" and preset.name == "shapes":
        return backbone_rows_on_world()
    if table == "backbones":
        pairs = [("ViT-B-16", "ViT-B-16"), ("ViT-B-16", "ViT-L-14"), ("ViT-L-14", "ViT-B-16"), ("ViT-L-14", "ViT-L-14")]
        return [
            Row(
                f"{proposal} proposals, {classifier} classifier",
                {"proposal_model": proposal, "classifier_model": classifier},
                {},
            )
            for proposal, classifier in pairs
        ]
    if table == "methods":
        raise ValueError(
            "the methods table is not a list of CaR settings; run_table('methods') measures it "
            "(carlib.evaluation.methods_table)"
        )
    if table == "sweep":
        settings = preset.settings
        rows = [
            Row(
                f"preset (η {settings.mask_threshold:g}, θ {settings.confidence_threshold:g}, "
                f"λ {settings.clipes_threshold:g})",
                {},
                {},
            )
        ]
        for symbol, field_name in (("η", "mask_threshold"), ("θ", "confidence_threshold"), ("λ", "clipes_threshold")):
            centre = getattr(settings, field_name)
            for value in (round(centre - SWEEP_STEP, 6), round(centre + SWEEP_STEP, 6)):
                if 0.0 <= value <= 1.0:
                    rows.append(Row(f"{symbol} {value:g}", {field_name: value}, {}))
        return rows
    raise ValueError(f"unknown table {table!r}; choose one of {TABLES}")


SHAPES_FAMILIES = {"shapes": "contrastive, open_clip ViT", "shapes-siglip": "sigmoid, timm ViT + MAP head"}
"""The two ShapesWorld models Table 3's analogue pairs up (:mod:`carlib.world.model`)."""


def backbone_rows_on_world() -> list[Row]:
    """Table 3's analogue across families: each proposal x classifier pairing of the two ShapesWorld models,
    under the softmax score rule, then again under ``as_trained`` where a sigmoid-trained model takes part."""
    rows = []
    for rule in ("softmax", "as_trained"):
        for proposal in SHAPES_FAMILIES:
            for classifier in SHAPES_FAMILIES:
                if rule == "as_trained" and "shapes-siglip" not in (proposal, classifier):
                    continue  # the rule changes nothing for two contrastive models
                rows.append(
                    Row(
                        f"{proposal} proposals, {classifier} classifier, {rule} scores",
                        {"proposal_model": proposal, "classifier_model": classifier},
                        {"score_rule": rule},
                    )
                )
    return rows
