"""`carlib eval`: a resumable, shardable evaluation of CaR on a benchmark.

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

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from carlib.evaluation.davis_metrics import VideoScores, summarize
from carlib.evaluation.distributed import Distributed
from carlib.evaluation.gres_metrics import GresMetrics, gres_summary
from carlib.evaluation.metrics import ConfusionMatrix, ReferringMetrics
from carlib.evaluation.overlap import PostProcessPool, default_workers, read_ahead
from carlib.files import atomic_write_text
from carlib.labels import (
    merge_referring_masks,
    paint_referred_objects,
    read_label_png,
    save_label_png,
    save_palette_png,
)
from carlib.pipeline import LoadedModels, car_from_preset, load_models, vocabulary_recurrences, vocabulary_segmentation
from carlib.precision import AMP_CHOICES, autocast_for
from carlib.presets import Preset, get_preset
from carlib.progress import counting

PREDICTIONS = "predictions"

# Published numbers (mIoU %, CaR + CRF; paper-numbers.md) keyed by (preset, split setting).
PAPER_MIOU = {
    "voc": 67.6,
    "voc20": 91.4,
    "coco_object": 36.6,
    "context": 30.5,
    "context59": 39.5,
    "ade150": 17.7,
    "ade847": 8.1,
    "context459": 13.9,
    "voc+sam": 70.2,  # Table 1's CaR + SAM rows (HQ-SAM ViT-H)
    "coco_object+sam": 37.6,
    "context+sam": 31.1,
    "refcoco/val": 33.57,
    "refcoco/testA": 35.36,
    "refcoco/testB": 30.51,
    "refcoco+/val": 34.22,
    "refcoco+/testA": 36.03,
    "refcoco+/testB": 31.02,
    "refcocog/val": 36.67,
    "refcocog/test": 36.57,
    "refcocog/val(G)": 36.63,  # the google split (split_by="google")
    "gres/val": 16.8,  # Table 7 names no metric; compare with gIoU and cIoU (metrics.json has both)
    "refdavis17/val": 30.34,  # J&F; J and F are in PAPER_VIDEO
}

PAPER_METHOD_MIOU: dict[str, dict[str, float]] = {
    "maskclip": {"voc": 38.8, "coco_object": 20.6, "context": 23.6},
    "sclip": {"voc": 59.1, "context": 30.4, "coco_object": 30.5, "voc20": 80.4, "context59": 34.2},
    "clearclip": {"voc": 51.8, "context": 32.6, "coco_object": 33.0, "voc20": 80.9, "context59": 35.9},
    "naclip": {"voc": 58.9, "context": 32.2, "coco_object": 33.2, "voc20": 79.7, "context59": 35.2},
}
"""Each dense method's published mIoU % on its own with ViT-B/16, keyed like :data:`PAPER_MIOU`
(:data:`PAPER_METHOD_SOURCES` says where each comes from)."""

PAPER_METHOD_SOURCES: dict[str, str] = {
    "maskclip": "CaR's Table 1 (MaskCLIP's row, quoted by CaR from earlier work; the protocol behind it is not stated)",
    "sclip": "the SCLIP paper (ECCV 2024), Table 1, without PAMR; its README gives 59.63 / 31.74 / 33.52 / 81.54 / "
    "34.46 for VOC-21 / Context-60 / COCO-Object / VOC-20 / Context-59 with the repository's default setup",
    "clearclip": "the ClearCLIP paper (ECCV 2024), Table 1, ViT-B/16; its README gives its numbers only as an image",
    "naclip": "the NACLIP paper (WACV 2025), without PAMR; its README gives 64.07 / 34.99 / 36.19 / 83.03 / 38.35 "
    "for VOC-21 / Context-60 / COCO-Object / VOC-20 / Context-59 with PAMR on (its default), which carlib "
    "does not implement",
}
"""Where each method's published numbers come from."""

PAPER_VIDEO = {"refdavis17/val": {"J&F": 30.34, "J": 28.15, "F": 32.53}}
"""Ref-DAVIS17's published figures (%, paper-numbers.md), keyed like :data:`PAPER_MIOU`."""

