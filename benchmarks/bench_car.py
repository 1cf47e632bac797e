"""Seconds per stage, ViT passes per step and peak memory of CaR on one 500x500 image.

Usage:
    python benchmarks/bench_car.py                      # the headline: 20 VOC queries, 2 steps, CRF
    python benchmarks/bench_car.py --grid               # also 1/5/20 queries x 1/3 steps, per step
    python benchmarks/bench_car.py --device cuda --precision fp16
    python benchmarks/bench_car.py --amp bf16           # the headline in fp32 and under bf16 autocast, and
                                                        # their agreement on the 200 ShapesWorld test scenes

Real architectures with random weights (speed does not depend on the
weights): ViT-B/16 proposals, ViT-L/14 classifier, VOC's η/λ, prompts and 15
templates. Every run builds a new CaR, so its caches start cold, as they do
for a new image and a new vocabulary.

How the number of steps is fixed: θ = 0 keeps every query, so a 2-step run
sees all its queries twice and stops (the worst case of a typical VOC image).
For a 3-step run the classifier drops the last alive query after scoring at
each step (a wrapper; the scores are computed in full), so the survivor count
keeps shrinking until ``max_steps``. One query cannot shrink: it stops at 2.

The floor printed beside the classifier stage is the cost of the prompted
images it had to encode, each seen once, as plain ``encode_image`` passes of
the same ViT-L/14 in batches of 16, timed in the same run.

``--amp bf16`` (or fp16 on CUDA) runs the headline a second time under that
autocast, with new CaRs and caches, and prints both beside each other with the
speed-up per stage; then it runs CaR with the ShapesWorld CLIP on the 200
held-out test scenes in fp32 and under the autocast
(:func:`carlib.evaluation.agreement.compare_precisions_on_world`) and prints
what changed: the share of scenes whose kept query set is unchanged, the
share of label-map pixels unchanged, the mIoU under each and the largest
change of a step-1 classifier score.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from collections import Counter

import numpy as np
import torch
from PIL import Image

import carlib
from carlib.car import CaR
from carlib.precision import AMP_CHOICES, amp_name, autocast_for, cpu_bf16_support, resolve_amp
from carlib.classifier import MaskClassifier
from carlib.presets import get_preset
from carlib.proposals import PROPOSAL_STAGES
from carlib.vocabularies import VOC_CLASSES


class CountingProposals:
    """Forwards to a proposal stage and records, per call (= per step), how many passes of each kind it ran."""

    def __init__(self, stage):
        self.stage, self.per_step = stage, []

    def propose(self, image, texts, settings):
        before, texts_before = Counter(self.stage.passes), self.stage.texts.encoded
        maps = self.stage.propose(image, texts, settings)
        passes = Counter(self.stage.passes) - before
        passes["texts"] = self.stage.texts.encoded - texts_before
        self.per_step.append(passes)
        return maps


class CountingClassifier:
    """Forwards to a MaskClassifier, records its passes per step; with ``drop_last``, the last alive query dies."""

    def __init__(self, classifier, drop_last: bool):
        self.classifier, self.drop_last, self.per_step = classifier, drop_last, []

    def classify(self, images, queries, settings):
        before, texts_before, text_seconds = Counter(self.classifier.passes), self.classifier.texts.encoded, \
            self.classifier.texts.seconds
        matrix = self.classifier.classify(images, queries, settings)
        passes = Counter(self.classifier.passes) - before
        passes["texts"] = self.classifier.texts.encoded - texts_before
        self.per_step.append((passes, self.classifier.texts.seconds - text_seconds))
        if self.drop_last and len(queries) > 1:
            matrix = matrix.copy()
            matrix[len(queries) - 1, len(queries) - 1] = 0.0
        return matrix


def run(proposal, classifier, image, queries, steps: int, post: str) -> dict:
    """One CaR run with cold caches; per-step passes and seconds."""
    settings = get_preset("voc").settings.replace(confidence_threshold=0.0, post=post, max_steps=steps)
    proposals = CountingProposals(PROPOSAL_STAGES[settings.proposal_method](proposal))
    classify = CountingClassifier(MaskClassifier(classifier), drop_last=steps > 2)
    car = CaR(proposal, classifier, settings, proposals=proposals, classifier=classify)
    start = time.perf_counter()
    result = car.segment(image, queries)
    _synchronize(proposal.device)
    total = time.perf_counter() - start
    return {"result": result, "total": total, "proposals": proposals.per_step, "classifier": classify.per_step}


def plain_passes_seconds(classifier, count: int, size: int, batch_size: int = 16) -> float:
    """Seconds for ``count`` plain ViT passes (``encode_image``) of preprocessed ``size`` x ``size`` pictures."""
    rng = np.random.default_rng(1)
    pictures = [classifier.preprocess(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))
                for _ in range(count)]
    start = time.perf_counter()
    with torch.no_grad():
        for first in range(0, count, batch_size):
            classifier.model.encode_image(torch.stack(pictures[first:first + batch_size])
                                          .to(classifier.device, classifier.dtype))
    _synchronize(classifier.device)
    return time.perf_counter() - start


def _synchronize(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def print_headline(report: dict, floor: float, machine: str) -> None:
    result = report["result"]
    images = sum(passes["images"] for passes, _ in report["classifier"])
    text_seconds = sum(seconds for _, seconds in report["classifier"])
    print(f"{machine}\n")
    print(f"CaR, 20 VOC queries, {result.num_steps} steps, {result.working_size[0]}x{result.working_size[1]}\n")
    print("| stage | seconds |")
    print("|---|---|")
    for stage, seconds in result.seconds.items():
        print(f"| {stage} | {seconds:.2f} |")
    print(f"| **total** | **{report['total']:.2f}** |")
    print(f"\nclassify: {result.seconds['classify']:.2f} s, of which text {text_seconds:.2f} s "
          f"({sum(p['texts'] for p, _ in report['classifier'])} texts, cold cache); "
          f"{images} prompted images encoded.")
    print(f"floor: {images} plain ViT-L/14 passes take {floor:.2f} s; classify / floor = "
          f"{result.seconds['classify'] / floor:.2f}")
    by_step = [step.seconds["proposals"] for step in result.steps]
    if len(by_step) > 1:
        print(f"proposals: step 1 {by_step[0]:.2f} s, step 2 {by_step[1]:.2f} s "
              f"({100 * by_step[1] / by_step[0]:.0f} % of step 1)")


def print_grid(reports: list[tuple[int, int, dict]]) -> None:
    print("\n| queries | max steps | step | alive | trunk passes (B/16 blocks 1..L-1) | CAM passes "
          "(last block fwd + batched bwd) | Sinkhorn + A² | texts encoded | prompted images encoded / reused "
          "| proposals s | prompts s | classify s | total s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for count, steps, report in reports:
        result = report["result"]
        for index, step in enumerate(result.steps):
            proposal = report["proposals"][index]
            classifier, _ = report["classifier"][index]
            total = f"{report['total']:.2f}" if index == 0 else ""
            print(f"| {count} | {steps} | {step.step} | {len(step.alive)} | {proposal['trunk']} | {proposal['maps']} "
                  f"| {proposal['affinity']} | {proposal['texts'] + classifier['texts']} "
                  f"| {classifier['images']} / {classifier['reused']} | {step.seconds['proposals']:.2f} "
                  f"| {step.seconds['prompts']:.2f} | {step.seconds['classify']:.2f} | {total} |")


def print_comparison(full: dict, low: dict, name: str) -> None:
    """The headline's stages in fp32 and under autocast, with the speed-up of each."""
    print(f"\n| stage | fp32 s | {name} s | speed-up |")
    print("|---|---|---|---|")
    for stage, seconds in full["result"].seconds.items():
        other = low["result"].seconds[stage]
        print(f"| {stage} | {seconds:.2f} | {other:.2f} | {seconds / max(other, 1e-9):.2f}x |")
    print(f"| **total** | **{full['total']:.2f}** | **{low['total']:.2f}** | **{full['total'] / low['total']:.2f}x** |")
    same = np.array_equal(full["result"].kept, low["result"].kept)
    print(f"\nkept queries {'unchanged' if same else 'CHANGED'} by {name} on this image (seeded weights: the "
          f"decisions mean nothing; the agreement below is measured on the trained ShapesWorld CLIP).")


