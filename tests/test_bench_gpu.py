"""benchmarks/bench_gpu.py without a GPU: its no-GPU exit, its table, its sections' scheduling, and its
measurement code run on CPU with the ShapesWorld CLIP (fp32, and fp16 weights cast by hand, since
load_clip refuses fp16 on CPU). No GPU figure is produced or checked here."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import carlib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_gpu  # noqa: E402


@pytest.fixture(scope="module")
def shapes() -> carlib.ClipBundle:
    return carlib.load_clip("shapes")


def _half(bundle: carlib.ClipBundle) -> carlib.ClipBundle:
    half = copy.copy(bundle)
    half.model = copy.deepcopy(bundle.model).half()
    half.dtype = torch.float16
    return half


def test_without_a_gpu_it_says_so_and_exits_0():
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py")], env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == bench_gpu.NO_GPU_MESSAGE
    assert "no CUDA GPU is present" in done.stdout


@pytest.mark.slow
def test_the_car_measurement_runs_in_fp32_and_fp16_weights_on_cpu(shapes):
    queries = ["orange", "kite", "tent"]
    full = bench_gpu.measure_car(shapes, shapes, device="cpu", setting="fp32", size=64, queries=queries, repeats=1)
    half_bundle = _half(shapes)
    half = bench_gpu.measure_car(half_bundle, half_bundle, device="cpu", setting="fp16 weights", size=64,
                                 queries=queries, repeats=1)
    for row in (full, half):
        assert row.ms_per_image > 0 and row.images_per_second == pytest.approx(1000 / row.ms_per_image)
        assert set(row.stages_ms) == {"proposals", "prompts", "classify", "post"}
        assert row.peak_gib is None  # GPU memory only
        assert row.note == "2 steps"  # theta = 0 holds every run at exactly 2 steps
    # The fp16 weights really computed in half: CaR's scores move, by half-precision amounts.
    from carlib.car import CaR
    from carlib.presets import get_preset

    image = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    settings = get_preset("voc").settings.replace(confidence_threshold=0.0, max_steps=2)
    scores = [CaR(b, b, settings).segment(image, queries).steps[0].scores for b in (shapes, half_bundle)]
    assert 0 < np.abs(scores[0] - scores[1]).max() < 2e-2
    assert next(half_bundle.model.parameters()).dtype == torch.float16


@pytest.mark.slow
def test_the_eval_measurement_runs_on_cpu(tmp_path):
    from carlib.world.export import export_voc

    data = export_voc(tmp_path / "voc", split="test", n=3, seed=7)
    row = bench_gpu.measure_eval(data, tmp_path / "run", workers=0, device="cpu")
    assert row.setting == "--workers 0, --amp auto" and row.images_per_second > 0
    assert "model busy" in row.note and "mIoU" in row.note
    default = bench_gpu.measure_eval(data, tmp_path / "run-default", workers=None, device="cpu")
    assert default.setting.startswith("--workers 0 (the GPU default)")  # on CPU the default is no workers


def test_the_table():
    rows = [bench_gpu.Row("CaR", "fp16 weights", ms_per_image=81.25, images_per_second=12.3, peak_gib=3.456,
                          stages_ms={"proposals": 30.4, "post": 20.6}, note="2 steps"),
            bench_gpu.Row("photo", "fp32", ms_per_image=9000.0, peak_gib=3.2, peak_kind="RSS")]
    assert bench_gpu.format_table(rows, "H100").splitlines() == [
        "H100",
        "",
        "| measurement | setting | ms per image | images / s | peak memory GiB | stages (ms) | note |",
        "|---|---|---|---|---|---|---|",
        "| CaR | fp16 weights | 81.2 | 12.30 | 3.46 GPU | proposals 30, post 21 | 2 steps |",
        "| photo | fp32 | 9000.0 |  | 3.20 RSS |  |  |",
    ]


def test_sections_past_the_time_limit_are_not_started(monkeypatch, capsys):
    monkeypatch.setattr(bench_gpu, "gpu_available", lambda: True)
    assert bench_gpu.main(["--max-minutes", "0"]) == 0
    out = capsys.readouterr().out
    assert "| measurement | setting |" in out
    for section in ("CaR fp32", "CaR fp16 weights", "CaR fp32 weights, --amp fp16", "carlib eval", "12 MP photo"):
        assert f"{section} (not started" in out
