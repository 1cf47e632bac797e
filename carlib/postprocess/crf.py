"""Dense CRF refinement of CaR masks (spec section 6, "Dense CRF").

CaR's final masks are the CAMs of the last recurrent step, sharpened by a
fully connected CRF (Krähenbühl & Koltun, via ``pydensecrf``). The reference
implementation is ``clip_as_rnn/modeling/model/crf.py`` (classes ``DenseCRF``
and ``PostProcess``) in google-research/google-research; this module keeps its
behaviour, quirks included, and names every quirk as a field of :class:`CrfSettings`:

- The background channel is ``(1 - max_c mask_c) ** bg_factor`` (``PostProcess.apply_crf``).
- The channels ``[background, masks...]`` go to ``unary_from_softmax`` *as they
  are*: the reference does not normalise them (``normalize=False``). For the
  mean-field result this only matters through pydensecrf's clip of
  probabilities at 1e-5, because dividing every channel of a pixel by the same
  number adds the same constant to every label's energy at that pixel.
- The image given to the bilateral kernel is not the RGB image: the reference
  flips it to BGR, subtracts the Caffe mean ``(104.008, 116.669, 122.675)`` in
  float32 and casts the result to uint8, which on x86 truncates towards zero and
  wraps negatives modulo 256 (``PostProcess.__call__`` then ``apply_crf``).
  ``bilateral_image="reference"`` (the default) reproduces that byte for byte
  (see :func:`reference_bilateral_image`); ``"rgb"`` passes the plain RGB image,
  as pydensecrf's own examples do.
- Semantic mode runs one CRF over all masks; referring mode
  (``separate=True`` in the reference, our :func:`dense_crf_per_mask`) runs one
  two-label CRF per mask.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

REFERENCE_MEAN_BGR: tuple[float, float, float] = (104.008, 116.669, 122.675)
"""The Caffe/ImageNet BGR mean the reference subtracts before building the bilateral image."""

BilateralImage = Literal["reference", "rgb"]


def reference_bilateral_image(image: np.ndarray) -> np.ndarray:
    """The uint8 image the reference hands to ``addPairwiseBilateral``.

    ``PostProcess.__call__`` (``clip_as_rnn/modeling/model/crf.py``) converts the
    RGB image to float32, flips it to BGR and subtracts
    :data:`REFERENCE_MEAN_BGR`; ``apply_crf`` then calls ``astype(np.uint8)`` on
    the (mostly negative) result. A float-to-uint8 cast of a negative value is
    undefined in C; on x86 numpy converts through a signed integer, i.e. it
    truncates towards zero and wraps modulo 256 (-53.7 -> -53 -> 203). We do that
    arithmetic explicitly so the result is the same on every platform.

    The wrap matters: the bilateral kernel compares colours with
    ``srgb=3``, so a channel that crosses its mean value (e.g. blue 103 -> 104)
    jumps by ~255 and looks like a strong edge, and the two values next to the
    mean (e.g. blue 104 and 105) collapse onto one.

    Arguments:
        image: H x W x 3 uint8 RGB.

    Returns:
        H x W x 3 uint8, C-contiguous: ``trunc(BGR - mean) mod 256``.
    """
    image = _check_image(image)
    bgr = image[:, :, ::-1].astype(np.float32) - np.asarray(REFERENCE_MEAN_BGR, dtype=np.float32)
    wrapped = np.trunc(bgr).astype(np.int64) % 256
    return np.ascontiguousarray(wrapped.astype(np.uint8))


@dataclass(frozen=True)
class CrfSettings:
    """Dense-CRF post-processing, passed whole to :func:`dense_crf` (spec section 6).

    The defaults are the reference's (``modeling/model/crf.py``).

    Attributes:
        bg_factor: the background channel is ``(1 - max_c mask_c) ** bg_factor``;
            above 1 shrinks the background, below 1 grows it.
        gaussian_sxy: spatial std of the smoothness kernel (reference ``pos_xy_std=1``).
        gaussian_compat: weight of the smoothness kernel (reference ``pos_w=3``).
        bilateral_sxy: spatial std of the appearance kernel (reference ``bi_xy_std=67``).
        bilateral_srgb: colour std of the appearance kernel (reference ``bi_rgb_std=3``).
        bilateral_compat: weight of the appearance kernel (reference ``bi_w=4``).
        iterations: mean-field steps (reference ``iter_max=10``); 0 returns the
            argmax of the unaries alone.
        bilateral_image: the colour image the appearance kernel sees. ``"reference"``:
            what the reference passes, the image in BGR order minus the Caffe
            mean cast to uint8, negatives wrapping around
            (:func:`reference_bilateral_image`); ``"rgb"``: the RGB image itself,
            as pydensecrf's own examples do.
        normalize: divide the channels by their per-pixel sum before
            ``unary_from_softmax``. The reference does not (False); it only
            changes which values hit pydensecrf's 1e-5 probability clip.
    """

    bg_factor: float = 1.0
    gaussian_sxy: float = 1.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 67.0
    bilateral_srgb: float = 3.0
    bilateral_compat: float = 4.0
    iterations: int = 10
    bilateral_image: BilateralImage = "reference"
    normalize: bool = False

    def __post_init__(self) -> None:
        if not np.isfinite(self.bg_factor) or self.bg_factor < 0:
            raise ValueError(f"bg_factor must be a finite number >= 0, got {self.bg_factor}")
        if int(self.iterations) != self.iterations or self.iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {self.iterations}")
        if self.bilateral_image not in ("reference", "rgb"):
            raise ValueError(f"bilateral_image must be 'reference' or 'rgb', got {self.bilateral_image!r}")

    def replace(self, **changes) -> CrfSettings:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def dense_crf(image: np.ndarray, masks: np.ndarray, settings: CrfSettings = CrfSettings()) -> np.ndarray:
    """Refine soft masks with one dense CRF over ``[background, masks...]`` (semantic mode).

    Every pixel ends up in exactly one of the N masks or in the background, so
    the returned masks never overlap.

    Arguments:
        image: H x W x 3 uint8 RGB (numpy array or anything ``np.asarray`` turns into one).
        masks: N x H x W soft masks in [0, 1] (float, or bool), N >= 0, at the
            image's resolution.
        settings: the CRF's kernels, iterations and background exponent.

    Returns:
        N x H x W bool refined masks, in the order of ``masks`` (0 x H x W when N = 0).
        The reference returns float 0/1 and builds the one-hot with as many
        channels as the largest label present, so a trailing mask that wins no
        pixel disappears from its output; we always return N masks (an empty
        one in that case).

    Raises:
        ValueError: if ``image`` is not H x W x 3 uint8 or ``masks`` is not
            N x H x W with values in [0, 1].
    """
    image = _check_image(image)
    soft = _check_masks(masks, image.shape[:2])
    if soft.shape[0] == 0:
        return np.zeros((0, *image.shape[:2]), dtype=bool)
    labels = _crf_labels(
        _bilateral_input(image, settings.bilateral_image), _with_background(soft, settings.bg_factor), settings
    )
    # Label 0 is the background; label c + 1 is mask c. Comparing against every
    # mask index (rather than one-hot up to max(label)) keeps N outputs.
    return labels[None] == np.arange(1, soft.shape[0] + 1)[:, None, None]


def dense_crf_per_mask(image: np.ndarray, masks: np.ndarray, settings: CrfSettings = CrfSettings()) -> np.ndarray:
    """Refine each mask with its own two-label CRF (referring mode).

    The reference (``PostProcess.__call__`` with ``separate=True``, used when
    ``seg_mode == "refer"``) runs :func:`dense_crf` on every mask alone, with
    background ``(1 - mask) ** bg_factor``; masks may therefore overlap.

    Arguments:
        image: H x W x 3 uint8 RGB.
        masks: N x H x W soft masks in [0, 1] (float, or bool), N >= 0.
        settings: as :func:`dense_crf`.

    Returns:
        N x H x W bool refined masks. A mask that loses every pixel comes back
        empty; the reference's ``torch.cat`` would instead drop it and shift
        the masks after it.

    Raises:
        ValueError: as :func:`dense_crf`.
    """
    image = _check_image(image)
    soft = _check_masks(masks, image.shape[:2])
    out = np.zeros(soft.shape, dtype=bool)
    if soft.shape[0] == 0:
        return out
    rgbim = _bilateral_input(image, settings.bilateral_image)
    for index, mask in enumerate(soft):
        out[index] = _crf_labels(rgbim, _with_background(mask[None], settings.bg_factor), settings) == 1
    return out


def _with_background(soft: np.ndarray, bg_factor: float) -> np.ndarray:
    """(N + 1) x H x W float32: ``[(1 - max_c mask_c) ** bg_factor, masks...]``."""
    background = np.power(1.0 - soft.max(axis=0, keepdims=True), bg_factor, dtype=np.float32)
    return np.concatenate([background, soft], axis=0)


def _crf_labels(rgbim: np.ndarray, probs: np.ndarray, settings: CrfSettings) -> np.ndarray:
    """H x W int64 argmax label of the CRF's marginals; ``probs`` is C x H x W."""
    # Imported here so that importing carlib.postprocess stays cheap and the
    # matching code works without the compiled extension.
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    channels, height, width = probs.shape
    if settings.normalize:
        # The sum is >= 1 wherever the background or a mask is 1; the floor
        # only guards pixels where everything is 0 (impossible with the
        # background channel, kept for safety).
        probs = probs / np.maximum(probs.sum(axis=0, keepdims=True), np.float32(1e-12))
    unary = np.ascontiguousarray(unary_from_softmax(probs))  # -log(clip(p, 1e-5, 1)), float32
    crf = dcrf.DenseCRF2D(width, height, channels)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=settings.gaussian_sxy, compat=settings.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=settings.bilateral_sxy, srgb=settings.bilateral_srgb, rgbim=rgbim, compat=settings.bilateral_compat
    )
    marginals = np.asarray(crf.inference(int(settings.iterations)), dtype=np.float32).reshape(channels, height, width)
    # np.argmax takes the first maximum on ties, like the reference's np.argmax.
    return np.argmax(marginals, axis=0)


