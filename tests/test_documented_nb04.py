"""Documented figures of notebook 04: the two mIoU rules, samples of the 200 scenes, lump scenes, and the stored
file the notebooks read (04 for the explanation, 05, 06 and 07 for their live sample sizes)."""

import numpy as np
import pytest

from carlib.tutorial.documented import documented, nb04
from carlib.world.scene import split_scene


def _matrix(rows):
    return np.array(rows, dtype=np.int64)


# Three labels (background, a, b), ground truth x prediction.
# Scene 1: background 8 px, "a" 2 px, all right; "b" absent but painted over 1 background pixel.
SCENE_1 = _matrix([[7, 0, 1], [0, 2, 0], [0, 0, 0]])
# Scene 2: background 6 px, "b" 4 px; half of "b" painted background. "a" absent, not painted.
SCENE_2 = _matrix([[6, 0, 0], [0, 0, 0], [2, 0, 2]])


def test_the_two_rules_differ_exactly_by_the_absent_class_that_is_painted():
    # Scene 1 alone: present labels background (7/8) and a (2/2); b's IoU is 0/1 but b is not in the ground truth.
    assert nb04.miou_over_present(SCENE_1) == pytest.approx((7 / 8 + 1) / 2)
    assert nb04.miou_over_union(SCENE_1) == pytest.approx((7 / 8 + 1 + 0) / 3)
    # Scene 2 alone: a has an empty union under both rules.
    assert nb04.miou_over_present(SCENE_2) == pytest.approx((6 / 8 + 2 / 4) / 2)
    assert nb04.miou_over_union(SCENE_2) == nb04.miou_over_present(SCENE_2)
    # Together every label is present: one rule. Background 13/(13+1+2), a 2/2, b 2/(2+1+2).
    together = SCENE_1 + SCENE_2
    assert nb04.miou_over_present(together) == pytest.approx((13 / 16 + 1 + 2 / 5) / 3)
    assert nb04.miou_over_union(together) == nb04.miou_over_present(together)


def test_samples_are_disjoint_consecutive_and_count_absent_and_painted_classes():
    samples = nb04.sample_mious([SCENE_1, SCENE_2, SCENE_1], 1)
    assert samples.present == pytest.approx([nb04.miou_over_present(SCENE_1), nb04.miou_over_present(SCENE_2),
                                             nb04.miou_over_present(SCENE_1)])
    assert samples.absent == [1, 1, 1] and samples.painted_absent == [1, 0, 1]
    pairs = nb04.sample_mious([SCENE_1, SCENE_2, SCENE_1], 2)  # the third scene is left over
    assert pairs.present == pytest.approx([nb04.miou_over_present(SCENE_1 + SCENE_2)])
    assert pairs.absent == [0] and pairs.painted_absent == [0]
    with pytest.raises(ValueError, match="size"):
        nb04.sample_mious([SCENE_1], 2)


def test_a_lump_is_one_class_painting_most_of_the_picture():
    lump = _matrix([[2, 0, 6], [0, 2, 0], [0, 0, 0]])  # b painted over 6 of 10 pixels
    assert nb04.lump_scenes([SCENE_1, lump, SCENE_2]) == [1]
    assert nb04.lump_scenes([SCENE_1, lump, SCENE_2], share=0.7) == []
    np.testing.assert_allclose(nb04.class_ious(lump), [2 / 8, 1.0, 0.0])


def test_records_scene_by_scene_agree_with_the_evaluation():
    from carlib.evaluation.shapesworld import evaluate_car_on_world
    from carlib.pipeline import car_from_preset, load_models
    from carlib.presets import get_preset

    preset = get_preset("shapes")
    models = load_models(preset, "shapes", device="cpu")
    scenes = [split_scene("test", index, 0) for index in range(2)]
    records = nb04.record_scenes(car_from_preset(preset, models, post="crf"), scenes)
    report = evaluate_car_on_world(2, seed=0, variants=("car_crf",), progress=False, models=models)
    assert nb04.miou_over_present(records.total()) == pytest.approx(report.miou["car_crf"], abs=1e-12)
    assert np.mean(records.kept_present) == pytest.approx(report.present_kept)
    assert np.mean(records.dropped_absent) == pytest.approx(report.absent_dropped)
    for scene, matrix in zip(scenes, records.matrices):
        assert matrix.sum() == scene.class_map.size


def test_the_stored_file_holds_what_the_notebooks_read_and_agrees_with_itself():
    stored = documented("04_recurrence")
    assert stored.scenes >= 200
    for key in ("car_crf_miou", "car_crf_miou_union", "car_none_miou", "single_pass_crf_miou", "present_kept",
                "absent_dropped", "mean_steps", "lump_scenes", "lump_wrong_share", "car_crf_miou_without_lumps"):
        assert np.isfinite(stored[key]), key
    for size in nb04.SAMPLE_SIZES:
        count = int(stored[f"samples{size}_count"])
        assert count == stored.scenes // size
        values = [stored[f"samples{size}/{k:02d}"] for k in range(count)]
        assert np.mean(values) == pytest.approx(stored[f"samples{size}_present_mean"])
        assert min(values) == stored[f"samples{size}_present_min"] and max(values) == stored[f"samples{size}_present_max"]
        assert stored[f"samples{size}_union_mean"] <= stored[f"samples{size}_present_mean"] + 1e-12
    for label in nb04.LABEL_NAMES:
        assert 0 <= stored[f"class_iou/{label}"] <= 1 and 0 <= stored[f"samples10_class_iou/{label}"] <= 1
