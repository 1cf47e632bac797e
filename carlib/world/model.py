"""The ShapesWorld CLIP: a small ``open_clip.CLIP`` with a ViT vision tower.

The checkpoint folder holds ``model.safetensors`` (fp16 weights) and
``config.json``. Loading is exactly what :func:`carlib.load_clip` does for
``"shapes"``: ``open_clip.CLIP(**config["model_cfg"])``, ``load_state_dict``
with ``strict=True`` (weights cast to fp32), and the real open_clip BPE
tokenizer with ``config["context_length"]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import open_clip
import torch
from safetensors.torch import load_file, save_file

from carlib.files import atomic_write, atomic_write_text
from carlib.images import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from carlib.world.classes import BACKGROUND_NAMES, CLASS_NAMES
from carlib.world.scene import DEFAULT_IMAGE_SIZE

CONTEXT_LENGTH = 24
DEFAULT_PATCH_SIZE = 8  # 96 px scenes give a 12 x 12 grid
VOCAB_SIZE = 49408  # open_clip's SimpleTokenizer (OpenAI BPE)


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


def default_config(image_size: int = DEFAULT_IMAGE_SIZE, pool_type: str = "avg") -> dict[str, Any]:
    """The config.json content before training fills in ``"training"``."""
    if pool_type not in ("avg", "tok"):
        raise ValueError(f"pool_type must be 'avg' or 'tok', got {pool_type!r}")
    return {
        "model_cfg": default_model_cfg(image_size, pool_type),
        "image_size": image_size,
        "mean": list(OPENAI_CLIP_MEAN),
        "std": list(OPENAI_CLIP_STD),
        "context_length": CONTEXT_LENGTH,
        "class_names": list(CLASS_NAMES),
        "background_names": list(BACKGROUND_NAMES),
        "training": {},
    }


def build_shapes_clip(config: dict[str, Any]) -> open_clip.CLIP:
    """An ``open_clip.CLIP`` with freshly initialised weights from ``config["model_cfg"]``.

    Arguments:
        config: a ShapesWorld config (see :func:`default_config`).

    Returns:
        the model (fp32, train mode); seed torch first for reproducible weights.
    """
    return open_clip.CLIP(**config["model_cfg"])


def tokenizer_for(config: dict[str, Any]) -> open_clip.tokenizer.SimpleTokenizer:
    """The real open_clip BPE tokenizer at the config's context length."""
    return open_clip.tokenizer.SimpleTokenizer(context_length=config["context_length"])


def load_shapes_checkpoint(folder: str | os.PathLike) -> tuple[open_clip.CLIP, dict[str, Any]]:
    """Load a ShapesWorld checkpoint folder the way :func:`carlib.load_clip` does.

    Arguments:
        folder: a directory with ``config.json`` and ``model.safetensors``.

    Returns:
        (model in eval mode, fp32, config dict).

    Raises:
        FileNotFoundError: a file is missing.
        RuntimeError: the weights do not fit the config (strict loading).
    """
    folder = Path(folder)
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found; train one with `carlib world train --out {folder}`")
    config = json.loads((folder / "config.json").read_text())
    model = build_shapes_clip(config)
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    return model.float().eval(), config


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
    atomic_write(lambda target: save_file(state, target), folder / "model.safetensors")
    atomic_write_text(json.dumps(config, indent=2) + "\n", folder / "config.json")