def _bilateral_input(image: np.ndarray, mode: BilateralImage) -> np.ndarray:
    if mode == "reference":
        return reference_bilateral_image(image)
    # pydensecrf reads the buffer directly: it must be C-contiguous uint8.
    return np.ascontiguousarray(image)


def _check_image(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3 RGB, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0..255), got dtype {array.dtype}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image must not be empty, got shape {array.shape}")
    return array


def _check_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    array = np.asarray(masks)
    if array.ndim != 3:
        raise ValueError(f"masks must be N x H x W, got shape {array.shape}")
    if tuple(array.shape[1:]) != tuple(size):
        raise ValueError(f"masks are {array.shape[1]} x {array.shape[2]} but the image is {size[0]} x {size[1]}")
    if array.dtype == bool:
        return array.astype(np.float32)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"masks must be float (soft masks in [0, 1]) or bool, got dtype {array.dtype}")
    soft = array.astype(np.float32)
    if soft.size and not np.isfinite(soft).all():
        raise ValueError("masks contain NaN or inf; soft masks must lie in [0, 1]")
    if soft.size and (soft.min() < 0.0 or soft.max() > 1.0):
        raise ValueError(f"mask values must lie in [0, 1] (clip CAMs first), got [{soft.min()}, {soft.max()}]")
    return soft
