"""A dense method alone: the field's geometry (short side, sliding windows), the label rule, the shipped class-name
files and protocols, stitching against single windows and against a recomputation from dense_similarity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import carlib
from carlib.class_names import read_class_name_file, vocabulary_class_names
from carlib.dense_methods import dense_similarity
from carlib.method_alone import (FIELD_CONFIGS, OPENAI_IMAGENET_TEMPLATES, MethodAlone, MethodProtocol,
                                 drop_small_classes, field_protocol, labels_from_cosines, short_side_size,
                                 sliding_windows)
from carlib.presets import get_preset


@pytest.fixture(scope="module")
def small() -> carlib.ClipBundle:
    torch.set_num_threads(2)
    return carlib.load_clip("ViT-S-32", device="cpu", seed=4)


def test_sliding_windows_are_the_harness_windows():
    # SCLIP's VOC geometry: a 336 x 448 image, window 224, stride 112: two rows of three.
    assert sliding_windows(336, 448, 224, 112) == [(0, 224, 0, 224), (0, 224, 112, 336), (0, 224, 224, 448),
                                                   (112, 336, 0, 224), (112, 336, 112, 336), (112, 336, 224, 448)]
    # The last column is moved back to end at the edge (320 = 96 + 224), so every window is whole.
    assert sliding_windows(224, 330, 224, 96) == [(0, 224, 0, 224), (0, 224, 96, 320), (0, 224, 106, 330)]
    assert sliding_windows(224, 224, 224, 112) == [(0, 224, 0, 224)]
    with pytest.raises(ValueError, match=r"the window \(448 px\) is larger than the image \(336 x 500"):
        sliding_windows(336, 500, 448, 224)


def test_short_side_resize_is_mmcvs_keep_ratio_rule():
    assert short_side_size(375, 500, 336) == (336, 448)  # 500 * 336 / 375 = 448
    assert short_side_size(500, 333, 336) == (505, 336)  # 500 * 336 / 333 = 504.5 -> 505
    assert short_side_size(100, 5000, 336) == (41, 2048)  # the long side caps the scale at 2048 / 5000


def test_protocol_values_are_checked():
    with pytest.raises(ValueError, match="needs both a window and a stride"):
        MethodProtocol("field", "sclip", window=224)
    with pytest.raises(ValueError, match="stride .* longer than the window"):
        MethodProtocol("field", "sclip", window=224, stride=300)
    with pytest.raises(ValueError, match=r"window \(448 px\) is larger than the image's short side"):
        MethodProtocol("field", "sclip", short_side=336, window=448, stride=224)
    with pytest.raises(ValueError, match="unknown dense method"):
        MethodProtocol("field", "sift")
    with pytest.raises(ValueError, match="probability threshold"):
        MethodProtocol("carlib", "sclip", probability_threshold=2.0)
    assert MethodProtocol("carlib", "sclip").replace(window=64, stride=32).overrides == ("window", "stride")


def test_label_rule_by_hand():
    # Three texts on a 1 x 2 image: label 1 has two names (synonyms), label 2 one; no text for label 0.
    cosines = torch.tensor([[[0.30, 0.10]], [[0.20, 0.12]], [[0.25, 0.35]]])
    labels, per_label, dropped = labels_from_cosines(cosines, torch.tensor([1, 1, 2]), 3, 10.0)

    def softmax(values):
        exps = [math.exp(10 * value) for value in values]
        return [value / sum(exps) for value in exps]

    first, second = softmax([0.30, 0.20, 0.25]), softmax([0.10, 0.12, 0.35])
    np.testing.assert_allclose(per_label[:, 0, 0].numpy(), [-1, max(first[:2]), first[2]], rtol=1e-6)
    np.testing.assert_allclose(per_label[:, 0, 1].numpy(), [-1, max(second[:2]), second[2]], rtol=1e-6)
    assert labels.tolist() == [[1, 2]] and dropped == []
    # A threshold above the first pixel's best probability (0.51) and below the second's (0.80) sends the first
    # pixel to the background only.
    assert first[0] < 0.6 < second[2]
    labels, _, _ = labels_from_cosines(cosines, torch.tensor([1, 1, 2]), 3, 10.0, probability_threshold=0.6)
    assert labels.tolist() == [[0, 2]]


def test_sclips_area_filter_by_hand():
    # 10 pixels: label 1 wins 9, label 2 wins 1 (10% of the foreground); label 0 has probability 0.3 everywhere.
    per_label = torch.zeros(3, 1, 10)
    per_label[0] = 0.3
    per_label[1, 0, :9], per_label[2, 0, 9] = 0.6, 0.7
    per_label[2, 0, :9], per_label[1, 0, 9] = 0.1, 0.0
    kept, dropped = drop_small_classes(per_label, 0.1)  # 1 pixel is not more than 0.1 x 10
    assert dropped == [2] and torch.equal(kept[2], torch.zeros(1, 10)) and torch.equal(kept[1], per_label[1])
    assert kept.argmax(dim=0).tolist() == [[1] * 9 + [0]]
    _, none_dropped = drop_small_classes(per_label, 0.05)
    assert none_dropped == []


@pytest.mark.parametrize("name, labels, first_label, checks", [
    ("sclip/cls_voc21.txt", 21, 0, {0: "sky", 15: "person", 20: "television monitor"}),
    ("sclip/cls_voc20.txt", 20, 1, {14: "person", 19: "television monitor"}),
    ("sclip/cls_context60.txt", 60, 0, {0: "background", 1: "aeroplane", 59: "wood"}),
    ("sclip/cls_context59.txt", 59, 1, {0: "aeroplane", 58: "wood"}),
    ("sclip/cls_coco_object.txt", 81, 0, {1: "person", 80: "toothbrush"}),
    ("clearclip/cls_voc21.txt", 21, 0, {0: "background", 20: "tvmonitor"}),
])
def test_shipped_class_name_files(name, labels, first_label, checks):
    listing = read_class_name_file(name, has_background=first_label == 0)
    assert len(listing.labels) == labels and listing.first_label == first_label
    assert listing.source == f"data/class_names/{name}"
    for index, word in checks.items():
        assert listing.labels[index][0] == word
    assert len(listing.digest()) == 64 and listing.digest() != vocabulary_class_names(["a"], "x").digest()


def test_the_sclip_voc_file_has_synonyms_and_a_background_line():
    listing = read_class_name_file("sclip/cls_voc21.txt", has_background=True)
    assert len(listing.labels[0]) == 26 and len(listing.labels[15]) == 7 and len(listing.labels[20]) == 5
    assert listing.label_of_name[:26] == [0] * 26 and listing.label_of_name[-5:] == [20] * 5


def test_field_protocols_are_the_official_configs():
    sclip = field_protocol("sclip", "voc")
    assert (sclip.short_side, sclip.window, sclip.stride, sclip.logit_scale) == (336, 224, 112, 65.0)
    assert (sclip.probability_threshold, sclip.area_threshold, sclip.class_names) == (0.1, 0.1, "sclip/cls_voc21.txt")
    assert sclip.templates == OPENAI_IMAGENET_TEMPLATES and len(sclip.templates) == 80 and not sclip.background_words
    assert field_protocol("sclip", "context").logit_scale == 50.0
    clear = field_protocol("clearclip", "voc")
    assert (clear.short_side, clear.window, clear.stride, clear.logit_scale, clear.probability_threshold) == \
        (448, 448, 224, 50.0, 0.5)
    assert field_protocol("clearclip", "coco_object").probability_threshold == 0.4
    assert field_protocol("naclip", "voc").logit_scale == 40.0 and field_protocol("naclip", "voc").window == 224
    assert field_protocol("maskclip", "voc").class_names == "clearclip/cls_voc21.txt"
    assert field_protocol("sclip", "voc", without_background=True).class_names == "sclip/cls_voc20.txt"
    shapes = field_protocol("sclip", "shapes")  # no config: the harness's defaults, said in the source
    assert (shapes.window, shapes.stride, shapes.short_side) == (224, 112, None)
    assert "no per-dataset config for shapes" in shapes.source
    # Every shipped config's file matches its preset's number of classes.
    for method, configs in FIELD_CONFIGS.items():
        for key, config in configs.items():
            preset = get_preset({"voc20": "voc", "context59": "context"}.get(key, key))
            listing = read_class_name_file(config.class_names, has_background=config.class_names_have_background)
            assert len(listing.labels) == len(preset.class_names) + (1 - listing.first_label), (method, key)


def test_a_class_name_file_of_another_dataset_is_refused(small):
    protocol = MethodProtocol("carlib", "sclip", class_names="sclip/cls_voc21.txt", class_names_have_background=True)
    with pytest.raises(ValueError, match="cls_voc21.txt lists 21 labels; preset context has 59 classes plus the "
                                         "background"):
        MethodAlone(small, get_preset("context"), protocol)
    with pytest.raises(FileNotFoundError, match="class-name file nowhere.txt not found.*sclip/cls_voc21.txt"):
        MethodAlone(small, get_preset("voc"), MethodProtocol("carlib", "sclip", class_names="nowhere.txt"))


def _alone(bundle, window=None, stride=None, names=("cat", "dog", "sky")) -> MethodAlone:
    protocol = MethodProtocol("field", "sclip", window=window, stride=stride, background_words=False)
    return MethodAlone(bundle, get_preset("voc"), protocol, class_names=vocabulary_class_names(names, source="test"))


def test_an_image_that_fits_one_window_gives_the_single_pass_maps(small):
    image = np.random.default_rng(5).integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    windowed, _, passes = _alone(small, 224, 112).cosines(image)
    single, _, single_passes = _alone(small).cosines(image)
    assert passes == single_passes == 1
    torch.testing.assert_close(windowed, single, rtol=0, atol=0)


def test_overlapping_windows_are_averaged_as_the_harness_does(small):
    image = np.random.default_rng(6).integers(0, 256, size=(224, 320, 3), dtype=np.uint8)
    names = ["cat", "dog", "sky"]
    got, working, passes = _alone(small, 224, 96, names).cosines(image)
    assert passes == 2 and working == (224, 320) and got.shape == (3, 224, 320)
    # Independently: each window's dense_similarity, resized bilinearly to the window, averaged where they overlap.
    left = torch.from_numpy(dense_similarity(small, image[:, :224], names, "sclip"))
    right = torch.from_numpy(dense_similarity(small, image[:, 96:], names, "sclip"))
    resize = lambda maps: torch.nn.functional.interpolate(maps[None], size=(224, 224), mode="bilinear",  # noqa: E731
                                                          align_corners=False)[0]
    left, right = resize(left), resize(right)
    expected = torch.zeros(3, 224, 320)
    expected[:, :, :96] = left[:, :, :96]
    expected[:, :, 96:224] = (left[:, :, 96:] + right[:, :, :128]) / 2
    expected[:, :, 224:] = right[:, :, 128:]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (left[:, :, 96:] - right[:, :, :128]).abs().max() > 1e-3  # the two windows really disagree there


def test_segment_labels_follow_the_rule_and_the_field_resize(small):
    image = np.random.default_rng(7).integers(0, 256, size=(150, 200, 3), dtype=np.uint8)
    alone = MethodAlone(small, get_preset("voc"), MethodProtocol(
        "field", "clearclip", short_side=224, window=224, stride=112, logit_scale=50.0, background_words=False,
        probability_threshold=0.3), class_names=vocabulary_class_names(["cat", "dog", "sky"], source="test"))
    result = alone.segment(image)
    assert result.working_size == (224, 299) and result.windows == 2
    assert result.label_map.shape == (150, 200) and result.probabilities.shape == (4, 150, 200)
    cosines, _, _ = alone.cosines(image)
    labels, _, _ = labels_from_cosines(cosines, alone.text_labels, 4, 50.0, 0.3)
    np.testing.assert_array_equal(result.label_map, labels.numpy())
    assert np.all(result.probabilities[0] == -1)  # nothing stands for the background: only the threshold makes 0
