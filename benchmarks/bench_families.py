"""Seconds per 500 x 500 image for each VLM family in each stage of CaR (seeded real architectures).

Usage:
    python benchmarks/bench_families.py                         # every family, CPU fp32
    python benchmarks/bench_families.py --families EVA02-B-16 convnext_base
    python benchmarks/bench_families.py --device cuda --precision fp16

For each family (``carlib models``): the proposal stage alone (Grad-CAM of 20
VOC queries against VOC's background words, with CLIP-ES where the tower has
attention), the classifier stage alone (20 prompted images against 20 queries
under VOC's 15 templates, text embeddings cached first, as after CaR's first
step), and CaR with the family in both stages (2 steps, θ = 0 so every query
is seen twice, no CRF). Speed does not depend on the weights, so the weights
are random; text towers are timed only through the cached embeddings.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import carlib
from carlib.car import CaR
from carlib.classifier import MaskClassifier
from carlib.presets import get_preset
from carlib.proposals import GradCamProposals
from carlib.towers import FAMILIES
from carlib.vocabularies import VOC_CLASSES
from carlib.world.train import cpu_name


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(name: str, image: np.ndarray, device: str, precision: str) -> dict:
    """Seconds for the proposal stage, the classifier stage and CaR, with ``name`` in both stages."""
    bundle = carlib.load_clip(name, None, device=device, precision=precision, seed=0)
    if isinstance(bundle.tokenizer, carlib.models.MissingTokenizer):
        # SigLIP's Hugging Face tokenizer is not on this machine: token ids stand in (the text tower's cost is
        # outside what is timed here, the embeddings being cached before the clock starts)
        bundle.tokenizer = lambda texts: torch.randint(1, 1000, (len(texts), 64))
    settings = get_preset("voc").settings.replace(confidence_threshold=0.0, post="none", max_steps=2,
                                                  use_clip_es=bundle.tower.has_attention)
    queries = list(VOC_CLASSES)
    proposals = GradCamProposals(bundle)
    proposals.texts.embed(queries)
    proposals.background_embeddings(settings.background)
    proposals.propose(image, queries[:2], settings)  # warm-up: allocator, kernels
    proposal_seconds = _timed(lambda: GradCamProposals.propose(_fresh(proposals), image, queries, settings))
    classifier = MaskClassifier(bundle)
    classifier.text_embeddings(queries, settings.templates)
    prompted = [np.roll(image, shift, axis=1) for shift in range(len(queries))]
    classify_seconds = _timed(lambda: classifier.classify(prompted, queries, settings))
    car = CaR(bundle, bundle, settings)
    car_seconds = _timed(lambda: car.segment(image, queries))
    return {"family": bundle.family, "clip_es": bundle.tower.has_attention, "proposals": proposal_seconds,
            "classify": classify_seconds, "car": car_seconds}


def _fresh(stage: GradCamProposals) -> GradCamProposals:
    """The stage with its per-image work forgotten (a new image), its text embeddings kept."""
    stage._work = None
    return stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=[family.examples[0] for family in FAMILIES])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args()
    image = np.random.default_rng(0).integers(0, 256, size=(args.size, args.size, 3), dtype=np.uint8)
    machine = (f"{cpu_name()}, {torch.get_num_threads()} CPU threads, "
               f"torch {torch.__version__}, {args.device} {args.precision}")
    if args.device == "cuda":
        machine += f", {torch.cuda.get_device_name()}"
    print(machine + "\n")
    print(f"| model | family | proposals: Grad-CAM + CLIP-ES, 20 queries (s) | classifier: 20 "
          f"prompted images x 20 queries x 15 templates (s) | CaR, both stages, 2 steps (s) |")
    print("|---|---|---|---|---|")
    for name in args.families:
        figures = measure(name, image, args.device, args.precision)
        es = "" if figures["clip_es"] else " (no CLIP-ES: convolutional)"
        print(f"| {name} | {figures['family']} | {figures['proposals']:.2f}{es} | {figures['classify']:.2f} "
              f"| {figures['car']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
