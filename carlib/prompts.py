"""Visual prompts: drawing a mask proposal onto the image before CLIP scores it.

CaR re-scores each mask proposal by showing CLIP the image with the mask marked
on it (paper supplementary, Algorithm A). The marks follow the official code:
the region outside the mask is blurred, grayed or blacked out, and/or the mask
is outlined with an ellipse, a rectangle or its contour.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image
from scipy.ndimage import binary_fill_holes

# The order the kinds are applied in. Region edits come before outlines so that
# an outline is never blurred or grayed away, matching the reference code.
PROMPT_KINDS: tuple[str, ...] = ("blur", "gray", "black", "circle", "rectangle", "contour")
REFERENCE_BLUR_KERNEL = 15
"""Side of the reference's Gaussian blur kernel (15 x 15, on images of ~500 px)."""

# The reference code names "black" also "mask" in its configs.
_ALIASES = {"mask": "black"}

_GRAY_CODES = {"rgb": cv2.COLOR_RGB2GRAY, "bgr_reference": cv2.COLOR_BGR2GRAY}


def mask_center_and_extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Centre and bounding-box size of a mask, as the reference ``mask2chw``.

    Arguments:
        mask: HxW array, bool or numeric; nonzero pixels are inside.

    Returns:
        ``(center_row, center_col, height, width)`` as Python ints. The centre is
        the mean row/column of the inside pixels, truncated to int (the
        centroid, not the box centre). Height and width count pixels of the
        tight bounding box, ``max - min + 1``, so a single pixel has extent 1.

    Raises:
        ValueError: the mask is not 2-D or has no pixel inside.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be HxW (2-D), got shape {mask.shape}")
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("mask has no pixel inside; its centre and extent are undefined")
    return (
        int(rows.mean()),
        int(cols.mean()),
        int(rows.max() - rows.min() + 1),
        int(cols.max() - cols.min() + 1),
    )


def check_blur_kernel(blur_kernel: object) -> None:
    """Raise ValueError unless ``blur_kernel`` is a positive odd int (cv2's Gaussian kernel side)."""
    if (
        isinstance(blur_kernel, bool)
        or not isinstance(blur_kernel, (int, np.integer))
        or blur_kernel < 1
        or blur_kernel % 2 == 0
    ):
        raise ValueError(f"blur_kernel must be a positive odd int (cv2 requires it), e.g. 15; got {blur_kernel!r}")


