"""ShapesWorld scenes, ground truth, captions, VOC export and the `carlib world` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carlib.apps.cli import main
from carlib.world import (
    BACKGROUND_NAMES,
    CLASS_NAMES,
    export_voc,
    generate_scene,
    referring_expressions,
    scene_caption,
    split_scene,
)
from carlib.world.classes import PROMPT_RED, SIZE_NAMES


def _same(a, b) -> bool:
    return all(
        np.array_equal(getattr(a, name), getattr(b, name))
        for name in ("image", "class_map", "instance_map", "background_map")
    )


def test_same_seed_same_scene_and_splits_differ():
    assert _same(split_scene("train", 7), split_scene("train", 7))
    assert _same(generate_scene(123), generate_scene(123))
    assert not _same(split_scene("train", 7), split_scene("test", 7))
    assert not _same(split_scene("test", 7), split_scene("test", 8))
    assert not _same(split_scene("test", 7, seed=0), split_scene("test", 7, seed=1))


def test_train_and_test_streams_do_not_collide():
    train = {split_scene("train", i).image.tobytes() for i in range(40)}
    test = {split_scene("test", i).image.tobytes() for i in range(40)}
    assert not train & test


@pytest.mark.parametrize("index", range(25))
def test_ground_truth_is_consistent(index):
    scene = split_scene("test", index)
    height, width = scene.image.shape[:2]
    assert scene.image.dtype == np.uint8 and scene.image.shape == (96, 96, 3)
    for array in (scene.class_map, scene.instance_map, scene.background_map):
        assert array.shape == (height, width) and array.dtype == np.uint8
    assert 1 <= len(scene.objects) <= 4
    # background everywhere exactly where no instance is, and class map follows instances
    assert np.array_equal(scene.class_map == 0, scene.instance_map == 0)
    assert set(np.unique(scene.instance_map)) == {0, *range(1, len(scene.objects) + 1)}
    assert scene.background_map.max() < len(BACKGROUND_NAMES)
    for obj in scene.objects:
        visible = scene.instance_mask(obj.instance_id)
        assert (scene.class_map[visible] == obj.class_id).all()
        assert CLASS_NAMES[obj.class_id - 1] == obj.class_name
        assert obj.area == visible.sum() > 0
        ys, xs = np.nonzero(visible)
        assert obj.bbox == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert obj.size in SIZE_NAMES and obj.background in BACKGROUND_NAMES
    # the visual-prompt colour never appears in a scene
    assert not np.all(scene.image == PROMPT_RED, axis=-1).any()


def test_occlusion_is_reflected_in_the_ground_truth():
    # the dice is painted after the tent; where they overlap, the labels must say dice
    for seed in range(300):
        scene = generate_scene(seed, classes=["tent", "dice"])
        if len(scene.objects) < 2:
            continue
        x0, y0, x1, y1 = scene.objects[0].bbox
        if (scene.instance_map[y0:y1, x0:x1] == 2).sum() > 20:
            break
    else:
        pytest.fail("no overlapping tent/dice placement in 300 seeds")
    tent = scene.image[scene.instance_map == 1].astype(int)
    dice = scene.image[scene.instance_map == 2].astype(int)
    assert np.median(tent, axis=0).max() < 170, "tent pixels are brown/dark, never the white dice"
    assert (tent.min(axis=1) < 200).all(), "no white dice pixel is labelled tent"
    assert np.median(dice, axis=0).min() > 200, "dice pixels are mostly white"
    assert scene.objects[0].area < (scene.instance_map[y0:y1, x0:x1] > 0).sum()


def test_every_class_and_background_is_reachable():
    classes, backgrounds = set(), set()
    for index in range(60):
        scene = split_scene("train", index)
        classes |= {obj.class_name for obj in scene.objects}
        backgrounds |= set(scene.background_names_present)
    assert classes == set(CLASS_NAMES) and len(CLASS_NAMES) >= 8
    assert backgrounds == set(BACKGROUND_NAMES) and len(BACKGROUND_NAMES) >= 4
    for name in CLASS_NAMES:  # each class can also be asked for explicitly
        scene = generate_scene(0, classes=[name])
        assert [obj.class_name for obj in scene.objects] == [name]


def test_classes_have_distinct_colours():
    means = {}
    for name in CLASS_NAMES:
        scene = generate_scene(5, classes=[name])
        means[name] = scene.image[scene.class_mask(name)].reshape(-1, 3).mean(axis=0)
    names = list(means)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(means[a] - means[b]).sum() > 40, (a, b)


def test_captions_and_referring_expressions():
    scene = generate_scene(3, classes=["lemon", "kite"])
    assert scene_caption(scene).startswith("a photo of a lemon and a kite on ")
    for index in range(40):
        scene = split_scene("test", index)
        for text, instance_id in referring_expressions(scene):
            obj = scene.objects[instance_id - 1]
            assert obj.class_name in text
            words = text.split()
            # unambiguous: no other object of the class shares the attribute used
            others = [o for o in scene.objects if o.class_name == obj.class_name and o is not obj]
            if words[1] in SIZE_NAMES:
                assert all(o.size != obj.size for o in others)
            elif " on " in text:
                assert all(o.background != obj.background for o in others)
            else:
                assert not others


def test_voc_export_reads_back(tmp_path):
    out = export_voc(tmp_path / "voc", split="test", n=6, seed=0)
    ids = (out / "ImageSets/Segmentation/val.txt").read_text().split()
    assert ids == (out / "ImageSets/Segmentation/test.txt").read_text().split()
    assert len(ids) == 6 and len(set(ids)) == 6
    assert (out / "class_names.txt").read_text().split() == ["background", *CLASS_NAMES]
    for index, scene_id in enumerate(ids):
        scene = split_scene("test", index, 0)
        label = Image.open(out / "SegmentationClass" / f"{scene_id}.png")
        assert label.mode == "P"
        assert label.getpalette()[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
        assert np.array_equal(np.asarray(label), scene.class_map)
        jpeg = np.asarray(Image.open(out / "JPEGImages" / f"{scene_id}.jpg"))
        assert jpeg.shape == scene.image.shape
        assert np.abs(jpeg.astype(int) - scene.image).mean() < 8  # quality 95
    annotations = json.loads((out / "annotations.json").read_text())
    assert [s["id"] for s in annotations["scenes"]] == ids
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging folder left behind"


def test_export_is_atomic_on_error(tmp_path):
    def explode(index: int) -> None:
        if index == 2:
            raise RuntimeError("disk full (simulated)")

    with pytest.raises(RuntimeError):
        export_voc(tmp_path / "voc", n=5, on_scene=explode)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_to_clobber(tmp_path):
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists"):
        export_voc(tmp_path / "voc", n=2)
    assert (tmp_path / "voc" / "keep.txt").read_text() == "mine"
    export_voc(tmp_path / "voc", n=2, overwrite=True)
    assert not (tmp_path / "voc" / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voc"]


def test_cli_sample_and_export(tmp_path, capsys):
    assert main(["world", "sample", "--seed", "3", "--out", str(tmp_path / "s"), "--n", "2"]) == 0
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert "scene_0_panel.png" in names and "scene_1_class.png" in names and "scenes.json" in names
    assert Image.open(tmp_path / "s" / "scene_0_class.png").mode == "P"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "s" / "scene_1.png")), split_scene("test", 1, 3).image)

    args = ["world", "export", "--split", "test", "--n", "3", "--seed", "0", "--format", "voc", "--out"]
    assert main(args + [str(tmp_path / "v")]) == 0
    assert len((tmp_path / "v" / "ImageSets/Segmentation/val.txt").read_text().split()) == 3
    # user errors are one line on stderr and exit status 2
    assert main(args + [str(tmp_path / "v")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["world", "export", "--format", "coco", "--n", "1", "--out", str(tmp_path / "c")]) == 2
    assert "unknown --format" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_label_map_follows_the_query_order():
    scene = split_scene("test", 2, seed=0)
    present = scene.class_names_present
    words = ["cat", *reversed(present)]  # a word with no ground truth, then the present classes reversed
    labels = scene.label_map(words)
    assert labels.dtype == np.int32 and labels.shape == scene.class_map.shape
    for position, word in enumerate(words):
        expected = scene.class_mask(word) if word in present else np.zeros_like(labels, dtype=bool)
        np.testing.assert_array_equal(labels == position + 1, expected)
    assert ((labels > 0) == (scene.class_map > 0)).all()
