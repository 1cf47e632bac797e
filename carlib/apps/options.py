"""Command-line options shared by ``carlib segment`` and ``carlib eval``: models, weight files, resolution,
precision and memory."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from carlib.memory import set_memory_budget
from carlib.pipeline import MODEL_CHOICES, LoadedModels, parse_model_spec
from carlib.postprocess.mask_sources import MaskSource
from carlib.precision import AMP_CHOICES, resolve_amp
from carlib.presets import Preset
from carlib.scores import SCORE_RULES
from carlib.settings import CAM_TARGET_CHOICES, PROPOSAL_METHODS, MaxSide

FROM_PRESET = "preset"
ACTIVATIONS = {"auto": None, "quickgelu": True, "gelu": False}


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add --model, --proposal-model, --classifier-model, --tokenizer, --proposal-weights, --classifier-weights,
    --activation, --proposal-method, --cam-target, --score-rule, --no-clip-es, --official-numerics and --max-side."""
    parser.add_argument(
        "--model",
        default="auto",
        choices=MODEL_CHOICES,
        help="auto: OpenAI CLIP when its weights are on disk, else the ShapesWorld CLIP",
    )
    add_vlm_options(parser)
    parser.add_argument(
        "--proposal-weights",
        type=Path,
        help="checkpoint file for the proposal CLIP (the preset's architecture; implies real CLIP)",
    )
    parser.add_argument("--classifier-weights", type=Path, help="checkpoint file for the classifier CLIP")
    parser.add_argument(
        "--activation",
        choices=tuple(ACTIVATIONS),
        default="auto",
        help="MLP activation for checkpoint files (auto: inferred and reported; OpenAI's weights need quickgelu)",
    )
    parser.add_argument(
        "--proposal-method",
        choices=PROPOSAL_METHODS,
        default=None,
        help="how masks are proposed: gradcam (the paper's, default of every preset) or a dense "
        "method's maps, no gradients: maskclip, sclip, clearclip, naclip (the last block's attention "
        "as each method's official code changes it; README, Other methods)",
    )
    parser.add_argument(
        "--cam-target",
        choices=CAM_TARGET_CHOICES,
        default=None,
        help="what Grad-CAM explains: patch_mean (CaR's), class_token, pooled (the tower's own "
        "pooling) or auto (the tower's default); default: the preset's (auto)",
    )
    parser.add_argument(
        "--score-rule",
        choices=SCORE_RULES,
        default=None,
        help="softmax: every model scores with CLIP's softmax (the reference's, default); as_trained: "
        "sigmoid-trained models (SigLIP) score with their sigmoid and logit bias, in Grad-CAM's "
        "target and the classifier's keep rule",
    )
    parser.add_argument(
        "--no-clip-es",
        action="store_true",
        help="plain Grad-CAM proposals, no CLIP-ES refinement (needed for convolutional towers)",
    )
    parser.add_argument(
        "--official-numerics",
        action="store_true",
        help="the official code's float32 CLIP-ES and fp16-rounded positional embedding, for "
        "pixel-identical label maps (off: float64 and full precision)",
    )
    parser.add_argument(
        "--max-side",
        default=FROM_PRESET,
        metavar="PIXELS|auto|none",
        help="shrink larger images to this longer side for the recurrence; masks come back at full "
        "size (default: the preset's; auto = 640 for real CLIP, 96 for the ShapesWorld CLIP)",
    )


def add_vlm_options(parser: argparse.ArgumentParser) -> None:
    """Add --proposal-model, --classifier-model and --tokenizer: other VLMs in either stage."""
    parser.add_argument(
        "--proposal-model",
        metavar="NAME[:TAG|PATH]",
        default=None,
        help="another VLM for the proposals: any family `carlib models` lists (e.g. EVA02-B-16, "
        "ViT-B-16:dfn2b, ViT-B-16-SigLIP2:webli) or shapes-siglip; must load, no fallback",
    )
    parser.add_argument(
        "--classifier-model",
        metavar="NAME[:TAG|PATH]",
        default=None,
        help="another VLM for the classifier, as --proposal-model",
    )
    parser.add_argument(
        "--tokenizer",
        metavar="DIR",
        default=None,
        help="a Hugging Face tokenizer folder for models whose tokenizer is not open_clip's (SigLIP)",
    )


