"""GRES (gRefCOCO): the reader, the metrics on hand-computed cases, and `carlib eval --preset gres` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from carlib.apps.cli import main
from carlib.datasets import check_dataset, open_dataset
from carlib.evaluation.gres_metrics import GresMetrics, gres_summary
from carlib.presets import get_preset


def _rle(mask: np.ndarray) -> dict:
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _box(height: int, width: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _write_grefcoco(data: Path, images: dict[int, np.ndarray], annotations: list[dict], refs: list[dict],
                    image_folder: str = "images/train2014") -> Path:
    """A gRefCOCO folder as ReLA releases it: grefcoco/grefs(unc).json, grefcoco/instances.json, train2014 JPEGs."""
    folder = data / "grefcoco"
    image_dir = data / image_folder
    folder.mkdir(parents=True)
    image_dir.mkdir(parents=True)
    entries = []
    for image_id, pixels in images.items():
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        Image.fromarray(pixels).save(image_dir / file_name, quality=95)
        entries.append({"id": image_id, "file_name": file_name, "height": pixels.shape[0], "width": pixels.shape[1]})
    (folder / "grefs(unc).json").write_text(json.dumps(refs))
    (folder / "instances.json").write_text(json.dumps(
        {"images": entries, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    ))
    return data


def _sentence(text: str, sent_id: int) -> dict:
    return {"raw": text, "sent": text.lower(), "sent_id": sent_id, "tokens": text.lower().split()}


# --- metrics: hand-computed cases ------------------------------------------------

H, W = 6, 8
TRUTH_A = _box(H, W, 0, 2, 0, 2)  # 4 px
PRED_A = _box(H, W, 0, 1, 0, 4)  # 4 px, 2 of them on the truth: I 2, U 6
TRUTH_E = _box(H, W, 4, 6, 0, 2) | _box(H, W, 5, 6, 6, 8)  # two objects, 4 + 2 px
EMPTY = np.zeros((H, W), dtype=bool)

# (prediction, truth): A targeted, partly right; B no-target, predicted empty; C no-target, 3 px predicted;
# D targeted (4 px), predicted empty; E multi-target (two objects), predicted exactly.
CASES = [
    (PRED_A, TRUTH_A),
    (EMPTY, EMPTY),
    (_box(H, W, 3, 4, 0, 3), EMPTY),
    (EMPTY, _box(H, W, 2, 4, 6, 8)),
    (TRUTH_E, TRUTH_E),
]


def test_metrics_on_hand_computed_cases():
    metrics = GresMetrics()
    per_sample = [metrics.update(prediction, truth) for prediction, truth in CASES]
    assert per_sample == pytest.approx([2 / 6, 1.0, 0.0, 0.0, 1.0])
    result = metrics.summary()
    assert int(TRUTH_E.sum()) == 6
    # cIoU: I = 2 + 0 + 0 + 0 + 6, U = 6 + 0 + 3 + 4 + 6.
    assert result["cIoU"] == pytest.approx(8 / 19)
    # gIoU: the no-target sample predicted empty scores 1, the one predicted non-empty 0.
    assert result["gIoU"] == pytest.approx((1 / 3 + 1 + 0 + 0 + 1) / 5)
    assert result["N_acc"] == pytest.approx(1 / 2)  # B right, C wrong
    assert result["T_acc"] == pytest.approx(2 / 3)  # A and E non-empty, D empty
    assert result["Pr@0.7"] == pytest.approx(1 / 3) and result["Pr@0.9"] == pytest.approx(1 / 3)  # E of A, D, E
    # The released ReLA evaluator: TP 1 (B), FN 1 (C), FP 1 (D): TP / (TP + FN + 1), TP / (TP + FP + 1).
    assert result["N_acc_released"] == pytest.approx(1 / 3)
    assert result["T_acc_released"] == pytest.approx(1 / 3)
    # The official CaR referring loop: IoU 0 whenever the union is empty (B), else I / U.
    assert result["mIoU_reference_loop"] == pytest.approx((1 / 3 + 0 + 0 + 0 + 1) / 5)
    assert (result["count"], result["no_target_count"], result["targeted_count"]) == (5, 2, 3)


def test_metrics_added_over_shards_equal_one_pass():
    whole, first, second = GresMetrics(), GresMetrics(), GresMetrics()
    for index, (prediction, truth) in enumerate(CASES):
        whole.update(prediction, truth)
        (first if index % 2 else second).update(prediction, truth)
    assert gres_summary(first.packed() + second.packed()) == pytest.approx(whole.summary())


def test_no_target_flag_of_an_all_crowd_ref_scores_it_as_targeted():
    metrics = GresMetrics()
    assert metrics.update(EMPTY, EMPTY, no_target=False) == 0.0  # ReLA: targeted, U == 0 gives IoU 0
    result = metrics.summary()
    assert result["gIoU"] == 0.0 and result["targeted_count"] == 1 and math.isnan(result["N_acc"])
    assert result["N_acc_released"] == 0.0  # the released evaluator's value when no sample is no-target


def test_metrics_refuse_masks_of_different_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        GresMetrics().update(np.zeros((2, 3), bool), np.zeros((3, 2), bool))


# --- the reader -----------------------------------------------------------------


def _hand_made(data: Path, image_folder: str = "images/train2014") -> tuple[Path, dict[str, np.ndarray]]:
    image = np.full((H, W, 3), 90, dtype=np.uint8)
    left, right, crowd = _box(H, W, 0, 3, 0, 3), _box(H, W, 3, 6, 5, 8), _box(H, W, 0, 2, 6, 8)
    annotations = [
        {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": _rle(left)},
        {"id": 12, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": _rle(right)},
        {"id": 13, "image_id": 1, "category_id": 1, "iscrowd": 1, "segmentation": _rle(crowd)},
    ]
    refs = [
        {"ref_id": 2, "image_id": 1, "split": "val", "category_id": [1, 1], "ann_id": [11, 12, 13],
         "sentences": [_sentence("Both things", 20), _sentence("", 21), _sentence("the two squares", 22)]},
        {"ref_id": 1, "image_id": 1, "split": "val", "category_id": [1], "ann_id": [11],
         "sentences": [_sentence("the left thing", 10)]},
        {"ref_id": 3, "image_id": 1, "split": "val", "category_id": [], "ann_id": [-1],
         "sentences": [_sentence("the giraffe", 30)]},
        {"ref_id": 4, "image_id": 1, "split": "val", "category_id": [], "ann_id": [], "no_target": True,
         "sentences": [_sentence("the boat", 40)]},
        {"ref_id": 5, "image_id": 1, "split": "testA", "category_id": [1], "ann_id": [12],
         "sentences": [_sentence("the right thing", 50)]},
    ]
    _write_grefcoco(data, {1: image}, annotations, refs, image_folder)
    return data, {"left": left, "right": right}


def test_reader_gives_one_sample_per_sentence_with_the_union_of_its_objects(tmp_path):
    data, masks = _hand_made(tmp_path / "data")
    dataset = open_dataset("gres", data)
    expressions = dataset.objects()
    # Sorted by ref id; the empty sentence is skipped; testA is another split.
    assert [(e.id, e.sentence) for e in expressions] == [
        ("1_0", "the left thing"), ("2_0", "Both things"), ("2_2", "the two squares"),
        ("3_0", "the giraffe"), ("4_0", "the boat"),
    ]
    assert [e.no_target for e in expressions] == [False, False, False, True, True]
    _, single = dataset.load("1_0")
    np.testing.assert_array_equal(single, masks["left"])
    _, both = dataset.load(expressions[1])
    np.testing.assert_array_equal(both, masks["left"] | masks["right"])  # the crowd annotation is left out
    image, nothing = dataset.load("3_0")
    assert image.shape == (H, W, 3) and nothing.shape == (H, W) and not nothing.any()
    assert [e.id for e in open_dataset("gres", data, "testA").objects()] == ["5_0"]
    assert open_dataset("gres", data, sentence_field="sent").objects()[1].sentence == "both things"


def test_reader_accepts_the_grefcoco_folder_and_the_official_car_image_layout(tmp_path):
    data, _ = _hand_made(tmp_path / "data", image_folder="images/mscoco/images/train2014")
    assert len(open_dataset("gres", data / "grefcoco")) == 5
    assert check_dataset("gres", data) == []


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"grefs\(unc\)\.json|grefcoco") as error:
        open_dataset("gres", tmp_path / "nothing")
    assert "docs/datasets.md" in str(error.value)
    with pytest.raises(ValueError, match="unknown split"):
        open_dataset("gres", tmp_path, "testC")
    problems = check_dataset("gres", tmp_path / "nothing")
    assert problems and "grefcoco" in problems[0]

    data, _ = _hand_made(tmp_path / "bad")
    refs_path = data / "grefcoco" / "grefs(unc).json"
    refs = json.loads(refs_path.read_text())
    refs[3]["ann_id"] = [11]  # no_target: true with an annotation
    refs_path.write_text(json.dumps(refs))
    with pytest.raises(ValueError, match="no_target but lists annotations"):
        open_dataset("gres", data)
    refs[3]["ann_id"] = [99]
    del refs[3]["no_target"]
    refs_path.write_text(json.dumps(refs))
    with pytest.raises(ValueError, match="lacks 1 annotation"):
        open_dataset("gres", data)


def test_data_check_command_reports_gres(tmp_path, capsys):
    data, _ = _hand_made(tmp_path / "data")
    assert main(["data", "check", "--preset", "gres", "--data-root", str(data)]) == 0
    (data / "grefcoco" / "instances.json").unlink()
    assert main(["data", "check", "--preset", "gres", "--data-root", str(data)]) == 1
    assert "instances.json" in capsys.readouterr().out


def test_gres_preset_holds_the_official_config():
    # clip_as_rnn/configs/gres.yaml: mask 0.5, confidence 0, clipes 0.3, circle, ViT-B/16 -> ViT-L/14.
    preset = get_preset("gres")
    settings = preset.settings
    assert (settings.mask_threshold, settings.confidence_threshold, settings.clipes_threshold) == (0.5, 0.0, 0.3)
    assert settings.prompt_kinds == ("circle",) and settings.mode == "referring"
    assert (preset.proposal_model, preset.classifier_model) == ("ViT-B-16", "ViT-L-14")
    assert settings.templates == ("a clean origami {}.",) and len(settings.background) == 23
    assert preset.source.endswith("clip_as_rnn/configs/gres.yaml")


# --- end to end -----------------------------------------------------------------


def _shapes_grefcoco(data: Path, scenes: int = 3) -> Path:
    """gRefCOCO-format files from ShapesWorld scenes: per scene one single-target, one multi-target and one
    no-target expression."""
    from carlib.world.classes import CLASS_NAMES
    from carlib.world.scene import split_scene

    images, annotations, refs = {}, [], []
    for image_id in range(1, scenes + 1):
        scene = split_scene("test", image_id, seed=5)
        images[image_id] = scene.image
        for obj in scene.objects:
            annotations.append({"id": image_id * 100 + obj.instance_id, "image_id": image_id, "category_id": 1,
                                "iscrowd": 0, "segmentation": _rle(scene.instance_map == obj.instance_id)})
        first = scene.objects[0]
        others = [o for o in scene.objects if o.class_name != first.class_name]
        same = [image_id * 100 + o.instance_id for o in scene.objects if o.class_name == first.class_name]
        ref_id = image_id * 10
        refs.append({"ref_id": ref_id, "image_id": image_id, "split": "val", "category_id": [1] * len(same),
                     "ann_id": same, "sentences": [_sentence(f"the {first.class_name}", ref_id)]})
        if others:
            pair = [image_id * 100 + first.instance_id, image_id * 100 + others[0].instance_id]
            refs.append({"ref_id": ref_id + 1, "image_id": image_id, "split": "val", "category_id": [1, 1],
                         "ann_id": pair,
                         "sentences": [_sentence(f"the {first.class_name} and the {others[0].class_name}",
                                                 ref_id + 1)]})
        absent = next(name for name in CLASS_NAMES if name not in {o.class_name for o in scene.objects})
        refs.append({"ref_id": ref_id + 2, "image_id": image_id, "split": "val", "category_id": [], "ann_id": [-1],
                     "sentences": [_sentence(f"the {absent}", ref_id + 2)]})
    return _write_grefcoco(data, images, annotations, refs)


def test_gres_evaluation_end_to_end(tmp_path, capsys):
    data = _shapes_grefcoco(tmp_path / "grefs")
    out = tmp_path / "run"
    command = ["eval", "--preset", "gres", "--data-root", str(data), "--out", str(out), "--model", "shapes",
               "--no-progress"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    dataset = open_dataset("gres", data)
    expressions = dataset.objects()
    multi = [e for e in expressions if len(e.ann_ids) > 1]
    assert multi and any(e.no_target for e in expressions)
    assert metrics["count"] == len(expressions) and metrics["headline"] == "gIoU"
    assert metrics["no_target_count"] == sum(e.no_target for e in expressions)
    assert metrics["paper_mIoU"] == 16.8 and "gIoU" in printed

    # Recompute every score from the stored predictions with the definitions, independently of GresMetrics.
    inter = union = 0
    scores, no_target_right, targeted_right = [], [], []
    for expression in expressions:
        _, truth = dataset.load(expression)
        predicted = np.asarray(Image.open(out / "predictions" / f"{expression.id}.png")) > 0
        record = json.loads((out / "predictions" / f"{expression.id}.json").read_text())
        assert record["no_target"] == expression.no_target and record["predicted_empty"] == (not predicted.any())
        i, u = int((predicted & truth).sum()), int((predicted | truth).sum())
        inter, union = inter + i, union + u
        if expression.no_target:
            scores.append(float(not predicted.any()))
            no_target_right.append(not predicted.any())
        else:
            scores.append(i / u)
            targeted_right.append(predicted.any())
    assert metrics["cIoU"] == pytest.approx(inter / union)
    assert metrics["gIoU"] == pytest.approx(np.mean(scores))
    assert metrics["N_acc"] == pytest.approx(np.mean(no_target_right))
    assert metrics["T_acc"] == pytest.approx(np.mean(targeted_right))
    # The multi-target ground truth is the union of both objects, not the first one (the official loader's).
    _, truth = dataset.load(multi[0])
    first = dict(dataset.annotations[multi[0].ann_ids[0]]["segmentation"])
    assert truth.sum() > coco_mask.area({**first, "counts": first["counts"].encode("ascii")})

    # Rerun: everything is read back from the predictions, with the same metrics.
    assert main(command) == 0
    assert json.loads((out / "metrics.json").read_text())["gIoU"] == metrics["gIoU"]
