"""Command-line options shared by ``carlib segment`` and ``carlib eval``: models, weight files, resolution,
precision and memory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from carlib.memory import set_memory_budget
from carlib.pipeline import MODEL_CHOICES, LoadedModels, parse_model_spec
from carlib.precision import AMP_CHOICES, resolve_amp
from carlib.presets import Preset
from carlib.scores import SCORE_RULES
from carlib.settings import CAM_TARGET_CHOICES, PROPOSAL_METHODS, MaxSide

FROM_PRESET = "preset"
ACTIVATIONS = {"auto": None, "quickgelu": True, "gelu": False}


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add --model, --proposal-model, --classifier-model, --tokenizer, --proposal-weights, --classifier-weights,
    --activation, --proposal-method, --cam-target, --score-rule, --no-clip-es, --official-numerics and --max-side."""
    parser.add_argument("--model", default="auto", choices=MODEL_CHOICES,
                        help="auto: OpenAI CLIP when its weights are on disk, else the ShapesWorld CLIP")
    add_vlm_options(parser)
    parser.add_argument("--proposal-weights", type=Path,
                        help="checkpoint file for the proposal CLIP (the preset's architecture; implies real CLIP)")
    parser.add_argument("--classifier-weights", type=Path, help="checkpoint file for the classifier CLIP")
    parser.add_argument("--activation", choices=tuple(ACTIVATIONS), default="auto",
                        help="MLP activation for checkpoint files (auto: inferred and reported; OpenAI's weights "
                        "need quickgelu)")
    parser.add_argument("--proposal-method", choices=PROPOSAL_METHODS, default=None,
                        help="how masks are proposed: gradcam (the paper's, default of every preset) or maskclip "
                        "(dense MaskCLIP maps, no gradients)")
    parser.add_argument("--cam-target", choices=CAM_TARGET_CHOICES, default=None,
                        help="what Grad-CAM explains: patch_mean (CaR's), class_token, pooled (the tower's own "
                        "pooling) or auto (the tower's default); default: the preset's (auto)")
    parser.add_argument("--score-rule", choices=SCORE_RULES, default=None,
                        help="softmax: every model scores with CLIP's softmax (the reference's, default); as_trained: "
                        "sigmoid-trained models (SigLIP) score with their sigmoid and logit bias, in Grad-CAM's "
                        "target and the classifier's keep rule")
    parser.add_argument("--no-clip-es", action="store_true",
                        help="plain Grad-CAM proposals, no CLIP-ES refinement (needed for convolutional towers)")
    parser.add_argument("--official-numerics", action="store_true",
                        help="the official code's float32 CLIP-ES and fp16-rounded positional embedding, for "
                        "pixel-identical label maps (off: float64 and full precision)")
    parser.add_argument("--max-side", default=FROM_PRESET, metavar="PIXELS|auto|none",
                        help="shrink larger images to this longer side for the recurrence; masks come back at full "
                        "size (default: the preset's; auto = 640 for real CLIP, 96 for the ShapesWorld CLIP)")


def add_vlm_options(parser: argparse.ArgumentParser) -> None:
    """Add --proposal-model, --classifier-model and --tokenizer: other VLMs in either stage."""
    parser.add_argument("--proposal-model", metavar="NAME[:TAG|PATH]", default=None,
                        help="another VLM for the proposals: any family `carlib models` lists (e.g. EVA02-B-16, "
                        "ViT-B-16:dfn2b, ViT-B-16-SigLIP2:webli) or shapes-siglip; must load, no fallback")
    parser.add_argument("--classifier-model", metavar="NAME[:TAG|PATH]", default=None,
                        help="another VLM for the classifier, as --proposal-model")
    parser.add_argument("--tokenizer", metavar="DIR", default=None,
                        help="a Hugging Face tokenizer folder for models whose tokenizer is not open_clip's (SigLIP)")


def add_precision_options(parser: argparse.ArgumentParser) -> None:
    """Add --amp and --memory-budget."""
    parser.add_argument("--amp", choices=AMP_CHOICES, default="auto",
                        help="autocast of the model work: auto = bf16/fp16 on a GPU and off (float32) on CPU; bf16 "
                        "pays on CPUs with amx_bf16 or avx512_bf16 (see README) and changes a few decisions")
    parser.add_argument("--memory-budget", type=float, default=None, metavar="MB",
                        help="memory for Grad-CAM's batched backward, which grows with the number of queries, in MiB "
                        "(default: 1024 on CPU, a quarter of the GPU's; $CARLIB_MEMORY_BUDGET_MB). Results do "
                        "not depend on it")


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
    parser.add_argument("--sam-checkpoint", type=Path,
                        help="SAM checkpoint for --post sam: an official sam_vit_h/l/b file or HQ-SAM's "
                        "sam_hq_vit_h/l/b/tiny.pth (the model type and family are read from it)")
    parser.add_argument("--sam-points-per-side", type=int, default=None,
                        help="SAM's automatic generator grid (default: the preset's, 64 as the reference)")


def sam_source_from_options(command: str, post: str, args: argparse.Namespace, models: LoadedModels,
                            preset: Preset):
    """The SAM mask source ``--post sam`` asks for, or None for other post-processing.

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
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--max-side takes a number of pixels, 'auto' or 'none', not {text!r}") from None
    if value < 1:
        raise ValueError(f"--max-side must be positive, got {value}")
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
    model = args.model
    for role in ("proposal", "classifier"):
        weights: Optional[Path] = getattr(args, f"{role}_weights", None)
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


def quick_gelu_option(args: argparse.Namespace) -> Optional[bool]:
    """--activation as load_clip's ``quick_gelu`` (None: infer)."""
    return ACTIVATIONS[args.activation]


def announce_models(command: str, models: LoadedModels) -> None:
    """Say on stderr which models run, and for each where its weights came from and which activation it got."""
    print(f"carlib {command}: using {models.description}", file=sys.stderr)
    for note in models.weights_notes:
        print(f"carlib {command}: {note}", file=sys.stderr)