HEADLINE_METRIC = {"gres": "gIoU", "refdavis17": "J&F"}
METHOD_TITLES = {"maskclip": "MaskCLIP", "sclip": "SCLIP", "clearclip": "ClearCLIP", "naclip": "NACLIP"}
"""The metric ``carlib eval`` prints and ``report.md`` leads with, where it is not mIoU."""


@dataclass
class EvalSummary:
    """What ``carlib eval`` measured."""

    preset: str
    split: str
    images: int
    metrics: dict
    errors: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    model_seconds: float = 0.0  # of ``seconds``, spent in the recurrences (model work)

    @property
    def model_busy(self) -> float:
        """The fraction of the wall time the models were working (the rest: reading, CRF, writing not overlapped)."""
        return self.model_seconds / self.seconds if self.seconds else 0.0


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
    video = _is_video(dataset)
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
        card = _run_card(
            preset,
            car.settings,
            models,
            alone,
            dataset,
            data_root,
            split,
            limit,
            without_background,
            split_by,
            expression_sets,
            amp,
        )
        predictions = Path(out_dir) / PREDICTIONS
        if distributed.rank == 0:
            claim_eval_folder(Path(out_dir), card)  # resumes only a run of the same protocol
        predictions.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        if alone is None and video:
            assert expression_sets is not None  # checked above for a video benchmark
            local, errors, count, model_seconds = _run_video(
                car,
                dataset,
                predictions,
                distributed,
                limit,
                progress,
                workers,
                models.proposal.device,
                amp,
                expression_sets,
            )
        elif alone is None and _is_gres(dataset):
            local, errors, count, model_seconds = _run_gres(
                car, dataset, predictions, distributed, limit, progress, workers, models.proposal.device, amp
            )
        elif alone is None and preset.settings.mode == "referring":
            local, errors, count, model_seconds = _run_referring(
                car, dataset, predictions, distributed, limit, progress, workers, models.proposal.device, amp
            )
        else:  # semantic: CaR, or a dense method alone through the same loop
            segmenter = CarSemantic(car, preset) if alone is None else MethodSemantic(alone)
            local, errors, count, model_seconds = _run_semantic(
                segmenter,
                preset,
                dataset,
                predictions,
                distributed,
                limit,
                progress,
                workers,
                models.proposal.device,
                amp,
            )
        # Video scores are per object and frame, not sums: gathered whole, then summarised on rank 0.
        merged = distributed.gather(local) if video else distributed.sum_array(local)
        count = int(distributed.sum_array(np.array([count], dtype=np.float64))[0])
        errors = distributed.gather(errors)
        split_name: str = split if split else getattr(dataset, "split", "val")
        if distributed.rank != 0:
            return None
        metrics = (
            summarize([VideoScores.from_record(record) for record in merged], expression_sets)
            if video
            else _metrics(preset, dataset, np.asarray(merged), without_background)
        )
        summary = EvalSummary(
            preset=preset.name,
            split=split_name,
            images=count,
            metrics=metrics,
            errors=errors,
            seconds=time.perf_counter() - start,
            model_seconds=model_seconds,
        )
        _write_reports(
            Path(out_dir),
            summary,
            preset,
            dataset,
            models,
            without_background,
            None if alone is not None else car.settings.post,
            split_by,
            expression_sets,
            card=card,
            method=alone.protocol.method if alone is not None else None,
        )
        return summary
    finally:
        distributed.close()


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


PROTOCOL_FILE = "protocol.json"
"""The protocol card a run folder's predictions were made under, written when the run starts."""

VOLATILE_CARD_KEYS = (
    "carlib",
    "software",
    "device",
    "dataset.data_root",
    "models.description",
    "dataset.limit",
    "dataset.samples",
    "dataset.ids_sha256",
    "dataset.expression_sets",
)
"""Card entries that may change when a run resumes without changing what its predictions mean: another checkout,
machine or data folder, or another subset of the samples (``--limit``, expression sets: each prediction is kept
per sample)."""


