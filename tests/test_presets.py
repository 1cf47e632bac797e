"""Presets and vocabularies: the spec's section-8 table, the class lists, the table's behaviour."""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys

import pytest

import carlib.presets as presets
import carlib.text
from carlib.background import BACKGROUND_SETS
from carlib.presets import (
    PRESETS,
    SEMANTIC_TEMPLATES,
    Preset,
    get_preset,
    preset_names,
)
from carlib.prompts import PROMPT_KINDS
from carlib.vocabularies import (
    ADE_150,
    ADE_150_CLASSES,
    COCO_OBJECT,
    COCO_OBJECT_CLASSES,
    CONTEXT_59,
    CONTEXT_59_CLASSES,
    VOC,
    VOC_CLASSES,
)

ALL_NAMES = (
    "voc", "coco_object", "context", "ade150", "ade847", "context459", "refcoco", "refcoco+", "refcocog", "gres",
    "refdavis17", "shapes",
)

# Spec section 8: name -> (η, θ, λ, visual prompts, classifier). θ and the
# RefCOCO prompts are the code's values (the paper's are in paper_values).
SECTION_8 = {
    "voc": (0.4, 0.6, 0.4, {"circle", "blur"}, "ViT-L-14"),
    "coco_object": (0.5, 0.3, 0.5, {"blur", "gray"}, "ViT-L-14"),
    "context": (0.6, 0.25, 0.4, {"blur", "circle"}, "ViT-L-14"),
    "ade150": (0.6, 0.25, 0.7, {"gray", "blur"}, "ViT-L-14"),
    "refcoco": (0.5, 0.3, 0.5, {"circle"}, "ViT-B-16"),
    "refcoco+": (0.2, 0.1, 0.5, {"circle", "blur"}, "ViT-B-16"),
    "refcocog": (0.5, 0.1, 0.6, {"circle", "blur"}, "ViT-B-16"),
    "gres": (0.5, 0.0, 0.3, {"circle"}, "ViT-L-14"),  # gres.yaml: its classifier is ViT-L/14
}

BENCHMARKS = tuple(SECTION_8)


def test_table_holds_exactly_the_documented_presets():
    assert preset_names() == ALL_NAMES
    assert set(PRESETS) == set(ALL_NAMES)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_section_8_values(name):
    eta, theta, lam, prompts, classifier = SECTION_8[name]
    preset = get_preset(name)
    assert preset.name == name
    assert (preset.settings.mask_threshold, preset.settings.confidence_threshold, preset.settings.clipes_threshold) == (eta, theta, lam)
    assert set(preset.settings.prompt_kinds) == prompts
    assert len(preset.settings.prompt_kinds) == len(prompts)
    assert preset.classifier_model == classifier
    assert preset.settings.blur_kernel == 15  # spec section 5: the reference's 15 x 15 Gaussian
    assert preset.settings.center_cam_features is False  # the reference's Grad-CAM
    # Every published configuration proposes masks with OpenAI's ViT-B/16.
    assert (preset.proposal_model, preset.proposal_pretrained) == ("ViT-B-16", "openai")
    assert preset.classifier_pretrained == "openai"


@pytest.mark.parametrize("name", ALL_NAMES)
def test_prompt_kinds_are_known_to_carlib_prompts(name):
    preset = get_preset(name)
    kinds = set(preset.settings.prompt_kinds)
    if preset.things_stuff is not None:
        kinds |= set(preset.things_stuff.stuff_prompt_kinds)
    assert kinds <= set(PROMPT_KINDS)


def test_modes_and_post_processing():
    for name in ("voc", "coco_object", "context", "ade150", "shapes"):
        preset = get_preset(name)
        assert preset.settings.mode == "semantic"
        assert preset.settings.post == "crf"
    for name in ("refcoco", "refcoco+", "refcocog"):
        preset = get_preset(name)
        assert preset.settings.mode == "referring"
        assert preset.vocabulary is None and preset.class_names == ()
        # No SAM for referring; CaR runs one CRF per mask in referring mode (tests/test_car.py).
        assert preset.settings.post == "crf"


