"""carlib.datasets: every benchmark layout read from small trees built here, by hand."""

from __future__ import annotations

import argparse
import datetime
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carlib.datasets import (
    COCO_THING_CATEGORY_IDS,
    ReferringDataset,
    SampleReadError,
    SemanticDataset,
    check_dataset,
    coco_object_lut,
    convert_coco_object,
    open_dataset,
)
from carlib.apps.data import register
from carlib.evaluation.metrics import foreground_only
from carlib.vocabularies import ADE_150, CONTEXT_59, VOC
from carlib.labels import voc_palette
from carlib.world.export import export_voc

H, W = 6, 8


# --- writers -----------------------------------------------------------------------


def write_jpg(path: Path, height: int = H, width: int = W, value: int = 0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(image).save(path, quality=95)
    return image


def write_palette_png(path: Path, labels: np.ndarray) -> None:
    """A mode-P PNG whose indices are ``labels`` (colours from the VOC palette)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    image.putpalette(voc_palette().flatten().tolist())
    image.save(path)


def write_grey_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8)).save(path)


def voc_labels() -> np.ndarray:
    """Background 0, a 2x2 block of class 15 (person), a 255 border on the last row."""
    labels = np.zeros((H, W), dtype=np.uint8)
    labels[1:3, 2:4] = 15
    labels[-1, :] = 255
    return labels


@pytest.fixture()
def voc_root(tmp_path: Path) -> Path:
    """tmp/VOCdevkit/VOC2012 with images b and a (val, listed unsorted) and a (train)."""
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for sample_id, value in (("2007_b", 1), ("2007_a", 2)):
        write_jpg(root / "JPEGImages" / f"{sample_id}.jpg", value=value)
        write_palette_png(root / "SegmentationClass" / f"{sample_id}.png", voc_labels())
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("2007_b\n2007_a\n")
    (sets / "train.txt").write_text("2007_a\n")
    return tmp_path


# --- PASCAL VOC ------------------------------------------------------------------------


def test_voc_reads_palette_indices_and_keeps_border(voc_root):
    dataset = open_dataset("voc", voc_root)
    assert isinstance(dataset, SemanticDataset)
    assert dataset.name == "voc21" and dataset.num_classes == 21 and dataset.has_background
    assert dataset.class_names[0] == "background" and dataset.class_names[15] == "person"
    assert dataset.ids() == ["2007_a", "2007_b"]
    image, labels = dataset.load("2007_a")
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert labels.shape == (H, W) and labels.dtype == np.int64
    assert (labels[1:3, 2:4] == 15).all()
    assert (labels[-1] == 255).all()
    assert int((labels == 0).sum()) == H * W - 4 - W


def test_voc_accepts_three_root_levels(voc_root):
    for root in (voc_root, voc_root / "VOCdevkit", voc_root / "VOCdevkit" / "VOC2012"):
        dataset = open_dataset("voc", root)
        assert dataset.root == voc_root / "VOCdevkit" / "VOC2012"
        assert dataset.ids() == ["2007_a", "2007_b"]


def test_voc_split_selection(voc_root):
    assert open_dataset("voc", voc_root, "train").ids() == ["2007_a"]
    with pytest.raises(FileNotFoundError, match="split files present: train, val"):
        open_dataset("voc", voc_root, "test")


def test_voc20_drops_background_and_shifts(voc_root):
    dataset = open_dataset("voc", voc_root, without_background=True)
    assert dataset.name == "voc20" and dataset.num_classes == 20 and not dataset.has_background
    assert dataset.class_names == VOC.display_names
    _, labels = dataset.load("2007_a")
    assert (labels[1:3, 2:4] == 14).all()
    assert set(np.unique(labels)) == {14, 255}
    raw = voc_labels().astype(np.int64)
    np.testing.assert_array_equal(labels, foreground_only(raw, raw))


def test_voc_label_outside_classes_is_a_sample_error(voc_root):
    labels = voc_labels()
    labels[0, 0] = 40
    path = voc_root / "VOCdevkit/VOC2012/SegmentationClass/2007_b.png"
    write_palette_png(path, labels)
    with pytest.raises(SampleReadError, match="label value 40") as caught:
        open_dataset("voc", voc_root).load("2007_b")
    assert caught.value.sample_id == "2007_b" and caught.value.path == path


def test_corrupt_png_raises_sample_read_error(voc_root):
    path = voc_root / "VOCdevkit/VOC2012/SegmentationClass/2007_b.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG body")
    dataset = open_dataset("voc", voc_root)
    with pytest.raises(SampleReadError) as caught:
        dataset.load("2007_b")
    assert isinstance(caught.value, ValueError)
    assert caught.value.sample_id == "2007_b" and caught.value.path == path
    assert str(path) in str(caught.value)
    dataset.load("2007_a")  # the other sample still reads


def test_corrupt_image_rgb_label_and_size_mismatch_are_sample_errors(voc_root):
    root = voc_root / "VOCdevkit/VOC2012"
    (root / "JPEGImages/2007_b.jpg").write_bytes(b"garbage")
    dataset = open_dataset("voc", voc_root)
    with pytest.raises(SampleReadError, match="cannot read image") as caught:
        dataset.load("2007_b")
    assert caught.value.path == root / "JPEGImages/2007_b.jpg"
    # An RGB rendering of the labels is not a label map.
    Image.fromarray(np.zeros((H, W, 3), dtype=np.uint8)).save(root / "SegmentationClass/2007_a.png")
    with pytest.raises(SampleReadError, match="mode RGB"):
        dataset.load("2007_a")
    write_palette_png(root / "SegmentationClass/2007_a.png", np.zeros((H + 1, W), dtype=np.uint8))
    with pytest.raises(SampleReadError, match="8x7 but the image is 8x6"):
        dataset.load("2007_a")
    (root / "JPEGImages/2007_a.jpg").unlink()
    with pytest.raises(SampleReadError, match="image file missing"):
        dataset.load("2007_a")


def test_missing_voc_folder_names_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        open_dataset("voc", tmp_path)
    message = str(caught.value)
    for part in ("VOCdevkit/VOC2012/", "SegmentationClass/", "ImageSets/Segmentation/val.txt", "docs/datasets.md"):
        assert part in message


def test_missing_ground_truth_folder_is_named(voc_root):
    folder = voc_root / "VOCdevkit/VOC2012/SegmentationClass"
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    with pytest.raises(FileNotFoundError, match="SegmentationClass"):
        open_dataset("voc", voc_root)


def test_check_dataset_lists_exactly_what_is_missing(voc_root, tmp_path):
    assert check_dataset("voc", voc_root) == []
    root = voc_root / "VOCdevkit/VOC2012"
    (root / "JPEGImages/2007_b.jpg").unlink()
    (root / "SegmentationClass/2007_a.png").unlink()
    problems = check_dataset("voc", voc_root)
    assert problems == [
        f"1 of 2 image files missing from {root / 'JPEGImages'}: 2007_b.jpg",
        f"1 of 2 ground-truth files missing from {root / 'SegmentationClass'}: 2007_a.png",
    ]
    assert check_dataset("voc", voc_root, "train") == [
        f"1 of 1 ground-truth files missing from {root / 'SegmentationClass'}: 2007_a.png"
    ]
    (root / "ImageSets/Segmentation/val.txt").unlink()
    assert check_dataset("voc", voc_root) == [
        f"missing split file {root / 'ImageSets/Segmentation/val.txt'} (split files present: train)"
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    (problem,) = check_dataset("voc", empty)
    assert problem.startswith("no PASCAL VOC 2012 folder") and str(empty / "VOCdevkit/VOC2012/JPEGImages") in problem


# --- PASCAL Context ------------------------------------------------------------------


@pytest.fixture()
def context_root(tmp_path: Path) -> Path:
    root = tmp_path / "VOCdevkit" / "VOC2010"
    labels = np.zeros((H, W), dtype=np.uint8)
    labels[0, :4] = 1  # aeroplane / airplane
    labels[2:4, 2:4] = 59  # wood
    write_jpg(root / "JPEGImages/2008_000001.jpg")
    write_grey_png(root / "SegmentationClassContext/2008_000001.png", labels)
    (root / "ImageSets/SegmentationContext").mkdir(parents=True)
    (root / "ImageSets/SegmentationContext/val.txt").write_text("2008_000001\n")
    return tmp_path


def test_context60_keeps_background(context_root):
    dataset = open_dataset("context", context_root)
    assert dataset.name == "context60" and dataset.num_classes == 60 and dataset.has_background
    assert dataset.root == context_root / "VOCdevkit/VOC2010"
    _, labels = dataset.load("2008_000001")
    assert (labels[0, :4] == 1).all() and (labels[2:4, 2:4] == 59).all()
    assert int((labels == 0).sum()) == H * W - 8


def test_context59_ignores_background_and_shifts(context_root):
    dataset = open_dataset("context", context_root, without_background=True)
    assert dataset.name == "context59" and dataset.num_classes == 59
    assert dataset.class_names == CONTEXT_59.display_names
    _, labels = dataset.load("2008_000001")
    assert (labels[0, :4] == 0).all() and (labels[2:4, 2:4] == 58).all()
    assert int((labels == 255).sum()) == H * W - 8


def test_context_without_conversion_points_to_converter(context_root):
    folder = context_root / "VOCdevkit/VOC2010/SegmentationClassContext"
    (folder / "2008_000001.png").unlink()
    folder.rmdir()
    with pytest.raises(FileNotFoundError, match="pascal_context.py") as caught:
        open_dataset("context", context_root)
    assert "SegmentationClassContext/" in str(caught.value)
    (problem,) = check_dataset("context", context_root)
    assert "missing ground truth folder" in problem and "trainval_merged.json" in problem


# --- COCO-Object ---------------------------------------------------------------------


def test_coco_object_lut_matches_groupvit_by_hand():
    assert len(COCO_THING_CATEGORY_IDS) == 80
    lut = coco_object_lut()
    # stuffthingmaps store category_id - 1: 0 person -> 1, 12 (id 13 stop sign) -> 12,
    # 89 (id 90 toothbrush) -> 80, 91 (first stuff id 92) -> 0, 255 unlabeled -> 0.
    assert [int(lut[v]) for v in (0, 10, 12, 26, 89, 91, 181, 255)] == [1, 11, 12, 25, 80, 0, 0, 0]
    assert sorted(set(lut.tolist())) == list(range(81))


def test_coco_object_converted_and_read(tmp_path):
    stuff = np.array([[0, 0, 12, 91], [89, 255, 181, 0]], dtype=np.uint8)
    stuff_dir = tmp_path / "stuffthingmaps/val2017"
    write_grey_png(stuff_dir / "000000000139.png", stuff)
    coco = tmp_path / "coco"
    assert convert_coco_object(stuff_dir, coco / "annotations/val2017") == 1
    assert convert_coco_object(stuff_dir, coco / "annotations/val2017") == 0  # exists, not overwritten
    write_jpg(coco / "images/val2017/000000000139.jpg", height=2, width=4)
    write_jpg(coco / "images/val2017/000000000001.jpg", height=H, width=W)
    labels = np.zeros((H, W), dtype=np.uint8)
    labels[0, 0] = 80
    write_grey_png(coco / "annotations/val2017/000000000001_instanceTrainIds.png", labels)

    for root in (tmp_path, coco):
        dataset = open_dataset("coco_object", root)
        assert dataset.name == "coco_object" and dataset.num_classes == 81
        assert dataset.ids() == ["000000000001", "000000000139"]
    _, converted = dataset.load("000000000139")
    np.testing.assert_array_equal(converted, [[1, 1, 12, 0], [80, 0, 0, 1]])
    assert dataset.class_names[80] == "toothbrush"
    assert check_dataset("coco_object", tmp_path) == []
    (coco / "annotations/val2017/000000000001_instanceTrainIds.png").unlink()
    assert check_dataset("coco_object", tmp_path) == [
        f"1 of 2 ground-truth files missing from {coco / 'annotations/val2017'}: 000000000001_instanceTrainIds.png"
    ]


# --- ADE20K-150 ------------------------------------------------------------------------


@pytest.fixture()
def ade_root(tmp_path: Path) -> Path:
    root = tmp_path / "ADEChallengeData2016"
    labels = np.full((H, W), 1, dtype=np.uint8)  # wall
    labels[0, :] = 0  # other
    labels[3, 3] = 150  # flag
    for name in ("ADE_val_00000002", "ADE_val_00000001"):
        write_jpg(root / "images/validation" / f"{name}.jpg")
        write_grey_png(root / "annotations/validation" / f"{name}.png", labels)
    return tmp_path


def test_ade_reduces_zero_label(ade_root):
    dataset = open_dataset("ade150", ade_root)
    assert dataset.name == "ade150" and dataset.num_classes == 150 and not dataset.has_background
    assert dataset.class_names[0] == "wall" and dataset.class_names == ADE_150.display_names
    assert dataset.ids() == ["ADE_val_00000001", "ADE_val_00000002"]
    _, labels = dataset.load("ADE_val_00000001")
    assert (labels[0] == 255).all()
    assert labels[3, 3] == 149
    assert int((labels == 0).sum()) == H * W - W - 1


def test_ade_split_names_and_root_levels(ade_root):
    a = open_dataset("ade150", ade_root, "validation")
    b = open_dataset("ade150", ade_root / "ADEChallengeData2016", "val")
    assert a.ids() == b.ids() and a.image_dir == b.image_dir
    with pytest.raises(ValueError, match="unknown split 'test'"):
        open_dataset("ade150", ade_root, "test")
    with pytest.raises(FileNotFoundError, match="images/training"):
        open_dataset("ade150", ade_root, "train")


# --- RefCOCO family -----------------------------------------------------------------------

IMAGE_H, IMAGE_W = 8, 10


def _ref(ref_id, ann_id, image_id, split, sentences):
    return {
        "ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "split": split, "category_id": 1,
        "sent_ids": list(range(len(sentences))),
        "sentences": [{"raw": raw, "sent": raw.lower().rstrip("."), "tokens": raw.split(), "sent_id": i}
                      for i, raw in enumerate(sentences)],
    }


def _rect(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def write_refcoco(
    data: Path, name: str = "refcoco", split_by: str = "unc", image_dir: str = "images/mscoco/images/train2014"
) -> Path:
    """A refer data folder: 4 refs (val, testA, testB, train) on 2 images, rectangle polygons."""
    folder = data / name
    folder.mkdir(parents=True)
    refs = [
        _ref(7, 101, 1, "val", ["The man on the left.", "Left guy"]),
        _ref(3, 102, 2, "testA", ["woman"]),
        _ref(5, 103, 2, "testB", ["two boxes"]),
        _ref(9, 104, 1, "train", ["overlap"]),
    ]
    with open(folder / f"refs({split_by}).p", "wb") as handle:
        pickle.dump(refs, handle)
    images = [
        {"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "height": IMAGE_H, "width": IMAGE_W} for i in (1, 2)
    ]
    annotations = [
        {"id": 101, "image_id": 1, "category_id": 1, "segmentation": [_rect(2, 1, 6, 4)]},  # 4 x 3 = 12 px
        {"id": 102, "image_id": 2, "category_id": 1, "segmentation": [_rect(0, 0, 10, 8)]},  # whole image, 80 px
        {"id": 103, "image_id": 2, "category_id": 1,
         "segmentation": [_rect(0, 0, 2, 2), _rect(7, 5, 10, 8)]},  # 4 + 9 = 13 px
        {"id": 104, "image_id": 1, "category_id": 1,
         "segmentation": [_rect(0, 0, 4, 4), _rect(2, 2, 6, 6)]},  # 16 + 16 - 4 = 28 px
        {"id": 999, "image_id": 1, "category_id": 1, "segmentation": [_rect(0, 0, 1, 1)]},  # not referred
    ]
    (folder / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    ))
    for image in images:
        write_jpg(data / image_dir / image["file_name"], IMAGE_H, IMAGE_W, value=image["id"])
    return data


def test_refcoco_objects_sentences_and_masks(tmp_path):
    data = write_refcoco(tmp_path / "refer_data")
    dataset = open_dataset("refcoco", data)
    assert isinstance(dataset, ReferringDataset)
    assert dataset.split == "val" and dataset.split_by == "unc" and dataset.preset == "refcoco"
    (obj,) = dataset.objects()
    assert (obj.id, obj.image_id, obj.ann_id) == ("7", 1, 101)
    assert obj.sentences == ("The man on the left.", "Left guy")
    image, mask = dataset.load(obj)
    assert image.shape == (IMAGE_H, IMAGE_W, 3) and image.dtype == np.uint8
    assert mask.dtype == bool and mask.shape == (IMAGE_H, IMAGE_W)
    assert int(mask.sum()) == 12 and mask[1:4, 2:6].all()
    _, again = dataset.load("7")
    np.testing.assert_array_equal(mask, again)
    normalised = open_dataset("refcoco", data, sentence_field="sent")
    assert normalised.objects()[0].sentences == ("the man on the left", "left guy")


def test_refcoco_splits_and_multi_polygon_masks(tmp_path):
    data = write_refcoco(tmp_path / "d")
    test_a = open_dataset("refcoco", data, "testA")
    test_b = open_dataset("refcoco", data, "testB")
    train = open_dataset("refcoco", data, "train")
    assert [o.id for o in test_a.objects()] == ["3"]
    assert [o.id for o in test_b.objects()] == ["5"]
    assert int(test_a.load(test_a.objects()[0])[1].sum()) == IMAGE_H * IMAGE_W
    _, two_parts = test_b.load(test_b.objects()[0])
    assert int(two_parts.sum()) == 13 and two_parts[0:2, 0:2].all() and two_parts[5:8, 7:10].all()
    # Overlapping polygons are united (annToMask). The reference's getMask keeps only
    # pixels covered exactly once, which would give 24 here.
    assert int(train.load(train.objects()[0])[1].sum()) == 28
    with pytest.raises(ValueError, match="unknown split 'test'"):
        open_dataset("refcoco", data, "test")


def test_refcocog_split_by_and_root_levels(tmp_path):
    data = write_refcoco(tmp_path / "d", name="refcocog", split_by="google", image_dir="images/train2014")
    with pytest.raises(FileNotFoundError, match=r"refs\(umd\)\.p"):
        open_dataset("refcocog", data)  # default split_by is umd
    dataset = open_dataset("refcocog", data / "refcocog", split_by="google")
    assert dataset.split_by == "google" and dataset.image_dir == data / "images/train2014"
    assert [o.id for o in dataset.objects()] == ["7"]
    with pytest.raises(ValueError, match="choose one of train, val"):
        open_dataset("refcocog", data, "test", split_by="google")
    assert check_dataset("refcocog", data, split_by="google") == []
    (problem,) = check_dataset("refcocog", data)
    assert problem.startswith("missing refs file") and "present: refs(google).p" in problem


def test_refs_pickle_with_objects_is_refused(tmp_path):
    data = write_refcoco(tmp_path / "d")
    with open(data / "refcoco/refs(unc).p", "wb") as handle:
        pickle.dump([datetime.date(2020, 1, 1)], handle)
    with pytest.raises(ValueError, match="datetime.date"):
        open_dataset("refcoco", data)


def test_refcoco_size_mismatch_and_missing_files(tmp_path):
    data = write_refcoco(tmp_path / "d")
    image_path = data / "images/mscoco/images/train2014/COCO_train2014_000000000001.jpg"
    write_jpg(image_path, IMAGE_H + 1, IMAGE_W)
    dataset = open_dataset("refcoco", data)
    with pytest.raises(SampleReadError, match="instances.json says 10x8") as caught:
        dataset.load(dataset.objects()[0])
    assert caught.value.sample_id == "7" and caught.value.path == image_path
    assert check_dataset("refcoco", data) == []
    (data / "refcoco/instances.json").unlink()
    for path in image_path.parent.iterdir():
        path.unlink()
    assert check_dataset("refcoco", data) == [
        f"missing {data / 'refcoco/instances.json'}",
        f"no .jpg images in {image_path.parent}",
    ]
    with pytest.raises(FileNotFoundError) as caught_missing:
        open_dataset("refcoco", data)
    assert "instances.json" in str(caught_missing.value) and "refs(unc).p" in str(caught_missing.value)
    assert check_dataset("refcoco+", data) == [f"missing dataset folder {data / 'refcoco+'}"]


# --- ShapesWorld export, end to end ------------------------------------------------------


def test_shapesworld_voc_export_reads_back_its_scenes(tmp_path):
    from carlib.world.scene import split_scene

    out = export_voc(tmp_path / "shapes", split="test", n=3, seed=0)
    assert check_dataset("shapes", out) == []
    dataset = open_dataset("shapes", out)
    names = tuple((out / "class_names.txt").read_text().split())
    assert dataset.class_names == names and dataset.class_names[0] == "background"
    assert dataset.ids() == ["test_0_00000", "test_0_00001", "test_0_00002"]
    for index, sample_id in enumerate(dataset.ids()):
        image, labels = dataset.load(sample_id)
        scene = split_scene("test", index, 0)
        np.testing.assert_array_equal(labels, scene.class_map.astype(np.int64))
        assert image.shape == scene.image.shape
        assert np.abs(image.astype(int) - scene.image.astype(int)).mean() < 8  # JPEG quality 95
    as_voc = open_dataset("voc", out)
    assert as_voc.class_names == names and as_voc.name == "voc_layout"


# --- API guards and the command line ------------------------------------------------------


def test_open_dataset_rejects_unknown_preset_and_misplaced_options(voc_root, tmp_path):
    with pytest.raises(ValueError, match="known: voc"):
        open_dataset("cityscapes", voc_root)
    with pytest.raises(ValueError, match="referring"):
        open_dataset("voc", voc_root, split_by="unc")
    data = write_refcoco(tmp_path / "d")
    with pytest.raises(ValueError, match="semantic"):
        open_dataset("refcoco", data, without_background=True)


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_data_check(voc_root, tmp_path, capsys):
    assert _run_cli(["data", "check", "--preset", "voc", "--data-root", str(voc_root)]) == 0
    assert capsys.readouterr().out.startswith("OK: voc (val)")
    assert _run_cli(["data", "check", "--preset", "voc", "--data-root", str(voc_root), "--split", "test"]) == 1
    out = capsys.readouterr().out
    assert "1 problem(s)" in out and "missing split file" in out and "test.txt" in out
    data = write_refcoco(tmp_path / "d", name="refcocog", split_by="google")
    assert _run_cli(["data", "check", "--preset", "refcocog", "--data-root", str(data), "--split-by", "google"]) == 0
    with pytest.raises(SystemExit):
        _run_cli(["data", "check", "--preset", "nope", "--data-root", str(voc_root)])


def test_cli_convert_coco_object(tmp_path, capsys):
    write_grey_png(tmp_path / "stuff/1.png", np.array([[0, 255]], dtype=np.uint8))
    assert _run_cli(["data", "convert-coco-object", "--stuff-dir", str(tmp_path / "stuff"),
                     "--out", str(tmp_path / "out")]) == 0
    assert "wrote 1" in capsys.readouterr().out
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out/1_instanceTrainIds.png")), [[1, 0]])


# --- ADE-847 and Context-459: 16-bit TIFF ground truth (issue 16) ---------------------------------------------


def write_tiff16(path: Path, labels: np.ndarray) -> None:
    """A 16-bit TIFF as the detectron2 converters write it (``Image.fromarray(uint16).save(...tif)``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint16)).save(path)