def card_identity(card: dict) -> dict:
    """The card without :data:`VOLATILE_CARD_KEYS`: what must match for a run folder's predictions to be reused."""
    identity = json.loads(json.dumps(card))
    for key in VOLATILE_CARD_KEYS:
        node, *rest = key.split(".")
        if rest:
            if isinstance(identity.get(node), dict):
                identity[node].pop(rest[0], None)
        else:
            identity.pop(node, None)
    for role in ("proposal", "classifier"):
        record = (identity.get("models") or {}).get(role)
        if isinstance(record, dict):
            record.pop("weights_file", None)
    return identity


def claim_eval_folder(out_dir: Path, card: dict) -> None:
    """Write the run's card to ``out_dir/protocol.json``, or check that the folder's predictions were made under it.

    Raises:
        ValueError: the folder holds a run of another protocol; the message lists what differs.
    """
    path = out_dir / PROTOCOL_FILE
    if path.is_file():
        from carlib.evaluation.compare import flatten

        before, now = flatten(card_identity(json.loads(path.read_text()))), flatten(card_identity(card))
        differ = sorted(
            {
                key.rsplit(".", 1)[0] if key.count(".") > 1 else key
                for key in set(before) | set(now)
                if before.get(key) != now.get(key)
            }
        )
        if differ:
            shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
            raise ValueError(
                f"{out_dir} holds predictions made under another protocol (differs in {shown}); "
                "use another --out, or delete the folder to start over"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(card, indent=1), path)


def _card_ids(dataset, limit: int | None, expression_sets) -> list[str]:
    """The ids of what a run scores, for the card's checksum: images, referred objects, expressions or frames."""
    if _is_video(dataset):
        videos = dataset.videos()
        videos = videos[:limit] if limit is not None else videos
        return [f"{video.name}/{frame}" for video in videos for frame in video.frames]
    if hasattr(dataset, "objects"):
        objects = list(dataset.objects())
        return [str(item.id) for item in (objects[:limit] if limit is not None else objects)]
    return [str(sample_id) for sample_id in _sample_ids(dataset, limit)]


def _run_card(
    preset: Preset,
    settings,
    models: LoadedModels,
    alone,
    dataset,
    data_root,
    split,
    limit,
    without_background: bool,
    split_by,
    expression_sets,
    amp: str,
) -> dict:
    """The protocol card of an eval run (:mod:`carlib.protocol_card`)."""
    from carlib.protocol_card import CardModels, dataset_record, protocol_card

    class_labels = car_label_names(dataset) if preset.settings.mode == "semantic" else ()
    extra = {
        "split_by": split_by,
        "limit": limit,
        "expression_sets": list(expression_sets) if expression_sets is not None else None,
    }
    data = dataset_record(
        preset.name,
        split or getattr(dataset, "split", "val"),
        _card_ids(dataset, limit, expression_sets),
        without_background=without_background,
        data_root=str(data_root),
        class_labels=class_labels,
        extra=extra,
    )
    if alone is not None:
        return protocol_card(
            preset=preset,
            settings=settings,
            models=CardModels(models.proposal, None, models.description),
            kind="method alone",
            method=alone.protocol.method,
            post=None,
            device=models.proposal.device,
            amp=amp,
            texts=alone.texts_record(),
            image=alone.image_record(),
            dataset=data,
            method_protocol=alone.protocol.to_dict(),
        )
    return protocol_card(
        preset=preset,
        settings=settings,
        models=models,
        kind="CaR",
        method=settings.proposal_method,
        post=settings.post,
        device=models.proposal.device,
        amp=amp,
        dataset=data,
    )


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


def _sample_ids(dataset, limit: int | None) -> list[str]:
    ids = list(dataset.ids())
    return ids[:limit] if limit is not None else ids


def _record_path(predictions: Path, sample_id: str) -> Path:
    return predictions / f"{sample_id}.json"


def car_label_names(dataset) -> list[str]:
    """Names of CaR's labels (0 = background, k = class k) for a semantic dataset."""
    return list(dataset.class_names) if dataset.has_background else ["background", *dataset.class_names]


def to_car_labels(truth: np.ndarray, dataset) -> np.ndarray:
    """Ground truth in CaR's label space (0 = background, k = class k; ignore stays ignore).

    Datasets without a background class (VOC-20, Context-59, ADE-150) store
    class k as k - 1; in CaR's space no ground-truth pixel is background, so a
    foreground pixel CaR leaves as background counts as a miss.
    """
    if dataset.has_background:
        return truth
    shifted = truth.astype(np.int64) + 1
    shifted[truth == dataset.ignore_label] = dataset.ignore_label
    return shifted


