"""What a lower precision changes in CaR's decisions: the same scenes in float32 and under autocast, compared.

:func:`compare_precisions_on_world` runs CaR on ShapesWorld test scenes twice,
once in full float32 and once under ``amp`` (bf16 autocast on CPU), with
separate CaRs so that no cache crosses over, and reports how often the kept
queries and the label map's pixels agree, the mIoU under each, and the
largest change of a classifier score.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from carlib.evaluation.metrics import ConfusionMatrix
from carlib.pipeline import LoadedModels, car_from_preset, load_models
from carlib.precision import amp_name, autocast_for, resolve_amp
from carlib.presets import Preset, get_preset
from carlib.world.classes import CLASS_NAMES
from carlib.world.scene import split_scene


@dataclass
class PrecisionAgreement:
    """CaR in float32 against CaR under autocast on the same scenes.

    Attributes:
        scenes: how many scenes were compared.
        amp: the lower precision (``"bf16"`` or ``"fp16"``).
        kept_unchanged: share of scenes whose kept query set is the same under both.
        pixels_unchanged: share of label-map pixels with the same label under both.
        miou: mIoU against the ground truth, ``{"fp32": ..., amp: ...}`` (background + every class).
        max_score_change: the largest absolute change of a step-1 classifier score
            (every query is scored at step 1 under both, so the scores pair up).
        seconds: wall time of each precision's runs, ``{"fp32": ..., amp: ...}``.
        changed_scenes: indices of the scenes whose kept set changed.
    """

    scenes: int
    amp: str
    kept_unchanged: float
    pixels_unchanged: float
    miou: dict[str, float]
    max_score_change: float
    seconds: dict[str, float]
    changed_scenes: list[int] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as markdown table rows."""
        return [
            f"| scenes | kept set unchanged | label-map pixels unchanged | mIoU fp32 | mIoU {self.amp} "
            f"| largest step-1 score change |",
            "|---|---|---|---|---|---|",
            f"| {self.scenes} | {self.kept_unchanged:.1%} | {self.pixels_unchanged:.2%} | {self.miou['fp32']:.4f} "
            f"| {self.miou[self.amp]:.4f} | {self.max_score_change:.2e} |",
        ]


def compare_precisions_on_world(
    n: int = 200,
    amp: str = "bf16",
    *,
    seed: int = 0,
    split: str = "test",
    preset: Preset | None = None,
    models: LoadedModels | None = None,
    progress: bool = True,
) -> PrecisionAgreement:
    """Run CaR on ``n`` ShapesWorld scenes in float32 and under ``amp``; compare decisions and maps.

    Arguments:
        n: number of scenes (``split`` ``"test"``: the held-out scenes of the documented figures).
        amp: ``"bf16"`` (CPU or GPU) or ``"fp16"`` (CUDA), see :mod:`carlib.precision`.
        seed: scene seed.
        split: ``"test"`` or ``"val"``.
        preset: settings (default: ``shapes``).
        models: loaded models (default: the ShapesWorld CLIP).
        progress: show a progress bar.

    Returns:
        a :class:`PrecisionAgreement`.

    Raises:
        ValueError: ``amp`` is not a lower precision on the models' device.
    """
    preset = preset or get_preset("shapes")
    models = models or load_models(preset, "shapes")
    device = models.proposal.device
    dtype = resolve_amp(device, amp)
    if dtype is None:
        raise ValueError(f"amp {amp!r} is full precision on {device}; compare 'bf16' (or 'fp16' on CUDA)")
    name = amp_name(dtype)
    cars = {"fp32": car_from_preset(preset, models), name: car_from_preset(preset, models)}
    contexts = {"fp32": nullcontext, name: lambda: autocast_for(device, amp)}
    queries = list(CLASS_NAMES)
    matrices = {key: ConfusionMatrix(len(CLASS_NAMES) + 1) for key in cars}
    seconds = dict.fromkeys(cars, 0.0)
    same_kept = same_pixels = pixels = 0
    largest = 0.0
    changed: list[int] = []
    for index in tqdm(range(n), desc=f"CaR fp32 vs {name}", disable=not progress):
        scene = split_scene(split, index, seed)
        results = {}
        for key, car in cars.items():
            start = time.perf_counter()
            with contexts[key]():
                results[key] = car.segment(scene.image, queries)
            seconds[key] += time.perf_counter() - start
            matrices[key].update(results[key].label_map, scene.class_map)
        full, low = results["fp32"], results[name]
        if np.array_equal(full.kept, low.kept):
            same_kept += 1
        else:
            changed.append(index)
        same_pixels += int((full.label_map == low.label_map).sum())
        pixels += full.label_map.size
        largest = max(largest, float(np.abs(full.steps[0].scores - low.steps[0].scores).max()))
    return PrecisionAgreement(
        scenes=n,
        amp=name,
        kept_unchanged=same_kept / max(n, 1),
        pixels_unchanged=same_pixels / max(pixels, 1),
        miou={key: matrix.miou() for key, matrix in matrices.items()},
        max_score_change=largest,
        seconds=seconds,
        changed_scenes=changed,
    )