def wide_labels(classes: tuple[int, ...]) -> np.ndarray:
    """Row 0 unlabelled (65535); one pixel of each of ``classes`` in row 2; class ``classes[0]`` elsewhere."""
    labels = np.full((H, W), classes[0], dtype=np.uint16)
    labels[0, :] = 65535
    labels[2, : len(classes)] = classes
    return labels


ADE_CLASSES_WRITTEN = (0, 255, 300, 846)  # wall, pier (= the 8-bit ignore value), a label > 255, the last class
CONTEXT_CLASSES_WRITTEN = (0, 283, 430, 458)  # accordion, person, unknown, wool


@pytest.fixture()
def ade847_root(tmp_path: Path) -> Path:
    root = tmp_path / "ADE20K_2021_17_01"
    for name in ("ADE_val_00000002", "ADE_val_00000001"):
        write_jpg(root / "images_detectron2/validation" / f"{name}.jpg")
        write_tiff16(root / "annotations_detectron2/validation" / f"{name}.tif", wide_labels(ADE_CLASSES_WRITTEN))
    return tmp_path


@pytest.fixture()
def context459_root(tmp_path: Path) -> Path:
    root = tmp_path / "pascal_ctx_d2"
    for name in ("2008_000002", "2008_000001"):
        write_jpg(root / "images/validation" / f"{name}.jpg")
        write_tiff16(root / "annotations_ctx459/validation" / f"{name}.tif", wide_labels(CONTEXT_CLASSES_WRITTEN))
    return tmp_path