class CarSemantic:
    """CaR with a semantic preset's vocabulary, as :func:`_run_semantic` drives it: the recurrences of every pass
    (model work), their post-processing jobs (run in worker processes), then the label map and its record."""

    def __init__(self, car, preset: Preset) -> None:
        self.car, self.preset = car, preset
        self.sam_source = car.sam_source

    def run(self, image):
        return vocabulary_recurrences(self.car, self.preset, image)

    def post_jobs(self, recurrences) -> list:
        return [recurrence.post_job() for _, recurrence in recurrences]

    def finish(self, recurrences, post_results) -> tuple[np.ndarray, dict]:
        results = [
            self.car.finish(recurrence, masks, seconds)
            for (_, recurrence), (masks, seconds) in zip(recurrences, post_results)
        ]
        segmentation = vocabulary_segmentation(self.car, recurrences, results)
        record = {
            name: {
                "kept": [int(i) for i in np.flatnonzero(result.kept)],
                "scores": [round(float(s), 6) for s in result.scores],
                "steps": result.num_steps,
                "seconds": {k: round(v, 4) for k, v in result.seconds.items()},
            }
            for name, result in segmentation.passes.items()
        }
        return segmentation.label_map, record


class MethodSemantic:
    """A dense method alone (:class:`carlib.method_alone.MethodAlone`) as :func:`_run_semantic` drives it:
    no post-processing jobs, the label map straight from the per-pixel argmax."""

    sam_source = None

    def __init__(self, alone) -> None:
        self.alone = alone

    def run(self, image):
        return self.alone.segment(image)

    def post_jobs(self, result) -> list:
        return []

    def finish(self, result, post_results) -> tuple[np.ndarray, dict]:
        record = {
            "method": self.alone.protocol.method,
            "protocol": self.alone.protocol.name,
            "labels": [int(label) for label in np.unique(result.label_map)],
            "windows": result.windows,
            "working_size": list(result.working_size),
            "dropped_by_area": result.dropped_by_area,
            "seconds": round(result.seconds, 4),
        }
        return result.label_map, record


def _run_semantic(
    segmenter,
    preset: Preset,
    dataset,
    predictions: Path,
    distributed: Distributed,
    limit: int | None,
    progress: bool,
    workers: int,
    device,
    amp: str,
):
    """Every image of a semantic dataset through ``segmenter`` (:class:`CarSemantic` or :class:`MethodSemantic`):
    its model work here, its post-processing in ``workers`` processes, each prediction written and scored."""
    from carlib.datasets import SampleReadError

    matrix = ConfusionMatrix(len(car_label_names(dataset)), dataset.ignore_label)
    errors: list[dict] = []
    ids = distributed.shard(_sample_ids(dataset, limit))
    model_seconds = 0.0

    def finished(sample_id, truth, work):
        def record_it(post_results):
            label_map, record = segmenter.finish(work, post_results)
            save_label_png(label_map, predictions / f"{sample_id}.png")
            atomic_write_text(json.dumps(record), _record_path(predictions, sample_id))
            matrix.update(label_map, to_car_labels(truth, dataset))
            count.advance()

        return record_it

    samples = read_ahead(dataset.load, ids, SampleReadError, workers)
    with PostProcessPool(workers, segmenter.sam_source) as pool, counting(len(ids), "images") as count:
        for sample_id, sample, error in tqdm(
            samples, total=len(ids), desc=f"eval {preset.name} (rank {distributed.rank})", disable=not progress
        ):
            if error is not None:
                errors.append({"id": sample_id, "error": error})
                continue
            image, truth = sample
            label_path = predictions / f"{sample_id}.png"
            if _record_path(predictions, sample_id).is_file() and label_path.is_file():
                matrix.update(read_label_png(label_path), to_car_labels(truth, dataset))
                count.advance()
                continue
            started = time.perf_counter()
            with autocast_for(device, amp):
                work = segmenter.run(image)
            model_seconds += time.perf_counter() - started
            pool.submit(segmenter.post_jobs(work), finished(sample_id, truth, work))
    return matrix.matrix.astype(np.float64), errors, len(ids), model_seconds


