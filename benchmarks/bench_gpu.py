"""GPU figures in one run: CaR per image in fp32 and fp16, `carlib eval` throughput, and a 12 MP photo.

Usage:
    make bench-gpu
    python benchmarks/bench_gpu.py [--scenes 200] [--repeats 3] [--skip-photo] [--max-minutes 8]

Without a CUDA GPU it says so and exits 0: nothing here is meaningful on CPU.

What it measures, on the first CUDA device:

1. CaR on a 500 x 500 image with the 20 VOC queries, ViT-B/16 proposals and a
   ViT-L/14 classifier (seeded random weights: speed and memory do not depend
   on the weights), VOC's settings with θ = 0 so that every run is exactly 2
   steps with all 20 queries, dense CRF on the CPU. Three ways: fp32 weights,
   fp16 weights (``load_clip(precision="fp16")``), and fp32 weights under
   fp16 autocast (``--amp fp16``). Each runs once to warm up (kernels, the
   text embeddings of the vocabulary, as in an evaluation), then on
   ``--repeats`` other images; the median milliseconds per image, the stage
   split and the peak GPU memory (``torch.cuda.max_memory_allocated``).
2. ``carlib eval`` on 200 ShapesWorld test scenes exported in the VOC layout
   (the ``shapes`` preset and model, ``--amp auto``), with ``--workers 0`` and
   with the GPU default (half the cores, at most 4): images per second and the
   share of the time the models were busy.
3. ``carlib segment`` on a 12 MP phone photo (benchmarks/bench_photo.py's
   photo, ViT-B/16 + ViT-L/14 with seeded weights, the ``voc`` preset), one
   fresh process: seconds from start to exit and its peak RSS.

It prints one markdown table with the card's name. It stops starting new
sections once ``--max-minutes`` have passed (8 by default), and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
NO_GPU_MESSAGE = ("bench_gpu: no CUDA GPU is present (torch.cuda.is_available() is False), so nothing was "
                  "measured; run `make bench-gpu` on a machine with a GPU. CPU figures: `make bench`.")


@dataclass
class Row:
    """One line of the table: a measurement and its figures (None where it does not apply)."""

    measurement: str
    setting: str
    ms_per_image: Optional[float] = None
    images_per_second: Optional[float] = None
    peak_gib: Optional[float] = None
    peak_kind: str = "GPU"
    stages_ms: dict[str, float] = field(default_factory=dict)
    note: str = ""


def gpu_available() -> bool:
    """Whether a CUDA GPU is present for torch."""
    return torch.cuda.is_available()


def synchronize(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> Optional[float]:
    """Peak memory allocated on the GPU since the last reset, GiB; None on CPU."""
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return None


def measure_car(proposal, classifier, *, device: str, setting: str, size: int = 500, queries: Optional[list] = None,
                repeats: int = 3, amp: str = "off", steps: int = 2) -> Row:
    """CaR per image with the given bundles: a warm-up, then ``repeats`` images; the median and the stage split.

    Arguments:
        proposal, classifier: loaded :class:`carlib.models.ClipBundle` s (any dtype).
        device: where they are (peak memory is read only for CUDA).
        setting: the row's label (``"fp32"``, ``"fp16 weights"``...).
        size: image side in pixels.
        queries: the texts (default: the 20 VOC class names).
        repeats: timed images after the warm-up.
        amp: autocast around each run (:mod:`carlib.precision`).
        steps: the recurrence is held at exactly this many steps (θ = 0).
    """
    from carlib.car import CaR
    from carlib.precision import autocast_for
    from carlib.presets import get_preset
    from carlib.vocabularies import VOC_CLASSES

    queries = list(queries or VOC_CLASSES)
    settings = get_preset("voc").settings.replace(confidence_threshold=0.0, max_steps=steps)
    car = CaR(proposal, classifier, settings)
    images = [np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
              for seed in range(repeats + 1)]
    with autocast_for(device, amp):
        car.segment(images[0], queries)  # kernels, allocator, the vocabulary's text embeddings
        synchronize(device)
        reset_peak(device)
        totals, stages = [], []
        for image in images[1:]:
            start = time.perf_counter()
            result = car.segment(image, queries)
            synchronize(device)
            totals.append(time.perf_counter() - start)
            stages.append(result.seconds)
    median = statistics.median(totals)
    split = {stage: 1000 * statistics.median(run[stage] for run in stages) for stage in stages[0]}
    return Row("CaR, 500 x 500, 20 queries, 2 steps + CRF" if size == 500 else f"CaR, {size} x {size}, "
               f"{len(queries)} queries, {steps} steps + CRF", setting, ms_per_image=1000 * median,
               images_per_second=1 / median, peak_gib=peak_gib(device), stages_ms=split,
               note=f"{result.num_steps} steps")


def measure_eval(data: Path, out: Path, *, workers: Optional[int], device: str, amp: str = "auto") -> Row:
    """One ``carlib eval`` run of the ``shapes`` preset on the exported scenes: images per second, model busy."""
    from carlib.evaluation.benchmark import evaluate
    from carlib.evaluation.overlap import default_workers

    reset_peak(device)
    summary = evaluate("shapes", data, out, model="shapes", device=device, progress=False, workers=workers, amp=amp)
    metrics = json.loads((out / "metrics.json").read_text())
    used = default_workers(device) if workers is None else workers
    label = f"--workers {used}" + (" (the GPU default)" if workers is None else "")
    return Row(f"carlib eval, {summary.images} ShapesWorld scenes, shapes preset", f"{label}, --amp {amp}",
               ms_per_image=1000 * summary.seconds / summary.images,
               images_per_second=summary.images / summary.seconds, peak_gib=peak_gib(device),
               note=f"model busy {100 * summary.model_busy:.0f} %, mIoU {metrics['mIoU']:.4f}")


def measure_photo(scratch: Path, megapixels: float = 12.0) -> Row:
    """``carlib segment`` on a 12 MP phone photo with real architectures (seeded weights), one fresh process."""
    import subprocess

    sys.path.insert(0, str(HERE))
    from bench_photo import make_phone_photo, run_segment

    photo = scratch / "phone.jpg"
    make_phone_photo(photo, megapixels)
    environment = {**os.environ, "CARLIB_WEIGHTS_DIR": str(scratch / "weights"), "HF_HUB_OFFLINE": "1"}
    for name in ("ViT-B-16", "ViT-L-14"):
        subprocess.run([sys.executable, "-m", "carlib", "weights", "--model", name, "--random-seed", "0"],
                       env=environment, check=True, capture_output=True)
    out = scratch / "photo-out"
    seconds, peak_rss = run_segment([str(photo), "--queries", "cat, dog", "--model", "openai", "--preset", "voc",
                                     "--out", str(out), "--no-progress"], environment, scratch / "photo.log")
    record = json.loads((out / "result.json").read_text())
    working = record["working_size"]
    return Row(f"carlib segment, {megapixels:g} MP photo, 2 queries (whole process)", "fp32, --amp auto",
               ms_per_image=1000 * seconds, peak_gib=peak_rss, peak_kind="RSS",
               stages_ms={stage: 1000 * value for stage, value in record["seconds"].items()},
               note=f"recurrence at {working[1]} x {working[0]}, amp {record.get('amp', 'off')}")


def format_table(rows: list[Row], machine: str) -> str:
    """The rows as one markdown table, with the machine above it."""
    def number(value: Optional[float], digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    lines = [machine, "", "| measurement | setting | ms per image | images / s | peak memory GiB | stages (ms) | note |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        stages = ", ".join(f"{stage} {value:.0f}" for stage, value in row.stages_ms.items())
        peak = "" if row.peak_gib is None else f"{row.peak_gib:.2f} {row.peak_kind}"
        lines.append(f"| {row.measurement} | {row.setting} | {number(row.ms_per_image, 1)} "
                     f"| {number(row.images_per_second, 2)} | {peak} | {stages} | {row.note} |")
    return "\n".join(lines)


def machine_line(device: str) -> str:
    """The card (name, memory), the CPU's core count and torch's version."""
    parts = [f"torch {torch.__version__}", f"{os.cpu_count()} CPU cores"]
    if str(device).startswith("cuda") and torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(torch.device(device).index or 0)
        parts.insert(0, f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB")
    return ", ".join(parts)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=200, help="ShapesWorld scenes for the eval throughput")
    parser.add_argument("--repeats", type=int, default=3, help="timed CaR images per precision")
    parser.add_argument("--skip-photo", action="store_true", help="leave out the 12 MP photo")
    parser.add_argument("--max-minutes", type=float, default=8.0, help="start no new section after this long")
    args = parser.parse_args(argv)
    if not gpu_available():
        print(NO_GPU_MESSAGE)
        return 0

    import carlib
    from carlib.world.export import export_voc

    device = "cuda"
    started = time.perf_counter()
    rows: list[Row] = []
    skipped: list[str] = []

    def in_time(section: str) -> bool:
        minutes = (time.perf_counter() - started) / 60
        if minutes > args.max_minutes:
            skipped.append(f"{section} (not started: {minutes:.1f} min had passed)")
            return False
        print(f"bench_gpu: {section} ({minutes:.1f} min so far)", file=sys.stderr, flush=True)
        return True

    for setting, precision, amp in (("fp32", "fp32", "off"), ("fp16 weights", "fp16", "off"),
                                    ("fp32 weights, --amp fp16", "fp32", "fp16")):
        if not in_time(f"CaR {setting}"):
            continue
        proposal = carlib.load_clip("ViT-B-16", device=device, precision=precision, seed=0)
        classifier = carlib.load_clip("ViT-L-14", device=device, precision=precision, seed=0)
        rows.append(measure_car(proposal, classifier, device=device, setting=setting, repeats=args.repeats, amp=amp))
        del proposal, classifier
        torch.cuda.empty_cache()
    with tempfile.TemporaryDirectory(prefix="carlib-bench-gpu-") as scratch:
        scratch = Path(scratch)
        if in_time("carlib eval"):
            data = export_voc(scratch / "voc", split="test", n=args.scenes, seed=7)
            for workers in (0, None):
                if in_time(f"carlib eval --workers {'default' if workers is None else workers}"):
                    rows.append(measure_eval(data, scratch / f"eval-{workers}", workers=workers, device=device))
        if not args.skip_photo and in_time("12 MP photo"):
            rows.append(measure_photo(scratch))
    print(format_table(rows, machine_line(device)))
    minutes = (time.perf_counter() - started) / 60
    print(f"\nwhole run: {minutes:.1f} min" + (f"; not run: {', '.join(skipped)}" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
