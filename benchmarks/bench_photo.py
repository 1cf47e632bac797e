"""Seconds and peak memory of `carlib segment` on a 12 MP phone photo, with both model families.

Usage: python benchmarks/bench_photo.py [--megapixels 12] [--queries "cat, dog"] [--weights-dir DIR]

The photo is a portrait crop of the bundled `data/photos/chelsea.jpg`, enlarged to 3000 x 4000 and
saved the way a phone held upright saves it: 4000 x 3000 landscape pixels with EXIF orientation 6.
Each run is a fresh `python -m carlib segment` process, timed from start to exit (imports, model
loading, decoding and writing included); peak memory is that process's peak RSS (`wait4`). The
real-CLIP run uses the preset's ViT-B/16 + ViT-L/14 with seeded random weights written where a
download puts them (speed and memory do not depend on the weights). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "data" / "photos" / "chelsea.jpg"


def make_phone_photo(path: Path, megapixels: float) -> tuple[int, int]:
    """Write a portrait photo as a phone held upright does; returns the stored (width, height).

    The upright picture is a 3:4 portrait crop of the bundled photo, enlarged; the file holds it
    turned a quarter counter-clockwise (landscape pixels, as the sensor reads them) with EXIF
    orientation 6, which tells viewers to turn it back clockwise.
    """
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))  # the stored (landscape) width
    height = int(round(width * 3 / 4))
    with Image.open(PHOTO) as source:
        source = source.convert("RGB")
        crop_width = source.height * 3 // 4
        left = (source.width - crop_width) // 2
        upright = source.crop((left, 0, left + crop_width, source.height)).resize((height, width),
                                                                                  Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=92, exif=exif)
    return width, height


def run_segment(arguments: list[str], environment: dict, log: Path) -> tuple[float, float]:
    """Run one `carlib segment` process; returns (seconds, its peak RSS in GiB)."""
    start = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "carlib", "segment", *arguments], env=environment,
                                   stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)  # wait4, not wait: it reports the child's own peak RSS
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"carlib segment failed:\n{log.read_text()[-3000:]}")
    return seconds, usage.ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--queries", default="cat, dog")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="where the seeded weights go (default: a temporary folder)")
    parser.add_argument("--models", nargs="+", default=["openai", "shapes"], choices=["openai", "shapes"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="carlib-bench-photo-") as scratch:
        scratch = Path(scratch)
        photo = scratch / "phone.jpg"
        stored_width, stored_height = make_phone_photo(photo, args.megapixels)
        weights = args.weights_dir or scratch / "weights"
        environment = {**os.environ, "CARLIB_WEIGHTS_DIR": str(weights), "HF_HUB_OFFLINE": "1"}
        if "openai" in args.models:
            for name in ("ViT-B-16", "ViT-L-14"):
                subprocess.run([sys.executable, "-m", "carlib", "weights", "--model", name, "--random-seed", "0"],
                               env=environment, check=True, capture_output=True)
        import torch

        print(f"photo: {stored_width} x {stored_height} px stored, EXIF orientation 6 "
              f"({photo.stat().st_size / 1e6:.1f} MB JPEG); queries: {args.queries}; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
        print("| model | preset | seconds | peak RSS GiB | working size | output size | steps | stages (s) |")
        print("|---|---|---|---|---|---|---|---|")
        for model in args.models:
            out = scratch / f"out-{model}"
            preset = "voc" if model == "openai" else "shapes"
            seconds, peak = run_segment(
                [str(photo), "--queries", args.queries, "--model", model, "--preset", preset, "--out", str(out),
                 "--no-progress"], environment, scratch / f"{model}.log")
            record = json.loads((out / "result.json").read_text())
            with Image.open(out / "labels.png") as labels:
                width, height = labels.size
            stages = ", ".join(f"{stage} {value:.1f}" for stage, value in record["seconds"].items())
            family = "ViT-B/16 + ViT-L/14 (seeded)" if model == "openai" else "ShapesWorld CLIP"
            print(f"| {family} | {preset} | {seconds:.1f} | {peak:.2f} | "
                  f"{record['working_size'][1]} x {record['working_size'][0]} | {width} x {height} | "
                  f"{record['num_steps']} | {stages} |")
        np.testing.assert_equal((height, width), (stored_width, stored_height))  # upright: sides swapped


if __name__ == "__main__":
    main()
