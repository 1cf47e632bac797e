"""The ShapesWorld models: small CLIPs of two families, trained by :mod:`carlib.world.train`.

- ``"clip"`` (``data/shapes_clip``, ``load_clip("shapes")``): an
  ``open_clip.CLIP`` with open_clip's ViT (class token, patch-mean pooling),
  trained with the contrastive softmax loss.
- ``"siglip"`` (``data/shapes_siglip``, ``load_clip("shapes-siglip")``): an
  ``open_clip.CustomTextCLIP`` whose vision tower is a timm
  ``VisionTransformer`` as SigLIP's is: no class token, a MAP attention-pool
  head, trained with SigLIP's sigmoid loss and a logit bias.

Both have the same width, depth, patch size and text tower, so they differ
in what a family differs in. The checkpoint folder holds ``model.safetensors``
(fp16 weights) and ``config.json``; loading builds the architecture from
``config["model_cfg"]`` (:func:`build_shapes_clip`) and loads the weights
strictly, with the real open_clip BPE tokenizer at ``config["context_length"]``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import open_clip
import torch
from safetensors.torch import save as safetensors_bytes
from timm.models import register_model
from timm.models.vision_transformer import VisionTransformer

from carlib.files import atomic_write_bytes, atomic_write_text
from carlib.images import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from carlib.world.classes import BACKGROUND_NAMES, CLASS_NAMES
from carlib.world.scene import DEFAULT_IMAGE_SIZE

CONTEXT_LENGTH = 24
DEFAULT_PATCH_SIZE = 8  # 96 px scenes give a 12 x 12 grid
VOCAB_SIZE = 49408  # open_clip's SimpleTokenizer (OpenAI BPE)
FAMILIES = ("clip", "siglip")
SIGLIP_TOWER = "carlib_shapes_siglip_vit"
"""The timm name of the ShapesWorld SigLIP-style tower (registered with timm when this module is imported)."""


@register_model
def carlib_shapes_siglip_vit(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """timm's ``VisionTransformer`` as SigLIP builds it (no class token, MAP head), at ShapesWorld's size.

    open_clip's ``TimmModel`` passes ``num_classes`` and ``global_pool``; the rest is this
    project's small tower (patch 8, width 128, 6 blocks of 4 heads), as the first ShapesWorld CLIP.
    """
    if pretrained:
        raise ValueError("the ShapesWorld SigLIP tower has no timm weights; load data/shapes_siglip instead")
    options: dict[str, Any] = {
        "img_size": DEFAULT_IMAGE_SIZE,
        "patch_size": DEFAULT_PATCH_SIZE,
        "embed_dim": 128,
        "depth": 6,
        "num_heads": 4,
        "mlp_ratio": 4.0,
        "class_token": False,
        "global_pool": "map",
    }
    # timm's factory also passes its bookkeeping (pretrained_cfg, cache_dir...), which the class does not take.
    options.update({key: value for key, value in kwargs.items() if key in ("num_classes", "global_pool")})
    return VisionTransformer(**options)


def default_model_cfg(image_size: int = DEFAULT_IMAGE_SIZE, pool_type: str = "avg") -> dict[str, Any]:
    """Keyword arguments for ``open_clip.CLIP`` of the shipped architecture.

    ViT vision tower (patch 8, width 128, 6 layers, 4 heads) and a narrow text
    tower (width 64, 3 layers) over the full BPE vocabulary.

    Arguments:
        image_size: training image side in pixels.
        pool_type: ``"avg"`` (image embedding = mean of the patch tokens, the
            embedding CaR's Grad-CAM explains) or ``"tok"`` (class token, as
            OpenAI's CLIP).
    """
    return {
        "embed_dim": 128,
        "vision_cfg": {
            "image_size": image_size,
            "patch_size": DEFAULT_PATCH_SIZE,
            "width": 128,
            "layers": 6,
            "head_width": 32,
            "mlp_ratio": 4.0,
            "pool_type": pool_type,
        },
        "text_cfg": {
            "context_length": CONTEXT_LENGTH,
            "vocab_size": VOCAB_SIZE,
            "width": 64,
            "heads": 4,
            "layers": 3,
        },
        "quick_gelu": False,
    }


def siglip_model_cfg(image_size: int = DEFAULT_IMAGE_SIZE) -> dict[str, Any]:
    """Keyword arguments for ``open_clip.CustomTextCLIP`` of the SigLIP-style ShapesWorld model.

    The vision tower is :func:`carlib_shapes_siglip_vit` (no class token, MAP
    head, no extra projection: its width is the embedding width); the text
    tower is the first model's. The logit scale and bias start where SigLIP's
    paper starts them (scale 10, bias -10).
    """
    if image_size != DEFAULT_IMAGE_SIZE:
        raise ValueError(
            f"the SigLIP-style ShapesWorld tower is built for {DEFAULT_IMAGE_SIZE} px scenes, not {image_size}"
        )
    text_cfg = default_model_cfg(image_size)["text_cfg"]
    return {
        "embed_dim": 128,
        "vision_cfg": {
            "timm_model_name": SIGLIP_TOWER,
            "timm_model_pretrained": False,
            "timm_pool": "map",
            "timm_proj": "none",
            "image_size": image_size,
        },
        "text_cfg": text_cfg,
        "quick_gelu": False,
        "init_logit_scale": math.log(10.0),
        "init_logit_bias": -10.0,
    }


def default_config(
    image_size: int = DEFAULT_IMAGE_SIZE, pool_type: str = "avg", family: str = "clip"
) -> dict[str, Any]:
    """The config.json content before training fills in ``"training"``.

    Arguments:
        image_size: scene side in pixels.
        pool_type: the ``"clip"`` family's vision pooling (``"avg"`` or ``"tok"``).
        family: ``"clip"`` (contrastive, open_clip ViT) or ``"siglip"`` (sigmoid, timm ViT with a MAP head).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if pool_type not in ("avg", "tok"):
        raise ValueError(f"pool_type must be 'avg' or 'tok', got {pool_type!r}")
    return {
        "family": family,
        "model_cfg": default_model_cfg(image_size, pool_type) if family == "clip" else siglip_model_cfg(image_size),
        "image_size": image_size,
        "mean": list(OPENAI_CLIP_MEAN),
        "std": list(OPENAI_CLIP_STD),
        "context_length": CONTEXT_LENGTH,
        "class_names": list(CLASS_NAMES),
        "background_names": list(BACKGROUND_NAMES),
        "training": {},
    }


def build_shapes_clip(config: dict[str, Any]) -> open_clip.CLIP | open_clip.CustomTextCLIP:
    """The model of a ShapesWorld config with freshly initialised weights.

    Arguments:
        config: a ShapesWorld config (see :func:`default_config`); one without
            ``"family"`` is the first model's (``"clip"``).

    Returns:
        an ``open_clip.CLIP`` (``"clip"``) or ``open_clip.CustomTextCLIP``
        (``"siglip"``), fp32, train mode; seed torch first for reproducible weights.
    """
    family = config.get("family", "clip")
    if family == "siglip":
        return open_clip.CustomTextCLIP(**config["model_cfg"])
    if family != "clip":
        raise ValueError(f"unknown ShapesWorld model family {family!r}; known: {FAMILIES}")
    return open_clip.CLIP(**config["model_cfg"])


def tokenizer_for(config: dict[str, Any]) -> open_clip.tokenizer.SimpleTokenizer:
    """The real open_clip BPE tokenizer at the config's context length."""
    return open_clip.tokenizer.SimpleTokenizer(context_length=config["context_length"])


def save_shapes_checkpoint(model: torch.nn.Module, config: dict[str, Any], folder: str | os.PathLike) -> None:
    """Write ``model.safetensors`` (fp16) and ``config.json``, each atomically.

    Each file is written to a temporary name in the same folder and renamed
    over the old one, so a crash never leaves a half-written file.

    Arguments:
        model: the trained CLIP.
        config: the config to store beside it.
        folder: destination directory (created if needed).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().to(torch.float16).contiguous().clone() for key, value in model.state_dict().items()}
    # As bytes first: safetensors' own writer reports a full disk as a SafetensorError, not an OSError.
    atomic_write_bytes(safetensors_bytes(state), folder / "model.safetensors")
    atomic_write_text(json.dumps(config, indent=2) + "\n", folder / "config.json")
