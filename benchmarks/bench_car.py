"""Seconds per stage and peak memory of CaR on one 500x500 image with the 20 VOC class names.

Usage: python benchmarks/bench_car.py [--device cpu|cuda] [--precision fp32|fp16] [--post crf|none]

Real architectures with random weights (speed does not depend on the
weights): ViT-B/16 proposals, ViT-L/14 classifier, VOC's η/λ and prompts.
The recurrence is fixed at exactly 2 steps with all 20 queries alive in both:
θ = 0 keeps every query (so step 2 sees 20 again and the loop stops), which is
the worst case of a typical VOC image. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np
import torch

import carlib
from carlib.car import CaR
from carlib.presets import get_preset
from carlib.vocabularies import VOC_CLASSES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--post", default="crf", choices=["crf", "none"])
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args()

    preset = get_preset("voc")
    proposal = carlib.load_clip("ViT-B-16", device=args.device, precision=args.precision)
    classifier = carlib.load_clip("ViT-L-14", device=args.device, precision=args.precision)
    # θ = 0 keeps every query, so step 2 sees all 20 again and the loop stops there.
    car = CaR(proposal, classifier, preset.settings.replace(confidence_threshold=0.0, post=args.post, max_steps=2))
    image = np.random.default_rng(0).integers(0, 256, size=(args.size, args.size, 3), dtype=np.uint8)
    car.segment(image, list(VOC_CLASSES[:2]))  # warm-up: allocator, kernels, tokenizer
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = car.segment(image, list(VOC_CLASSES))
    if args.device == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    peak = (
        f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB GPU"
        if args.device == "cuda"
        else f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS"
    )
    machine = f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}"
    if args.device == "cuda":
        machine += f", {torch.cuda.get_device_name()}"
    print(f"CaR, {args.size}x{args.size}, 20 VOC queries, {result.num_steps} steps, "
          f"{args.device} {args.precision} ({machine})\n")
    print("| stage | seconds |")
    print("|---|---|")
    for stage, seconds in result.seconds.items():
        print(f"| {stage} | {seconds:.2f} |")
    print(f"| **total** | **{total:.2f}** |")
    print(f"\npeak memory: {peak}")


if __name__ == "__main__":
    main()