def test_crf_parameters_are_the_reference_ones():
    crf = get_preset("voc").settings.crf
    assert (crf.bg_factor, crf.gaussian_sxy, crf.gaussian_compat) == (1.0, 1.0, 3.0)
    assert (crf.bilateral_sxy, crf.bilateral_srgb, crf.bilateral_compat, crf.iterations) == (67.0, 3.0, 4.0, 10)


def test_sam_thresholds_per_dataset():
    ioms = {name: get_preset(name).settings.sam.iom_threshold for name in ("voc", "coco_object", "context", "ade150")}
    assert ioms == {"voc": 0.6, "coco_object": 0.7, "context": 0.5, "ade150": 0.6}
    sam = get_preset("voc").settings.sam
    assert (sam.iou_threshold, sam.min_pred_threshold, sam.points_per_side) == (0.7, 0.05, 64)
    assert (sam.pred_iou_thresh, sam.stability_score_thresh, sam.box_nms_thresh) == (0.88, 0.95, 0.7)


def test_semantic_templates_are_the_fifteen_of_section_4():
    expected = (
        "a clean origami {}.",
        "a photo of a {}.",
        "This is a photo of a {}",
        "There is a {} in the scene",
        "There is the {} in the scene",
        "a photo of a {} in the scene",
        "a photo of a small {}.",
        "a photo of a medium {}.",
        "a photo of a large {}.",
        "This is a photo of a small {}.",
        "This is a photo of a medium {}.",
        "This is a photo of a large {}.",
        "There is a small {} in the scene.",
        "There is a medium {} in the scene.",
        "There is a large {} in the scene.",
    )
    assert SEMANTIC_TEMPLATES == expected
    for name in ("voc", "coco_object", "context", "ade150"):
        preset = get_preset(name)
        assert preset.settings.templates == expected
        assert preset.settings.classifier_aggregation == "sum_softmax"


def test_referring_classifier_sees_one_origami_template():
    for name in ("refcoco", "refcoco+", "refcocog"):
        preset = get_preset(name)
        assert preset.settings.templates == ("a clean origami {}.",)
        assert preset.settings.classifier_aggregation == "softmax"


def test_refdavis17_runs_refcocogs_settings_and_says_carlib_chose_them():
    video, refcocog = get_preset("refdavis17"), get_preset("refcocog")
    assert video.settings == refcocog.settings and video.settings.mode == "referring"
    assert (video.proposal_model, video.classifier_model) == (refcocog.proposal_model, refcocog.classifier_model)
    assert "refcocog.yaml" in video.source and any("chosen by carlib" in note for note in video.notes)


def test_background_template_is_carlib_texts():
    assert presets.BACKGROUND_TEMPLATE is carlib.text.BACKGROUND_TEMPLATE
    assert presets.BACKGROUND_TEMPLATE == "a clean origami {}."


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_background_is_the_default_set(name):
    assert get_preset(name).settings.background == BACKGROUND_SETS["default"]
    assert len(get_preset(name).settings.background) == 23


def test_with_background_uses_carlib_background_sets():
    preset = get_preset("voc")
    assert preset.with_background("terrestrial").settings.background == BACKGROUND_SETS["terrestrial"]
    assert preset.with_background("none").settings.background == ()
    with pytest.raises(ValueError, match="unknown background set"):
        preset.with_background("underwater")


def test_class_counts():
    assert (len(VOC_CLASSES), len(COCO_OBJECT_CLASSES), len(CONTEXT_59_CLASSES), len(ADE_150_CLASSES)) == (
        20, 80, 59, 150,
    )
    assert [len(get_preset(name).class_names) for name in ("voc", "coco_object", "context", "ade150")] == [
        20, 80, 59, 150,
    ]
    for vocabulary in (VOC, COCO_OBJECT, CONTEXT_59, ADE_150):
        assert len(vocabulary.display_names) == len(vocabulary.queries)
        assert len(set(vocabulary.queries)) == len(vocabulary.queries)