def add_precision_options(parser: argparse.ArgumentParser) -> None:
    """Add --amp and --memory-budget."""
    parser.add_argument(
        "--amp",
        choices=AMP_CHOICES,
        default="auto",
        help="autocast of the model work: auto = bf16/fp16 on a GPU and off (float32) on CPU; bf16 "
        "pays on CPUs with amx_bf16 or avx512_bf16 (see README) and changes a few decisions",
    )
    parser.add_argument(
        "--memory-budget",
        type=float,
        default=None,
        metavar="MB",
        help="memory for Grad-CAM's batched backward, which grows with the number of queries, in MiB "
        "(default: 1024 on CPU, a quarter of the GPU's; $CARLIB_MEMORY_BUDGET_MB). Results do "
        "not depend on it",
    )


def apply_precision_options(args: argparse.Namespace) -> str:
    """Check --amp for the device the models will load on and set --memory-budget; the device type.

    Raises:
        ValueError: fp16 without CUDA, or a budget that is not a positive number.
    """
    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu")).type
    resolve_amp(device, args.amp)
    if args.memory_budget is not None:
        set_memory_budget(args.memory_budget)
    return device


def add_sam_options(parser: argparse.ArgumentParser) -> None:
    """Add --sam-checkpoint and --sam-points-per-side (used with --post sam)."""
    parser.add_argument(
        "--sam-checkpoint",
        type=Path,
        help="SAM checkpoint for --post sam: an official sam_vit_h/l/b file or HQ-SAM's "
        "sam_hq_vit_h/l/b/tiny.pth (the model type and family are read from it)",
    )
    parser.add_argument(
        "--sam-points-per-side",
        type=int,
        default=None,
        help="SAM's automatic generator grid (default: the preset's, 64 as the reference)",
    )


def sam_source_from_options(
    command: str, post: str, args: argparse.Namespace, models: LoadedModels, preset: Preset
) -> MaskSource | None:
    """The region source of the SAM stage ``--post sam`` asks for (CaR's ``sam_source``), or None for other post-processing.

    With the ShapesWorld CLIP and no checkpoint, ShapesWorld's colour regions stand in for SAM (said on stderr).

    Raises:
        ValueError: ``--post sam`` with real CLIP and no ``--sam-checkpoint``, or a grid below 1.
    """
    if post != "sam":
        return None
    from carlib.models import SHAPES_MODEL_NAME
    from carlib.postprocess import ColourRegionMaskSource, SamMaskSource

    if args.sam_checkpoint is not None:
        settings = preset.settings.sam
        if args.sam_points_per_side is not None:
            if args.sam_points_per_side < 1:
                raise ValueError(f"--sam-points-per-side must be positive, got {args.sam_points_per_side}")
            settings = settings.replace(points_per_side=args.sam_points_per_side)
        return SamMaskSource(args.sam_checkpoint, device=args.device, settings=settings)
    if models.proposal.name == SHAPES_MODEL_NAME:
        print(f"carlib {command}: no --sam-checkpoint; ShapesWorld colour regions stand in for SAM", file=sys.stderr)
        return ColourRegionMaskSource()
    raise ValueError("--post sam needs --sam-checkpoint PATH (e.g. sam_hq_vit_h.pth or sam_vit_h_4b8939.pth)")


def parse_max_side(text: str) -> MaxSide:
    """``--max-side`` as :class:`carlib.car.CaR` takes it: a positive int, ``"auto"`` or None (``"none"``).

    Raises:
        ValueError: anything else, with the accepted forms.
    """
    if text.lower() in ("auto", "none"):
        return None if text.lower() == "none" else "auto"
    return _pixels(text, "--max-side", ", 'auto' or 'none'")


def _pixels(text: str, option: str, also: str) -> int:
    """A positive number of pixels given to ``option`` (``also``: the words it accepts besides, for the error).

    Raises:
        ValueError: not an integer, or not positive.
    """
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{option} takes a number of pixels{also}, not {text!r}") from None
    if value < 1:
        raise ValueError(f"{option} must be positive (a number of pixels), got {value}")
    return value