def _run_referring(
    car,
    dataset,
    predictions: Path,
    distributed: Distributed,
    limit: int | None,
    progress: bool,
    workers: int,
    device,
    amp: str,
):
    from carlib.datasets import SampleReadError

    metrics = ReferringMetrics()
    errors: list[dict] = []
    objects = list(dataset.objects())
    objects = objects[:limit] if limit is not None else objects
    objects = distributed.shard(objects)
    model_seconds = 0.0

    def finished(obj, truth, recurrence):
        def record_it(post_results):
            ((masks, seconds),) = post_results
            result = car.finish(recurrence, masks, seconds)
            merged = merge_referring_masks(result.masks, result.scores)
            save_palette_png(merged.astype(np.int32), predictions / f"{obj.id}.png")
            payload = {"scores": [round(float(s), 6) for s in result.scores], "steps": result.num_steps}
            atomic_write_text(json.dumps(payload), _record_path(predictions, obj.id))
            metrics.update(merged, truth)
            count.advance()

        return record_it

    samples = read_ahead(dataset.load, objects, SampleReadError, workers)
    with PostProcessPool(workers, car.sam_source) as pool, counting(len(objects), "objects") as count:
        for obj, sample, error in tqdm(
            samples, total=len(objects), desc=f"eval referring (rank {distributed.rank})", disable=not progress
        ):
            if error is not None:
                errors.append({"id": obj.id, "error": error})
                continue
            image, truth = sample
            mask_path = predictions / f"{obj.id}.png"
            if _record_path(predictions, obj.id).is_file() and mask_path.is_file():
                metrics.update(np.asarray(Image.open(mask_path)) > 0, truth)
                count.advance()
                continue
            started = time.perf_counter()
            with autocast_for(device, amp):
                recurrence = car.recur(image, list(dict.fromkeys(obj.sentences)))
            model_seconds += time.perf_counter() - started
            pool.submit([recurrence.post_job()], finished(obj, truth, recurrence))
    ious = np.asarray(metrics.ious, dtype=np.float64)
    # Packed as [sum of IoU, count, intersection, union, count above each threshold...] so ranks can add them.
    thresholds = (0.5, 0.6, 0.7, 0.8, 0.9)
    packed = np.array(
        [ious.sum(), ious.size, metrics.intersection, metrics.union] + [(ious > t).sum() for t in thresholds],
        dtype=np.float64,
    )
    return packed, errors, len(objects), model_seconds


def _is_gres(dataset) -> bool:
    from carlib.datasets.gres import GresDataset

    return isinstance(dataset, GresDataset)


def _run_gres(
    car,
    dataset,
    predictions: Path,
    distributed: Distributed,
    limit: int | None,
    progress: bool,
    workers: int,
    device,
    amp: str,
):
    """gRefCOCO: one CaR run per expression (its only query); an empty prediction means "no target"."""
    from carlib.datasets import SampleReadError

    metrics = GresMetrics()
    errors: list[dict] = []
    expressions = list(dataset.objects())
    expressions = distributed.shard(expressions[:limit] if limit is not None else expressions)
    model_seconds = 0.0

    def finished(expression, truth, recurrence):
        def record_it(post_results):
            ((masks, seconds),) = post_results
            result = car.finish(recurrence, masks, seconds)
            # post_process leaves a dropped query's mask empty, so a rejected expression predicts "no target".
            predicted = result.masks[0]
            save_palette_png(predicted.astype(np.int32), predictions / f"{expression.id}.png")
            payload = {
                "score": round(float(result.scores[0]), 6),
                "steps": result.num_steps,
                "no_target": expression.no_target,
                "predicted_empty": not predicted.any(),
            }
            atomic_write_text(json.dumps(payload), _record_path(predictions, expression.id))
            metrics.update(predicted, truth, expression.no_target)
            count.advance()

        return record_it

    samples = read_ahead(dataset.load, expressions, SampleReadError, workers)
    with PostProcessPool(workers, car.sam_source) as pool, counting(len(expressions), "expressions") as count:
        for expression, sample, error in tqdm(
            samples, total=len(expressions), desc=f"eval gres (rank {distributed.rank})", disable=not progress
        ):
            if error is not None:
                errors.append({"id": expression.id, "error": error})
                continue
            image, truth = sample
            mask_path = predictions / f"{expression.id}.png"
            if _record_path(predictions, expression.id).is_file() and mask_path.is_file():
                metrics.update(np.asarray(Image.open(mask_path)) > 0, truth, expression.no_target)
                count.advance()
                continue
            started = time.perf_counter()
            with autocast_for(device, amp):
                recurrence = car.recur(image, [expression.sentence])
            model_seconds += time.perf_counter() - started
            pool.submit([recurrence.post_job()], finished(expression, truth, recurrence))
    return metrics.packed(), errors, len(expressions), model_seconds


