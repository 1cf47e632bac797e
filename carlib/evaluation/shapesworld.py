"""CaR measured on ShapesWorld: semantic mIoU, the recurrence's gain, keep and drop rates.

Every scene is queried with every class name, so most queries are absent, as
in VOC. The figures of the CaR issue come from :func:`evaluate_car_on_world`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from carlib.evaluation.metrics import ConfusionMatrix
from carlib.pipeline import LoadedModels, car_from_preset, load_models
from carlib.postprocess.mask_sources import MaskSource
from carlib.presets import Preset, get_preset
from carlib.world.classes import CLASS_NAMES
from carlib.world.scene import split_scene

EVAL_SPLIT = "test"
EVAL_SEED = 0


@dataclass
class CarWorldReport:
    """CaR on ShapesWorld scenes (mIoU over background + every class, as VOC-21)."""

    scenes: int
    miou: dict[str, float] = field(default_factory=dict)
    present_kept: float = float("nan")
    absent_dropped: float = float("nan")
    mean_steps: float = float("nan")
    seconds_per_scene: float = float("nan")
    per_class_iou: dict[str, list[float]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        rows = [f"CaR on {self.scenes} held-out ShapesWorld scenes (all {len(CLASS_NAMES)} class names queried):"]
        for name, value in self.miou.items():
            rows.append(f"  mIoU {name:<28} {value:.3f}")
        rows.append(f"  present queries kept            {self.present_kept:.1%}")
        rows.append(f"  absent queries dropped          {self.absent_dropped:.1%}")
        rows.append(f"  mean recurrence steps           {self.mean_steps:.2f}")
        rows.append(f"  seconds per scene (CaR + CRF)   {self.seconds_per_scene:.3f}")
        return rows


def evaluate_car_on_world(
    n: int = 200,
    *,
    seed: int = EVAL_SEED,
    split: str = EVAL_SPLIT,
    preset: Preset | None = None,
    models: LoadedModels | None = None,
    variants: tuple[str, ...] = ("car_crf", "car_none", "single_pass_crf"),
    progress: bool = True,
    car_options: dict | None = None,
    sam_source: MaskSource | None = None,
) -> CarWorldReport:
    """Run CaR variants on ``n`` test scenes and measure them.

    Arguments:
        n: number of test scenes (split ``"test"``, never seen in training).
        seed: scene seed.
        split: ``"test"`` for reported figures, ``"val"`` for choosing settings.
        preset: settings (default: the ``shapes`` preset).
        models: loaded models (default: the ShapesWorld CLIP).
        variants: which of ``car_crf`` (CaR + dense CRF), ``car_none`` (CaR,
            proposals binarised at η), ``single_pass_crf`` (one step, every
            query kept, + CRF: the "no recurrence" baseline),
            ``oracle_crf`` (only the present classes queried, no filtering, + CRF),
            ``car_sam`` (CaR, masks snapped to the regions of ``sam_source``).
        progress: show a progress bar.
        car_options: :class:`carlib.settings.CarSettings` changes for every variant
            (``use_clip_es=False``...), for ablations.
        sam_source: the region source of ``car_sam`` (e.g. :class:`carlib.postprocess.ColourRegionMaskSource`).

    Returns:
        :class:`CarWorldReport`; keep/drop rates and steps come from ``car_crf``.
    """
    preset = preset or get_preset("shapes")
    models = models or load_models(preset, "shapes")
    options = dict(car_options or {})
    recurrent = options.pop("recurrent", True)
    settings = {
        "car_crf": {"post": "crf", "recurrent": recurrent},
        "car_none": {"post": "none", "recurrent": recurrent},
        "single_pass_crf": {"post": "crf", "recurrent": False},
        "oracle_crf": {"post": "crf", "recurrent": False},
        "car_sam": {"post": "sam", "recurrent": recurrent},
    }
    unknown = set(variants) - set(settings)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; choose from {sorted(settings)}")
    cars = {
        name: car_from_preset(preset, models, sam_source=sam_source, **{**settings[name], **options})
        for name in variants
    }
    matrices = {name: ConfusionMatrix(len(CLASS_NAMES) + 1) for name in variants}
    kept_present = total_present = dropped_absent = total_absent = 0
    steps, seconds = [], []
    queries = list(CLASS_NAMES)
    for index in tqdm(range(n), desc="CaR on ShapesWorld", disable=not progress):
        scene = split_scene(split, index, seed)
        present = set(scene.class_names_present)
        for name in variants:
            if name == "oracle_crf":
                oracle_queries = [q for q in queries if q in present]
                result = cars[name].segment(scene.image, oracle_queries)
                labels = np.zeros_like(result.label_map)
                for position, query in enumerate(oracle_queries):
                    labels[result.label_map == position + 1] = queries.index(query) + 1
            else:
                start = time.perf_counter()
                result = cars[name].segment(scene.image, queries)
                labels = result.label_map
                if name == "car_crf":
                    seconds.append(time.perf_counter() - start)
                    steps.append(result.num_steps)
                    for query, keep in zip(queries, result.kept, strict=True):
                        if query in present:
                            total_present += 1
                            kept_present += bool(keep)
                        else:
                            total_absent += 1
                            dropped_absent += not keep
            matrices[name].update(labels, scene.class_map)
    report = CarWorldReport(scenes=n)
    report.miou = {name: matrix.miou() for name, matrix in matrices.items()}
    report.per_class_iou = {name: matrix.iou().tolist() for name, matrix in matrices.items()}
    if total_present:
        report.present_kept = kept_present / total_present
        report.absent_dropped = dropped_absent / max(total_absent, 1)
        report.mean_steps = float(np.mean(steps))
        report.seconds_per_scene = float(np.mean(seconds))
    return report


def evaluate_method_on_world(
    n: int,
    method: str,
    *,
    seed: int = EVAL_SEED,
    split: str = EVAL_SPLIT,
    preset: Preset | None = None,
    models: LoadedModels | None = None,
    protocol=None,
    progress: bool = True,
) -> tuple[float, list[float]]:
    """A dense method alone on ``n`` ShapesWorld scenes: mIoU over background + every class, and each class's IoU.

    Arguments:
        n, seed, split: the scenes (as :func:`evaluate_car_on_world`).
        method: ``"maskclip"``, ``"sclip"``, ``"clearclip"`` or ``"naclip"``.
        preset: settings (default ``shapes``): its vocabulary and background words.
        models: loaded models (default: the ShapesWorld CLIP); the proposal model runs the method.
        protocol: a :class:`carlib.method_alone.MethodProtocol` (default: carlib's, the method as CaR's proposal
            stage reads it: per-pixel argmax over [classes; background words]).
        progress: show a progress bar.

    Returns:
        (mIoU in [0, 1], IoU per label 0..8, NaN for a label absent from both prediction and truth).
    """
    from carlib.method_alone import MethodAlone, carlib_protocol

    preset = preset or get_preset("shapes")
    models = models or load_models(preset, "shapes")
    protocol = protocol or carlib_protocol(method, preset.settings.neighbourhood_std)
    alone = MethodAlone(models.proposal, preset, protocol)
    matrix = ConfusionMatrix(len(CLASS_NAMES) + 1)
    for index in tqdm(range(n), desc=f"{method} alone on ShapesWorld", disable=not progress):
        scene = split_scene(split, index, seed)
        matrix.update(alone.segment(scene.image).label_map, scene.class_map)
    return matrix.miou(), matrix.iou().tolist()
