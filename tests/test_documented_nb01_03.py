"""Documented figures of notebooks 00-03: each agrees with an independent computation, and each stored
file holds every figure its notebook reads."""

import re

import nbformat
import numpy as np
import pytest

import carlib
from carlib.evaluation.metrics import iou
from carlib.models import data_dir
from carlib.pipeline import car_from_preset, load_models
from carlib.presets import get_preset
from carlib.tutorial.documented import DOCUMENTED_SCENES, documented, modules
from carlib.tutorial.documented import nb00, nb01, nb02, nb03
from carlib.world.classes import CLASS_NAMES
from carlib.world.scene import split_scene

NOTEBOOKS = {module.NOTEBOOK: module for module in (nb00, nb01, nb02, nb03)}


@pytest.fixture(scope="module")
def shapes():
    preset = get_preset("shapes")
    return preset, load_models(preset, "shapes", device="cpu")


def scenes(n):
    return [split_scene("test", index, 0) for index in range(n)]


def test_nb01_gradcam_and_baseline_match_the_shapesworld_report_and_the_scene_areas():
    from carlib.evaluation.shapesworld_report import evaluate_world

    figures = nb01.compute(3, 0)
    report = evaluate_world(n=3, seed=0, cam_threshold=nb01.IOU_THRESHOLD)
    assert figures["gradcam_miou"].value == pytest.approx(report.gradcam_miou, abs=1e-9)
    # The whole-image mask's IoU is the object's share of the picture: computed here from the scenes alone.
    shares = [scene.class_mask(name).mean() for scene in scenes(3) for name in scene.class_names_present]
    assert figures["full_image_miou"].value == pytest.approx(float(np.mean(shares)), abs=1e-9)


def test_nb01_summary_on_hand_made_measures():
    measures = nb01.CamMeasures()
    measures.classes = ["lemon", "orange"]
    measures.ious = {key: [0.0, 1.0] for key in nb01.CAM_VARIANTS}
    measures.inverted = [True, False]
    measures.present_above_absent = [True, True, False, True]
    summary = measures.summary()
    assert summary["inverted_share"] == 0.5 and summary["inverted_share_lemon"] == 1.0
    assert summary["gradcam_miou_orange"] == 1.0 and summary["present_above_absent"] == 0.75
    assert "gradcam_miou_kite" not in summary


def test_nb01_find_inverted_returns_a_map_brighter_off_the_object(shapes):
    preset, models = shapes
    found = nb01.find_inverted(models.proposal, preset.settings.background, "lemon", limit=30)
    assert found is not None  # the stored figures put about 40% of lemon maps inverted
    scene, cam = found
    truth = scene.class_mask("lemon")
    assert cam[~truth].mean() > cam[truth].mean()
    with pytest.raises(ValueError, match="unknown class"):
        nb01.find_inverted(models.proposal, (), "lemons")


def test_nb02_report_path_agrees_with_the_notebooks_own_calls(shapes):
    preset, models = shapes
    settings = preset.settings
    figures = nb02.compute(2, 0)
    before, after, dense = [], [], []
    names = list(CLASS_NAMES)
    for scene in scenes(2):
        cams = carlib.compute_cams(models.proposal, scene.image, names, settings.background)
        refined = carlib.clip_es_refine(cams.cams, cams.attention, threshold=settings.clipes_threshold,
                                        output_size=cams.image_size)
        maskclip = carlib.maskclip.compute_maskclip(models.proposal, scene.image, names, settings.background)
        for name in scene.class_names_present:
            truth = scene.class_mask(name)
            before.append(iou(cams.upsampled()[names.index(name)] > settings.mask_threshold, truth))
            after.append(iou(refined[names.index(name)] > settings.mask_threshold, truth))
            dense.append(iou(maskclip.upsampled()[names.index(name)] > settings.mask_threshold, truth))
    assert figures["gradcam_miou"].value == pytest.approx(np.mean(before), abs=1e-6)
    assert figures["clip_es_miou"].value == pytest.approx(np.mean(after), abs=1e-6)
    assert figures["clip_es_gain"].value == pytest.approx(np.mean(after) - np.mean(before), abs=1e-6)
    assert figures["maskclip_miou"].value == pytest.approx(np.mean(dense), abs=1e-6)