def _is_video(dataset) -> bool:
    from carlib.datasets.refdavis import RefDavisDataset

    return isinstance(dataset, RefDavisDataset)


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


def _frame_record_path(predictions: Path, video: str, frame: str) -> Path:
    return predictions / "records" / video / f"{frame}.json"


def _run_video(
    car,
    dataset,
    predictions: Path,
    distributed: Distributed,
    limit: int | None,
    progress: bool,
    workers: int,
    device,
    amp: str,
    expression_sets: Sequence[str],
):
    """Ref-DAVIS17: every frame, one CaR run per object and expression set; each set's objects painted in one
    label map per frame (DAVIS's result format) and scored frame by frame."""
    from carlib.datasets import SampleReadError

    videos = dataset.videos()
    videos = distributed.shard(videos[:limit] if limit is not None else videos)
    by_name = {video.name: video for video in videos}
    scores = {
        (name, video.name): VideoScores(name, video.name, video.object_ids)
        for name in expression_sets
        for video in videos
    }
    frames = [(video.name, frame) for video in videos for frame in video.frames]
    errors: list[dict] = []
    model_seconds = 0.0

    def png_path(name: str, video: str, frame: str) -> Path:
        return predictions / name / video / f"{frame}.png"

    def finished(video, frame, truth, runs, recurrences):
        def record_it(post_results):
            done = {
                queries: car.finish(recurrence, masks, seconds)
                for (queries, recurrence), (masks, seconds) in zip(recurrences.items(), post_results)
            }
            results: dict[str, list] = {name: [] for name in expression_sets}
            for name, object_id, queries in runs:
                results[name].append((object_id, done[queries]))
            record: dict[str, Any] = {"sets": list(expression_sets), "objects": {}}
            for name, objects in results.items():
                weights = [result.scores / max(float(result.scores.sum()), 1e-12) for _, result in objects]
                label_map = paint_referred_objects(
                    [merge_referring_masks(result.masks, result.scores) for _, result in objects],
                    [np.tensordot(weight, result.soft_masks, axes=1) for weight, (_, result) in zip(weights, objects)],
                    [object_id for object_id, _ in objects],
                )
                save_palette_png(label_map, png_path(name, video, frame))
                scores[(name, video)].add_frame(frame, label_map, truth)
                record["objects"][name] = {
                    str(object_id): {
                        "queries": result.queries,
                        "scores": [round(float(s), 6) for s in result.scores],
                        "steps": result.num_steps,
                    }
                    for object_id, result in objects
                }
            atomic_write_text(json.dumps(record), _frame_record_path(predictions, video, frame))
            count.advance()

        return record_it

    samples = read_ahead(dataset.load_frame, frames, SampleReadError, workers)
    with PostProcessPool(workers, car.sam_source) as pool, counting(len(frames), "frames") as count:
        for (video, frame), sample, error in tqdm(
            samples, total=len(frames), desc=f"eval {dataset.name} (rank {distributed.rank})", disable=not progress
        ):
            if error is not None:
                errors.append({"id": f"{video}/{frame}", "error": error})
                continue
            image, truth = sample
            record_path = _frame_record_path(predictions, video, frame)
            if (
                record_path.is_file()
                and set(expression_sets) <= set(json.loads(record_path.read_text())["sets"])
                and all(png_path(name, video, frame).is_file() for name in expression_sets)
            ):
                for name in expression_sets:
                    scores[(name, video)].add_frame(frame, read_label_png(png_path(name, video, frame)), truth)
                count.advance()
                continue
            started = time.perf_counter()
            runs, recurrences = [], {}
            with autocast_for(device, amp):
                for name in expression_sets:
                    for object_id in by_name[video].object_ids:
                        queries = dataset.sentences(name, video, object_id)
                        if queries not in recurrences:  # two sets often share an expression: run it once
                            recurrences[queries] = car.recur(image, list(queries))
                        runs.append((name, object_id, queries))
            model_seconds += time.perf_counter() - started
            pool.submit(
                [recurrence.post_job() for recurrence in recurrences.values()],
                finished(video, frame, truth, runs, recurrences),
            )
    return [score.to_record() for score in scores.values()], errors, len(frames), model_seconds


