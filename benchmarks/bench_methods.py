"""Seconds per 500 x 500 image of each dense method alone and under CaR (SCLIP, ClearCLIP, NACLIP, MaskCLIP).

Usage:
    python benchmarks/bench_methods.py                  # alone (both protocols) and under CaR + CRF
    python benchmarks/bench_methods.py --alone-only     # skip the CaR runs (the slow part on CPU)
    python benchmarks/bench_methods.py --device cuda --precision fp16

Real architectures with random weights (speed does not depend on the
weights): ViT-B/16 for the methods and CaR's proposals, ViT-L/14 as CaR's
classifier, VOC's vocabulary.

- **alone, carlib protocol**: one pass over the image (500 x 500, under
  max_side), the 20 VOC classes and the 23 background words.
- **alone, field protocol**: the method's VOC-21 geometry (short side 336 and
  four 224 px windows for SCLIP, NACLIP and SCLIP-style; short side 448 and one
  448 px window for ClearCLIP and MaskCLIP) with its class-name file (56 or 21
  names). The 80 ImageNet templates change only the one-off text encoding (not
  per image), so the per-image timing embeds each name once; the one-off cost
  of the 80 templates is printed on its own with ``--templates``.
- **under CaR**: as ``bench_car.py``'s headline (20 queries, θ = 0 so two
  steps see every query, VOC's prompts and 15 templates, dense CRF), with the
  method as the proposal stage; cold caches per run.

Text embeddings are computed before the timed calls for the methods alone
(once per run in ``carlib eval``) and inside the timed call for CaR (as
``bench_car.py`` does).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import carlib
from carlib.car import CaR
from carlib.class_names import read_class_name_file
from carlib.dense_methods import DENSE_METHODS
from carlib.method_alone import OPENAI_IMAGENET_TEMPLATES, MethodAlone, carlib_protocol, field_protocol
from carlib.presets import get_preset
from carlib.text import encode_texts
from carlib.vocabularies import VOC_CLASSES


def _synchronize(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_alone(bundle, preset, protocol, image, repeats: int) -> tuple[float, int]:
    """Median seconds per image of a method alone (texts embedded beforehand), and its passes."""
    alone = MethodAlone(bundle, preset, protocol)
    alone.segment(image)  # warm-up: allocator, kernels
    times, windows = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = alone.segment(image)
        _synchronize(bundle.device)
        times.append(time.perf_counter() - start)
        windows = result.windows
    return float(np.median(times)), windows


def time_car(proposal, classifier, method: str, image, post: str) -> tuple[float, dict]:
    """Seconds of one CaR run (cold caches) with ``method`` proposals: 20 VOC queries, two steps."""
    settings = get_preset("voc").settings.replace(confidence_threshold=0.0, post=post, max_steps=2,
                                                  proposal_method=method)
    car = CaR(proposal, classifier, settings)
    start = time.perf_counter()
    result = car.segment(image, list(VOC_CLASSES))
    _synchronize(proposal.device)
    return time.perf_counter() - start, result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method alone (the median is shown)")
    parser.add_argument("--alone-only", action="store_true", help="skip the CaR runs")
    parser.add_argument("--templates", action="store_true",
                        help="also time the one-off text encoding of SCLIP's VOC-21 file under the 80 templates")
    parser.add_argument("--post", default="crf", choices=["crf", "none"])
    args = parser.parse_args()

    proposal = carlib.load_clip("ViT-B-16", device=args.device, precision=args.precision)
    image = np.random.default_rng(0).integers(0, 256, size=(args.size, args.size, 3), dtype=np.uint8)
    voc = get_preset("voc")
    machine = (f"{platform.machine()} {platform.processor() or ''}".strip() +
               f", {torch.get_num_threads()} CPU threads, torch {torch.__version__}, {args.device} {args.precision}")
    if args.device == "cuda":
        machine += f", {torch.cuda.get_device_name()}"
    print(f"{machine}\n")
    print(f"Dense methods alone, ViT-B/16, one {args.size} x {args.size} image (median of {args.repeats}):\n")
    print("| method | carlib protocol s | passes | field protocol (VOC-21) s | windows |")
    print("|---|---|---|---|---|")
    for method in DENSE_METHODS:
        carlib_seconds, carlib_windows = time_alone(proposal, voc, carlib_protocol(method), image, args.repeats)
        field = field_protocol(method, "voc").replace(templates=("{}",))  # per image, the templates cost nothing
        field_seconds, field_windows = time_alone(proposal, voc, field, image, args.repeats)
        print(f"| {method} | {carlib_seconds:.3f} | {carlib_windows} | {field_seconds:.3f} | {field_windows} |")
    if args.templates:
        names = read_class_name_file("sclip/cls_voc21.txt", has_background=True).names
        start = time.perf_counter()
        encode_texts(proposal, names, OPENAI_IMAGENET_TEMPLATES)
        _synchronize(proposal.device)
        print(f"\nOne-off: {len(names)} names x {len(OPENAI_IMAGENET_TEMPLATES)} templates (SCLIP's VOC-21 file) "
              f"embedded in {time.perf_counter() - start:.1f} s")
    if args.alone_only:
        return
    classifier = carlib.load_clip("ViT-L-14", device=args.device, precision=args.precision)
    warm_up = np.random.default_rng(9).integers(0, 256, size=(args.size, args.size, 3), dtype=np.uint8)
    time_car(proposal, classifier, "gradcam", warm_up, args.post)
    print(f"\nUnder CaR: 20 VOC queries, 2 steps, ViT-L/14 classifier, post {args.post}, cold caches:\n")
    print("| proposals | total s | proposals s | prompts s | classify s | post s |")
    print("|---|---|---|---|---|---|")
    for method in ("gradcam", *DENSE_METHODS):
        total, seconds = time_car(proposal, classifier, method, image, args.post)
        print(f"| {method} | {total:.2f} | {seconds['proposals']:.2f} | {seconds['prompts']:.2f} | "
              f"{seconds['classify']:.2f} | {seconds['post']:.2f} |")


if __name__ == "__main__":
    main()
