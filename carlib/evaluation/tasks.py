"""What ``carlib eval`` does with each kind of benchmark, as one small object per kind.

:func:`carlib.evaluation.benchmark.run_task` is the one loop: it reads samples ahead, skips finished
ones, runs the model work, sends the post-processing to worker processes and counts. A task says what
differs between benchmarks:

- what one sample is (``items``, ``loader``) and its id in error lists (``item_id``),
- how a finished sample is read back and measured (``restore``),
- what is recurred (``run``) and post-processed (``post_jobs``),
- how the results are merged, written and measured (``record``),
- how ranks' measurements are combined and summed up (``local``, ``merge``, ``summarize``) and what the
  report shows (``report_lines``).

:class:`SemanticTask` (CaR with a semantic preset's vocabulary, or a dense method alone: the
``segmenter`` is the only difference), :class:`ReferringTask` (RefCOCO/+/g) and :class:`GresTask`
(gRefCOCO), which share :class:`ObjectTask`, and :class:`VideoTask` (Ref-DAVIS17).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from carlib.evaluation.davis_metrics import VideoScores, summarize
from carlib.evaluation.distributed import Distributed
from carlib.evaluation.gres_metrics import GresMetrics, gres_summary
from carlib.evaluation.metrics import ConfusionMatrix, ReferringMetrics
from carlib.files import atomic_write_text
from carlib.labels import (
    merge_referring_masks,
    paint_referred_objects,
    read_label_png,
    save_label_png,
    save_palette_png,
)
from carlib.pipeline import vocabulary_recurrences, vocabulary_segmentation
from carlib.post_stages import PostStage
from carlib.presets import Preset

REFERRING_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
"""The IoU thresholds of the referring precision P@t."""


class EvalTask(Protocol):
    """One benchmark kind, as :func:`carlib.evaluation.benchmark.run_task` drives it (module docstring)."""

    unit: str
    """What is counted: ``images``, ``objects``, ``expressions`` or ``frames``."""
    label: str
    """The progress bar's label."""
    items: list
    """This rank's share of the samples, in order."""
    scored_ids: list[str]
    """The ids of every sample the run scores, on all ranks (the protocol card's checksum)."""
    post_stage: PostStage | None
    """What post-processes every job (``car.post_stage()``; None: no jobs, or each job's settings say)."""

    @property
    def loader(self) -> Callable[[Any], tuple[np.ndarray, Any]]:
        """The dataset's reader of one item (picklable: worker processes call it)."""
        ...

    def item_id(self, item: Any) -> Any: ...

    def restore(self, item: Any, truth: Any) -> bool:
        """If ``item`` was finished by an earlier run, measure its stored prediction and return True."""
        ...

    def run(self, item: Any, image: np.ndarray) -> Any:
        """The model work of one item (called under autocast)."""
        ...

    def post_jobs(self, work: Any) -> list: ...

    def record(self, item: Any, truth: Any, work: Any, post_results: list) -> None:
        """Merge the post-processed results, write the prediction (atomically, its record last) and measure it."""
        ...

    def local(self) -> Any:
        """This rank's measurements."""
        ...

    def merge(self, distributed: Distributed, local: Any) -> Any:
        """Every rank's measurements combined (on rank 0)."""
        ...

    def summarize(self, merged: Any) -> dict:
        """The metrics of ``metrics.json``."""
        ...

    def report_lines(self, metrics: dict) -> list[str]:
        """``report.md``'s table."""
        ...


def first(items: Sequence, limit: int | None) -> list:
    """The first ``limit`` items (all of them for None)."""
    return list(items[:limit] if limit is not None else items)


def record_path(predictions: Path, sample_id: Any) -> Path:
    """The JSON record that marks a sample finished (written after its PNG)."""
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


# --- semantic ----------------------------------------------------------------------------------------------


