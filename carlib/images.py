"""Turning whatever image a user passes into RGB uint8, and into CLIP input tensors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

ImageInput = Union[str, Path, Image.Image, np.ndarray]

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_image(image: ImageInput) -> np.ndarray:
    """Read an image from a path, a PIL image or an array, as RGB.

    Arguments:
        image: a file path; a PIL image of any common mode (1, L, LA, P, RGB,
            RGBA, CMYK, I;16, I, F); or an array HxW, HxWx1, HxWx3 or HxWx4 of
            dtype uint8 (0..255), uint16 (0..65535) or float (0..1).

    Returns:
        HxWx3 uint8 RGB array (a new array; the input is not modified).
        Alpha channels are dropped, as CLIP's own preprocessing does.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the path is a directory or not a readable image, or the
            array has an unsupported shape or dtype.
    """
    if isinstance(image, (str, Path)):
        return _read_image_file(Path(image))
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    raise ValueError(
        f"unsupported image type {type(image).__name__}; pass a file path, a PIL image "
        "or an HxWx3 uint8 numpy array"
    )


def _read_image_file(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.is_dir():
        raise ValueError(f"expected an image file but got a directory: {path}")
    try:
        with Image.open(path) as opened:
            opened.load()
            return _pil_to_rgb(opened)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    # High bit-depth modes are rescaled, not clipped: PIL's own convert("RGB")
    # would saturate every 16-bit value above 255 to white.
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        return _array_to_rgb(np.asarray(image))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(
            f"image array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {array.shape}"
        )
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        return array.copy()
    if array.dtype == np.uint16:
        return np.round(array.astype(np.float64) / 257.0).astype(np.uint8)
    if array.dtype.kind == "i":
        # 32-bit integer images (PIL mode "I") are 16-bit data in practice.
        scale = 257.0 if array.max(initial=0) > 255 else 1.0
        return np.clip(np.round(array / scale), 0, 255).astype(np.uint8)
    if array.dtype.kind == "f":
        if array.size and (np.nanmin(array) < 0.0 or np.nanmax(array) > 1.0):
            raise ValueError(
                "float image arrays must hold values in [0, 1]; "
                f"got range [{np.nanmin(array):.3g}, {np.nanmax(array):.3g}] — "
                "convert to uint8 first"
            )
        return np.round(np.nan_to_num(array) * 255.0).astype(np.uint8)
    raise ValueError(
        f"unsupported image dtype {array.dtype}; use uint8 (0..255), uint16 or float in [0, 1]"
    )


def patch_aligned_size(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """The size CaR feeds the proposal CLIP: each side rounded up to a patch multiple.

    Arguments:
        height, width: the image size in pixels.
        patch_size: the ViT patch size in pixels.

    Returns:
        (height, width), each ceil(side / patch_size) * patch_size, so an image
        smaller than one patch is upsampled to exactly one patch.
    """
    return (
        max(1, math.ceil(height / patch_size)) * patch_size,
        max(1, math.ceil(width / patch_size)) * patch_size,
    )


def proposal_input(
    image: np.ndarray,
    patch_size: int,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
) -> torch.Tensor:
    """Preprocess an image for the proposal (Grad-CAM) CLIP, as the reference does.

    The image is resized (bicubic) to the patch-aligned size, not cropped, and
    normalised with CLIP's mean and std.

    Arguments:
        image: HxWx3 uint8 RGB.
        patch_size: the ViT patch size.
        mean, std: per-channel normalisation, in [0, 1] units.

    Returns:
        float32 tensor 1x3xH'xW' with H', W' multiples of ``patch_size``.
    """
    height, width = image.shape[:2]
    target_height, target_width = patch_aligned_size(height, width, patch_size)
    pil = Image.fromarray(image)
    if (target_height, target_width) != (height, width):
        pil = pil.resize((target_width, target_height), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return ((pixels - mean_t) / std_t).unsqueeze(0)
