"""Throughput of `carlib eval`: images per second and how busy the model is, with and without worker processes.

Usage: python benchmarks/bench_eval.py [--images 40] [--workers 0 1 2] [--model shapes|openai] [--amp auto]

Exports ShapesWorld test scenes in the VOC layout (offline), then runs the
evaluation once per worker count into a fresh folder each time. ``model
busy`` is the share of the wall time the main process spent in the
recurrences; what is left is reading, CRF and writing that did not overlap.
With ``--model openai`` the scenes are upscaled to 480 x 480 in VOC2012's
layout and the ``voc`` preset runs on the real architectures (seeded random weights unless real ones
are on disk: run ``make weights-random`` first).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch
from PIL import Image

from carlib.evaluation.benchmark import evaluate
from carlib.world.export import export_voc


def as_voc2012(exported: Path, root: Path, side: int) -> Path:
    """The exported scenes in VOC2012's own layout at ``side`` x ``side`` (labels nearest), for the ``voc`` preset.

    The ShapesWorld class ids become VOC ids, so the mIoU means nothing; the
    run measures throughput on VOC-sized pictures through the real architectures.
    """
    voc = root / "VOCdevkit" / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "SegmentationClass").mkdir()
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    ids = []
    for image in sorted((exported / "JPEGImages").glob("*.jpg")):
        ids.append(image.stem)
        Image.open(image).resize((side, side), Image.BICUBIC).save(voc / "JPEGImages" / image.name, quality=95)
        label = Image.open(exported / "SegmentationClass" / f"{image.stem}.png")
        label.resize((side, side), Image.NEAREST).save(voc / "SegmentationClass" / f"{image.stem}.png")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="shapes", choices=["shapes", "openai"])
    parser.add_argument("--amp", default="auto")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        data = export_voc(Path(scratch) / "voc", split="test", n=args.images, seed=7)
        preset = "shapes" if args.model == "shapes" else "voc"
        if args.model == "openai":
            data = as_voc2012(data, Path(scratch) / "voc2012", 480)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        print(f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}, {device}, "
              f"preset {preset}, model {args.model}, amp {args.amp}, {args.images} images\n")
        print("| workers | seconds | images / s | model busy | mIoU |")
        print("|---|---|---|---|---|")
        for workers in args.workers:
            out = Path(scratch) / f"run{workers}"
            summary = evaluate(preset, data, out, model=args.model, progress=False, workers=workers, amp=args.amp)
            metrics = json.loads((out / "metrics.json").read_text())
            print(f"| {workers} | {summary.seconds:.1f} | {summary.images / summary.seconds:.3g} "
                  f"| {100 * summary.model_busy:.0f} % | {metrics['mIoU']:.6f} |", flush=True)


if __name__ == "__main__":
    main()