def preset_from_options(preset: Preset, args: argparse.Namespace) -> tuple[Preset, str]:
    """The preset with --max-side and the weight files applied, and the model choice to load with.

    Raises:
        FileNotFoundError: a weight file does not exist.
        ValueError: weight files combined with ``--model shapes``.
    """
    changes: dict = {}
    if args.max_side != FROM_PRESET:
        changes["max_side"] = parse_max_side(args.max_side)
    if args.proposal_method is not None:
        changes["proposal_method"] = args.proposal_method
    if getattr(args, "official_numerics", False):
        changes["official_numerics"] = True
    for option, field in (("cam_target", "cam_target"), ("score_rule", "score_rule")):
        if getattr(args, option, None) is not None:
            changes[field] = getattr(args, option)
    if getattr(args, "no_clip_es", False):
        changes["use_clip_es"] = False
    if getattr(args, "neighbourhood_std", None) is not None:
        changes["neighbourhood_std"] = args.neighbourhood_std
    model = args.model
    for role in ("proposal", "classifier"):
        weights: Path | None = getattr(args, f"{role}_weights", None)
        if weights is None:
            continue
        if getattr(args, f"{role}_model", None) is not None and weights.is_file():
            continue  # the role's explicit model takes the file (model_overrides)
        if not weights.is_file():
            raise FileNotFoundError(f"--{role}-weights file not found: {weights}")
        if model == "shapes":
            raise ValueError(f"--{role}-weights loads real CLIP; it cannot be combined with --model shapes")
        changes[f"{role}_pretrained"] = str(weights)
        model = "openai"  # an explicit file must load or fail, never fall back to ShapesWorld
    return (preset.replace(**changes) if changes else preset), model


def model_overrides(args: argparse.Namespace) -> dict:
    """--proposal-model, --classifier-model and --tokenizer as :func:`carlib.pipeline.load_models` keywords.

    A role's ``--X-weights FILE`` joins its ``--X-model NAME`` given without a tag (``NAME:FILE``).

    Raises:
        ValueError: an unknown model name, or a tag and a weights file for the same role.
    """
    overrides: dict = {"tokenizer": getattr(args, "tokenizer", None)}
    for role in ("proposal", "classifier"):
        spec = getattr(args, f"{role}_model", None)
        if spec is None:
            continue
        name, pretrained = parse_model_spec(spec)
        weights = getattr(args, f"{role}_weights", None)
        if weights is not None:
            if pretrained is not None:
                raise ValueError(f"--{role}-model {spec} names its weights already; drop --{role}-weights")
            pretrained = str(weights)
        overrides[role] = name if pretrained is None else f"{name}:{pretrained}"
    return overrides


def quick_gelu_option(args: argparse.Namespace) -> bool | None:
    """--activation as load_clip's ``quick_gelu`` (None: infer)."""
    return ACTIVATIONS[args.activation]


def announce_models(command: str, models: LoadedModels) -> None:
    """Say on stderr which models run, and for each where its weights came from and which activation it got."""
    print(f"carlib {command}: using {models.description}", file=sys.stderr)
    for note in models.weights_notes:
        print(f"carlib {command}: {note}", file=sys.stderr)


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """Add --method, --protocol and the protocol's values (--short-side, --window, --stride, --logit-scale,
    --prob-threshold, --class-names) for a dense method run alone."""
    from carlib.dense_methods import DENSE_METHODS
    from carlib.method_alone import PROTOCOLS

    parser.add_argument(
        "--method",
        choices=DENSE_METHODS,
        default=None,
        help="run a dense method alone instead of CaR: per-pixel argmax over [classes; background], "
        "no recurrence, no post-processing (README, Other methods)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="carlib",
        help="with --method: carlib (the method as CaR's proposal stage reads it, the default) or "
        "field (the method's official harness: short side, sliding windows, its logit scale, its "
        "class-name files, its probability threshold; docs/datasets.md)",
    )
    parser.add_argument(
        "--short-side",
        default=None,
        metavar="PIXELS|none",
        help="with --method: resize the image's short side to this (none: the image as max_side "
        "gives it); default: the protocol's",
    )
    parser.add_argument(
        "--window",
        default=None,
        metavar="PIXELS|none",
        help="with --method: sliding-window inference with this window (none: one pass); default: the protocol's",
    )
    parser.add_argument("--stride", type=int, default=None, help="with --method: the windows' stride in pixels")
    parser.add_argument(
        "--logit-scale",
        type=float,
        default=None,
        help="with --method: the cosines' multiplier before the softmax (default: the protocol's; "
        "carlib: the model's own)",
    )
    parser.add_argument(
        "--prob-threshold",
        type=float,
        default=None,
        help="with --method: pixels whose best probability is below this are background",
    )
    parser.add_argument(
        "--class-names",
        default=None,
        metavar="FILE",
        help="with --method: a class-name file (one line per label, synonyms separated by commas; "
        "a shipped one such as sclip/cls_voc21.txt, or a path)",
    )
    parser.add_argument(
        "--neighbourhood-std",
        type=float,
        default=None,
        help="NACLIP's Gaussian σ in patches (default 5), alone or as CaR's proposals",
    )


