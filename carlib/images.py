"""Turning whatever image a user passes into RGB uint8, and into CLIP input tensors.

Photos are turned upright by their EXIF orientation before anything else, so
every output matches the picture as a viewer shows it. Files whose decoded
size would exceed :data:`MAX_IMAGE_PIXELS` are refused before decoding (a
decompression bomb is a small file that decodes to gigabytes); large photos
are normal input and are bounded later, by the proposal stage's ``max_side``.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = str | Path | Image.Image | np.ndarray

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

MAX_IMAGE_PIXELS = 250_000_000
"""The largest decoded image :func:`load_image` reads from a file (250 MP, above a 200 MP phone
sensor; 750 MB as RGB). ``$CARLIB_MAX_IMAGE_PIXELS`` or the ``max_pixels`` argument change it."""
MAX_PIXELS_ENV = "CARLIB_MAX_IMAGE_PIXELS"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
"""File suffixes treated as images when a folder is given (case-insensitive)."""


def load_image(image: ImageInput, *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image from a path, a PIL image or an array, as RGB, upright.

    Arguments:
        image: a file path; a PIL image of any common mode (1, L, LA, P, RGB,
            RGBA, CMYK, I;16, I, F); or an array HxW, HxWx1, HxWx3 or HxWx4 of
            dtype uint8 (0..255), uint16 (0..65535) or float (0..1).
        max_pixels: refuse files that decode to more pixels than this
            (default :data:`MAX_IMAGE_PIXELS`, or ``$CARLIB_MAX_IMAGE_PIXELS``).

    Returns:
        HxWx3 uint8 RGB array (a new array; the input is not modified).
        Files and PIL images are first turned by their EXIF orientation
        (``ImageOps.exif_transpose``), so a portrait phone photo comes out
        portrait. Alpha channels are dropped, as CLIP's own preprocessing does.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the path is a directory or not a readable image, the file
            would decode to more than ``max_pixels`` pixels, or the array has
            an unsupported shape or dtype.
    """
    if isinstance(image, (str, Path)):
        return _read_image_file(Path(image), pixel_limit(max_pixels))
    if isinstance(image, Image.Image):
        return _pil_to_rgb(ImageOps.exif_transpose(image))
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    raise ValueError(
        f"unsupported image type {type(image).__name__}; pass a file path, a PIL image or an HxWx3 uint8 numpy array"
    )


def pixel_limit(max_pixels: int | None = None) -> int:
    """The decoded-size limit in pixels: ``max_pixels``, else ``$CARLIB_MAX_IMAGE_PIXELS``, else the default."""
    if max_pixels is not None:
        return int(max_pixels)
    override = os.environ.get(MAX_PIXELS_ENV)
    if override:
        try:
            return int(override)
        except ValueError:
            raise ValueError(f"${MAX_PIXELS_ENV} must be a whole number of pixels, got {override!r}") from None
    return MAX_IMAGE_PIXELS


def _read_image_file(path: Path, max_pixels: int) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.is_dir():
        raise ValueError(f"expected an image file but got a directory: {path}")
    # PIL's own bomb check would warn or fail at its fixed limits; carlib applies its documented one instead.
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as opened:
            width, height = opened.size  # from the header: nothing is decoded yet
            if width * height > max_pixels:
                raise ValueError(
                    f"image {path} would decode to {width} x {height} = {width * height / 1e6:.0f} MP, over the "
                    f"limit of {max_pixels / 1e6:.0f} MP (a decompression bomb, or a truly huge picture); if you "
                    f"trust it, raise the limit with ${MAX_PIXELS_ENV}"
                )
            opened.load()
            return _pil_to_rgb(ImageOps.exif_transpose(opened))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def fit_within(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink an image so its longer side is at most ``max_side`` (area interpolation); smaller ones as they are.

    Arguments:
        image: HxWx3 uint8 RGB.
        max_side: the bound in pixels, or None for no bound.

    Returns:
        the image itself when it already fits, else a resized copy whose
        longer side is exactly ``max_side`` (the other rounded, at least 1).
    """
    height, width = image.shape[:2]
    size = bounded_size(height, width, max_side)
    if size == (height, width):
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def bounded_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) scaled down so the longer side is ``max_side``; unchanged when it fits or no bound."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    if max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels or None, got {max_side}")
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


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
        raise ValueError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {array.shape}")
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
    raise ValueError(f"unsupported image dtype {array.dtype}; use uint8 (0..255), uint16 or float in [0, 1]")


def pixel_digest(image: np.ndarray) -> tuple:
    """A key for an image's content (its shape and a 128-bit hash of its pixels), for caches keyed by picture."""
    return image.shape, hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


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