def _metrics(preset: Preset, dataset, merged: np.ndarray, without_background: bool) -> dict:
    if _is_gres(dataset):
        return gres_summary(merged)
    if preset.settings.mode == "referring":
        total, count, intersection, union = merged[:4]
        result = {
            "mIoU": float(total / count) if count else float("nan"),
            "oIoU": float(intersection / union) if union else float("nan"),
            "count": int(count),
        }
        for threshold, above in zip((0.5, 0.6, 0.7, 0.8, 0.9), merged[4:]):
            result[f"P@{threshold}"] = float(above / count) if count else float("nan")
        return result
    names = car_label_names(dataset)
    matrix = ConfusionMatrix(len(names), dataset.ignore_label)
    matrix.matrix = merged.round().astype(np.int64)
    if preset.ignore_background:
        # The reference (ADE-150) drops row and column 0: pixels CaR leaves as
        # background are not counted against any class.
        matrix.matrix[0, :] = 0
        matrix.matrix[:, 0] = 0
    iou = matrix.iou()
    return {
        "mIoU": matrix.miou(),
        "pixel_accuracy": matrix.pixel_accuracy(),
        "per_class_iou": {name: (None if np.isnan(value) else float(value)) for name, value in zip(names, iou)},
        "present_in_ground_truth": [name for name, present in zip(names, matrix.present()) if present],
        "without_background": without_background,
        "background_dropped_from_matrix": preset.ignore_background,
        "confusion_matrix": matrix.matrix.tolist(),
    }


def _paper_key(
    preset: Preset, split: str, without_background: bool, post: str = "crf", split_by: str | None = None
) -> str:
    if preset.settings.mode == "referring":
        return f"{preset.name}/{split}" + ("(G)" if split_by == "google" else "")
    suffix = {"voc": "voc20", "context": "context59"}.get(preset.name) if without_background else None
    key = suffix or preset.name
    return f"{key}+sam" if post == "sam" else key


def headline_metric(preset_name: str) -> str:
    """The metric a run of ``preset_name`` is summed up by (:data:`HEADLINE_METRIC`, else mIoU)."""
    return HEADLINE_METRIC.get(preset_name, "mIoU")


def count_unit(preset_name: str) -> str:
    """What ``carlib eval`` counts for a preset: frames (video, headline J&F), expressions (GRES) or images."""
    return {"J&F": "frames", "gIoU": "expressions"}.get(headline_metric(preset_name), "images")


def _video_fields(dataset, key: str, expression_sets: Sequence[str]) -> dict:
    """What a Ref-DAVIS17 metrics.json says besides the figures: the data read and the published J, F, J&F."""
    return {
        "layout": dataset.layout,
        "annotations": dataset.annotations,
        "expression_sets": list(expression_sets),
        "frames_scored": "every frame, the first and last included (the toolkit's unsupervised task, as "
        "ReferFormer scores Ref-DAVIS17); J, F and J&F score each expression against the object it "
        "names, unsupervised_task after the toolkit's Hungarian matching",
        "paper": PAPER_VIDEO.get(key),
    }