METHOD_ONLY_OPTIONS = (
    ("short_side", "--short-side"),
    ("window", "--window"),
    ("stride", "--stride"),
    ("logit_scale", "--logit-scale"),
    ("prob_threshold", "--prob-threshold"),
    ("class_names", "--class-names"),
)


def _pixels_or_none(text: str | None, option: str) -> object:
    if text is None:
        return "default"
    if text.lower() == "none":
        return None
    return _pixels(text, option, " or 'none'")


def method_protocol_from_options(args: argparse.Namespace, preset: Preset, without_background: bool = False):
    """The :class:`carlib.method_alone.MethodProtocol` of ``--method`` and its options, or None without --method.

    Raises:
        ValueError: protocol options without --method, --method with CaR-only options, or bad values.
    """
    from carlib.method_alone import protocol_from_options

    method = getattr(args, "method", None)
    if method is None:
        given = [flag for name, flag in METHOD_ONLY_OPTIONS if getattr(args, name, None) is not None]
        if given or getattr(args, "protocol", "carlib") != "carlib":
            flags = given + (["--protocol"] if getattr(args, "protocol", "carlib") != "carlib" else [])
            raise ValueError(
                f"{', '.join(flags)} apply to a method run alone (--method NAME); CaR reads the whole "
                "image with the preset's texts"
            )
        return None
    if getattr(args, "proposal_method", None) not in (None, method):
        raise ValueError(f"--method {method} runs {method} alone; --proposal-method is CaR's: give one of them")
    if getattr(args, "classifier_model", None) is not None or getattr(args, "classifier_weights", None) is not None:
        raise ValueError(f"--method {method} runs the proposal model alone: there is no classifier to set")
    std = args.neighbourhood_std if args.neighbourhood_std is not None else preset.settings.neighbourhood_std
    return protocol_from_options(
        args.protocol,
        method,
        preset.name,
        without_background,
        short_side=_pixels_or_none(args.short_side, "--short-side"),
        window=_pixels_or_none(args.window, "--window"),
        stride=args.stride if args.stride is not None else "default",
        logit_scale=args.logit_scale,
        probability_threshold=args.prob_threshold,
        class_names=args.class_names,
        neighbourhood_std=std if std != 5.0 else None,
    )


def options_namespace(
    add_arguments: Callable[[argparse.ArgumentParser], None], command: str, **values
) -> argparse.Namespace:
    """A command's options as its handler takes them, built from values rather than a command line.

    Every option the command's ``add_arguments`` defines gets its default unless ``values`` names it; a
    string value goes through the option's type, as parsing would (``data_root="/data"`` becomes a Path).

    Arguments:
        add_arguments: the function that adds the command's options to a parser.
        command: the command's name, for error messages.
        **values: options by name (the parser's ``dest``: ``data_root``, ``without_background``...).

    Raises:
        ValueError: a name the command has no option for, or a required option missing.
    """
    parser = argparse.ArgumentParser(prog=command, add_help=False)
    add_arguments(parser)
    namespace = argparse.Namespace()
    for action in parser._actions:  # the parser's options, each with its default and type
        if action.dest in values:
            value = values.pop(action.dest)
            if isinstance(value, str) and callable(action.type):
                value = action.type(value)
            if action.choices is not None and value not in action.choices:
                raise ValueError(
                    f"{command}: --{action.dest.replace('_', '-')} {value!r} is not one of {list(action.choices)}"
                )
            setattr(namespace, action.dest, value)
        elif action.required:
            raise ValueError(f"{command} needs --{action.dest.replace('_', '-')}")
        else:
            setattr(namespace, action.dest, action.default)
    if values:
        raise ValueError(f"{command} has no option {', '.join('--' + name.replace('_', '-') for name in values)}")
    return namespace
