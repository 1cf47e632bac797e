"""The CaR recurrence: stopping rule, fallbacks, score bookkeeping, trace — and the classifier."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

import carlib
from carlib.car import CaR
from carlib.classifier import MaskClassifier
from carlib.labels import merge_referring_masks, paint_label_map
from carlib.settings import CarSettings

IMAGE = np.random.default_rng(5).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def small() -> carlib.ClipBundle:
    return carlib.load_clip("ViT-S-32", device="cpu", seed=1)


class ScriptedClassifier:
    """A classifier stage that returns scripted scores: step s gives the diagonal script[s][query].

    It drives the recurrence through the classifier seam, so the stopping rule and the score
    bookkeeping can be checked against hand-chosen numbers.
    """

    def __init__(self, script: list[dict[str, float]]):
        self.script = script
        self.calls: list[list[str]] = []

    def classify(self, images, queries, settings):
        step_scores = self.script[min(len(self.calls), len(self.script) - 1)]
        self.calls.append(list(queries))
        matrix = np.full((len(images), len(queries)), 0.01, dtype=np.float32)
        for k, query in enumerate(queries):
            matrix[k, k] = step_scores[query]
        return matrix


def _car(bundle, script, **options) -> tuple[CaR, ScriptedClassifier]:
    scripted = ScriptedClassifier(script)
    settings = CarSettings(**{"post": "none", "confidence_threshold": 0.5, **options})
    car = CaR(bundle, None, settings, classifier=scripted)
    return car, scripted


def test_stops_when_the_survivor_count_repeats(small):
    car, scripted = _car(small, [{"a": 0.9, "b": 0.2, "c": 0.7}, {"a": 0.8, "c": 0.6}])
    result = car.segment(IMAGE, ["a", "b", "c"])
    assert scripted.calls == [["a", "b", "c"], ["a", "c"]]
    assert result.num_steps == 2
    assert [step.kept for step in result.steps] == [[0, 2], [0, 2]]
    assert result.steps[0].dropped == [1]
    # Final scores come from the last step and land on the right query.
    np.testing.assert_allclose(result.scores, [0.8, 0.0, 0.6])
    assert result.kept_queries == ["a", "c"]
    assert not result.masks[1].any() and not result.soft_masks[1].any()


def test_scores_follow_the_original_query_even_when_the_first_one_dies(small):
    # The reference zips scores in filtered order against original positions;
    # here query 0 dies, so a zip bug would give "b" the score of "a".
    car, _ = _car(small, [{"a": 0.1, "b": 0.9, "c": 0.7}, {"b": 0.95, "c": 0.55}])
    result = car.segment(IMAGE, ["a", "b", "c"])
    np.testing.assert_allclose(result.scores, [0.0, 0.95, 0.55])


def test_threshold_is_strict_unless_inclusive(small):
    script = [{"a": 0.5, "b": 0.9}, {"a": 0.5, "b": 0.9}]
    strict, _ = _car(small, script)
    assert strict.segment(IMAGE, ["a", "b"]).kept_queries == ["b"]
    inclusive, _ = _car(small, script, inclusive_threshold=True)
    assert inclusive.segment(IMAGE, ["a", "b"]).kept_queries == ["a", "b"]


def test_argmax_is_kept_when_nothing_passes(small):
    car, _ = _car(small, [{"a": 0.1, "b": 0.3, "c": 0.2}, {"b": 0.4}])
    result = car.segment(IMAGE, ["a", "b", "c"])
    assert result.steps[0].fell_back_to_argmax and result.steps[0].kept == [1]
    assert result.kept_queries == ["b"]
    np.testing.assert_allclose(result.scores, [0, 0.4, 0])


def test_max_steps_caps_a_recurrence_that_keeps_shrinking(small):
    script = [{q: 0.9 for q in "abcd"} | {"d": 0.1}, {q: 0.9 for q in "abc"} | {"c": 0.1}, {"a": 0.9, "b": 0.1}]
    car, scripted = _car(small, script, max_steps=2)
    result = car.segment(IMAGE, list("abcd"))
    assert result.num_steps == 2 and len(scripted.calls) == 2
    assert result.kept_queries == ["a", "b"]


def test_no_recurrence_keeps_every_query_after_one_step(small):
    car, scripted = _car(small, [{"a": 0.1, "b": 0.9}], recurrent=False)
    result = car.segment(IMAGE, ["a", "b"])
    assert result.num_steps == 1 and result.kept_queries == ["a", "b"]
    np.testing.assert_allclose(result.scores, [0.1, 0.9])


def test_cam_texts_are_templated_from_step_two_by_default(small):
    script = [{"a": 0.9, "b": 0.1}, {"a": 0.9}]
    car, _ = _car(small, script)
    result = car.segment(IMAGE, ["a", "b"])
    assert result.steps[0].cam_texts == ["a", "b"]
    assert result.steps[1].cam_texts == ["a clean origami a."]
    plain, _ = _car(small, script, templated_cams_after_first_step=False)
    assert plain.segment(IMAGE, ["a", "b"]).steps[1].cam_texts == ["a"]


def test_trace_has_maps_matrices_and_timings(small):
    car, _ = _car(small, [{"a": 0.9, "b": 0.1}, {"a": 0.9}])
    result = car.segment(IMAGE, ["a", "b"])
    first = result.steps[0]
    assert first.cams.shape == first.proposals.shape == (2, 48, 64)
    assert first.classifier.shape == (2, 2)
    assert set(first.seconds) == {"proposals", "prompts", "classify"}
    assert set(result.seconds) == {"proposals", "prompts", "classify", "post"}
    assert result.label_map.shape == (48, 64) and set(np.unique(result.label_map)) <= {0, 1}


def test_referring_mode_computes_each_cam_alone(small):
    semantic, _ = _car(small, [{"a": 0.9, "b": 0.9}])
    referring, _ = _car(small, [{"a": 0.9, "b": 0.9}], mode="referring")
    joint = semantic.segment(IMAGE, ["a", "b"]).steps[0].cams
    alone = referring.segment(IMAGE, ["a", "b"]).steps[0].cams
    single = carlib.gradcam(small, IMAGE, ["b"])
    np.testing.assert_allclose(alone[1], single[0], atol=1e-5)
    assert np.abs(joint[1] - alone[1]).max() > 1e-3


def test_centred_cam_features_reach_the_proposals(small):
    centred, _ = _car(small, [{"a": 0.9, "b": 0.9}], center_cam_features=True, use_clip_es=False)
    plain, _ = _car(small, [{"a": 0.9, "b": 0.9}], use_clip_es=False)
    cams = centred.segment(IMAGE, ["a", "b"]).steps[0].cams
    np.testing.assert_allclose(cams, carlib.gradcam(small, IMAGE, ["a", "b"], center_features=True), atol=1e-5)
    assert np.abs(cams - plain.segment(IMAGE, ["a", "b"]).steps[0].cams).max() > 1e-3


class RecordingClassifier(ScriptedClassifier):
    """A scripted classifier that also keeps the prompted images it was shown."""

    def __init__(self, script):
        super().__init__(script)
        self.images: list[np.ndarray] = []

    def classify(self, images, queries, settings):
        self.images.extend(images)
        return super().classify(images, queries, settings)


def test_blur_prompts_use_the_configured_kernel(small):
    shown = {}
    for kernel in (3, 31):
        recording = RecordingClassifier([{"a": 0.9, "b": 0.9}])
        settings = CarSettings(post="none", confidence_threshold=0.5, prompt_kinds=("blur",), blur_kernel=kernel,
                               mask_threshold=0.3, recurrent=False, use_clip_es=False)
        car = CaR(small, None, settings, classifier=recording)
        result = car.segment(IMAGE, ["a", "b"])
        for image, proposal in zip(recording.images, result.steps[0].proposals):
            assert 0 < (proposal > 0.3).sum() < proposal.size  # something inside and outside to blur
            expected = carlib.apply_visual_prompts(IMAGE, proposal > 0.3, ("blur",), blur_kernel=kernel)
            np.testing.assert_array_equal(image, expected)
        shown[kernel] = recording.images[0]
    assert np.abs(shown[3].astype(int) - shown[31].astype(int)).max() > 0


def test_bad_configuration_is_explained(small):
    with pytest.raises(ValueError, match="blur_kernel must be a positive odd int"):
        CarSettings(blur_kernel=16)
    with pytest.raises(ValueError, match="post"):
        CarSettings(post="blur")
    with pytest.raises(ValueError, match="sam_source"):
        CaR(small, small, CarSettings(post="sam"))
    with pytest.raises(ValueError, match="empty"):
        CaR(small, small, CarSettings(post="none")).segment(IMAGE, [])
    with pytest.raises(ValueError, match="CarSettings"):
        CaR(small, small, {"post": "none"})  # type: ignore[arg-type]


def test_classifier_matches_an_independent_computation(small):
    templates = ("a photo of a {}.", "there is a {} in the scene")
    settings = CarSettings(templates=templates)
    classifier = MaskClassifier(small)
    images = [IMAGE, IMAGE[::-1].copy(), np.zeros_like(IMAGE)]
    queries = ["cat", "dog", "a red car"]
    scores = classifier.classify(images, queries, settings)
    assert scores.shape == (3, 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)

    # Reference: open_clip's own encode_image on a copy whose last block is removed
    # (the class token after L-1 blocks), then the formula of spec section 4.
    truncated = copy.deepcopy(small.model)
    truncated.visual.transformer.resblocks = truncated.visual.transformer.resblocks[:-1]
    with torch.no_grad():
        pixels = torch.stack([small.preprocess(Image.fromarray(image)) for image in images])
        image_embeddings = torch.nn.functional.normalize(truncated.encode_image(pixels), dim=-1)
        summed = 0
        for template in templates:
            texts = small.model.encode_text(small.tokenizer([template.format(q) for q in queries]))
            texts = torch.nn.functional.normalize(texts, dim=-1)
            summed = summed + (small.model.logit_scale.exp() * image_embeddings @ texts.T).softmax(dim=-1)
    np.testing.assert_allclose(scores, summed.softmax(dim=-1).numpy(), atol=1e-5)

    final = MaskClassifier(small).classify(images, queries, settings.replace(classifier_feature="final"))
    assert np.abs(final - scores).max() > 1e-4


def test_classifier_caches_text_embeddings(small):
    classifier = MaskClassifier(small)
    settings = CarSettings(templates=("a photo of a {}.",))
    first = classifier.classify([IMAGE], ["cat", "dog"], settings)
    cached = dict(classifier.texts._store)
    again = classifier.classify([IMAGE], ["dog"], settings)
    assert classifier.texts._store.keys() == cached.keys() and classifier.texts.encoded == 2
    assert classifier.texts._store["a photo of a {}.", "dog"] is cached["a photo of a {}.", "dog"]
    assert again.shape == (1, 1) and first.shape == (1, 2)


def test_label_map_paints_in_ascending_score_order():
    masks = np.zeros((3, 2, 3), dtype=bool)
    masks[0, :, :2] = True
    masks[1, :, 1:] = True
    masks[2, 0, 0] = True
    labels = paint_label_map(masks, np.array([0.5, 0.9, 0.0]))
    # Query 1 (0.9) is painted last and wins the overlap; query 2 (score 0) is never painted.
    np.testing.assert_array_equal(labels, [[1, 2, 2], [1, 2, 2]])


def test_referring_merge_and_its_small_area_fallback():
    masks = np.zeros((2, 10, 10))
    masks[0, :5] = 1.0
    masks[1, :3] = 1.0
    # Weights 3:1 -> rows 0-2 mean 1.0, rows 3-4 mean 0.75: all five rows pass 0.5.
    merged = merge_referring_masks(masks, [0.3, 0.1])
    assert merged.sum() == 50
    # Weights 1:3 -> rows 3-4 mean 0.25: only three rows pass.
    assert merge_referring_masks(masks, [0.1, 0.3]).sum() == 30
    tiny = np.zeros((2, 10, 10))
    tiny[0, 0, 0] = 1.0
    tiny[1, 9, 9] = 0.4
    # Mean covers nothing above 0.5 (<= 5 % of the image): fall back to the union of positives.
    fallback = merge_referring_masks(tiny, [0.5, 0.5])
    assert fallback.sum() == 2 and fallback[0, 0] and fallback[9, 9]


def test_single_softmax_aggregation_for_referring_presets(small):
    queries = ["the man on the left", "a red car"]
    one_template = CarSettings(templates=("a clean origami {}.",))
    single = MaskClassifier(small).classify([IMAGE], queries, one_template.replace(classifier_aggregation="softmax"))
    double = MaskClassifier(small).classify([IMAGE], queries, one_template)
    with torch.no_grad():
        pixels = small.preprocess(Image.fromarray(IMAGE))[None]
        truncated = copy.deepcopy(small.model)
        truncated.visual.transformer.resblocks = truncated.visual.transformer.resblocks[:-1]
        image = torch.nn.functional.normalize(truncated.encode_image(pixels), dim=-1)
        texts = torch.nn.functional.normalize(
            small.model.encode_text(small.tokenizer([f"a clean origami {q}." for q in queries])), dim=-1
        )
        once = (small.model.logit_scale.exp() * image @ texts.T).softmax(dim=-1)
    np.testing.assert_allclose(single, once.numpy(), atol=1e-5)
    np.testing.assert_allclose(double, once.softmax(dim=-1).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="aggregation"):
        CarSettings(templates=("{}",), classifier_aggregation="mean")


@pytest.mark.parametrize("name", ["voc", "shapes"])
def test_car_from_preset_carries_the_preset_prompt_settings(small, name):
    from carlib.pipeline import LoadedModels, car_from_preset

    preset = carlib.get_preset(name)
    car = car_from_preset(preset, LoadedModels(small, small, "test"), post="none")
    assert car.settings.blur_kernel == preset.settings.blur_kernel
    assert car.settings.prompt_kinds == preset.settings.prompt_kinds
    assert car.settings.center_cam_features == preset.settings.center_cam_features
    assert (car.settings.mask_threshold, car.settings.confidence_threshold) == (
        preset.settings.mask_threshold, preset.settings.confidence_threshold)
    assert car.settings == preset.settings.replace(post="none")  # the preset's settings, passed whole


# --- bounded proposal resolution ------------------------------------------------------------------------------

from carlib.car import SHAPES_CLIP_MAX_SIDE  # noqa: E402
from carlib.models import REAL_CLIP_MAX_SIDE  # noqa: E402
from carlib.images import fit_within  # noqa: E402
from carlib.labels import resize_masks  # noqa: E402

PHOTO = np.kron(np.random.default_rng(8).integers(0, 256, size=(12, 16, 3), dtype=np.uint8),
                np.ones((20, 20, 1), dtype=np.uint8))  # 240 x 320, blocky so shrinking keeps its content


@pytest.mark.parametrize("post", ["none", "crf"])
def test_a_large_image_runs_at_max_side_and_comes_back_at_its_own_size(small, post):
    car = CaR(small, small, CarSettings(post=post, confidence_threshold=0.2, max_side=80))
    result = car.segment(PHOTO, ["a", "b", "c"])
    assert result.working_size == (60, 80)
    assert all(step.proposals.shape[1:] == (60, 80) and step.cams.shape[1:] == (60, 80) for step in result.steps)
    assert result.masks.shape == result.soft_masks.shape == (3, 240, 320) and result.label_map.shape == (240, 320)
    # The reference: the same CaR at native size on the image shrunk by hand, its masks resized back.
    by_hand = CaR(small, small, CarSettings(post=post, confidence_threshold=0.2, max_side=None)).segment(
        fit_within(PHOTO, 80), ["a", "b", "c"])
    np.testing.assert_array_equal(result.scores, by_hand.scores)
    kept = result.scores > 0
    np.testing.assert_array_equal(result.masks[kept], resize_masks(by_hand.masks[kept], (240, 320)))
    assert not result.masks[~kept].any() and not result.soft_masks[~kept].any()
    np.testing.assert_array_equal(result.label_map, paint_label_map(result.masks, result.scores))
    assert result.masks.any()


def test_an_image_that_fits_is_not_touched(small):
    fits = CaR(small, small, CarSettings(post="crf", max_side=64)).segment(IMAGE, ["a", "b"])
    native = CaR(small, small, CarSettings(post="crf", max_side=None)).segment(IMAGE, ["a", "b"])
    assert fits.working_size == native.working_size == IMAGE.shape[:2]
    np.testing.assert_array_equal(fits.label_map, native.label_map)
    np.testing.assert_array_equal(fits.soft_masks, native.soft_masks)


def test_max_side_auto_follows_the_model_family(small):
    shapes = carlib.load_clip("shapes")
    assert CaR(small, small).max_side == REAL_CLIP_MAX_SIDE == 640
    assert CaR(shapes, shapes).max_side == SHAPES_CLIP_MAX_SIDE == 96
    assert CaR(small, small, CarSettings(max_side=None)).max_side is None
    for bad in (0, -5, 2.5, "big", True):
        with pytest.raises(ValueError, match="max_side"):
            CarSettings(max_side=bad)
    for name in carlib.PRESETS:
        preset = carlib.get_preset(name)
        models = carlib.pipeline.LoadedModels(small, small, "test")
        expected = 2048 if name in ("ade150", "ade847") else REAL_CLIP_MAX_SIDE
        assert carlib.car_from_preset(preset, models).max_side == expected, name
    with pytest.raises(ValueError, match="max_side"):
        carlib.get_preset("voc").replace(max_side=0)


def test_resized_masks_keep_their_shape_and_never_overlap():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(9, 13))
    masks = np.stack([labels == k for k in (1, 2, 3)])
    up = resize_masks(masks, (90, 130))
    assert up.shape == (3, 90, 130) and up.dtype == bool
    assert up.sum(axis=0).max() <= 1
    # A square grows to the same square, its edges where bilinear interpolation crosses one half.
    square = np.zeros((1, 4, 4), dtype=bool)
    square[0, 1:3, 1:3] = True
    big = resize_masks(square, (8, 8))[0]
    expected = np.zeros((8, 8), dtype=bool)
    expected[2:6, 2:6] = True
    np.testing.assert_array_equal(big, expected)


class OverlappingMaps:
    """A proposal stage whose two maps overlap in the middle third of the image."""

    def propose(self, image, texts, settings):
        from carlib.proposals import ProposalMaps

        maps = np.zeros((len(texts), *image.shape[:2]), dtype=np.float32)
        third = image.shape[1] // 3
        maps[0, :, : 2 * third] = 0.9
        maps[1, :, third:] = 0.8
        return ProposalMaps(maps, maps)


def test_post_processing_runs_the_crf_the_mode_calls_for(small):
    from carlib.postprocess import CrfSettings, dense_crf, dense_crf_per_mask

    crf = CrfSettings(iterations=5)
    results = {}
    for mode, reference in (("semantic", dense_crf), ("referring", dense_crf_per_mask)):
        settings = CarSettings(mode=mode, post="crf", crf=crf, recurrent=False)
        car = CaR(None, None, settings, proposals=OverlappingMaps(), classifier=ScriptedClassifier([{"a": 0.9, "b": 0.9}]))
        result = car.segment(IMAGE, ["a", "b"])
        np.testing.assert_array_equal(result.masks, reference(IMAGE, result.soft_masks, crf))
        results[mode] = result.masks
    assert not (results["semantic"][0] & results["semantic"][1]).any()  # one joint CRF: disjoint masks
    assert (results["referring"][0] & results["referring"][1]).any()  # one CRF per mask: they may overlap