def machine_line(args, threads: int) -> str:
    """The machine: CPU model name and its bf16 flags, threads, torch, device and precision."""
    name = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ", ".join(cpu_bf16_support()) or "no bf16 flags"
    line = (f"{name} ({flags}), {threads} CPU threads, torch {torch.__version__}, "
            f"{args.device} {args.precision}, post {args.post}")
    if args.device == "cuda":
        line += f", {torch.cuda.get_device_name()}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--post", default="crf", choices=["crf", "none"])
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--grid", action="store_true", help="also 1/5/20 queries x 1/3 steps (no CRF)")
    parser.add_argument("--amp", default="off", choices=AMP_CHOICES,
                        help="also run the headline under this autocast and compare (bf16 on CPU; auto is off on CPU)")
    parser.add_argument("--agreement-scenes", type=int, default=200,
                        help="ShapesWorld test scenes for the fp32-vs-autocast agreement (0: skip)")
    args = parser.parse_args()
    low_dtype = resolve_amp(args.device, args.amp)

    proposal = carlib.load_clip("ViT-B-16", device=args.device, precision=args.precision)
    classifier = carlib.load_clip("ViT-L-14", device=args.device, precision=args.precision)
    image = np.random.default_rng(0).integers(0, 256, size=(args.size, args.size, 3), dtype=np.uint8)
    warm_up = np.random.default_rng(9).integers(0, 256, size=(args.size, args.size, 3), dtype=np.uint8)
    run(proposal, classifier, warm_up, list(VOC_CLASSES[:2]), 1, args.post)  # allocator, kernels, tokenizer
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    headline = run(proposal, classifier, image, list(VOC_CLASSES), 2, args.post)
    images = sum(passes["images"] for passes, _ in headline["classifier"])
    floor = plain_passes_seconds(classifier, images, args.size)
    peak = (f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB GPU" if args.device == "cuda"
            else f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS")
    print_headline(headline, floor, machine_line(args, torch.get_num_threads()))
    print(f"peak memory: {peak}")
    if low_dtype is not None:
        name = amp_name(low_dtype)
        with autocast_for(args.device, args.amp):
            run(proposal, classifier, warm_up, list(VOC_CLASSES[:2]), 1, args.post)
            low = run(proposal, classifier, image, list(VOC_CLASSES), 2, args.post)
            low_floor = plain_passes_seconds(classifier, images, args.size)
        print_comparison(headline, low, name)
        print(f"floor: {images} plain ViT-L/14 passes take {floor:.2f} s in fp32, {low_floor:.2f} s under {name} "
              f"({floor / low_floor:.2f}x)")
        if args.agreement_scenes:
            from carlib.evaluation.agreement import compare_precisions_on_world
            from carlib.pipeline import load_models
            from carlib.presets import get_preset

            shapes = load_models(get_preset("shapes"), "shapes", device=args.device)
            agreement = compare_precisions_on_world(args.agreement_scenes, args.amp, models=shapes, progress=False)
            print(f"\nCaR (shapes preset, ShapesWorld CLIP, dense CRF) on {agreement.scenes} held-out test scenes, "
                  f"fp32 against {name} autocast ({agreement.seconds['fp32']:.1f} s and "
                  f"{agreement.seconds[name]:.1f} s):\n")
            print("\n".join(agreement.lines()))
            if agreement.changed_scenes:
                print(f"scenes whose kept set changed: {agreement.changed_scenes}")
    if args.grid:
        reports = [(count, steps, run(proposal, classifier, image, list(VOC_CLASSES[:count]), steps, "none"))
                   for count in (1, 5, 20) for steps in (1, 3)]
        print_grid(reports)


if __name__ == "__main__":
    main()