def apply_visual_prompts(
    image: np.ndarray | Image.Image,
    mask: np.ndarray,
    kinds: str | Sequence[str] = ("circle", "blur"),
    *,
    color: tuple[int, int, int] = (255, 0, 0),
    thickness: int = 1,
    blur_kernel: int = REFERENCE_BLUR_KERNEL,
    gray_formula: str = "rgb",
    min_pixels: int = 2,
) -> np.ndarray:
    """Mark a mask on an image as a visual prompt for CLIP.

    The kinds are applied in the fixed order of :data:`PROMPT_KINDS` (blur,
    gray, black, circle, rectangle, contour), whatever order they are given in,
    each acting on the result of the previous one:

    - ``blur``: outside the mask, a Gaussian blur (``blur_kernel`` square,
      sigma from the kernel size) of the image; inside, the image unchanged.
    - ``gray``: outside the mask, the image's grayscale in all 3 channels.
    - ``black`` (alias ``mask``): outside the mask set to 0.
    - ``circle``: an ellipse centred on the mask centroid with semi-axes
      ``(width // 2, height // 2)`` of the mask's bounding box
      (see :func:`mask_center_and_extent`).
    - ``rectangle``: the rectangle from ``centre - extent // 2`` to
      ``centre + extent // 2``, same centre and extent as ``circle``.
    - ``contour``: the outline of the mask after filling its holes, so only
      outer boundaries are drawn.

    Arguments:
        image: HxWx3 uint8 RGB array, or a PIL image (converted to RGB).
        mask: HxW array, bool or numeric; nonzero (for floats, > 0) is inside.
            Binarise soft masks at your threshold before calling.
        kinds: one kind name or a sequence of them; empty means no prompt.
        color: RGB colour of ellipse, rectangle and contour lines.
        thickness: line thickness in pixels (cv2; negative fills the shape).
        blur_kernel: odd side of the Gaussian kernel for ``blur``.
        gray_formula: ``"rgb"`` for the correct RGB-to-gray weights, or
            ``"bgr_reference"`` to reproduce the official code, which converts
            its RGB array with BGR weights (R and B weights swapped).
        min_pixels: masks with fewer inside pixels than this leave the image
            unprompted; the default 2 matches the reference, which skips
            masks of at most 1 pixel (their outline would be degenerate).

    Returns:
        A new HxWx3 uint8 RGB array; the inputs are not modified.

    Raises:
        ValueError: the image is not HxWx3 uint8, the mask shape differs from
            the image's HxW, a kind or ``gray_formula`` is unknown, or
            ``blur_kernel`` is not a positive odd int.
    """
    image = _as_rgb_uint8(image)
    inside = _as_bool_mask(mask, image.shape[:2])
    selected = prompt_kind_names(kinds)
    if gray_formula not in _GRAY_CODES:
        raise ValueError(f"unknown gray_formula {gray_formula!r}; use one of {sorted(_GRAY_CODES)}")
    if "blur" in selected:
        check_blur_kernel(blur_kernel)

    prompted = image.copy()
    if not selected or int(inside.sum()) < min_pixels:
        return prompted

    outside = ~inside
    line_color = tuple(int(c) for c in color)
    thickness = int(thickness)
    if "blur" in selected:
        blurred = cv2.GaussianBlur(prompted, (int(blur_kernel), int(blur_kernel)), 0)
        prompted[outside] = blurred[outside]
    if "gray" in selected:
        gray = cv2.cvtColor(prompted, _GRAY_CODES[gray_formula])
        prompted[outside] = gray[outside][:, None]
    if "black" in selected:
        prompted[outside] = 0
    if "circle" in selected or "rectangle" in selected:
        row, col, height, width = mask_center_and_extent(inside)
        if "circle" in selected:
            cv2.ellipse(prompted, (col, row), (width // 2, height // 2), 0, 0, 360, line_color, thickness)
        if "rectangle" in selected:
            cv2.rectangle(
                prompted,
                (col - width // 2, row - height // 2),
                (col + width // 2, row + height // 2),
                line_color,
                thickness,
            )
    if "contour" in selected:
        filled = binary_fill_holes(inside).astype(np.uint8)
        contours, _ = cv2.findContours(filled, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(prompted, contours, -1, line_color, thickness)
    return prompted


class PromptedImages(Sequence):
    """The prompted images of a step, drawn when asked for: CaR's prompted batch in bounded memory.

    Item k is ``apply_visual_prompts(image, proposals[k] > threshold, kinds,
    blur_kernel=blur_kernel)``, drawn on each access and not kept, so a
    classifier that reads the images in order holds one at a time instead of
    all N (847 prompted 512 x 512 images are 0.67 GB).

    Arguments:
        image: H x W x 3 uint8 RGB picture.
        proposals: K x H x W soft masks.
        threshold: η; a pixel is inside where its proposal is above it.
        kinds, blur_kernel: as :func:`apply_visual_prompts`.

    Attributes:
        seconds: time spent drawing so far (CaR reports it as the ``prompts`` stage).
        drawn: how many images were drawn so far.
    """

    def __init__(
        self,
        image: np.ndarray,
        proposals: np.ndarray,
        threshold: float,
        kinds: str | Sequence[str],
        *,
        blur_kernel: int = REFERENCE_BLUR_KERNEL,
    ) -> None:
        self.image, self.proposals, self.threshold = image, proposals, threshold
        self.kinds, self.blur_kernel = kinds, blur_kernel
        self.seconds = 0.0
        self.drawn = 0

    def __len__(self) -> int:
        return len(self.proposals)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"prompted image {index} of {len(self)}")
        start = time.perf_counter()
        prompted = apply_visual_prompts(
            self.image, self.proposals[index] > self.threshold, self.kinds, blur_kernel=self.blur_kernel
        )
        self.seconds += time.perf_counter() - start
        self.drawn += 1
        return prompted


def _as_rgb_uint8(image: np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be an HxWx3 uint8 RGB numpy array or a PIL image, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"image must be an HxWx3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}; "
            "convert it with carlib.load_image"
        )
    return image


def _as_bool_mask(mask: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != tuple(image_hw):
        raise ValueError(
            f"mask shape {mask.shape} does not match the image's HxW {tuple(image_hw)}; "
            "resize the mask to the image first"
        )
    # Floats count as inside only when positive, so a soft mask with negative
    # logits is not mistaken for all-inside; callers threshold at eta first.
    if mask.dtype.kind == "f":
        return mask > 0
    return mask != 0


def prompt_kind_names(kinds: str | Sequence[str]) -> set:
    """The canonical names of some prompt kinds (the alias ``"mask"`` is ``"black"``).

    Raises:
        ValueError: an unknown kind; the message lists the valid ones.
    """
    if isinstance(kinds, str):
        kinds = (kinds,)
    selected = set()
    for kind in kinds:
        name = _ALIASES.get(kind, kind) if isinstance(kind, str) else kind
        if name not in PROMPT_KINDS:
            raise ValueError(
                f"unknown visual prompt kind {kind!r}; valid kinds are "
                f"{', '.join(PROMPT_KINDS)} (and the alias 'mask' for 'black')"
            )
        selected.add(name)
    return selected
