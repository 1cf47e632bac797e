"""`carlib eval`: a resumable, shardable evaluation of CaR (or a dense method alone) on a benchmark.

One loop (:func:`run_task`) drives every benchmark kind; what differs between semantic, referring,
GRES and video benchmarks is a small task object (:mod:`carlib.evaluation.tasks`). The run folder's
protocol card is :mod:`carlib.evaluation.run_card`, its reports :mod:`carlib.evaluation.eval_report`.

Each image's prediction is written atomically (a palette PNG, then a JSON
record that marks it finished), so a run killed at any point resumes where it
stopped and ends with the same metrics. Under ``torchrun`` the images are
sharded across ranks (gloo on CPU, nccl on GPU) and rank 0 merges the
confusion matrices and writes ``metrics.json`` and ``report.md``.

gRefCOCO (preset ``gres``) runs CaR once per expression and scores it with
the GRES benchmark's metrics (:mod:`carlib.evaluation.gres_metrics`); its
headline is gIoU (:data:`HEADLINE_METRIC`).

Ref-DAVIS17 (preset ``refdavis17``) runs CaR on every frame of each video,
once per object and expression set, writes each set's frames in DAVIS's
result layout (``predictions/<set>/<video>/<frame>.png``, object ids as
palette indices, what the DAVIS 2017 toolkit reads) and scores them with
the DAVIS measures (:mod:`carlib.evaluation.davis_metrics`); a frame is
finished when its record ``predictions/records/<video>/<frame>.json`` is
written, and the videos are sharded over ranks. Its headline is J&F.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from carlib.datasets.gres import GresDataset
from carlib.datasets.refdavis import RefDavisDataset
from carlib.evaluation.distributed import Distributed
from carlib.evaluation.eval_report import EvalSummary, count_unit, headline_metric, published_figures, write_reports
from carlib.evaluation.overlap import PostProcessPool, default_workers, read_ahead
from carlib.evaluation.registry import EvalRun
from carlib.evaluation.run_card import claim_eval_folder, run_card
from carlib.evaluation.tasks import (
    CarSemantic,
    EvalTask,
    GresTask,
    MethodSemantic,
    ReferringTask,
    SemanticTask,
    VideoTask,
)
from carlib.pipeline import LoadedModels, car_from_preset, load_models
from carlib.precision import AMP_CHOICES, autocast_for
from carlib.presets import Preset, get_preset
from carlib.progress import counting

PREDICTIONS = "predictions"

__all__ = [
    "PREDICTIONS",
    "EvalSummary",
    "build_task",
    "check_expression_sets",
    "check_method_run",
    "count_unit",
    "evaluate",
    "headline_metric",
    "open_benchmark",
    "proposal_only",
    "run_task",
]


def evaluate(
    preset_name: str | Preset,
    data_root: Path,
    out_dir: Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    post: str | None = None,
    model: str = "auto",
    device: str | None = None,
    without_background: bool = False,
    progress: bool = True,
    models: LoadedModels | None = None,
    car_options: dict | None = None,
    quick_gelu: bool | None = None,
    workers: int | None = None,
    amp: str = "auto",
    sam_source=None,
    split_by: str | None = None,
    expression_sets: Sequence[str] | None = None,
    model_overrides: dict | None = None,
    method_protocol=None,
) -> EvalSummary | None:
    """Evaluate CaR (or a dense method alone) with a preset on a dataset; resumable and shardable.

    Arguments:
        preset_name: a preset name (``voc``, ``context``, ``refcoco``, ``gres``, ``shapes``...)
            or a :class:`Preset` (e.g. a modified one, for ablations).
        data_root: the dataset folder (see docs/datasets.md).
        out_dir: run folder; predictions go to ``out_dir/predictions``.
        split: dataset split (default: the benchmark's evaluation split).
        limit: evaluate only the first ``limit`` images (in sorted id order).
        post: override the preset's post-processing.
        model: ``auto``, ``openai`` or ``shapes`` (see :func:`carlib.pipeline.load_models`).
        model_overrides: ``proposal``, ``classifier`` (``NAME[:TAG|PATH]``) and ``tokenizer`` for
            :func:`carlib.pipeline.load_models`: other VLMs in either stage.
        device: ``None`` picks CUDA when present.
        without_background: the "w/o background" setting (VOC-20, Context-59):
            ground-truth background pixels are ignored.
        progress: show a progress bar.
        models: already loaded models (skips loading).
        car_options: extra :class:`carlib.car.CaR` keywords (ablations).
        quick_gelu: the activation of real CLIP checkpoints (None: inferred).
        workers: processes that read samples ahead and run the CRF while the
            model works (:mod:`carlib.evaluation.overlap`; None: on GPU half
            the cores, at most 4, on CPU none; 0: all in this process). The
            metrics do not depend on it.
        amp: autocast of the model work (:func:`carlib.precision.autocast_for`):
            ``"auto"`` is fp16/bf16 on GPU and off on CPU.
        sam_source: the SAM regions of ``post="sam"`` (:class:`carlib.postprocess.SamMaskSource`, or
            :class:`carlib.postprocess.ColourRegionMaskSource` on ShapesWorld); SAM runs in this process.
        split_by: referring only: whose split of the refs (``"umd"``, RefCOCOg's default, or ``"google"``
            for the paper's RefCOCOg val(G)); see :func:`carlib.datasets.open_dataset`.
        expression_sets: Ref-DAVIS17 only: which expression sets to run (default: the benchmark's four,
            :data:`carlib.datasets.refdavis.EXPRESSION_SETS`; ``"all"`` gives each object all its expressions
            at once). ``limit`` then counts videos.
        method_protocol: a :class:`carlib.method_alone.MethodProtocol`: run its dense method alone (per-pixel
            argmax, no recurrence, no post-processing) on a semantic benchmark instead of CaR. Only the
            proposal model is loaded.

    Returns:
        the :class:`EvalSummary` on rank 0, ``None`` on other ranks.

    Raises:
        ValueError: bad options, or a run folder holding predictions made under another protocol.
    """
    preset = get_preset(preset_name) if isinstance(preset_name, str) else preset_name
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be 0 or more, got {workers}")
    if amp not in AMP_CHOICES:
        raise ValueError(f"unknown amp {amp!r}; choose one of {AMP_CHOICES}")
    dataset = open_benchmark(preset, data_root, split, without_background=without_background, split_by=split_by)
    video = isinstance(dataset, RefDavisDataset)
    if not video and expression_sets is not None:
        raise ValueError(f"expression sets apply to Ref-DAVIS17, not {preset.name}")
    expression_sets = check_expression_sets(expression_sets) if video else None
    if method_protocol is not None:
        check_method_run(preset, method_protocol.method, post)
    distributed = Distributed.from_environment()
    try:
        if models is None and method_protocol is not None:
            models = load_models(
                proposal_only(preset), model, device=device, quick_gelu=quick_gelu, **(model_overrides or {})
            )
        models = models or load_models(preset, model, device=device, quick_gelu=quick_gelu, **(model_overrides or {}))
        changes = {**(car_options or {}), **({"post": post} if post else {})}
        car = car_from_preset(preset, models, sam_source=sam_source, **changes)
        autocast_for(models.proposal.device, amp)  # fp16 asked for on CPU fails before any work
        workers = default_workers(models.proposal.device) if workers is None else workers
        alone = None
        if method_protocol is not None:
            from carlib.method_alone import MethodAlone

            alone = MethodAlone(models.proposal, preset.replace(settings=car.settings), method_protocol)
        predictions = Path(out_dir) / PREDICTIONS
        task = build_task(
            car, alone, preset, dataset, predictions, distributed, limit, without_background, expression_sets
        )
        split_name: str = split if split else getattr(dataset, "split", "val")
        card = run_card(
            preset,
            car.settings,
            models,
            alone,
            dataset,
            task.scored_ids,
            data_root,
            split_name,
            limit,
            without_background,
            split_by,
            expression_sets,
            amp,
        )
        if distributed.rank == 0:
            claim_eval_folder(Path(out_dir), card)  # resumes only a run of the same protocol
        predictions.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        local, errors, count, model_seconds = run_task(task, progress, workers, models.proposal.device, amp)
        merged = task.merge(distributed, local)
        count = int(distributed.sum_array(np.array([count], dtype=np.float64))[0])
        errors = distributed.gather(errors)
        if distributed.rank != 0:
            return None
        run = EvalRun(
            preset=preset.name,
            split=split_name,
            without_background=without_background,
            post=None if alone is not None else car.settings.post,
            split_by=split_by,
            method=alone.protocol.method if alone is not None else None,
        )
        published, paper = published_figures(run, semantic=preset.settings.mode == "semantic")
        summary = EvalSummary(
            preset=preset.name,
            split=split_name,
            images=count,
            metrics=task.summarize(merged),
            errors=errors,
            seconds=time.perf_counter() - start,
            model_seconds=model_seconds,
            paper=paper,
        )
        write_reports(Path(out_dir), summary, task, run, published, models_description=models.description, card=card)
        return summary
    finally:
        distributed.close()


def build_task(
    car,
    alone,
    preset: Preset,
    dataset,
    predictions: Path,
    distributed: Distributed,
    limit: int | None,
    without_background: bool,
    expression_sets: Sequence[str] | None,
) -> EvalTask:
    """The task of a run: a dense method alone or CaR on a semantic benchmark, or CaR on a referring, GRES
    or video one (:mod:`carlib.evaluation.tasks`)."""
    if alone is not None:
        return SemanticTask(MethodSemantic(alone), preset, dataset, predictions, distributed, limit, without_background)
    if isinstance(dataset, RefDavisDataset):
        assert expression_sets is not None  # a video benchmark always names its sets (check_expression_sets)
        return VideoTask(car, dataset, predictions, distributed, limit, expression_sets)
    if isinstance(dataset, GresDataset):
        return GresTask(car, dataset, predictions, distributed, limit)
    if preset.settings.mode == "referring":
        return ReferringTask(car, dataset, predictions, distributed, limit)
    return SemanticTask(CarSemantic(car, preset), preset, dataset, predictions, distributed, limit, without_background)


def run_task(task: EvalTask, progress: bool, workers: int, device, amp: str) -> tuple[Any, list[dict], int, float]:
    """The one evaluation loop: every item of ``task`` (this rank's share), resumable.

    Samples are read ahead (``workers`` processes), a finished item is measured from its stored prediction,
    the rest get their model work here (under ``amp``'s autocast) and their post-processing in the workers;
    each prediction is written (its record last) and measured as its post-processing comes back.

    Returns:
        (this rank's measurements, unreadable samples as ``{"id", "error"}``, items, seconds of model work).
    """
    from carlib.datasets import SampleReadError

    errors: list[dict] = []
    model_seconds = 0.0

    def finished(item, truth, work, count):
        def record_it(post_results):
            task.record(item, truth, work, post_results)
            count.advance()

        return record_it

    samples = read_ahead(task.loader, task.items, SampleReadError, workers)
    with PostProcessPool(workers, task.post_stage) as pool, counting(len(task.items), task.unit) as count:
        for item, sample, error in tqdm(samples, total=len(task.items), desc=task.label, disable=not progress):
            if error is not None:
                errors.append({"id": task.item_id(item), "error": error})
                continue
            image, truth = sample
            if task.restore(item, truth):
                count.advance()
                continue
            started = time.perf_counter()
            with autocast_for(device, amp):
                work = task.run(item, image)
            model_seconds += time.perf_counter() - started
            pool.submit(task.post_jobs(work), finished(item, truth, work, count))
    return task.local(), errors, len(task.items), model_seconds


def check_method_run(preset: Preset, method: str, post: str | None) -> None:
    """A dense method alone needs a semantic benchmark and no post-processing.

    Raises:
        ValueError: a referring preset, or ``post`` given; the message names the CaR alternative.
    """
    if preset.settings.mode != "semantic":
        raise ValueError(
            f"--method runs a dense method alone on a semantic benchmark; {preset.name} is a "
            f"{preset.settings.mode} preset: use --proposal-method {method} to run it under CaR"
        )
    if post is not None:
        raise ValueError(
            f"a method alone has no post-processing (the field's protocol: per-pixel argmax, PAMR off); "
            f"drop --post, or run it under CaR with --proposal-method {method} --post {post}"
        )


def proposal_only(preset: Preset) -> Preset:
    """The preset with its proposal model in both roles, so loading it loads one model (a method alone)."""
    return preset.replace(classifier_model=preset.proposal_model, classifier_pretrained=preset.proposal_pretrained)


def open_benchmark(
    preset: Preset,
    data_root: Path,
    split: str | None = None,
    *,
    without_background: bool = False,
    split_by: str | None = None,
):
    """The dataset a preset is evaluated on (``without_background`` applies to semantic ones, ``split_by``
    to referring ones).

    Raises:
        FileNotFoundError: the folder does not hold the expected layout (the message lists it).
        ValueError: ``split_by`` for a semantic preset, or one the dataset does not have.
    """
    from carlib.datasets import open_dataset

    if preset.settings.mode == "semantic":
        if split_by is not None:
            raise ValueError(f"--split-by applies to referring presets, not {preset.name}")
        return open_dataset(preset.name, data_root, split, without_background=without_background)
    return open_dataset(preset.name, data_root, split, split_by=split_by)


def check_expression_sets(names: Sequence[str] | None) -> tuple[str, ...]:
    """The Ref-DAVIS17 expression sets to run: the benchmark's four by default, each name checked.

    Raises:
        ValueError: an unknown or repeated name, or none.
    """
    from carlib.datasets.refdavis import ALL_EXPRESSIONS, EXPRESSION_SETS

    if names is None:
        return EXPRESSION_SETS
    names = tuple(names)
    known = (*EXPRESSION_SETS, ALL_EXPRESSIONS)
    unknown = [name for name in names if name not in known]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"expression sets must be distinct names among {', '.join(known)}; got {list(names)}")
    return names
