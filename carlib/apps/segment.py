"""`carlib segment IMAGE|FOLDER|GLOB --queries "cat, dog, sky"`: any photos, any words.

One image writes three files into ``--out``; a folder or a glob pattern writes
them per image into ``--out/NAME/`` (or, with ``--labels-only``, one VOC-style
label PNG per image), loading the models once, resuming where a killed run
stopped, and sharding the images over ``torchrun`` ranks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from carlib.apps.folder_segmentation import (
    ImageItem,
    Segmenter,
    claim_run_folder,
    find_images,
    is_image_collection,
    segment_folder,
)
from carlib.apps.options import (
    add_method_options,
    add_model_options,
    add_precision_options,
    add_sam_options,
    announce_models,
    apply_precision_options,
    method_protocol_from_options,
    model_overrides,
    preset_from_options,
    quick_gelu_option,
    sam_source_from_options,
)
from carlib.car import CarResult
from carlib.evaluation.benchmark import proposal_only
from carlib.files import read_text_lines, staged_writes, write_error
from carlib.images import load_image
from carlib.labels import save_label_png
from carlib.method_alone import AloneSegmenter
from carlib.pipeline import LoadedModels, car_from_preset, load_models, parse_queries
from carlib.precision import amp_name, autocast_for, resolve_amp
from carlib.presets import get_preset, preset_names
from carlib.protocol_card import CardModels, car_texts_record, protocol_card
from carlib.settings import POST_PROCESSING
from carlib.text import validate_queries
from carlib.tutorial.figures import save_overlay_figure

OUTPUT_FILES = ("overlay.png", "labels.png", "result.json")


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``carlib segment`` to the command line."""
    parser = commands.add_parser(
        "segment",
        help="segment images with any words or phrases",
        description="One image writes DIR/overlay.png, DIR/labels.png (palette, 0 = background, i = query i) "
        "and DIR/result.json; a folder or glob writes them to DIR/NAME/ per image, or with --labels-only "
        "DIR/NAME.png and DIR/classes.txt. Rerun the same command to resume; torchrun shards the images.",
    )
    parser.add_argument("image", help="an image file, a folder of images, or a quoted glob such as 'photos/*.jpg'")
    parser.add_argument("--queries", default="", help='comma-separated queries, e.g. "cat, dog, sky"')
    parser.add_argument("--queries-file", type=Path, help="a file with one query per line")
    parser.add_argument("--preset", default="voc", help=f"settings preset: {', '.join(preset_names())}")
    parser.add_argument("--post", choices=POST_PROCESSING, default=None, help="default: the preset's")
    add_sam_options(parser)
    add_model_options(parser)
    add_precision_options(parser)
    add_method_options(parser)
    parser.add_argument(
        "--labels-only",
        action="store_true",
        help="write only label PNGs (pseudo-labels), DIR/NAME.png, and DIR/classes.txt",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--out", type=Path, default=Path("segment_out"), help="output folder")
    parser.set_defaults(handler=_segment_command)


def _segment_command(args: argparse.Namespace) -> int:
    # Everything a user can get wrong is checked before any model loads or any file is written.
    collection = is_image_collection(args.image)
    items = find_images(args.image) if collection else None
    image = None if collection else load_image(Path(args.image))
    lines = _read_queries_file(args.queries_file) if args.queries_file else None
    queries = validate_queries(parse_queries(args.queries, lines), what="queries (--queries / --queries-file)")
    preset, model_choice = preset_from_options(get_preset(args.preset), args)
    device = apply_precision_options(args)
    amp = amp_name(resolve_amp(device, args.amp))
    protocol = method_protocol_from_options(args, preset)
    if protocol is not None:
        if args.post is not None:
            raise ValueError(
                f"a method alone has no post-processing (per-pixel argmax); drop --post, or run it under "
                f"CaR with --proposal-method {protocol.method} --post {args.post}"
            )
        if args.class_names is not None:
            raise ValueError("carlib segment's classes are its --queries; --class-names applies to carlib eval")
        if protocol.class_names is not None:
            protocol = protocol.replace(class_names=None, class_names_have_background=None)
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} exists and is not a directory")
    post = "none" if protocol is not None else (args.post or preset.settings.post)
    preset_record = preset.to_dict()
    folder_mode = image is None or args.labels_only
    overrides = model_overrides(args)
    settings = {
        "preset": preset_record,
        "post": post,
        "model": {
            "choice": model_choice,
            "activation": args.activation,
            "device": args.device,
            **{role: overrides[role] for role in ("proposal", "classifier") if role in overrides},
        },
    }
    if amp != "off":  # float32 runs keep the run.json they always had, so they still resume
        settings["amp"] = amp
    if protocol is not None:
        settings["method_protocol"] = protocol.to_dict()
        if "proposal" in overrides:
            overrides["classifier"] = overrides["proposal"]  # one model: the method runs alone
    if folder_mode:
        claim_run_folder(args.out, settings, queries, args.labels_only, write=False)

    models = load_models(
        preset if protocol is None else proposal_only(preset),
        model_choice,
        device=args.device,
        quick_gelu=quick_gelu_option(args),
        **overrides,
    )
    announce_models("segment", models)
    car: Segmenter
    if protocol is None:
        car = car_from_preset(
            preset, models, post=post, sam_source=sam_source_from_options("segment", post, args, models, preset)
        )
        card = protocol_card(
            preset=preset,
            settings=car.settings,
            models=models,
            kind="CaR",
            method=car.settings.proposal_method,
            post=post,
            device=models.proposal.device,
            texts=car_texts_record(preset, car.settings, queries),
        )
    else:
        car = segmenter = AloneSegmenter(models.proposal, preset, protocol)
        alone = segmenter.method_alone(queries)
        card = protocol_card(
            preset=preset,
            settings=preset.settings,
            models=CardModels(models.proposal, None, models.description),
            kind="method alone",
            method=protocol.method,
            post=None,
            device=models.proposal.device,
            texts=alone.texts_record(),
            image=alone.image_record(),
            method_protocol=protocol.to_dict(),
        )
    if not folder_mode:
        assert image is not None  # one image: folder_mode is False
        with autocast_for(models.proposal.device, args.amp):
            result = car.segment(image, queries)
        write_outputs(
            args.out, image, result, models, preset_record, post, amp, card=card_for_image(card, args.image, image)
        )
        if protocol is None:
            print(
                f"kept {', '.join(result.kept_queries) or 'nothing'} after {result.num_steps} steps; wrote {args.out}/"
            )
        else:
            print(
                f"{protocol.method} alone: {', '.join(result.kept_queries) or 'no query'} in the label map; "
                f"wrote {args.out}/"
            )
        return 0
    if items is None:
        items = [ImageItem(Path(args.image).stem, Path(args.image))]
    with autocast_for(models.proposal.device, args.amp):
        summary = segment_folder(
            car,
            items,
            queries,
            args.out,
            settings=settings,
            labels_only=args.labels_only,
            write_result=lambda folder, picture, result: write_result_files(
                folder, picture, result, models, preset_record, post, amp, card=card_for_image(card, None, picture)
            ),
            progress=not args.no_progress,
        )
    if summary is not None:
        print(
            f"{summary.done} images segmented, {summary.skipped} already done, {len(summary.errors)} unreadable "
            f"(listed in {args.out / 'errors.json'}); wrote {args.out}/"
        )
        for error in summary.errors:
            print(f"carlib segment: skipped {error['path']}: {error['error']}", file=sys.stderr)
    return 0