def test_class_lists_are_aligned_with_dataset_ids():
    # Spot checks against the official class orders (id = index + 1).
    assert VOC.display_names[14] == "person" and VOC_CLASSES[14] == "person with clothes,people,human"
    assert VOC.display_names[19] == "tvmonitor" and VOC_CLASSES[19] == "tvmonitor screen"
    assert COCO_OBJECT.display_names[0] == "person" and COCO_OBJECT.display_names[-1] == "toothbrush"
    assert COCO_OBJECT_CLASSES[31] == "sknowboard"  # the reference's spelling, kept on purpose
    assert CONTEXT_59_CLASSES[0] == "airplane" and CONTEXT_59_CLASSES[-1] == "wood"
    assert ADE_150_CLASSES[0] == "wall" and ADE_150_CLASSES[-1] == "flag"
    assert ADE_150.display_names[12] == "person" and ADE_150.display_names[20] == "car"


def test_synonyms_split_for_display_only():
    assert VOC.synonyms(14) == ("person with clothes", "people", "human")
    assert ADE_150.synonyms(14) == ("door", "double")  # "door, double, door", duplicates removed
    assert VOC.synonyms(0) == ("aeroplane",)


@pytest.mark.parametrize("name, n_things, n_stuff", [("context", 38, 21), ("ade150", 125, 25)])
def test_things_and_stuff_partition_the_classes(name, n_things, n_stuff):
    preset = get_preset(name)
    split = preset.things_stuff
    assert split is not None
    assert (len(split.thing_ids), len(split.stuff_ids)) == (n_things, n_stuff)
    assert sorted(split.thing_ids + split.stuff_ids) == list(range(len(preset.class_names)))
    assert not set(split.thing_ids) & set(split.stuff_ids)


def test_context_split_matches_the_reference_groups():
    preset = get_preset("context")
    stuff = {preset.class_names[i] for i in preset.things_stuff.stuff_ids}
    things = {preset.class_names[i] for i in preset.things_stuff.thing_ids}
    assert {"sky", "grass", "wall", "floor", "door", "fence", "rock"} <= stuff
    assert {"person", "cat", "building", "tree", "track"} <= things
    assert preset.settings.prompt_kinds == ("blur", "circle")
    assert preset.things_stuff.stuff_prompt_kinds == ("blur", "gray")


def test_context_passes_use_mutual_background():
    preset = get_preset("context")
    stuff_pass, things_pass = preset.semantic_passes()  # painting order: stuff first
    assert (stuff_pass.name, things_pass.name) == ("stuff", "things")
    assert stuff_pass.settings.background == things_pass.queries  # stuff pass: thing names as background
    assert things_pass.settings.background == BACKGROUND_SETS["default"]  # code: the 23 default words
    assert set(stuff_pass.settings.prompt_kinds) == {"blur", "gray"}
    assert set(things_pass.settings.prompt_kinds) == {"blur", "circle"}
    assert [preset.class_names[i] for i in stuff_pass.class_indices] == list(stuff_pass.queries)
    paper = preset.replace(things_stuff=dataclasses.replace(preset.things_stuff, things_background="stuff"))
    assert paper.semantic_passes()[1].settings.background == stuff_pass.queries


def test_passes_start_from_the_settings_given_and_keep_their_own_words_prompts_and_crf():
    """One place builds a pass's settings: an ablation's change (any field) reaches both passes, while the
    stuff pass's background, prompts and CRF exponent stay the split's."""
    preset = get_preset("context")
    changed = preset.settings.replace(confidence_threshold=0.123, recurrent=False, background=("wall",))
    stuff_pass, things_pass = preset.semantic_passes(changed)
    assert stuff_pass.settings.confidence_threshold == things_pass.settings.confidence_threshold == 0.123
    assert not stuff_pass.settings.recurrent and not things_pass.settings.recurrent
    assert stuff_pass.settings.background == things_pass.queries
    assert things_pass.settings.background == ("wall",)  # "preset": the words the run was given
    assert stuff_pass.settings.prompt_kinds == preset.things_stuff.stuff_prompt_kinds
    assert stuff_pass.settings.crf.bg_factor == preset.things_stuff.stuff_bg_factor
    assert things_pass.settings.crf == changed.crf
    assert preset.semantic_passes(preset.settings) == preset.semantic_passes()


