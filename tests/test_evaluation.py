"""`carlib eval` end to end on ShapesWorld exported in the VOC layout: metrics, resume, torchrun."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from PIL import Image

from carlib.apps.cli import main
from carlib.datasets import open_dataset
from carlib.evaluation.metrics import ConfusionMatrix
from carlib.world.export import export_voc

N_IMAGES = 6
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shapes_voc(tmp_path_factory) -> Path:
    return export_voc(tmp_path_factory.mktemp("export") / "shapes_voc", split="test", n=N_IMAGES, seed=3)


def _eval_command(data: Path, out: Path) -> list[str]:
    return ["eval", "--preset", "shapes", "--data-root", str(data), "--out", str(out), "--model", "shapes",
            "--no-progress"]


def _environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def test_metrics_match_the_stored_predictions(shapes_voc, tmp_path):
    out = tmp_path / "run"
    assert main(_eval_command(shapes_voc, out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == N_IMAGES and metrics["errors"] == []
    # Recompute from what was written, independently of the harness's bookkeeping.
    dataset = open_dataset("shapes", shapes_voc)
    matrix = ConfusionMatrix(len(dataset.class_names))
    for sample_id in dataset.ids():
        _, truth = dataset.load(sample_id)
        predicted = np.asarray(Image.open(out / "predictions" / f"{sample_id}.png"))
        assert predicted.shape == truth.shape
        matrix.update(predicted, truth)
    assert metrics["mIoU"] == pytest.approx(matrix.miou())
    assert 0.2 < metrics["mIoU"] <= 1.0  # a trained model, not noise
    report = (out / "report.md").read_text()
    assert "mIoU" in report and "lemon" in report or "orange" in report


def test_unreadable_images_are_counted_not_skipped(shapes_voc, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(shapes_voc, data)
    first = sorted((data / "JPEGImages").iterdir())[0]
    first.write_bytes(b"broken")
    out = tmp_path / "run"
    assert main(_eval_command(data, out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [error["id"] for error in metrics["errors"]] == [first.stem]
    assert first.stem in (out / "report.md").read_text()


def test_a_killed_run_resumes_to_identical_metrics(shapes_voc, tmp_path):
    reference = tmp_path / "uninterrupted"
    assert main(_eval_command(shapes_voc, reference)) == 0
    resumed = tmp_path / "resumed"
    command = [sys.executable, "-m", "carlib", *_eval_command(shapes_voc, resumed)]
    process = subprocess.Popen(command, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((resumed / "predictions").glob("*.json"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(list((resumed / "predictions").glob("*.json")))
    assert 2 <= finished < N_IMAGES, "the run should have been killed midway"
    assert not (resumed / "metrics.json").exists()
    assert main(_eval_command(shapes_voc, resumed)) == 0
    first = json.loads((reference / "metrics.json").read_text())
    second = json.loads((resumed / "metrics.json").read_text())
    assert second["confusion_matrix"] == first["confusion_matrix"]
    assert second["mIoU"] == first["mIoU"]


@pytest.mark.slow
def test_torchrun_with_two_processes_equals_one(shapes_voc, tmp_path, torchrun_carlib):
    single = tmp_path / "single"
    assert main(_eval_command(shapes_voc, single)) == 0
    sharded = tmp_path / "sharded"
    completed = torchrun_carlib(_eval_command(shapes_voc, sharded))
    assert completed.returncode == 0, completed.stderr[-2000:]
    one = json.loads((single / "metrics.json").read_text())
    two = json.loads((sharded / "metrics.json").read_text())
    assert two["images"] == one["images"] == N_IMAGES
    assert two["confusion_matrix"] == one["confusion_matrix"]
    assert two["mIoU"] == one["mIoU"]


def test_missing_dataset_lists_the_expected_layout(tmp_path, capsys):
    assert main(["eval", "--preset", "voc", "--data-root", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "JPEGImages" in error and "docs/datasets.md" in error


def _shapes_refcoco(data: Path, scenes: int = 3, name: str = "refcoco", split_by: str = "unc") -> Path:
    """A RefCOCO-format folder (refs(<split_by>).p + instances.json + train2014 JPEGs) built from ShapesWorld scenes."""
    import pickle

    from pycocotools import mask as coco_mask

    from carlib.world.captions import referring_expressions
    from carlib.world.scene import split_scene

    folder = data / name
    image_dir = data / "images" / "train2014"
    folder.mkdir(parents=True)
    image_dir.mkdir(parents=True)
    images, annotations, refs = [], [], []
    for image_id in range(1, scenes + 1):
        scene = split_scene("test", image_id, seed=5)
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        Image.fromarray(scene.image).save(image_dir / file_name, quality=95)
        height, width = scene.class_map.shape
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for text, instance_id in referring_expressions(scene):
            ann_id = image_id * 100 + instance_id
            if not any(a["id"] == ann_id for a in annotations):
                rle = coco_mask.encode(np.asfortranarray(scene.instance_mask(instance_id).astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                annotations.append({"id": ann_id, "image_id": image_id, "category_id": 1, "segmentation": rle})
                refs.append({"ref_id": ann_id, "ann_id": ann_id, "image_id": image_id, "split": "val",
                             "category_id": 1, "sentences": []})
            ref = next(r for r in refs if r["ann_id"] == ann_id)
            ref["sentences"].append({"raw": text, "sent": text, "sent_id": len(ref["sentences"])})
    with open(folder / f"refs({split_by}).p", "wb") as handle:
        pickle.dump(refs, handle)
    (folder / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
    ))
    return data


def test_referring_evaluation_end_to_end(tmp_path):
    data = _shapes_refcoco(tmp_path / "refer")
    out = tmp_path / "run"
    command = ["eval", "--preset", "refcoco", "--data-root", str(data), "--out", str(out), "--model", "shapes",
               "--no-progress"]
    assert main(command) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    objects = open_dataset("refcoco", data).objects()
    assert metrics["count"] == len(objects) >= 3
    # Recompute per-object IoU from the stored masks.
    dataset = open_dataset("refcoco", data)
    ious = []
    for obj in objects:
        _, truth = dataset.load(obj)
        predicted = np.asarray(Image.open(out / "predictions" / f"{obj.id}.png")) > 0
        union = np.logical_or(predicted, truth).sum()
        ious.append(np.logical_and(predicted, truth).sum() / union if union else 1.0)
    assert metrics["mIoU"] == pytest.approx(float(np.mean(ious)))
    assert set(metrics) >= {"oIoU", "P@0.5", "P@0.9"}


def test_refcocog_google_split_is_evaluated_and_compared_with_val_g(tmp_path, capsys):
    data = _shapes_refcoco(tmp_path / "refer", scenes=2, name="refcocog", split_by="google")
    out = tmp_path / "run"
    command = ["eval", "--preset", "refcocog", "--data-root", str(data), "--out", str(out), "--model", "shapes",
               "--no-progress", "--split", "val"]
    assert main(command) == 2  # the default umd split's file is not there
    assert "refs(umd).p" in capsys.readouterr().err
    assert main(command + ["--split-by", "google"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split_by"] == "google" and metrics["paper_mIoU"] == 36.63
    assert metrics["count"] == len(open_dataset("refcocog", data, "val", split_by="google").objects()) >= 2
    assert main(["eval", "--preset", "shapes", "--data-root", str(data), "--out", str(tmp_path / "x"),
                 "--split-by", "google"]) == 2
    assert "referring presets" in capsys.readouterr().err


@pytest.mark.slow
def test_read_ahead_workers_and_crf_processes_leave_the_metrics_unchanged(shapes_voc, tmp_path):
    inline, overlapped = tmp_path / "inline", tmp_path / "overlapped"
    assert main([*_eval_command(shapes_voc, inline), "--workers", "0"]) == 0
    assert main([*_eval_command(shapes_voc, overlapped), "--workers", "2"]) == 0
    one = json.loads((inline / "metrics.json").read_text())
    two = json.loads((overlapped / "metrics.json").read_text())
    assert two["confusion_matrix"] == one["confusion_matrix"]
    assert two["mIoU"] == pytest.approx(one["mIoU"], abs=1e-6)
    for record in sorted((inline / "predictions").glob("*.json")):
        np.testing.assert_array_equal(np.asarray(Image.open(record.with_suffix(".png"))),
                                      np.asarray(Image.open(overlapped / "predictions" / record.with_suffix(".png").name)))


def test_bf16_autocast_runs_on_cpu_and_fp16_is_refused_there(shapes_voc, tmp_path, capsys):
    reference, autocast = tmp_path / "fp32", tmp_path / "bf16"
    assert main([*_eval_command(shapes_voc, reference), "--workers", "0", "--limit", "2"]) == 0
    assert main([*_eval_command(shapes_voc, autocast), "--workers", "0", "--limit", "2", "--amp", "bf16"]) == 0
    scores = [json.loads(path.read_text())["all"]["scores"]
              for run in (reference, autocast) for path in sorted((run / "predictions").glob("*.json"))]
    # Autocast really ran (bf16 rounds the scores) and stays close to the fp32 reference.
    assert scores[:2] != scores[2:]
    np.testing.assert_allclose(np.concatenate(scores[:2]), np.concatenate(scores[2:]), atol=0.1)
    capsys.readouterr()
    assert main([*_eval_command(shapes_voc, tmp_path / "fp16"), "--amp", "fp16"]) != 0
    assert "amp='fp16' needs a CUDA device" in capsys.readouterr().err
    assert not list((tmp_path / "fp16").glob("predictions/*.json"))


def test_post_processing_pool_returns_inline_results_in_order_from_other_processes():
    import os

    from carlib.car import PostJob, post_process
    from carlib.evaluation.overlap import PostProcessPool
    from carlib.settings import CarSettings

    rng = np.random.default_rng(0)
    jobs = [PostJob(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), rng.random((3, 24, 32), dtype=np.float32),
                    np.array([0.5, 0.0, 0.3], dtype=np.float32), CarSettings(post="crf"), (24, 32))
            for _ in range(5)]
    received = []
    with PostProcessPool(2) as pool:
        for index, job in enumerate(jobs):
            pool.submit([job], lambda results, index=index: received.append((index, results[0][0])))
        workers = {process.pid for process in pool._executor._processes.values()}
    assert workers and os.getpid() not in workers
    assert [index for index, _ in received] == list(range(5))
    for (_, masks), job in zip(received, jobs):
        np.testing.assert_array_equal(masks, post_process(job))
        assert not masks[1].any()


def test_read_ahead_keeps_the_order_and_reports_bad_samples():
    from carlib.datasets import SampleReadError
    from carlib.evaluation.overlap import read_ahead

    got = list(read_ahead(_load_or_fail, list(range(7)), SampleReadError, workers=2))
    assert [item for item, _, _ in got] == list(range(7))
    errors = [error for _, _, error in got if error]
    assert len(errors) == 1 and "images/3.jpg" in errors[0] and "broken" in errors[0]
    assert got[4][1] == 16


def _load_or_fail(item: int) -> int:
    from carlib.datasets import SampleReadError

    if item == 3:
        raise SampleReadError(str(item), f"images/{item}.jpg", "broken")
    return item * item


def test_workers_default_to_none_on_cpu_and_autocast_only_where_asked():
    import torch

    from carlib.evaluation.overlap import autocast_for, default_workers

    assert default_workers("cpu") == 0
    assert default_workers("cuda") == min(4, (os.cpu_count() or 1) // 2)
    assert not isinstance(autocast_for("cpu", "auto"), torch.autocast)
    assert isinstance(autocast_for("cpu", "bf16"), torch.autocast)
    with pytest.raises(ValueError, match="unknown amp"):
        autocast_for("cpu", "fp8")


# --- 848 labels: ADE-847 predictions as 16-bit PNGs (issue 16) -------------------------------------------------


def _write_ade847(root: Path, truths: dict, images: Optional[dict] = None) -> Path:
    """An ADE20K-full detectron2 layout: a jpg (given, or noise) and a 16-bit TIFF (0..846, 65535 unlabelled) per sample."""
    folder = root / "ADE20K_2021_17_01"
    for sample_id, truth in truths.items():
        (folder / "images_detectron2/validation").mkdir(parents=True, exist_ok=True)
        (folder / "annotations_detectron2/validation").mkdir(parents=True, exist_ok=True)
        image = (images or {}).get(sample_id)
        if image is None:
            image = np.random.default_rng(0).integers(0, 256, (*truth.shape, 3), dtype=np.uint8)
        Image.fromarray(image).save(folder / "images_detectron2/validation" / f"{sample_id}.jpg", quality=95)
        Image.fromarray(truth.astype(np.uint16)).save(folder / "annotations_detectron2/validation" / f"{sample_id}.tif")
    return root


def test_eval_scores_848_labels_read_back_from_16_bit_predictions(tmp_path):
    from carlib.labels import save_label_png

    ignored = 65535
    # Stored ground truth is the class index (CaR label - 1): 0 wall, 255 pier, 300, 846 adding machine.
    truths = {
        "ADE_val_00000001": np.array([[ignored] * 4, [0, 0, 255, 255], [300, 300, 846, 846], [300, 300, 846, 846]]),
        "ADE_val_00000002": np.array([[846] * 4, [846] * 4, [846] * 4, [255] * 4]),
    }
    # CaR labels (class index + 1). Row 0 of the first image is unlabelled: whatever is predicted there is not scored.
    predictions = {
        "ADE_val_00000001": np.array([[847, 847, 0, 5], [1, 1, 256, 0], [301, 301, 847, 847], [301, 256, 847, 847]]),
        "ADE_val_00000002": np.array([[847] * 4, [847] * 4, [847] * 4, [256, 256, 1, 0]]),
    }
    data = _write_ade847(tmp_path / "data", truths)
    out = tmp_path / "run"
    folder = out / "predictions"
    folder.mkdir(parents=True)
    for sample_id, labels in predictions.items():  # a finished run: the harness reads these back instead of running CaR
        assert save_label_png(labels, folder / f"{sample_id}.png") == "gray-16bit"
        (folder / f"{sample_id}.json").write_text("{}")
    assert main(["eval", "--preset", "ade847", "--data-root", str(data), "--out", str(out), "--model", "shapes",
                 "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 2 and metrics["errors"] == []
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (848, 848)
    assert not matrix[0].any() and not matrix[:, 0].any()  # ignore_background: label 0 is never scored
    # By hand (pixels predicted 0 drop out): wall 2 right, 1 pier pixel taken for wall -> IoU 2/3;
    # pier 3 right, 1 called wall, 1 label-301 pixel called pier -> 3/5; label 301: 3 of 4 -> 3/4; 847: 16 of 16.
    assert (matrix[1, 1], matrix[256, 256], matrix[256, 1], matrix[301, 301], matrix[301, 256], matrix[847, 847]) == (
        2, 3, 1, 3, 1, 16)
    assert matrix.sum() == 26
    iou = metrics["per_class_iou"]
    assert len(iou) == 848
    assert iou["wall"] == pytest.approx(2 / 3) and iou["pier"] == pytest.approx(3 / 5)
    assert iou["adding machine"] == pytest.approx(1.0)
    assert metrics["present_in_ground_truth"] == ["wall", "pier", open_dataset("ade847", data).class_names[300],
                                                  "adding machine"]
    assert metrics["mIoU"] == pytest.approx((2 / 3 + 3 / 5 + 3 / 4 + 1) / 4)
    assert metrics["pixel_accuracy"] == pytest.approx(24 / 26)
    assert "| pier | 60.00 |" in (out / "report.md").read_text()


@pytest.mark.slow  # about 80 s on 2 CPU cores: 264 queries through the recurrence
def test_eval_runs_car_with_labels_above_255_and_resumes_from_its_16_bit_predictions(tmp_path):
    from carlib.evaluation.benchmark import evaluate
    from carlib.presets import get_preset
    from carlib.vocabularies import ClassVocabulary

    scenes = export_voc(tmp_path / "scene", split="test", n=1, seed=5)
    names = (scenes / "class_names.txt").read_text().splitlines()[1:]  # the scene's K classes, background dropped
    (sample_id,) = (scenes / "ImageSets/Segmentation/val.txt").read_text().split()
    voc_truth = np.asarray(Image.open(scenes / "SegmentationClass" / f"{sample_id}.png")).astype(np.int64)
    # ShapesWorld class k becomes ADE-847 class index 255 + k (CaR label 256 + k); its surfaces are unlabelled.
    truth = np.where((voc_truth == 0) | (voc_truth == 255), 65535, 255 + voc_truth)
    image = np.asarray(Image.open(scenes / "JPEGImages" / f"{sample_id}.jpg").convert("RGB"))
    data = _write_ade847(tmp_path / "data", {sample_id: truth}, {sample_id: image})
    # 256 words the model never saw, then its own class names: what it finds gets labels above 256.
    queries = tuple(f"thing number {index}" for index in range(256)) + tuple(names)
    shapes = get_preset("shapes").settings
    preset = get_preset("ade847").replace(
        vocabulary=ClassVocabulary("ade847_shapes", queries, queries, "test"), things_stuff=None,
        settings=shapes.replace(templates=shapes.templates[:1], background=("grass", "sky", "water", "sand")),
    )
    out = tmp_path / "run"
    first = evaluate(preset, data, out, model="shapes", progress=False)
    predicted = np.asarray(Image.open(out / "predictions" / f"{sample_id}.png")).astype(np.int64)
    with Image.open(out / "predictions" / f"{sample_id}.png") as png:
        assert png.mode.startswith("I;16")
    kept = {index + 1 for index in json.loads((out / "predictions" / f"{sample_id}.json").read_text())["all"]["kept"]}
    assert predicted.max() > 256 and set(np.unique(predicted)) <= {0} | kept
    assert len(first.metrics["confusion_matrix"]) == 848
    # Recomputed from the written label map and the TIFF, outside the harness.
    scored = truth != 65535
    matrix = ConfusionMatrix(848)
    matrix.update(predicted[scored], truth[scored] + 1)
    matrix.matrix[0, :] = 0
    matrix.matrix[:, 0] = 0
    assert first.metrics["mIoU"] == pytest.approx(matrix.miou())
    assert first.metrics["mIoU"] > 0.3  # a trained model finding its classes among 264 words
    resumed = evaluate(preset, data, out, model="shapes", progress=False)  # reads the 16-bit PNG back, runs nothing
    assert resumed.metrics["confusion_matrix"] == first.metrics["confusion_matrix"]
    assert resumed.model_seconds == 0.0


def test_eval_runs_are_compared_with_table_1_as_paper_numbers_md_transcribes_it():
    """The eval report's 'paper' number comes from the registry and equals Table 1 as paper-numbers.md
    transcribes it (parsed here, not copied)."""
    from carlib.evaluation.reproduce import EvalRun, published_for_run

    text = (Path(__file__).resolve().parent / "paper-numbers.md").read_text()  # the reference's verbatim copy
    lines = text.split("## Zero-shot semantic segmentation (Table 1)")[1].strip().splitlines()
    headers = [cell.strip() for cell in lines[0].strip("|").split("|")]
    values = [float(cell) for cell in lines[2].strip("|").split("|")]
    table = dict(zip(headers, values))
    runs = {"VOC-20": ("voc", True), "VOC-21": ("voc", False), "COCO-Object": ("coco_object", False),
            "Context-59": ("context", True), "Context-60": ("context", False), "ADE-150": ("ade150", False),
            "ADE-847": ("ade847", False), "Context-459": ("context459", False)}
    assert len(table) == 8
    for column, (preset, without_background) in runs.items():
        for post in ("crf", "none"):  # CaR's row whatever the post-processing, except SAM (its own rows)
            run = EvalRun(preset, "val", without_background=without_background, post=post)
            assert published_for_run(run) == {"headline": table[column]}, column
    sam_line = next(line for line in lines if line.startswith("CaR + SAM:"))
    sam = {name.strip(): float(value) for name, value in
           (part.rsplit(" ", 1) for part in sam_line.removeprefix("CaR + SAM:").rstrip(".").split(","))}
    presets = {"VOC-21": "voc", "COCO-Object": "coco_object", "Context-60": "context"}
    assert sam == {column: published_for_run(EvalRun(preset, post="sam"))["headline"]
                   for column, preset in presets.items()}
    assert published_for_run(EvalRun("ade150", post="sam")) == {}  # no published CaR + SAM number


def test_eval_with_sam_post_processing_equals_car_with_the_same_regions(shapes_voc, tmp_path, capsys):
    """`carlib eval --post sam`: every prediction is what CaR with the same region source paints, and the run says so."""
    from carlib.pipeline import car_from_preset, load_models
    from carlib.postprocess import ColourRegionMaskSource
    from carlib.presets import get_preset

    out = tmp_path / "run"
    assert main(_eval_command(shapes_voc, out) + ["--post", "sam", "--limit", "3"]) == 0
    assert "colour regions stand in for SAM" in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["post"] == "sam" and metrics["images"] == 3
    preset = get_preset("shapes")
    car = car_from_preset(preset, load_models(preset, "shapes"), post="sam", sam_source=ColourRegionMaskSource())
    crf = car_from_preset(preset, load_models(preset, "shapes"), post="crf")
    dataset = open_dataset("shapes", shapes_voc)
    differs = False
    for sample_id in dataset.ids()[:3]:
        image, _ = dataset.load(sample_id)
        expected = car.segment(image, list(dataset.class_names[1:])).label_map
        predicted = np.asarray(Image.open(out / "predictions" / f"{sample_id}.png"))
        np.testing.assert_array_equal(predicted, expected)
        differs |= not np.array_equal(expected, crf.segment(image, list(dataset.class_names[1:])).label_map)
    assert differs  # the region snapping changed something: the test would notice the CRF running instead


def test_every_eval_row_of_the_registry_is_what_a_run_of_its_own_command_is_compared_with():
    """Round trip: the run each registry command makes finds that row's published number (and no other)."""
    from carlib.evaluation.reproduce import EvalRun, published_for_run, registry_tables
    from carlib.presets import get_preset

    checked = 0
    for table in registry_tables().values():
        for row in table.rows:
            if row.command is None or row.command.app != "eval":
                continue
            run = EvalRun.of(row.command)
            semantic = get_preset(run.preset).settings.mode == "semantic"
            assert published_for_run(run, semantic)[row.metric or "headline"] == row.published, row.label
            checked += 1
    assert checked >= 40  # Table 1 (14), Table 7 (13), the other methods (15)
    # Referring runs compare the split and whose split of the refs; semantic ones do not.
    assert published_for_run(EvalRun("refcocog", "val"), semantic=False) == {"headline": 36.67}
    assert published_for_run(EvalRun("refcocog", "val", split_by="google"), semantic=False) == {"headline": 36.63}
    assert published_for_run(EvalRun("refcoco", "testB"), semantic=False) == {"headline": 30.51}
    assert published_for_run(EvalRun("refcoco", "train"), semantic=False) == {}
    assert published_for_run(EvalRun("refdavis17"), semantic=False) == {"J&F": 30.34, "J": 28.15, "F": 32.53}
    assert published_for_run(EvalRun("voc", "train")) == {"headline": 67.6}
    assert published_for_run(EvalRun("voc", method="sclip", without_background=True)) == {"headline": 80.4}
    assert published_for_run(EvalRun("voc", method="maskclip", without_background=True)) == {}
    assert published_for_run(EvalRun("shapes")) == {}


def test_post_sam_with_real_clip_and_no_checkpoint_names_the_flag():
    import argparse
    from types import SimpleNamespace

    from carlib.apps.options import sam_source_from_options
    from carlib.presets import get_preset

    args = argparse.Namespace(sam_checkpoint=None, sam_points_per_side=None, device=None)
    real_clip = SimpleNamespace(proposal=SimpleNamespace(name="ViT-B-16"))
    with pytest.raises(ValueError, match="--sam-checkpoint"):
        sam_source_from_options("eval", "sam", args, real_clip, get_preset("voc"))
    assert sam_source_from_options("eval", "crf", args, real_clip, get_preset("voc")) is None