def test_ade847_reads_16_bit_labels_as_class_indices(ade847_root):
    dataset = open_dataset("ade847", ade847_root)
    assert dataset.name == "ade847" and dataset.preset == "ade847"
    assert dataset.num_classes == 847 and not dataset.has_background and dataset.ignore_label == 65535
    assert dataset.ids() == ["ADE_val_00000001", "ADE_val_00000002"]
    image, labels = dataset.load("ADE_val_00000001")
    assert image.shape == (H, W, 3) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, wide_labels(ADE_CLASSES_WRITTEN).astype(np.int64))
    assert int((labels == 65535).sum()) == W and int((labels == 255).sum()) == 1
    names = dataset.class_names
    assert (names[0], names[255], names[846]) == ("wall", "pier", "adding machine")
    assert dataset.image_dir == ade847_root / "ADE20K_2021_17_01/images_detectron2/validation"


def test_context459_reads_16_bit_labels_as_class_indices(context459_root):
    dataset = open_dataset("context459", context459_root)
    assert dataset.name == "context459" and dataset.num_classes == 459 and dataset.ignore_label == 65535
    _, labels = dataset.load("2008_000002")
    np.testing.assert_array_equal(labels, wide_labels(CONTEXT_CLASSES_WRITTEN).astype(np.int64))
    names = dataset.class_names
    assert (names[0], names[283], names[430], names[458]) == ("accordion", "person", "unknown", "wool")