def test_single_pass_presets():
    (only,) = get_preset("voc").semantic_passes()
    assert only.queries == VOC_CLASSES and only.class_indices == tuple(range(20))
    assert only.settings.background == BACKGROUND_SETS["default"]
    with pytest.raises(ValueError, match="referring"):
        get_preset("refcoco").semantic_passes()


def test_paper_values_record_where_the_code_differs():
    assert get_preset("context").paper_values["confidence_threshold"] == 0.2
    assert get_preset("refcoco").paper_values["prompt_kinds"] == ("circle", "blur")
    assert get_preset("voc").paper_values["sam.iom_threshold"] == 0.7
    assert "confidence_threshold" not in get_preset("voc").paper_values


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError) as error:
        get_preset("cityscapes")
    message = str(error.value)
    assert "cityscapes" in message
    for name in ALL_NAMES:
        assert name in message


def test_presets_are_frozen():
    preset = get_preset("voc")
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.name = "mine"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.settings.mask_threshold = 0.9  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.settings.crf.iterations = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        PRESETS["voc"] = preset  # type: ignore[index]
    assert get_preset("voc").settings.mask_threshold == 0.4
    assert isinstance(hash(preset), int)


def test_replace_makes_a_validated_copy():
    preset = get_preset("voc")
    variant = preset.replace(confidence_threshold=0.2, prompt_kinds=["circle"])
    assert variant.settings.confidence_threshold == 0.2 and variant.settings.prompt_kinds == ("circle",)
    assert preset.settings.confidence_threshold == 0.6  # the original is untouched
    with pytest.raises(ValueError, match="confidence_threshold"):
        preset.replace(confidence_threshold=1.5)
    with pytest.raises(ValueError, match="'voc': blur_kernel must be a positive odd int"):
        preset.replace(blur_kernel=16)
    with pytest.raises(ValueError, match="unknown preset or settings field"):
        preset.replace(theta=0.2)
    with pytest.raises(ValueError, match="one template"):
        get_preset("refcoco").replace(templates=SEMANTIC_TEMPLATES)
    with pytest.raises(ValueError, match="partition"):
        get_preset("context").replace(
            things_stuff=dataclasses.replace(get_preset("context").things_stuff, stuff_ids=(3,))
        )


@pytest.mark.parametrize("name", ALL_NAMES)
def test_to_dict_round_trips_through_json(name):
    preset = get_preset(name)
    data = preset.to_dict()
    text = json.dumps(data)
    assert json.loads(text) == data
    assert Preset.from_dict(json.loads(text)) == preset
    assert {field.name for field in dataclasses.fields(Preset)} == set(data)


def test_shapes_preset_is_offline_and_uses_shapesworld_names():
    from carlib.world.captions import SINGLE_TEMPLATES
    from carlib.world.classes import BACKGROUND_NAMES, CLASS_NAMES

    preset = get_preset("shapes")
    assert (preset.proposal_model, preset.classifier_model) == ("shapes", "shapes")
    assert (preset.proposal_pretrained, preset.classifier_pretrained) == (None, None)
    assert preset.class_names == tuple(CLASS_NAMES)
    # the paper's VOC background words (all three supplementary groups); three of the world's four surfaces
    assert preset.settings.background == BACKGROUND_SETS["all_groups"]
    assert set(BACKGROUND_NAMES) - set(preset.settings.background) == {"sand"}
    assert (preset.settings.mask_threshold, preset.settings.confidence_threshold, preset.settings.clipes_threshold) == (
        presets.SHAPES_MASK_THRESHOLD, presets.SHAPES_CONFIDENCE_THRESHOLD, presets.SHAPES_CLIPES_THRESHOLD,
    )
    assert preset.settings.blur_kernel == presets.SHAPES_BLUR_KERNEL
    assert preset.settings.center_cam_features is presets.SHAPES_CENTER_CAM_FEATURES
    # The small CLIP was trained on these caption forms; the classifier must use only those.
    assert preset.settings.templates and set(preset.settings.templates) <= set(SINGLE_TEMPLATES)


