"""`carlib demo`: one bundled picture through CaR, drawn: step 1's Grad-CAM and CLIP-ES maps, then the segmentation.

The quickest look at the whole method without a notebook: ``carlib demo --out demo/``
writes ``demo/cam.png`` (each query's Grad-CAM and CLIP-ES proposal, from the
trace of the recurrence's first step) and ``demo/segment/`` (what ``carlib
segment`` writes). With the ShapesWorld CLIP it uses a bundled scene and
ShapesWorld words; with real CLIP the bundled photo and everyday words.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from carlib.apps.options import announce_models
from carlib.apps.segment import write_outputs
from carlib.car import CarResult
from carlib.files import atomic_write
from carlib.images import fit_within, load_image
from carlib.models import SHAPES_MODEL_NAME, data_dir
from carlib.pipeline import MODEL_CHOICES, car_from_preset, load_models, parse_queries
from carlib.presets import get_preset

SHAPES_QUERIES = ("orange", "starfish", "balloon", "kite")
"""The first bundled scene shows an orange, a starfish and a balloon; "kite" is absent."""
PHOTO_QUERIES = ("cat", "dog", "sofa")
"""The bundled photo shows a cat."""


def default_image(shapes: bool) -> Path:
    """The first bundled ShapesWorld scene, or the bundled photo for real CLIP."""
    if not shapes:
        return data_dir() / "photos" / "chelsea.jpg"
    images = sorted((data_dir() / "images").glob("*.png"))
    if not images:
        raise FileNotFoundError(f"no bundled demo image in {data_dir() / 'images'}; pass --image")
    return images[0]


def draw_first_step(image, result: CarResult, title: str, out_path: Path) -> Path:
    """The picture and, per query, step 1's Grad-CAM (top row) and CLIP-ES proposal (bottom row), as one PNG."""
    from carlib.tutorial.figures import heat_overlay, show_images

    first = result.steps[0]
    names = [result.queries[index] for index in first.alive]
    panels, titles = [], []
    for maps, label in ((first.cams, "Grad-CAM"), (first.proposals, "CLIP-ES")):
        panels += [image] + [heat_overlay(image, m) for m in maps]
        titles += ["image"] + [f"{label}: {name}" for name in names]
    figure = show_images(panels, titles, cols=len(names) + 1, panel=2.6, suptitle=title)
    return atomic_write(lambda target: figure.savefig(target, format="png", dpi=80), out_path)


def run_demo(
    out_dir: Path, model: str = "auto", image_path: Path | None = None, queries: Sequence[str] | None = None
) -> tuple[Path, Path]:
    """Segment a bundled picture and draw it; returns the paths of ``cam.png`` and ``segment/overlay.png``."""
    models = load_models(get_preset("voc"), model)
    announce_models("demo", models)
    shapes = models.proposal.name == SHAPES_MODEL_NAME
    preset = get_preset("shapes" if shapes else "voc")
    image_path = image_path or default_image(shapes)
    words = list(queries or (SHAPES_QUERIES if shapes else PHOTO_QUERIES))
    image = load_image(image_path)
    car = car_from_preset(preset, models)
    result = car.segment(image, words)
    # The trace's maps are at the working size: draw them over the picture as the recurrence saw it.
    cams = draw_first_step(
        fit_within(image, car.max_side), result, f"{Path(image_path).name}: {models.description}", out_dir / "cam.png"
    )
    write_outputs(out_dir / "segment", image, result, models, preset.to_dict(), car.settings.post)
    return cams, out_dir / "segment" / "overlay.png"


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``carlib demo`` to the command line."""
    parser = commands.add_parser("demo", help="segment a bundled picture and draw step 1's maps")
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    parser.add_argument("--model", default="auto", choices=MODEL_CHOICES)
    parser.add_argument("--image", type=Path, default=None, help="image to use (default: a bundled one)")
    parser.add_argument("--queries", default="", help="comma-separated queries (default: words for the picture)")
    parser.set_defaults(handler=_demo_command)


def _demo_command(args: argparse.Namespace) -> int:
    cams, overlay = run_demo(args.out, args.model, args.image, parse_queries(args.queries) or None)
    print(f"wrote {cams}")
    print(f"wrote {overlay}")
    return 0