def test_full_label_sets_accept_two_root_levels_and_the_detectron2_split_names(ade847_root, context459_root):
    for preset, root, folder in (("ade847", ade847_root, "ADE20K_2021_17_01"),
                                 ("context459", context459_root, "pascal_ctx_d2")):
        a = open_dataset(preset, root, "val")
        b = open_dataset(preset, root / folder, "validation")
        assert a.ids() == b.ids() and a.label_dir == b.label_dir and len(a) == 2
        with pytest.raises(FileNotFoundError, match="training"):
            open_dataset(preset, root, "train")
        with pytest.raises(ValueError, match="unknown split 'test'"):
            open_dataset(preset, root, "test")


def test_a_16_bit_tiff_written_by_opencv_reads_the_same(ade847_root):
    import cv2

    labels = wide_labels(ADE_CLASSES_WRITTEN)
    path = ade847_root / "ADE20K_2021_17_01/annotations_detectron2/validation/ADE_val_00000002.tif"
    assert cv2.imwrite(str(path), labels)
    _, read = open_dataset("ade847", ade847_root).load("ADE_val_00000002")
    np.testing.assert_array_equal(read, labels.astype(np.int64))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # PIL on the deliberately broken TIFF
def test_full_label_set_corrupt_samples_are_sample_errors(ade847_root, context459_root):
    folder = ade847_root / "ADE20K_2021_17_01/annotations_detectron2/validation"
    dataset = open_dataset("ade847", ade847_root)
    labels = wide_labels(ADE_CLASSES_WRITTEN)
    labels[4, 4] = 847  # one past the last class, and not the ignore value
    write_tiff16(folder / "ADE_val_00000001.tif", labels)
    with pytest.raises(SampleReadError, match="label value 847 outside 0..846 and not 65535"):
        dataset.load("ADE_val_00000001")
    # An 8-bit conversion cannot hold these labels: refused, not read as classes 0..255.
    Image.fromarray(np.zeros((H, W), dtype=np.uint8)).save(folder / "ADE_val_00000001.tif")
    with pytest.raises(SampleReadError, match="8 bits per pixel") as caught:
        dataset.load("ADE_val_00000001")
    assert caught.value.path == folder / "ADE_val_00000001.tif"
    (folder / "ADE_val_00000001.tif").write_bytes(b"II*\x00 not a tiff body")
    with pytest.raises(SampleReadError, match="cannot read ground truth"):
        dataset.load("ADE_val_00000001")
    write_tiff16(folder / "ADE_val_00000001.tif", np.zeros((H + 1, W), dtype=np.uint16))
    with pytest.raises(SampleReadError, match="8x7 but the image is 8x6"):
        dataset.load("ADE_val_00000001")
    (folder / "ADE_val_00000001.tif").unlink()
    with pytest.raises(SampleReadError, match="ground-truth file missing"):
        dataset.load("ADE_val_00000001")
    dataset.load("ADE_val_00000002")  # the other sample still reads
    context = context459_root / "pascal_ctx_d2/annotations_ctx459/validation/2008_000001.tif"
    write_tiff16(context, np.full((H, W), 459, dtype=np.uint16))
    with pytest.raises(SampleReadError, match="label value 459 outside 0..458"):
        open_dataset("context459", context459_root).load("2008_000001")


