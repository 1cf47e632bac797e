"""`carlib demo`: Grad-CAM, CLIP-ES and a full CaR segmentation of a bundled image, as pictures.

This is what `make demo` runs until the notebook series exists.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from carlib.cam import compute_cams
from carlib.clip_es import clip_es_refine
from carlib.files import atomic_write
from carlib.images import load_image
from carlib.presets import get_preset
from carlib.models import SHAPES_MODEL_NAME, ClipBundle, WeightsNotFoundError, data_dir, load_clip

# The first bundled scene shows an orange, a starfish and a balloon; "kite" is absent.
DEMO_QUERIES = ("orange", "starfish", "balloon", "kite")
DEMO_BACKGROUND = ("grass", "sky", "water", "sand")


def default_image() -> Path:
    """The first bundled demo image under ``data/images``."""
    images = sorted((data_dir() / "images").glob("*.png"))
    if not images:
        raise FileNotFoundError(f"no bundled demo image in {data_dir() / 'images'}; pass --image")
    return images[0]


def choose_model(model: str) -> tuple[ClipBundle, str]:
    """Load the demo's model and say in words what its maps mean.

    ``auto`` prefers real OpenAI ViT-B/16 weights when present locally, then
    the ShapesWorld model; ``random`` is the real architecture untrained.
    """
    if model in ("auto", "openai"):
        try:
            return load_clip("ViT-B-16", pretrained="openai"), "OpenAI CLIP ViT-B/16"
        except WeightsNotFoundError:
            if model == "openai":
                raise
    if model in ("auto", SHAPES_MODEL_NAME):
        try:
            return load_clip(SHAPES_MODEL_NAME), "the ShapesWorld CLIP trained by this project"
        except WeightsNotFoundError:
            if model == SHAPES_MODEL_NAME:
                raise
    return load_clip("ViT-B-16"), "ViT-B/16 with RANDOM weights (maps show plumbing, not meaning)"


def render_cams(
    image: np.ndarray,
    queries: Sequence[str],
    cams: np.ndarray,
    refined: np.ndarray,
    title: str,
    out_path: Path,
) -> Path:
    """Draw the image, each query's Grad-CAM and its CLIP-ES refinement as one PNG.

    Arguments:
        image: HxWx3 uint8 RGB.
        queries: N query strings.
        cams, refined: float32 N x H x W maps in [0, 1].
        title: figure title.
        out_path: PNG to write (atomically).

    Returns:
        ``out_path``.
    """
    from carlib.plotting import heat_overlay, show_images

    panels, titles = [], []
    for maps, label in ((cams, "Grad-CAM"), (refined, "CLIP-ES")):
        panels += [image] + [heat_overlay(image, m) for m in maps]
        titles += ["image"] + [f"{label}: {query}" for query in queries]
    figure = show_images(panels, titles, cols=len(queries) + 1, panel=2.6, suptitle=title)
    return atomic_write(lambda target: figure.savefig(target, format="png", dpi=80), out_path)


def run_demo(
    out_dir: Path,
    model: str = "auto",
    image_path: Optional[Path] = None,
    queries: Sequence[str] = DEMO_QUERIES,
    background: Sequence[str] = DEMO_BACKGROUND,
) -> Path:
    """Compute and draw the CAMs of a bundled image; returns the PNG path."""
    bundle, description = choose_model(model)
    image_path = image_path or default_image()
    image = load_image(image_path)
    result = compute_cams(bundle, image, queries, background)
    refined = clip_es_refine(result.cams, result.attention, threshold=0.4, output_size=result.image_size)
    title = f"{image_path.name} — model: {description}"
    return render_cams(image, queries, result.upsampled(), refined, title, out_dir / "cam.png")


def run_segment_demo(out_dir: Path, image_path: Optional[Path] = None) -> Path:
    """Segment a bundled scene with every ShapesWorld class name (the ``shapes`` preset)."""
    from carlib.cli import main

    image_path = image_path or default_image()
    code = main(["segment", str(image_path), "--preset", "shapes", "--model", "shapes",
                 "--queries", ",".join(get_preset("shapes").class_names), "--out", str(out_dir)])
    if code != 0:
        raise RuntimeError(f"carlib segment failed on {image_path}")
    return out_dir / "overlay.png"


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``carlib demo`` to the command line."""
    parser = commands.add_parser("demo", help="draw Grad-CAM and CLIP-ES maps of a bundled image")
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    parser.add_argument("--model", default="auto", choices=["auto", "openai", SHAPES_MODEL_NAME, "random"])
    parser.add_argument("--image", type=Path, default=None, help="image to use (default: a bundled one)")
    parser.add_argument("--queries", default=",".join(DEMO_QUERIES), help="comma-separated queries")
    parser.set_defaults(handler=_demo_command)


def _demo_command(args: argparse.Namespace) -> int:
    queries = [query.strip() for query in args.queries.split(",")]
    path = run_demo(args.out, args.model, args.image, queries)
    print(f"wrote {path}")
    print(f"wrote {run_segment_demo(args.out / 'segment', args.image)}")
    return 0