def _video_report(summary: EvalSummary) -> list[str]:
    metrics = summary.metrics
    lines = ["| expression set | J % | F % | J&F % | objects | frames |", "|---|---|---|---|---|---|"]
    for name, figures in metrics["per_set"].items():
        lines.append(
            f"| {name} | {figures['J'] * 100:.2f} | {figures['F'] * 100:.2f} | {figures['J&F'] * 100:.2f} "
            f"| {figures['objects']} | {figures['frames']} |"
        )
    lines.append(
        f"| **mean** | **{metrics['J'] * 100:.2f}** | **{metrics['F'] * 100:.2f}** | "
        f"**{metrics['J&F'] * 100:.2f}** | | |"
    )
    matched = metrics["unsupervised_task"]
    lines += [
        "",
        f"With the DAVIS toolkit's unsupervised matching: J {matched['J'] * 100:.2f}%, "
        f"F {matched['F'] * 100:.2f}%, J&F {matched['J&F'] * 100:.2f}%.",
        "",
        "| object | " + " | ".join(f"{name} J&F %" for name in metrics["per_object"]) + " |",
        "|---|" + "---|" * len(metrics["per_object"]),
    ]
    objects = list(dict.fromkeys(obj for by_object in metrics["per_object"].values() for obj in by_object))
    for obj in objects:
        cells = [
            f"{metrics['per_object'][name][obj]['J&F'] * 100:.2f}" if obj in metrics["per_object"][name] else "—"
            for name in metrics["per_object"]
        ]
        lines.append(f"| {obj} | " + " | ".join(cells) + " |")
    return lines


def _write_reports(
    out_dir: Path,
    summary: EvalSummary,
    preset: Preset,
    dataset,
    models: LoadedModels,
    without_background: bool,
    post: str | None,
    split_by: str | None,
    expression_sets: Sequence[str] | None = None,
    *,
    card: dict | None = None,
    method: str | None = None,
) -> None:
    key = _paper_key(preset, summary.split, without_background, post or "none", split_by)
    paper = PAPER_MIOU.get(key) if method is None else PAPER_METHOD_MIOU.get(method, {}).get(key)
    video = _is_video(dataset)
    video_fields = {}
    if video:
        assert expression_sets is not None  # a video benchmark always names its sets (check_expression_sets)
        video_fields = _video_fields(dataset, key, expression_sets)
    payload = {
        "method": method or "CaR",
        "preset": summary.preset,
        "split": summary.split,
        "images": summary.images,
        "errors": summary.errors,
        "seconds": round(summary.seconds, 2),
        "model_busy": round(summary.model_busy, 3),  # rank 0: share of its wall time in model work
        "models": models.description,
        "post": post,
        "split_by": split_by,
        "headline": headline_metric(summary.preset),  # the metric paper_mIoU is compared with
        "paper_mIoU": paper,
        **({"paper_source": PAPER_METHOD_SOURCES[method]} if method is not None else {}),
        **video_fields,
        **summary.metrics,
        "protocol": card,
    }
    atomic_write_text(json.dumps(payload, indent=2), out_dir / "metrics.json")
    headline = headline_metric(summary.preset)
    ours = summary.metrics[headline] * 100
    title = "CaR" if method is None else f"{METHOD_TITLES.get(method, method)} alone"
    lines = [
        f"# {title} on {summary.preset} ({summary.split})",
        "",
        f"- models: {models.description}",
        f"- {count_unit(summary.preset)}: {summary.images}; unreadable: {len(summary.errors)}",
        f"- **{headline}: {ours:.2f}%**"
        + (f" (paper: {paper:.2f}%)" if paper is not None else " (no published number)"),
        "",
    ]
    if video:
        lines += _video_report(summary)
    elif preset.settings.mode == "referring":
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4f} |" for key, value in summary.metrics.items() if not key.endswith("count")]
    else:
        lines += ["| class | IoU % |", "|---|---|"]
        for name, value in summary.metrics["per_class_iou"].items():
            if name in summary.metrics["present_in_ground_truth"]:
                lines.append(f"| {name} | {value * 100:.2f} |")
    if summary.errors:
        lines += ["", "## Unreadable samples", ""] + [f"- {e['id']}: {e['error']}" for e in summary.errors]
    atomic_write_text("\n".join(lines) + "\n", out_dir / "report.md")