def test_check_dataset_lists_what_the_full_label_sets_miss(ade847_root, context459_root, tmp_path):
    assert check_dataset("ade847", ade847_root) == [] and check_dataset("context459", context459_root) == []
    root = ade847_root / "ADE20K_2021_17_01"
    (root / "annotations_detectron2/validation/ADE_val_00000002.tif").unlink()
    (root / "images_detectron2/validation/ADE_val_00000001.jpg").unlink()
    assert check_dataset("ade847", ade847_root) == [
        f"1 of 1 ground-truth files missing from {root / 'annotations_detectron2/validation'}: ADE_val_00000002.tif"
    ]  # ids come from the image folder, as in the reference loader: the image-less sample is not listed
    context = context459_root / "pascal_ctx_d2/annotations_ctx459/validation"
    for path in context.iterdir():
        path.unlink()
    context.rmdir()
    (problem,) = check_dataset("context459", context459_root)
    assert problem.startswith(f"missing ground truth folder {context}") and "prepare_pascal_ctx_full_sem_seg.py" in problem
    with pytest.raises(FileNotFoundError, match="prepare_pascal_ctx_full_sem_seg.py") as caught:
        open_dataset("context459", context459_root)
    assert "annotations_ctx459/validation/<id>.tif" in str(caught.value)
    empty = tmp_path / "nothing"
    empty.mkdir()
    (problem,) = check_dataset("ade847", empty)
    assert problem.startswith("no ADE20K-full (847 classes) folder") and "images_detectron2" in problem


def test_cli_data_check_full_label_sets(ade847_root, context459_root, capsys):
    assert _run_cli(["data", "check", "--preset", "ade847", "--data-root", str(ade847_root)]) == 0
    assert capsys.readouterr().out.startswith("OK: ade847 (val)")
    assert _run_cli(["data", "check", "--preset", "context459", "--data-root", str(context459_root)]) == 0
    (context459_root / "pascal_ctx_d2/annotations_ctx459/validation/2008_000001.tif").unlink()
    assert _run_cli(["data", "check", "--preset", "context459", "--data-root", str(context459_root)]) == 1
    out = capsys.readouterr().out
    assert "1 problem(s)" in out and "1 of 2 ground-truth files missing" in out and "2008_000001.tif" in out
