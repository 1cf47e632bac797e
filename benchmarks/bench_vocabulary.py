"""Peak memory and time of CaR against the number of queries: ADE-847's class names on a 512 x 512 image.

Usage:
    python benchmarks/bench_vocabulary.py                      # one CaR step with N = 20, 200, 847 queries
    python benchmarks/bench_vocabulary.py --queries 20 200 --mode cams   # Grad-CAM alone (ViT-B/16)
    python benchmarks/bench_vocabulary.py --budget-mb 512      # another memory budget (carlib.memory)

Real architectures with seeded random weights (memory and speed do not
depend on the weights): ViT-B/16 proposals and a ViT-L/14 classifier with
the ``ade847`` preset's settings, the first N of its 847 class names as the
queries, one step of the recurrence (``max_steps=1``) and its post-processing.
``--mode cams`` measures ``carlib.compute_cams`` alone with the 23 background
words, as the issue that set the target did (unchunked: 50 queries 3.6 GB,
200 queries 9.6 GB, 847 queries killed at 24 GB).

Each configuration runs in a fresh process, so its peak resident memory
(VmHWM, read from /proc) is its own, models included. The peak of each stage
is read the same way after resetting the high-water mark before it
(``/proc/self/clear_refs``). ``--unchunked`` runs Grad-CAM's backward with all
queries at once, the old path; it is refused above 50 queries, where it
needs many GB (over 24 GB at 847).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

UNCHUNKED_LIMIT = 50
"""The most queries ``--unchunked`` may run: the old path's memory grows by ~40 MB a query at 512 x 512."""
UNLIMITED_MB = 2**30


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


class PeakMeter:
    """The process's peak resident memory, overall and per named stage (Linux: VmHWM and clear_refs)."""

    def __init__(self) -> None:
        self.overall = 0
        self.stages: dict[str, int] = {}

    def _reset(self) -> None:
        self.overall = max(self.overall, _status_bytes("VmHWM"))
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current resident size

    def measure(self, stage: str, work):
        self._reset()
        try:
            return work()
        finally:
            peak = _status_bytes("VmHWM")
            self.stages[stage] = max(self.stages.get(stage, 0), peak)
            self.overall = max(self.overall, peak)


class MeteredProposals:
    """Forwards to a proposal stage, recording the peak memory while it works."""

    def __init__(self, stage, meter: PeakMeter):
        self.stage, self.meter = stage, meter

    def propose(self, image, texts, settings):
        return self.meter.measure("proposals", lambda: self.stage.propose(image, texts, settings))


class MeteredClassifier:
    """Forwards to a classifier stage, recording the peak memory while it works."""

    def __init__(self, classifier, meter: PeakMeter):
        self.classifier, self.meter = classifier, meter

    def classify(self, images, queries, settings):
        return self.meter.measure("classify", lambda: self.classifier.classify(images, queries, settings))