def test_presets_import_without_carlib_world(monkeypatch):
    # A broken carlib.world must not break the benchmark presets, only "shapes".
    import carlib
    import carlib.vocabularies

    # Re-importing rebinds carlib.presets / carlib.vocabularies; have monkeypatch restore them.
    monkeypatch.setattr(carlib, "presets", presets)
    monkeypatch.setattr(carlib, "vocabularies", carlib.vocabularies)
    monkeypatch.setitem(sys.modules, "carlib.world.classes", None)
    monkeypatch.delitem(sys.modules, "carlib.presets")
    monkeypatch.delitem(sys.modules, "carlib.vocabularies")
    fresh = importlib.import_module("carlib.presets")
    assert fresh is not presets
    assert fresh.get_preset("voc").settings.mask_threshold == 0.4
    assert "shapes" in fresh.preset_names()
    with pytest.raises(ImportError):
        fresh.get_preset("shapes")


# --- ADE-847 and Context-459 (issue 16) -------------------------------------------------------------------------

# The official configs ade_847.yaml and pascal_context_459.yaml, read by hand:
# (η, θ, λ, things prompts, stuff prompts, SAM iom_thres, config file).
FULL_LABEL_SETS = {
    "ade847": (0.6, 0.25, 0.7, ("gray", "blur"), ("gray", "blur"), 0.6, "ade_847.yaml"),
    "context459": (0.4, 0.25, 0.7, ("gray", "blur"), ("gray", "blur"), 0.6, "pascal_context_459.yaml"),
}


@pytest.mark.parametrize("name", FULL_LABEL_SETS)
def test_full_label_set_presets_hold_their_configs_values(name):
    eta, theta, lam, prompts, stuff_prompts, iom, config = FULL_LABEL_SETS[name]
    preset = get_preset(name)
    settings = preset.settings
    assert (settings.mask_threshold, settings.confidence_threshold, settings.clipes_threshold) == (eta, theta, lam)
    assert settings.prompt_kinds == prompts and preset.things_stuff.stuff_prompt_kinds == stuff_prompts
    assert settings.sam.iom_threshold == iom and preset.paper_values["sam.iom_threshold"] == 0.7
    assert preset.things_stuff.stuff_bg_factor == 1.0 and settings.crf.bg_factor == 1.0  # bg_factor, stuff_bg_factor: 1
    assert settings.templates == SEMANTIC_TEMPLATES and settings.background == BACKGROUND_SETS["default"]
    assert preset.ignore_background is True  # test.ignore_background: True
    assert (preset.proposal_model, preset.classifier_model) == ("ViT-B-16", "ViT-L-14")
    assert preset.source.endswith("clip_as_rnn/configs/" + config)
    assert settings.mode == "semantic" and settings.post == "crf"


def test_full_label_set_vocabularies_count_and_are_distinct():
    from carlib.vocabularies import ADE_847, CONTEXT_459

    assert (len(ADE_847), len(CONTEXT_459)) == (847, 459)
    assert [len(get_preset(name).class_names) for name in ("ade847", "context459")] == [847, 459]
    for vocabulary in (ADE_847, CONTEXT_459):
        assert len(set(vocabulary.queries)) == len(vocabulary)
        # per-class tables are keyed by display name: none may be shared
        assert len(set(vocabulary.display_names)) == len(vocabulary)
        assert "data/" in vocabulary.source and vocabulary.source.startswith("google-research/google-research")
    assert ADE_847.display_names[1] == "building" and ADE_847.display_names[130] == "pot, flowerpot"