def _read_queries_file(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"queries file not found: {path}")
    return read_text_lines(path, "--queries-file")


def _models_record(models: LoadedModels) -> dict:
    return {
        "description": models.description,
        **{
            role: {
                "name": bundle.name,
                "pretrained": bundle.pretrained,
                "activation": bundle.activation,
                "family": bundle.family,
            }
            for role, bundle in (("proposal", models.proposal), ("classifier", models.classifier))
        },
    }


def card_for_image(card: dict, path, image) -> dict:
    """The run's protocol card with the image it segmented: its path (when one), size and a sha256 of its pixels."""
    import hashlib

    import numpy as np

    pixels = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
    return {
        **card,
        "image_input": {
            "path": None if path is None else str(path),
            "size": list(image.shape[:2]),
            "pixels_sha256": pixels,
        },
    }


def result_summary(
    result: CarResult,
    models: LoadedModels,
    preset: dict,
    post: str,
    labels_png: str = "palette-8bit",
    amp: str = "off",
    card: dict | None = None,
) -> dict:
    """The JSON record of one segmentation (``labels_png``: how labels.png stores the labels; ``amp``: the
    autocast the models ran under, ``"off"`` for float32; ``card``: the protocol card, :mod:`carlib.protocol_card`)."""
    return {
        "queries": result.queries,
        "kept": [bool(keep) for keep in result.kept],
        "scores": [round(float(score), 6) for score in result.scores],
        "num_steps": result.num_steps,
        "steps": [{"alive": step.alive, "kept": step.kept, "scores": step.scores.tolist()} for step in result.steps],
        "seconds": {stage: round(value, 4) for stage, value in result.seconds.items()},
        "image_size": list(result.label_map.shape),
        "working_size": list(result.working_size),
        "models": _models_record(models),
        "post": post,
        "amp": amp,
        "preset": preset,
        "labels_png": labels_png,
        "protocol": card,
    }


def write_result_files(
    folder: Path,
    image,
    result: CarResult,
    models: LoadedModels,
    preset: dict,
    post: str,
    amp: str = "off",
    card: dict | None = None,
) -> None:
    """Write overlay.png, labels.png and result.json (last) into ``folder``."""
    title = (
        f"{len(result.kept_queries)}/{len(result.queries)} queries kept, {result.num_steps} steps"
        if result.steps
        else f"{len(result.kept_queries)}/{len(result.queries)} queries present ({card['method'] if card else ''} "
        "alone)"
    )
    save_overlay_figure(
        image, result.label_map, result.queries, folder / "overlay.png", title=title, scores=result.scores.tolist()
    )
    labels_png = save_label_png(result.label_map, folder / "labels.png")
    (folder / "result.json").write_text(
        json.dumps(result_summary(result, models, preset, post, labels_png, amp, card), indent=2)
    )


def write_outputs(
    out: Path,
    image,
    result: CarResult,
    models: LoadedModels,
    preset: dict,
    post: str,
    amp: str = "off",
    card: dict | None = None,
) -> None:
    """Write overlay.png, labels.png and result.json into ``out`` via a scratch folder: never a partial set."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".carlib-segment-", dir=out.parent))
    except OSError as error:
        raise write_error(out, error) from error
    try:
        with staged_writes(scratch, out):  # a failure names out/labels.png, not the scratch copy
            write_result_files(scratch, image, result, models, preset, post, amp, card)
            out.mkdir(parents=True, exist_ok=True)
            for name in OUTPUT_FILES:
                os.replace(scratch / name, out / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