def measure_car(count: int, size: int, unchunked: bool) -> dict:
    """One CaR step with the first ``count`` ADE-847 names; peaks per stage and seconds."""
    import numpy as np
    import torch

    import carlib
    from carlib.car import CaR
    from carlib.classifier import MaskClassifier
    from carlib.memory import budget_bytes, gradcam_chunk_size
    from carlib.presets import get_preset
    from carlib.proposals import GradCamProposals

    meter = PeakMeter()
    preset = get_preset("ade847")
    queries = list(preset.vocabulary.queries[:count])
    proposal = meter.measure("load models", lambda: carlib.load_clip("ViT-B-16", device="cpu", seed=0))
    classifier = meter.measure("load models", lambda: carlib.load_clip("ViT-L-14", device="cpu", seed=0))
    image = np.random.default_rng(0).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    settings = preset.settings.replace(max_steps=1)
    stage = GradCamProposals(proposal)
    tokens = (size // proposal.patch_size) ** 2 + 1
    chunk = gradcam_chunk_size(proposal, tokens, count)
    car = CaR(proposal, classifier, settings, proposals=MeteredProposals(stage, meter),
              classifier=MeteredClassifier(MaskClassifier(classifier), meter))
    start = time.perf_counter()
    recurrence = car.recur(image, queries)
    recur_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = meter.measure("post", lambda: car.finish(recurrence))
    post_seconds = time.perf_counter() - start
    return {
        "queries": count, "chunk": chunk, "budget_mb": budget_bytes("cpu") / 2**20, "unchunked": unchunked,
        "peak": meter.overall, "stages": meter.stages,
        "seconds": {**{k: v for k, v in recurrence.seconds.items()}, "post": post_seconds},
        "total_seconds": recur_seconds + post_seconds, "kept": int(result.kept.sum()),
        "threads": torch.get_num_threads(),
    }


def measure_cams(count: int, size: int, unchunked: bool) -> dict:
    """``carlib.compute_cams`` with the first ``count`` ADE-847 names and the 23 background words (ViT-B/16)."""
    import numpy as np
    import torch

    import carlib
    from carlib.cam import compute_cams
    from carlib.memory import budget_bytes, gradcam_chunk_size
    from carlib.presets import get_preset

    meter = PeakMeter()
    queries = list(get_preset("ade847").vocabulary.queries[:count])
    bundle = meter.measure("load models", lambda: carlib.load_clip("ViT-B-16", device="cpu", seed=0))
    image = np.random.default_rng(0).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    tokens = (size // bundle.patch_size) ** 2 + 1
    chunk = gradcam_chunk_size(bundle, tokens, count)
    start = time.perf_counter()
    meter.measure("proposals", lambda: compute_cams(bundle, image, queries, carlib.DEFAULT_BACKGROUND_WORDS))
    seconds = time.perf_counter() - start
    return {"queries": count, "chunk": chunk, "budget_mb": budget_bytes("cpu") / 2**20, "unchunked": unchunked,
            "peak": meter.overall, "stages": meter.stages, "seconds": {"proposals": seconds},
            "total_seconds": seconds, "kept": None, "threads": torch.get_num_threads()}


def run_child(mode: str, count: int, size: int, unchunked: bool, budget_mb) -> dict:
    """One configuration in a fresh process; its JSON record."""
    command = [sys.executable, __file__, "--child", mode, str(count), "--size", str(size)]
    if unchunked:
        command.append("--unchunked")
    if budget_mb is not None:
        command += ["--budget-mb", str(budget_mb)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} with {count} queries failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(records: list[dict], mode: str) -> str:
    """The markdown table of the records."""
    gib = 2**30
    if mode == "cams":
        lines = ["| N queries | queries per backward | peak RSS GiB | seconds |", "|---|---|---|---|"]
        lines += [f"| {r['queries']} | {r['chunk']}{' (unchunked)' * r['unchunked']} | {r['peak'] / gib:.2f} "
                  f"| {r['total_seconds']:.1f} |" for r in records]
        return "\n".join(lines)
    lines = ["| N queries | queries per backward | peak RSS GiB | peak in proposals / classify / post GiB "
             "| seconds: proposals, prompts, classify, post | total s | kept |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        stages, seconds = r["stages"], r["seconds"]
        lines.append(
            f"| {r['queries']} | {r['chunk']}{' (unchunked)' * r['unchunked']} | **{r['peak'] / gib:.2f}** "
            f"| {stages.get('proposals', 0) / gib:.2f} / {stages.get('classify', 0) / gib:.2f} / "
            f"{stages.get('post', 0) / gib:.2f} | {seconds['proposals']:.1f}, {seconds['prompts']:.1f}, "
            f"{seconds['classify']:.1f}, {seconds['post']:.1f} | {r['total_seconds']:.1f} | {r['kept']} |")
    return "\n".join(lines)


def machine() -> str:
    """``lscpu``'s model name and the flags that matter here, the core count and torch's version."""
    import torch

    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", platform.machine()):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{name} ({', '.join(shown) or 'no AVX-512'}), {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, nargs="+", default=[20, 200, 847])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--mode", choices=("car", "cams"), default="car")
    parser.add_argument("--budget-mb", type=float, default=None, help="memory budget in MiB (default: the device's)")
    parser.add_argument("--unchunked", action="store_true",
                        help=f"all queries in one backward (the old path; at most {UNCHUNKED_LIMIT} queries)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.unchunked and max(args.queries if not args.child else [int(args.child[1])]) > UNCHUNKED_LIMIT:
        parser.error(f"--unchunked is refused above {UNCHUNKED_LIMIT} queries: the old path needs ~40 MB a query "
                     "at 512 x 512 (over 24 GB at 847)")
    if args.child:
        from carlib.memory import set_memory_budget

        # Unchunked: a budget no vocabulary exhausts, so every query joins one backward, as before chunking.
        set_memory_budget(UNLIMITED_MB if args.unchunked else args.budget_mb)
        mode, count = args.child[0], int(args.child[1])
        record = (measure_car if mode == "car" else measure_cams)(count, args.size, args.unchunked)
        print(json.dumps(record))
        return
    what = ("one CaR step (ade847 settings, ViT-B/16 + ViT-L/14, seeded weights)" if args.mode == "car"
            else "carlib.compute_cams (ViT-B/16, seeded weights, 23 background words)")
    print(f"{machine()}\n{what}, {args.size} x {args.size}, the first N ADE-847 names\n", flush=True)
    records = []
    for count in args.queries:
        records.append(run_child(args.mode, count, args.size, args.unchunked, args.budget_mb))
        print(f"  N = {count}: peak {records[-1]['peak'] / 2**30:.2f} GiB, {records[-1]['total_seconds']:.1f} s",
              file=sys.stderr, flush=True)
    print(table(records, args.mode))


if __name__ == "__main__":
    main()
