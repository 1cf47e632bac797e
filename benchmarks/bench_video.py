"""Referring video on the moving ShapesWorld: J, F, J&F and seconds per frame of `carlib eval --preset refdavis17`.

Usage: python benchmarks/bench_video.py [--clips 20] [--frames 8] [--seed 0] [--expression-sets SET ...]

Exports moving-ShapesWorld test clips in the Ref-DAVIS17 layout (offline,
``carlib world export --video``), then runs the evaluation with the
ShapesWorld CLIP in one process: every frame, one CaR run per object and
expression set (an expression two sets share runs once), dense CRF. Prints
the figures per expression set, their mean, the toolkit's unsupervised
matching, and the wall time per frame (model loading excluded).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from carlib.evaluation.benchmark import evaluate
from carlib.pipeline import load_models
from carlib.presets import get_preset
from carlib.world.export import export_refdavis


def _cpu() -> str:
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        return names[0] if names else platform.processor()
    except OSError:
        return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--expression-sets", nargs="+", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        data = export_refdavis(Path(scratch) / "clips", split="test", n=args.clips, seed=args.seed,
                               frames=args.frames)
        preset = get_preset("refdavis17")
        models = load_models(preset, "shapes")
        print(f"{_cpu()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
              f"{args.clips} test clips x {args.frames} frames (seed {args.seed}), preset refdavis17, "
              f"the ShapesWorld CLIP\n")
        out = Path(scratch) / "run"
        summary = evaluate(preset, data, out, models=models, progress=False, expression_sets=args.expression_sets)
        metrics = json.loads((out / "metrics.json").read_text())
        records = sorted((out / "predictions" / "records").glob("*/*.json"))
        runs = []
        for path in records:
            record = json.loads(path.read_text())
            runs.append(len({tuple(entry["queries"]) for by_object in record["objects"].values()
                             for entry in by_object.values()}))
        print("| expression set | J | F | J&F | objects | frames |")
        print("|---|---|---|---|---|---|")
        for name, figures in metrics["per_set"].items():
            print(f"| {name} | {figures['J']:.3f} | {figures['F']:.3f} | {figures['J&F']:.3f} | "
                  f"{figures['objects']} | {figures['frames']} |")
        print(f"| **mean** | **{metrics['J']:.3f}** | **{metrics['F']:.3f}** | **{metrics['J&F']:.3f}** | | |\n")
        matched = metrics["unsupervised_task"]
        print(f"unsupervised-task matching: J {matched['J']:.3f}, F {matched['F']:.3f}, J&F {matched['J&F']:.3f}")
        print(f"{summary.images} frames in {summary.seconds:.1f} s: {summary.seconds / summary.images:.3f} s per frame "
              f"({summary.model_busy * 100:.0f} % in the recurrences), {sum(runs) / max(len(runs), 1):.2f} "
              "distinct expressions (CaR runs) per frame")


if __name__ == "__main__":
    main()
