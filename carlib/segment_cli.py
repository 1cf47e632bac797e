"""`carlib segment IMAGE --queries "cat, dog, sky"`: one image, any words, three files out."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from carlib.car import CarResult
from carlib.images import load_image
from carlib.pipeline import MODEL_CHOICES, LoadedModels, car_from_preset, load_models, parse_queries
from carlib.presets import get_preset, preset_names
from carlib.text import validate_queries
from carlib.visualize import save_overlay_figure, save_palette_png

OUTPUT_FILES = ("overlay.png", "labels.png", "result.json")


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``carlib segment`` to the command line."""
    parser = commands.add_parser(
        "segment",
        help="segment one image with any words or phrases",
        description="Writes DIR/overlay.png, DIR/labels.png (palette, 0 = background, i = query i) "
        "and DIR/result.json.",
    )
    parser.add_argument("image", type=Path, help="the image to segment")
    parser.add_argument("--queries", default="", help='comma-separated queries, e.g. "cat, dog, sky"')
    parser.add_argument("--queries-file", type=Path, help="a file with one query per line")
    parser.add_argument("--preset", default="voc", help=f"settings preset: {', '.join(preset_names())}")
    parser.add_argument("--model", default="auto", choices=MODEL_CHOICES)
    parser.add_argument("--post", choices=["crf", "sam", "none"], default=None, help="default: the preset's")
    parser.add_argument("--sam-checkpoint", type=Path, help="SAM checkpoint for --post sam")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--out", type=Path, default=Path("segment_out"), help="output folder")
    parser.set_defaults(handler=_segment_command)


def _segment_command(args: argparse.Namespace) -> int:
    # Everything a user can get wrong is checked before any model loads or any file is written.
    image = load_image(args.image)
    lines = _read_queries_file(args.queries_file) if args.queries_file else None
    queries = validate_queries(parse_queries(args.queries, lines), what="queries (--queries / --queries-file)")
    preset = get_preset(args.preset)
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} exists and is not a directory")

    models = load_models(preset, args.model, device=args.device)
    print(f"carlib segment: using {models.description}", file=sys.stderr)
    post = args.post or preset.post
    car = car_from_preset(preset, models, post=post, sam_source=_sam_source(post, args, models))
    result = car.segment(image, queries)
    _write_outputs(args.out, image, result, models, preset.to_dict(), post)
    print(f"kept {', '.join(result.kept_queries) or 'nothing'} after {result.num_steps} steps; wrote {args.out}/")
    return 0


def _read_queries_file(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"queries file not found: {path}")
    return path.read_text(encoding="utf-8").splitlines()


def _sam_source(post: str, args: argparse.Namespace, models: LoadedModels):
    if post != "sam":
        return None
    from carlib.postprocess import ColourRegionMaskSource, SamMaskSource

    if args.sam_checkpoint is not None:
        return SamMaskSource(args.sam_checkpoint, device=args.device)
    if models.proposal.name == "shapes":
        print("carlib segment: no --sam-checkpoint; ShapesWorld colour regions stand in for SAM", file=sys.stderr)
        return ColourRegionMaskSource()
    raise ValueError("--post sam needs --sam-checkpoint PATH (e.g. sam_vit_h_4b8939.pth)")


def result_summary(result: CarResult, models: LoadedModels, preset: dict, post: str) -> dict:
    """The JSON record of one segmentation."""
    return {
        "queries": result.queries,
        "kept": [bool(keep) for keep in result.kept],
        "scores": [round(float(score), 6) for score in result.scores],
        "num_steps": result.num_steps,
        "steps": [{"alive": step.alive, "kept": step.kept, "scores": step.scores.tolist()} for step in result.steps],
        "seconds": {stage: round(value, 4) for stage, value in result.seconds.items()},
        "models": {
            "description": models.description,
            "proposal": {"name": models.proposal.name, "pretrained": models.proposal.pretrained},
            "classifier": {"name": models.classifier.name, "pretrained": models.classifier.pretrained},
        },
        "post": post,
        "preset": preset,
    }


def _write_outputs(out: Path, image, result: CarResult, models: LoadedModels, preset: dict, post: str) -> None:
    """Write the three files into a scratch folder, then move them in: never a partial set."""
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".carlib-segment-", dir=out.parent))
    try:
        title = f"{len(result.kept_queries)}/{len(result.queries)} queries kept, {result.num_steps} steps"
        save_overlay_figure(image, result.label_map, result.queries, scratch / "overlay.png", title=title,
                            scores=result.scores.tolist())
        save_palette_png(result.label_map, scratch / "labels.png")
        (scratch / "result.json").write_text(json.dumps(result_summary(result, models, preset, post), indent=2))
        out.mkdir(parents=True, exist_ok=True)
        for name in OUTPUT_FILES:
            os.replace(scratch / name, out / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
