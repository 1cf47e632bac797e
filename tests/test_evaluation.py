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

import numpy as np
import pytest
from PIL import Image

from carlib.cli import main
from carlib.datasets import open_dataset
from carlib.metrics import ConfusionMatrix
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


def test_torchrun_with_two_processes_equals_one(shapes_voc, tmp_path):
    single = tmp_path / "single"
    assert main(_eval_command(shapes_voc, single)) == 0
    sharded = tmp_path / "sharded"
    torchrun = Path(sys.executable).parent / "torchrun"
    completed = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "carlib", *_eval_command(shapes_voc, sharded)],
        env=_environment(), capture_output=True, text=True, timeout=300,
    )
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
