"""CaR on ShapesWorld reaches its measured figures (a 40-scene subset of docs/shapesworld.md).

The 200-scene figures with the shipped model and the ``shapes`` preset: CaR +
CRF mIoU 0.622, single pass 0.140, absent queries dropped 96.7%, present kept
92.5% (the issue's targets are 0.60 and 90% each). The first 40 test scenes
are easier than the 200: there the same code measures 0.819 / 0.158 / 97.3% /
96.9%. The thresholds below sit under those with a
margin, and the same checks on an untrained model of the same architecture
fail, so they can fail.
"""

from __future__ import annotations

import pytest
import torch

from carlib.models import data_dir
from carlib.pipeline import LoadedModels
from carlib.evaluation.shapesworld import evaluate_car_on_world

SUBSET = 40
# on these 40 test scenes the shipped model and preset give mIoU 0.819, 96.9% kept, 97.3% dropped
MIN_MIOU = 0.70
MIN_KEPT = 0.90


def _evaluate(models=None, n=SUBSET):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # small maps: one thread is faster than two here
    try:
        return evaluate_car_on_world(n, models=models, variants=("car_crf", "single_pass_crf"), progress=False)
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def report():
    if not (data_dir() / "shapes_clip" / "model.safetensors").is_file():
        pytest.fail("the ShapesWorld model is missing from data/shapes_clip; it ships with the repository")
    return _evaluate()


def test_car_with_crf_segments_held_out_scenes(report):
    assert report.miou["car_crf"] >= MIN_MIOU, report.lines()


def test_the_recurrence_beats_a_single_pass_by_at_least_0_15(report):
    assert report.miou["car_crf"] - report.miou["single_pass_crf"] >= 0.15, report.lines()


def test_absent_queries_are_dropped_and_most_present_ones_kept(report):
    assert report.absent_dropped >= 0.90, report.lines()
    assert report.present_kept >= MIN_KEPT, report.lines()


def test_an_untrained_model_fails_the_same_checks(tmp_path):
    import carlib
    from carlib.world.model import build_shapes_clip, default_config, save_shapes_checkpoint

    torch.manual_seed(0)
    config = default_config()
    save_shapes_checkpoint(build_shapes_clip(config), config, tmp_path)
    untrained = carlib.load_clip("shapes", pretrained=str(tmp_path), device="cpu")
    report = _evaluate(LoadedModels(untrained, untrained, "untrained"), n=10)
    assert report.miou["car_crf"] < MIN_MIOU or report.present_kept < MIN_KEPT


@pytest.mark.slow
def test_the_sam_variant_scores_what_a_loop_over_the_scenes_scores():
    import numpy as np

    from carlib.evaluation.metrics import ConfusionMatrix
    from carlib.evaluation.shapesworld import EVAL_SEED, EVAL_SPLIT
    from carlib.pipeline import car_from_preset, load_models
    from carlib.postprocess import ColourRegionMaskSource
    from carlib.presets import get_preset
    from carlib.world.classes import CLASS_NAMES
    from carlib.world.scene import split_scene

    preset = get_preset("shapes")
    models = load_models(preset, "shapes")
    source = ColourRegionMaskSource()
    report = evaluate_car_on_world(3, preset=preset, models=models, variants=("car_sam",), sam_source=source,
                                   progress=False)
    car = car_from_preset(preset, models, post="sam", sam_source=source)
    matrix = ConfusionMatrix(len(CLASS_NAMES) + 1)
    for index in range(3):
        scene = split_scene(EVAL_SPLIT, index, EVAL_SEED)
        result = car.segment(scene.image, list(CLASS_NAMES))
        matrix.update(result.label_map, scene.label_map(CLASS_NAMES))
        np.testing.assert_array_equal(scene.label_map(CLASS_NAMES), scene.class_map)
    assert report.miou["car_sam"] == matrix.miou()