def test_nb03_first_step_matches_car_and_unprompted_scores_match_the_classifier(shapes):
    preset, models = shapes
    settings = preset.settings
    scene = scenes(1)[0]
    measured = nb03.measure_prompts(models.proposal, models.classifier, [scene], settings)
    names = list(CLASS_NAMES)
    # CaR's own first step decides the same keeps and drops.
    first = car_from_preset(preset, models, post="none").segment(scene.image, names).steps[0]
    kept = {names[i] for i in first.kept}
    present = set(scene.class_names_present)
    assert measured.step_kept_present == [name in kept for name in names if name in present]
    assert measured.step_dropped_absent == [name not in kept for name in names if name not in present]
    # "none" is the plain image: one classification, the same for every object of the scene.
    plain = carlib.classifier.MaskClassifier(models.classifier).classify([scene.image], names, settings)[0]
    expected = [float(plain[names.index(name)]) for name in scene.class_names_present]
    assert measured.target_probability[("truth", "none")] == pytest.approx(expected, abs=1e-6)
    assert measured.target_top[("truth", "none")] == [int(np.argmax(plain)) == names.index(name)
                                                      for name in scene.class_names_present]
    # An absent word's own proposal under "none" is the plain image too; under the preset's prompt (blur) it is
    # exactly what CaR's first step classified, so "kept by mistake" is the step's own verdict.
    absent = [name for name in names if name not in present]
    assert measured.absent_probability["none"] == pytest.approx([float(plain[names.index(n)]) for n in absent],
                                                                abs=1e-6)
    assert settings.prompt_kinds == ("blur",)
    assert measured.absent_kept["blur"] == [not dropped for dropped in measured.step_dropped_absent]
    assert measured.present_kept["blur"] == measured.step_kept_present


def test_nb00_measure_car_agrees_with_the_evaluation(shapes):
    from carlib.evaluation.shapesworld import evaluate_car_on_world

    preset, models = shapes
    live = nb00.measure_car(car_from_preset(preset, models), scenes(2))
    report = evaluate_car_on_world(2, seed=0, variants=("car_crf",), progress=False, models=models)
    assert live["miou"] == pytest.approx(report.miou["car_crf"], abs=1e-9)
    assert live["present_kept"] == pytest.approx(report.present_kept)
    assert live["absent_dropped"] == pytest.approx(report.absent_dropped)


def notebook_literal_keys(notebook):
    """Keys a notebook reads as literals: stored["x"] or stored['x'] (f-string keys are listed per module)."""
    source = "\n".join(cell.source for cell in nbformat.read(data_dir().parent / "notebooks" / f"{notebook}.ipynb",
                                                             as_version=4).cells if cell.cell_type == "code")
    return set(re.findall(r"stored\[\s*[\"']([^\"'{}]+)[\"']\s*\]", source))


def keys_read(notebook):
    keys = notebook_literal_keys(notebook)
    if notebook == nb01.NOTEBOOK:
        keys |= {f"{key}_miou" for key in nb01.CAM_VARIANTS}
        keys |= {f"{prefix}_{name}" for prefix in ("gradcam_miou", "inverted_share") for name in CLASS_NAMES}
        keys |= {"inverted_share", "present_above_absent"}
    if notebook == nb02.NOTEBOOK:
        keys |= {"gradcam_miou", "clip_es_miou", "clip_es_gain", "full_image_miou", "maskclip_miou",
                 "maskclip_clip_es_miou"}
    if notebook == nb03.NOTEBOOK:
        keys |= {f"{kind}_{mask}_{prompt}" for kind in ("p", "top") for mask in nb03.MASKS for prompt in nb03.PROMPTS}
        keys |= {f"p_blur_{kernel}" for kernel in nb03.BLUR_KERNELS}
        keys |= {f"{kind}_{prompt}" for kind in ("kept_present", "p_absent", "kept_absent") for prompt in nb03.PROMPTS}
        keys |= {"step_present_kept", "step_absent_dropped", "step_kept_not_top"}
    if notebook == nb00.NOTEBOOK:
        keys |= {"car_crf_miou", "single_pass_crf_miou", "present_kept", "absent_dropped"}
    return keys


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS))
def test_stored_file_is_current_and_holds_every_key_the_notebook_reads(notebook):
    assert notebook in modules()
    stored = documented(notebook)  # raises if missing, malformed, or measured with other weights
    assert stored.scenes >= DOCUMENTED_SCENES and stored.split == "test"
    missing = keys_read(notebook) - set(stored.figures)
    assert not missing, f"{notebook}.json lacks {sorted(missing)}: run `carlib documented refresh {notebook}`"
    for name, figure in stored.figures.items():
        assert np.isfinite(figure.value) and figure.what, name


def test_notebook_key_scan_finds_literal_keys():
    # The scanner itself: it must see the literals the notebooks use, or the check above proves nothing.
    assert "present_above_absent" in notebook_literal_keys(nb01.NOTEBOOK)
    assert "clip_es_gain" in notebook_literal_keys(nb02.NOTEBOOK)


def test_nb01_gradcam_at_the_last_ln_1_is_compute_cams(shapes):
    preset, models = shapes
    scene = scenes(1)[0]
    names, background = list(CLASS_NAMES), preset.settings.background
    last = models.proposal.model.visual.transformer.resblocks[-1]
    plain = carlib.compute_cams(models.proposal, scene.image, names, background, attention_layers=0)
    by_layer = nb01.gradcam_at_layer(models.proposal, scene.image, names, background, last.ln_1)
    np.testing.assert_allclose(by_layer, plain.cams, atol=1e-5)
    final = nb01.gradcam_at_layer(models.proposal, scene.image, names, background, last)
    assert final.shape == plain.cams.shape and np.abs(final - plain.cams).max() > 0.1  # another layer, other maps
