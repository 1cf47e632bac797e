"""`carlib ablate`: the paper's ablation tables (2, 4, 5, 6, and 3 where two models exist).

On ShapesWorld (the default) each row is CaR + dense CRF on held-out scenes;
with ``--data-root`` and real weights, each row is a resumable ``carlib eval``
run. Every table prints as markdown with the paper's VOC number beside ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from carlib.evaluation.ablation_rows import SHAPES_FAMILIES, SWEEP_STEP, TABLES, Row, backbone_rows_on_world, table_rows
from carlib.evaluation.registry import published_ablation, published_spreads
from carlib.presets import Preset, get_preset
from carlib.progress import counted

__all__ = [
    "SHAPES_FAMILIES",
    "SWEEP_STEP",
    "TABLES",
    "Row",
    "backbone_rows_on_world",
    "localisation_table",
    "run_table",
    "table_rows",
    "world_row",
]


def run_table(
    table: str,
    preset_name: str = "shapes",
    *,
    n: int = 100,
    data_root: Path | None = None,
    out_dir: Path | None = None,
    model: str = "auto",
    limit: int | None = None,
    progress: bool = True,
    model_overrides: dict | None = None,
    models: Sequence[str] | None = None,
) -> str:
    """Run an ablation table and return it as markdown.

    Arguments:
        table: see :func:`table_rows`.
        preset_name: ``shapes`` (ShapesWorld scenes, no data needed) or a real
            preset (needs ``data_root``, ``out_dir`` and real weights).
        n: ShapesWorld scenes per row.
        data_root, out_dir, model, limit: for real data (see :func:`carlib.evaluation.benchmark.evaluate`).
        model_overrides: other VLMs for either stage (``proposal``, ``classifier``, ``tokenizer``; see
            :func:`carlib.pipeline.load_models`), on ShapesWorld too.
        progress: show progress bars.
        models: the ``methods`` table's ShapesWorld models (None: ``shapes`` and ``shapes-siglip``, each only if
            it loads; :mod:`carlib.evaluation.methods_table`).
    """
    if table == "methods":
        if preset_name != "shapes":
            raise ValueError(
                "the methods table runs on ShapesWorld (--preset shapes); on real data run "
                "`carlib eval --method NAME` (alone) and `carlib eval --proposal-method NAME` (under CaR)"
            )
        from carlib.evaluation.methods_table import methods_markdown, methods_table

        method_rows, notes = methods_table(n, models, progress=progress)
        return methods_markdown(method_rows, notes, n)
    preset = get_preset(preset_name)
    rows = table_rows(table, preset)
    results: list[tuple[Row, float]] = []
    if preset_name == "shapes":
        loaded: dict[tuple, object] = {}
        for row in counted(rows, "rows", resumable=False):  # ShapesWorld rows are measured in memory
            report = world_row(preset, row, n, loaded=loaded, progress=progress, model_overrides=model_overrides)
            results.append((row, report.miou["car_crf"]))
        source = f"ShapesWorld, {n} held-out scenes, CaR + dense CRF"
    else:
        if data_root is None or out_dir is None:
            raise ValueError(f"--preset {preset_name} needs --data-root and --out (real data); or use --preset shapes")
        from carlib.evaluation.benchmark import evaluate

        for index, row in enumerate(counted(rows, "rows")):
            summary = _evaluate_row(
                evaluate,
                preset,
                row,
                data_root,
                Path(out_dir) / f"{table}-{index}",
                model,
                limit,
                progress,
                model_overrides,
            )
            results.append((row, summary))
        source = f"{preset_name}, {data_root}"
    lines = [f"### Ablation: {table} ({source})", "", "| setting | ours mIoU % | paper (VOC-21) % |", "|---|---|---|"]
    published = published_ablation(table)
    for row, value in results:
        paper = f"{published[row.name]:.1f}" if row.name in published else "—"
        lines.append(f"| {row.name} | {value * 100:.1f} | {paper} |")
    if table == "backbones" and preset_name == "shapes":
        lines += ["", localisation_table(n, progress)]
    if table == "sweep":
        values = [value * 100 for _, value in results]
        spreads = "; ".join(f"{name} {low:.1f}–{high:.1f}" for name, (low, high) in published_spreads(table).items())
        lines += [
            "",
            f"Our spread over these {len(values)} settings: {min(values):.1f}–{max(values):.1f} "
            f"({max(values) - min(values):.1f} points). Published spread of Table 5: {spreads}.",
        ]
    return "\n".join(lines) + "\n"


def world_row(
    preset: Preset,
    row: Row,
    n: int,
    *,
    seed: int | None = None,
    loaded: dict | None = None,
    progress: bool = False,
    model_overrides: dict | None = None,
):
    """CaR + dense CRF on ``n`` ShapesWorld test scenes with one row's changes (its models loaded once per pair).

    Returns:
        the :class:`carlib.evaluation.shapesworld.CarWorldReport` of the ``car_crf`` variant.
    """
    from carlib.evaluation.shapesworld import EVAL_SEED, evaluate_car_on_world
    from carlib.pipeline import load_models

    loaded = {} if loaded is None else loaded
    row_preset = preset.replace(**row.preset_changes)
    key = (row_preset.proposal_model, row_preset.classifier_model)
    if key not in loaded:
        loaded[key] = load_models(row_preset, "shapes", **(model_overrides or {}))
    return evaluate_car_on_world(
        n,
        seed=EVAL_SEED if seed is None else seed,
        preset=row_preset,
        models=loaded[key],
        variants=("car_crf",),
        progress=progress,
        car_options=row.car_options,
    )


def localisation_table(n: int, progress: bool = False) -> str:
    """Grad-CAM and CLIP-ES localisation of each ShapesWorld model on ``n`` test scenes (CaR's first step's maps),
    under each score its training allows, with its zero-shot accuracy (:func:`carlib.evaluation.shapesworld_report.evaluate_world`)."""
    from carlib.evaluation.shapesworld_report import CAM_THRESHOLD, evaluate_world

    lines = [
        f"Grad-CAM localisation per family (mean IoU of present classes, maps > {CAM_THRESHOLD}, {n} scenes)",
        "",
        "| model | family | Grad-CAM target | zero-shot accuracy | Grad-CAM | Grad-CAM + CLIP-ES |",
        "|---|---|---|---|---|---|",
    ]
    for name, family in SHAPES_FAMILIES.items():
        for kind in ("softmax", "sigmoid") if name == "shapes-siglip" else ("softmax",):
            report = evaluate_world(name=name, score_kind=kind, n=n, progress=progress)
            lines.append(
                f"| {name} | {family} | {kind} | {report.zero_shot_accuracy:.3f} | {report.gradcam_miou:.3f} "
                f"| {report.clip_es_miou:.3f} |"
            )
    return "\n".join(lines)


def _evaluate_row(
    evaluate,
    preset: Preset,
    row: Row,
    data_root: Path,
    out: Path,
    model: str,
    limit: int | None,
    progress: bool,
    model_overrides: dict | None = None,
) -> float:
    """One real-data row through the resumable harness, with the row's changes applied."""
    summary = evaluate(
        preset.replace(**row.preset_changes),
        data_root,
        out,
        limit=limit,
        model=model,
        progress=progress,
        car_options=row.car_options,
        model_overrides=model_overrides,
    )
    return summary.metrics["mIoU"] if summary is not None else float("nan")
