"""`carlib ablate --table methods`: every dense method alone and under CaR (+ dense CRF), on ShapesWorld.

No codebase could run both until now: the field's training-free methods
(MaskCLIP, SCLIP, ClearCLIP, NACLIP) read dense patch-text similarities and
are evaluated alone, per-pixel argmax; CaR proposes masks, verifies each with
a visual prompt and drops what fails. Here each method is measured

- **alone**: carlib's protocol (:func:`carlib.method_alone.carlib_protocol`),
  the argmax over [classes; background words] on the scene;
- **under CaR + CRF**: the method as CaR's proposal stage, without and with
  CLIP-ES refinement; everything else is the ``shapes`` preset.

Grad-CAM, CaR's own proposals, is the first row. Each ShapesWorld model that
loads gets its rows (``shapes``, the contrastive CLIP; ``shapes-siglip``, the
sigmoid-trained one, when its folder is there); the same held-out test scenes
for every cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from carlib.dense_methods import DENSE_METHODS, METHOD_SPECS
from carlib.models import SHAPES_MODEL_NAME, WeightsNotFoundError

METHODS_TABLE_MODELS: tuple[str, ...] = ("shapes", "shapes-siglip")
"""The ShapesWorld models the table runs by default, each only if it loads."""

PROPOSALS: tuple[str, ...] = ("gradcam", *DENSE_METHODS)
TITLES = {"gradcam": "Grad-CAM (CaR's)", **{name: spec.title for name, spec in METHOD_SPECS.items()}}


@dataclass
class MethodsRow:
    """One proposal method with one model: mIoU in [0, 1] alone and under CaR (None where it does not apply)."""

    proposals: str
    model: str
    alone: float | None
    car_crf: float
    car_clip_es_crf: float


def load_world_models(names: Sequence[str], *, required: bool) -> tuple[dict, list[str]]:
    """The ShapesWorld models by name, and a note for each one that did not load (when not ``required``).

    Raises:
        WeightsNotFoundError: a model that does not load, when ``required``.
    """
    from carlib.pipeline import load_models
    from carlib.presets import get_preset

    preset = get_preset("shapes")
    loaded, notes = {}, []
    for name in names:
        try:
            loaded[name] = (
                load_models(preset, "shapes")
                if name == SHAPES_MODEL_NAME
                else load_models(preset, "shapes", proposal=name, classifier=name)
            )
        except WeightsNotFoundError as error:
            if required:
                raise
            notes.append(f"{name}: not run, it did not load ({str(error).split(';')[0]})")
    return loaded, notes


def methods_table(
    n: int,
    models: Sequence[str] | None = None,
    *,
    seed: int | None = None,
    progress: bool = True,
    proposals: Sequence[str] = PROPOSALS,
) -> tuple[list[MethodsRow], list[str]]:
    """Measure the table on ``n`` held-out test scenes.

    Arguments:
        n: scenes per cell.
        models: ShapesWorld model names; None: :data:`METHODS_TABLE_MODELS`, each skipped (with a note) if it
            does not load. Given explicitly, each must load.
        seed: scene seed (default: the test split's).
        progress: progress bars.
        proposals: the rows' proposal methods (default: Grad-CAM and every dense method).

    Returns:
        (rows, notes).
    """
    from carlib.evaluation.shapesworld import EVAL_SEED, evaluate_car_on_world, evaluate_method_on_world
    from carlib.presets import get_preset

    if n < 1:
        raise ValueError(f"n (ShapesWorld scenes per cell) must be at least 1, got {n}")
    seed = EVAL_SEED if seed is None else seed
    loaded, notes = load_world_models(models or METHODS_TABLE_MODELS, required=models is not None)
    if not loaded:
        raise ValueError("no ShapesWorld model loaded: " + "; ".join(notes))
    preset = get_preset("shapes")
    rows = []
    for name, bundles in loaded.items():
        for method in proposals:
            alone = (
                None
                if method == "gradcam"
                else evaluate_method_on_world(n, method, seed=seed, preset=preset, models=bundles, progress=progress)[0]
            )
            cells = []
            for clip_es in (False, True):
                report = evaluate_car_on_world(
                    n,
                    seed=seed,
                    preset=preset,
                    models=bundles,
                    variants=("car_crf",),
                    progress=progress,
                    car_options={"proposal_method": method, "use_clip_es": clip_es},
                )
                cells.append(report.miou["car_crf"])
            rows.append(MethodsRow(method, name, alone, *cells))
    return rows, notes


def methods_markdown(rows: Sequence[MethodsRow], notes: Sequence[str], n: int) -> str:
    """The table as markdown (mIoU %), with the gain of the recurrence over each method alone."""
    lines = [
        f"### Ablation: methods (ShapesWorld, {n} held-out scenes; mIoU %)",
        "",
        "| proposals | model | alone | CaR + CRF | CaR + CLIP-ES + CRF | CaR + CLIP-ES + CRF − alone |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        alone = "—" if row.alone is None else f"{row.alone * 100:.1f}"
        gain = "—" if row.alone is None else f"{(row.car_clip_es_crf - row.alone) * 100:+.1f}"
        lines.append(
            f"| {TITLES[row.proposals]} | {row.model} | {alone} | {row.car_crf * 100:.1f} | "
            f"{row.car_clip_es_crf * 100:.1f} | {gain} |"
        )
    lines += [
        "",
        "Alone: carlib's protocol (per-pixel argmax over [classes; background words], the preset's 112 "
        "words). CaR: the `shapes` preset with the method as its proposal stage; CLIP-ES on in the last "
        "column (the preset's choice for Grad-CAM).",
    ]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