def test_ade847_names_agree_with_the_ground_truth_converter():
    # Second source: MaskFormer datasets/prepare_ade20k_full_sem_seg.py ADE20K_SEM_SEG_FULL_CATEGORIES,
    # "name" at "trainId" (the value its TIFFs store), read by hand at a spread of ids.
    from carlib.vocabularies import ADE_847_CLASSES

    by_train_id = {
        0: "wall", 11: "person, individual, someone, somebody, mortal, soul", 111: "pond",
        118: "land, ground, soil", 255: "pier", 259: "dog, domestic dog, canis familiaris", 267: "cockpit",
        543: "hotplate", 546: "stream", 574: "spectacles, specs, eyeglasses, glasses", 600: "centerpiece",
        624: "shore", 650: "chess", 700: "plant pots", 750: "flip flop",
        768: "control panel, instrument panel, control board, board, panel",
        782: "central processing unit, cpu, c p u , central processor, processor, mainframe", 800: "dog dish",
        846: "adding machine, totalizer, totaliser",
    }
    assert {train_id: ADE_847_CLASSES[train_id] for train_id in by_train_id} == by_train_id


def test_context459_names_agree_with_labels_txt_order():
    # Second source: FC-CLIP pascal_ctx_459_with_prompt_eng.txt ("id:name", 1-based like labels.txt),
    # entries whose first name is not prompt-engineered.
    from carlib.vocabularies import CONTEXT_459_CLASSES

    by_label = {1: "accordion", 2: "aeroplane", 68: "ceiling", 158: "floor", 284: "person", 308: "pottedplant",
                427: "tvmonitor", 431: "unknown", 440: "wall", 459: "wool"}
    assert {label: CONTEXT_459_CLASSES[label - 1] for label in by_label} == by_label


def test_full_label_set_stuff_groups_are_the_references():
    # The reference lists each group twice, as names (ADE_847_STUFF_CLASS, PASCAL_459_STUFF_CLASS) and as ids;
    # the names, typed here, must sit at the ids the presets use, in the same order.
    ade_stuff = [
        "wall", "sky", "tree", "road, route", "floor, flooring", "sidewalk, pavement", "earth, ground", "grass",
        "mountain, mount", "plant, flora, plant life", "sea", "water", "rock, stone", "snow", "sand", "island",
        "field", "forest", "land, ground, soil", "lake", "ice, water ice", "cliff, drop, drop-off", "dirt track",
        "hill", "valley, vale", "stream", "shore", "pond", "iceberg",
    ]
    context_stuff = [
        "atrium", "ceiling", "concrete", "coral", "court", "dock", "floor", "foam", "grass", "ground", "ice",
        "leaves", "mountain", "parterre", "patio", "road", "rock", "rug", "sand", "sky", "snow", "stone", "sun",
        "wall", "water", "wood",
    ]
    for name, stuff, n_things in (("ade847", ade_stuff, 818), ("context459", context_stuff, 433)):
        preset = get_preset(name)
        stuff_pass, things_pass = preset.semantic_passes()
        assert list(stuff_pass.queries) == stuff
        assert len(things_pass.queries) == n_things
        assert list(preset.things_stuff.thing_ids) == sorted(preset.things_stuff.thing_ids)
        assert sorted(preset.things_stuff.thing_ids + preset.things_stuff.stuff_ids) == list(range(len(preset.class_names)))
        assert stuff_pass.settings.background == things_pass.queries  # mutual background
        assert things_pass.settings.background == BACKGROUND_SETS["default"]
    assert "river" in get_preset("ade847").semantic_passes()[1].queries  # the reference files river under things
    assert "unknown" in get_preset("context459").semantic_passes()[1].queries
