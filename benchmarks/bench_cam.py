"""Time and peak memory of Grad-CAM: one batched pass versus one pass per query.

Usage: python benchmarks/bench_cam.py [--size 512] [--queries 1 5 20] [--device cpu|cuda]

ViT-B/16 with random weights (speed does not depend on the weights) at
512x512. "batched" is carlib's path: one forward through blocks 1..L-1 and
one batched backward through the last block for all N queries. "loop" is the
reference's path: a full forward and backward per query (the other queries
compete as extra softmax entries, so the maps are identical). Text embeddings
are computed once beforehand for both. Each configuration runs in a fresh
process so its peak resident memory is its own. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch


def _measure(mode: str, num_queries: int, size: int, device: str, repeats: int) -> dict:
    import carlib
    from carlib.cam import compute_cams
    from carlib.text import encode_texts

    bundle = carlib.load_clip("ViT-B-16", device=device)
    image = np.random.default_rng(0).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    queries = [f"query {index}" for index in range(num_queries)]
    query_embeddings = encode_texts(bundle, queries)
    background_embeddings = encode_texts(bundle, list(carlib.DEFAULT_BACKGROUND_WORDS), ("a clean origami {}.",))

    def batched() -> None:
        compute_cams(
            bundle, image, queries, attention_layers=0,
            query_embeddings=query_embeddings, background_embeddings=background_embeddings,
        )

    def loop() -> None:
        for index in range(num_queries):
            others = torch.cat([query_embeddings[:index], query_embeddings[index + 1 :], background_embeddings])
            compute_cams(
                bundle, image, [queries[index]], attention_layers=0,
                query_embeddings=query_embeddings[index : index + 1], background_embeddings=others,
            )

    run = batched if mode == "batched" else loop
    run()  # warm-up: allocator, kernels
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak_mb = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"seconds": float(np.median(times)), "peak_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--queries", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, count = args.child
        print(json.dumps(_measure(mode, int(count), args.size, args.device, args.repeats)))
        return

    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if args.device == "cuda":
        machine += f", {torch.cuda.get_device_name()}"
    print(f"Grad-CAM, ViT-B/16, {args.size}x{args.size}, device {args.device} ({machine})\n")
    print("| N queries | batched s | loop s | speed-up | batched peak MB | loop peak MB |")
    print("|---|---|---|---|---|---|")
    for count in args.queries:
        results = {}
        for mode in ("batched", "loop"):
            command = [sys.executable, __file__, "--size", str(args.size), "--device", args.device,
                       "--repeats", str(args.repeats), "--child", mode, str(count)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[mode] = json.loads(output.strip().splitlines()[-1])
        speedup = results["loop"]["seconds"] / results["batched"]["seconds"]
        print(
            f"| {count} | {results['batched']['seconds']:.2f} | {results['loop']['seconds']:.2f} | "
            f"{speedup:.1f}x | {results['batched']['peak_mb']:.0f} | {results['loop']['peak_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