class CarSemantic:
    """CaR with a semantic preset's vocabulary: the recurrences of every pass (model work), their
    post-processing jobs (run in worker processes), then the label map and its record."""

    def __init__(self, car, preset: Preset) -> None:
        self.car, self.preset = car, preset
        self.post_stage: PostStage | None = car.post_stage()

    def run(self, image):
        return vocabulary_recurrences(self.car, self.preset, image)

    def post_jobs(self, recurrences) -> list:
        return [recurrence.post_job() for _, recurrence in recurrences]

    def finish(self, recurrences, post_results) -> tuple[np.ndarray, dict]:
        results = [
            self.car.finish(recurrence, masks, seconds)
            for (_, recurrence), (masks, seconds) in zip(recurrences, post_results, strict=True)
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
    """A dense method alone (:class:`carlib.method_alone.MethodAlone`): no post-processing jobs, the label map
    straight from the per-pixel argmax."""

    post_stage: PostStage | None = None  # no post-processing jobs

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


class SemanticTask:
    """Every image of a semantic benchmark through a segmenter (:class:`CarSemantic` or :class:`MethodSemantic`),
    scored in one confusion matrix."""

    unit = "images"

    def __init__(
        self,
        segmenter: CarSemantic | MethodSemantic,
        preset: Preset,
        dataset,
        predictions: Path,
        distributed: Distributed,
        limit: int | None,
        without_background: bool,
    ) -> None:
        self.segmenter, self.preset, self.dataset, self.predictions = segmenter, preset, dataset, predictions
        self.without_background = without_background
        self.post_stage = segmenter.post_stage
        self.label = f"eval {preset.name} (rank {distributed.rank})"
        ids = first(list(dataset.ids()), limit)
        self.scored_ids = [str(sample_id) for sample_id in ids]
        self.items = distributed.shard(ids)
        self.matrix = ConfusionMatrix(len(car_label_names(dataset)), dataset.ignore_label)

    @property
    def loader(self):
        return self.dataset.load

    def item_id(self, item):
        return item

    def restore(self, item, truth) -> bool:
        label_path = self.predictions / f"{item}.png"
        if not (record_path(self.predictions, item).is_file() and label_path.is_file()):
            return False
        self.matrix.update(read_label_png(label_path), to_car_labels(truth, self.dataset))
        return True

    def run(self, item, image):
        return self.segmenter.run(image)

    def post_jobs(self, work) -> list:
        return self.segmenter.post_jobs(work)

    def record(self, item, truth, work, post_results) -> None:
        label_map, record = self.segmenter.finish(work, post_results)
        save_label_png(label_map, self.predictions / f"{item}.png")
        atomic_write_text(json.dumps(record), record_path(self.predictions, item))
        self.matrix.update(label_map, to_car_labels(truth, self.dataset))

    def local(self) -> np.ndarray:
        return self.matrix.matrix.astype(np.float64)

    def merge(self, distributed: Distributed, local: np.ndarray) -> np.ndarray:
        return distributed.sum_array(local)

    def summarize(self, merged) -> dict:
        names = car_label_names(self.dataset)
        matrix = ConfusionMatrix(len(names), self.dataset.ignore_label)
        matrix.matrix = np.asarray(merged).round().astype(np.int64)
        if self.preset.ignore_background:
            # The reference (ADE-150) drops row and column 0: pixels CaR leaves as
            # background are not counted against any class.
            matrix.matrix[0, :] = 0
            matrix.matrix[:, 0] = 0
        iou = matrix.iou()
        return {
            "mIoU": matrix.miou(),
            "pixel_accuracy": matrix.pixel_accuracy(),
            "per_class_iou": {
                name: (None if np.isnan(value) else float(value)) for name, value in zip(names, iou, strict=True)
            },
            "present_in_ground_truth": [name for name, present in zip(names, matrix.present(), strict=True) if present],
            "without_background": self.without_background,
            "background_dropped_from_matrix": self.preset.ignore_background,
            "confusion_matrix": matrix.matrix.tolist(),
        }

    def report_lines(self, metrics: dict) -> list[str]:
        lines = ["| class | IoU % |", "|---|---|"]
        for name, value in metrics["per_class_iou"].items():
            if name in metrics["present_in_ground_truth"]:
                lines.append(f"| {name} | {value * 100:.2f} |")
        return lines


# --- referring and GRES --------------------------------------------------------------------------------------


def metric_table(metrics: dict) -> list[str]:
    """A referring or GRES run's metrics as a markdown table (counts left out)."""
    lines = ["| metric | value |", "|---|---|"]
    return lines + [f"| {key} | {value:.4f} |" for key, value in metrics.items() if not key.endswith("count")]


class ObjectTask:
    """What referring and GRES runs share: one CaR run per dataset object (a referred object, or an expression),
    its prediction a palette PNG named by the object's id, the scores added over ranks."""

    unit = "objects"

    def __init__(self, car, dataset, predictions: Path, distributed: Distributed, limit: int | None, name: str) -> None:
        self.car, self.dataset, self.predictions = car, dataset, predictions
        self.post_stage: PostStage | None = car.post_stage()
        self.label = f"eval {name} (rank {distributed.rank})"
        objects = first(list(dataset.objects()), limit)
        self.scored_ids = [str(item.id) for item in objects]
        self.items = distributed.shard(objects)

    @property
    def loader(self):
        return self.dataset.load

    def item_id(self, item):
        return item.id

    def restore(self, item, truth) -> bool:
        mask_path = self.predictions / f"{item.id}.png"
        if not (record_path(self.predictions, item.id).is_file() and mask_path.is_file()):
            return False
        self.measure(item, np.asarray(Image.open(mask_path)) > 0, truth)
        return True

    def measure(self, item, predicted: np.ndarray, truth: np.ndarray) -> None:
        """Add one object's prediction to the scores."""
        raise NotImplementedError

    def post_jobs(self, work) -> list:
        return [work.post_job()]

    def write(self, item, predicted: np.ndarray, payload: dict) -> None:
        """The prediction's PNG, then its record (which marks it finished)."""
        save_palette_png(predicted.astype(np.int32), self.predictions / f"{item.id}.png")
        atomic_write_text(json.dumps(payload), record_path(self.predictions, item.id))

    def merge(self, distributed: Distributed, local: np.ndarray) -> np.ndarray:
        return distributed.sum_array(local)

    def report_lines(self, metrics: dict) -> list[str]:
        return metric_table(metrics)


class ReferringTask(ObjectTask):
    """RefCOCO/+/g: one CaR run per referred object with all its sentences as queries; the kept masks merged
    into one prediction, scored by IoU per object."""

    def __init__(self, car, dataset, predictions: Path, distributed: Distributed, limit: int | None) -> None:
        super().__init__(car, dataset, predictions, distributed, limit, "referring")
        self.metrics = ReferringMetrics()

    def measure(self, item, predicted: np.ndarray, truth: np.ndarray) -> None:
        self.metrics.update(predicted, truth)

    def run(self, item, image):
        return self.car.recur(image, list(dict.fromkeys(item.sentences)))

    def record(self, item, truth, work, post_results) -> None:
        ((masks, seconds),) = post_results
        result = self.car.finish(work, masks, seconds)
        merged = merge_referring_masks(result.masks, result.scores)
        self.write(item, merged, {"scores": [round(float(s), 6) for s in result.scores], "steps": result.num_steps})
        self.measure(item, merged, truth)

    def local(self) -> np.ndarray:
        # Packed as [sum of IoU, count, intersection, union, count above each threshold...] so ranks can add them.
        ious = np.asarray(self.metrics.ious, dtype=np.float64)
        return np.array(
            [ious.sum(), ious.size, self.metrics.intersection, self.metrics.union]
            + [(ious > t).sum() for t in REFERRING_THRESHOLDS],
            dtype=np.float64,
        )

    def summarize(self, merged) -> dict:
        total, count, intersection, union = merged[:4]
        result = {
            "mIoU": float(total / count) if count else float("nan"),
            "oIoU": float(intersection / union) if union else float("nan"),
            "count": int(count),
        }
        for threshold, above in zip(REFERRING_THRESHOLDS, merged[4:], strict=True):
            result[f"P@{threshold}"] = float(above / count) if count else float("nan")
        return result


class GresTask(ObjectTask):
    """gRefCOCO: one CaR run per expression (its only query); an empty prediction means "no target"."""

    unit = "expressions"

    def __init__(self, car, dataset, predictions: Path, distributed: Distributed, limit: int | None) -> None:
        super().__init__(car, dataset, predictions, distributed, limit, "gres")
        self.metrics = GresMetrics()

    def measure(self, item, predicted: np.ndarray, truth: np.ndarray) -> None:
        self.metrics.update(predicted, truth, item.no_target)

    def run(self, item, image):
        return self.car.recur(image, [item.sentence])

    def record(self, item, truth, work, post_results) -> None:
        ((masks, seconds),) = post_results
        result = self.car.finish(work, masks, seconds)
        # post_process leaves a dropped query's mask empty, so a rejected expression predicts "no target".
        predicted = result.masks[0]
        payload = {
            "score": round(float(result.scores[0]), 6),
            "steps": result.num_steps,
            "no_target": item.no_target,
            "predicted_empty": not predicted.any(),
        }
        self.write(item, predicted, payload)
        self.measure(item, predicted, truth)

    def local(self) -> np.ndarray:
        return self.metrics.packed()

    def summarize(self, merged) -> dict:
        return gres_summary(np.asarray(merged))


# --- video -----------------------------------------------------------------------------------------------------


def frame_record_path(predictions: Path, video: str, frame: str) -> Path:
    """The JSON record that marks a Ref-DAVIS17 frame finished (written after its sets' PNGs)."""
    return predictions / "records" / video / f"{frame}.json"


class VideoTask:
    """Ref-DAVIS17: every frame, one CaR run per object and expression set; each set's objects painted in one
    label map per frame (DAVIS's result format) and scored frame by frame. Videos, not frames, are sharded."""

    unit = "frames"

    def __init__(
        self,
        car,
        dataset,
        predictions: Path,
        distributed: Distributed,
        limit: int | None,
        expression_sets: Sequence[str],
    ) -> None:
        self.car, self.dataset, self.predictions = car, dataset, predictions
        self.expression_sets = tuple(expression_sets)
        self.post_stage: PostStage | None = car.post_stage()
        self.label = f"eval {dataset.name} (rank {distributed.rank})"
        every_video = first(dataset.videos(), limit)
        self.scored_ids = [f"{video.name}/{frame}" for video in every_video for frame in video.frames]
        videos = distributed.shard(every_video)
        self.videos = {video.name: video for video in videos}
        self.scores = {
            (name, video.name): VideoScores(name, video.name, video.object_ids)
            for name in self.expression_sets
            for video in videos
        }
        self.items = [(video.name, frame) for video in videos for frame in video.frames]

    @property
    def loader(self):
        return self.dataset.load_frame

    def item_id(self, item):
        video, frame = item
        return f"{video}/{frame}"

    def png_path(self, name: str, video: str, frame: str) -> Path:
        return self.predictions / name / video / f"{frame}.png"

    def restore(self, item, truth) -> bool:
        video, frame = item
        path = frame_record_path(self.predictions, video, frame)
        if not (
            path.is_file()
            and set(self.expression_sets) <= set(json.loads(path.read_text())["sets"])
            and all(self.png_path(name, video, frame).is_file() for name in self.expression_sets)
        ):
            return False
        for name in self.expression_sets:
            self.scores[(name, video)].add_frame(frame, read_label_png(self.png_path(name, video, frame)), truth)
        return True

    def run(self, item, image):
        video, _ = item
        runs, recurrences = [], {}
        for name in self.expression_sets:
            for object_id in self.videos[video].object_ids:
                queries = self.dataset.sentences(name, video, object_id)
                if queries not in recurrences:  # two sets often share an expression: run it once
                    recurrences[queries] = self.car.recur(image, list(queries))
                runs.append((name, object_id, queries))
        return runs, recurrences

    def post_jobs(self, work) -> list:
        _, recurrences = work
        return [recurrence.post_job() for recurrence in recurrences.values()]

    def record(self, item, truth, work, post_results) -> None:
        video, frame = item
        runs, recurrences = work
        done = {
            queries: self.car.finish(recurrence, masks, seconds)
            for (queries, recurrence), (masks, seconds) in zip(recurrences.items(), post_results, strict=True)
        }
        results: dict[str, list] = {name: [] for name in self.expression_sets}
        for name, object_id, queries in runs:
            results[name].append((object_id, done[queries]))
        record: dict[str, Any] = {"sets": list(self.expression_sets), "objects": {}}
        for name, objects in results.items():
            weights = [result.scores / max(float(result.scores.sum()), 1e-12) for _, result in objects]
            label_map = paint_referred_objects(
                [merge_referring_masks(result.masks, result.scores) for _, result in objects],
                [
                    np.tensordot(weight, result.soft_masks, axes=1)
                    for weight, (_, result) in zip(weights, objects, strict=True)
                ],
                [object_id for object_id, _ in objects],
            )
            save_palette_png(label_map, self.png_path(name, video, frame))
            self.scores[(name, video)].add_frame(frame, label_map, truth)
            record["objects"][name] = {
                str(object_id): {
                    "queries": result.queries,
                    "scores": [round(float(s), 6) for s in result.scores],
                    "steps": result.num_steps,
                }
                for object_id, result in objects
            }
        atomic_write_text(json.dumps(record), frame_record_path(self.predictions, video, frame))

    def local(self) -> list[dict]:
        return [score.to_record() for score in self.scores.values()]

    def merge(self, distributed: Distributed, local: list[dict]) -> list[dict]:
        # Video scores are per object and frame, not sums: gathered whole, then summarised on rank 0.
        return distributed.gather(local)

    def summarize(self, merged) -> dict:
        return summarize([VideoScores.from_record(record) for record in merged], self.expression_sets)

    def report_lines(self, metrics: dict) -> list[str]:
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

    def report_fields(self, paper: dict[str, float] | None) -> dict:
        """What a Ref-DAVIS17 metrics.json says besides the figures: the data read and the published J, F, J&F."""
        return {
            "layout": self.dataset.layout,
            "annotations": self.dataset.annotations,
            "expression_sets": list(self.expression_sets),
            "frames_scored": "every frame, the first and last included (the toolkit's unsupervised task, as "
            "ReferFormer scores Ref-DAVIS17); J, F and J&F score each expression against the object it "
            "names, unsupervised_task after the toolkit's Hungarian matching",
            "paper": paper,
        }
