"""SAM refinement: snap CaR masks to automatically generated regions (spec section 6, "SAM").

CaR can optionally replace each of its masks by a union of SAM's automatic
masks. The reference is spread over three files of ``clip_as_rnn/`` in
google-research/google-research; this module follows them exactly except where
a docstring says otherwise:

- ``utils/metrics.py::IoM`` — for a CaR mask and every SAM mask, with
  I = |CaR ∧ SAM|: ``iom_pred = I / |CaR|`` and ``iom_target = I / |SAM|``;
  ``iom_target`` is zeroed where ``iom_pred < min_pred_threshold`` (a SAM mask
  that swallows the CaR mask but is mostly elsewhere, e.g. the whole
  background, must not count); IoM = ``max(iom_target, iom_pred)``.
- ``modeling/post_process/post_process.py::match_masks`` — keep the SAM masks
  with ``IoM > iom_thres``; if none, keep the single argmax-IoM one (first on ties).
- ``utils/inference_pipeline.py::get_sam_masks`` — only non-empty CaR masks are
  matched (empty ones stay empty); the kept SAM masks' union replaces the CaR
  mask if ``IoU(union, CaR mask) > matching_thresh`` (``utils/metrics.py::IoU``,
  masks binarised at 0.5; IoU 0 when the union of both is empty), else the CaR
  mask stays. The demo scripts (``demo.py``, ``app.py``) replace
  unconditionally; pass ``iou_threshold=None`` for that.

Thresholds: the paper uses φ_iom = φ_iou = 0.7. The configs set ``car.iom_thres``
to 0.6 (voc.yaml), 0.7 (coco.yaml) and 0.5 (pascal_context.yaml, refcoco.yaml),
but none defines ``sam.matching_thresh`` (``get_sam_masks`` defaults it to 0.9),
so the published evaluation path with SAM does not run as written. The
``min_pred_threshold`` default of both ``IoM`` and ``match_masks`` is 0.2
(:data:`DEFAULT_MIN_PRED_THRESHOLD`); voc.yaml overrides it with 0.05 and the
Gradio demo uses 0.01–0.03.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from carlib.postprocess.mask_sources import MaskSource
from carlib.postprocess.sam_settings import SamSettings

DEFAULT_MIN_PRED_THRESHOLD = 0.2
"""Default of ``min_pred_threshold`` in the reference's ``IoM`` and ``match_masks``."""


@dataclass(frozen=True)
class RegionMatch:
    """How one CaR mask was matched to the automatic regions (for plots and tests).

    Attributes:
        iom: M float64, the IoM of each region with the CaR mask (all 0 for an empty CaR mask).
        kept: indices of the regions whose union was formed (IoM above the
            threshold, or the argmax-IoM one if none is); empty for an empty CaR mask.
        union: H x W bool union of the kept regions.
        iou: IoU of ``union`` with the CaR mask.
        replaced: whether ``union`` replaces the CaR mask.
        mask: H x W bool, the resulting mask (``union`` if replaced, else the CaR mask).
    """

    iom: np.ndarray
    kept: np.ndarray
    union: np.ndarray
    iou: float
    replaced: bool
    mask: np.ndarray


def intersection_over_mask(
    car_mask: np.ndarray,
    region_masks: np.ndarray,
    *,
    min_pred_threshold: float = DEFAULT_MIN_PRED_THRESHOLD,
) -> np.ndarray:
    """IoM of one CaR mask with every region (reference ``utils/metrics.py::IoM``).

    For region m with intersection I = |car ∧ region_m|:
    ``IoM_m = max(I / |region_m|, I / |car|)``, where the first term is set to 0
    when ``I / |car| < min_pred_threshold``.

    Arguments:
        car_mask: H x W bool (or numeric, binarised at > 0.5) CaR mask; must be non-empty.
        region_masks: M x H x W bool (or numeric, binarised at > 0.5) automatic masks.
        min_pred_threshold: the fraction of the CaR mask a region must cover
            before its own coverage ``I / |region|`` is allowed to count.

    Returns:
        M float64 IoM values in [0, 1]. An empty region gets 0 (the reference
        would divide by zero and get NaN; SAM never returns empty masks).

    Raises:
        ValueError: on mismatched shapes or an empty CaR mask (IoM is undefined).
    """
    car = _binary(car_mask, "car_mask", ndim=2)
    regions = _binary(region_masks, "region_masks", ndim=3)
    if regions.shape[1:] != car.shape:
        raise ValueError(f"region_masks are {regions.shape[1:]} but car_mask is {car.shape}")
    car_area = int(np.count_nonzero(car))
    if car_area == 0:
        raise ValueError("car_mask is empty: IoM is undefined (the reference skips empty masks)")
    return _iom(car.reshape(-1), regions.reshape(len(regions), -1), car_area, min_pred_threshold)


def match_regions(
    car_mask: np.ndarray,
    region_masks: np.ndarray,
    *,
    iom_threshold: float,
    iou_threshold: float | None,
    min_pred_threshold: float = DEFAULT_MIN_PRED_THRESHOLD,
) -> RegionMatch:
    """Match one CaR mask to the automatic regions, keeping every intermediate.

    Arguments:
        car_mask: H x W bool (or numeric, binarised at > 0.5) CaR mask.
        region_masks: M x H x W bool (or numeric, binarised at > 0.5) automatic masks.
        iom_threshold: φ_iom; regions with IoM strictly above it are kept.
        iou_threshold: φ_iou; the union replaces the CaR mask if their IoU is
            strictly above it. None replaces unconditionally (the demo scripts' behaviour).
        min_pred_threshold: see :func:`intersection_over_mask`.

    Returns:
        a :class:`RegionMatch`. An empty CaR mask, or M = 0, leaves the mask as
        it is (the reference skips empty masks, and would fail on M = 0 at
        ``torch.argmax`` of an empty tensor).

    Raises:
        ValueError: if the masks are not H x W and M x H x W with the same H x W.
    """
    car = _binary(car_mask, "car_mask", ndim=2)
    regions = _binary(region_masks, "region_masks", ndim=3)
    if regions.shape[1:] != car.shape:
        raise ValueError(f"region_masks are {regions.shape[1:]} but car_mask is {car.shape}")
    car_area = int(np.count_nonzero(car))
    if car_area == 0 or len(regions) == 0:
        return RegionMatch(
            iom=np.zeros(len(regions)),
            kept=np.zeros(0, dtype=np.int64),
            union=np.zeros_like(car),
            iou=0.0,
            replaced=False,
            mask=car.copy(),
        )
    iom = _iom(car.reshape(-1), regions.reshape(len(regions), -1), car_area, min_pred_threshold)
    kept = np.flatnonzero(iom > iom_threshold)
    if kept.size == 0:
        # ``match_masks``: fall back to the best single region (np.argmax, like
        # torch.argmax, returns the first index on ties).
        kept = np.array([int(np.argmax(iom))])
    union = np.asarray(regions[kept].any(axis=0))
    iou = _iou(union, car)
    replaced = iou_threshold is None or iou > iou_threshold
    mask = union if replaced else car.copy()
    return RegionMatch(iom=iom, kept=kept, union=union, iou=iou, replaced=replaced, mask=mask)


def match_masks_to_regions(
    car_masks: np.ndarray,
    region_masks: np.ndarray,
    *,
    iom_threshold: float,
    iou_threshold: float | None,
    min_pred_threshold: float = DEFAULT_MIN_PRED_THRESHOLD,
) -> np.ndarray:
    """Replace each CaR mask by the union of the regions it matches, when they agree.

    For every non-empty CaR mask: compute each region's IoM
    (:func:`intersection_over_mask`), keep the regions with IoM > ``iom_threshold``
    (the argmax-IoM region if none), and let their union replace the CaR mask
    if IoU(union, CaR mask) > ``iou_threshold``. Each CaR mask is matched on its
    own, so two CaR masks may claim the same region.

    Arguments:
        car_masks: N x H x W bool CaR masks (numeric masks are binarised at > 0.5,
            the reference's IoU threshold; for 0/1 CRF outputs this changes nothing).
        region_masks: M x H x W bool automatic masks (SAM's, or any :class:`MaskSource`'s).
        iom_threshold: φ_iom (paper 0.7; reference configs 0.6 VOC, 0.7 COCO, 0.5 Context).
        iou_threshold: φ_iou (paper 0.7); None replaces whenever a CaR mask is non-empty.
        min_pred_threshold: regions covering less than this fraction of the
            CaR mask count only by ``I / |CaR|``; reference default 0.2.

    Returns:
        N x H x W bool refined masks. Empty CaR masks stay empty.

    Raises:
        ValueError: if the masks are not N x H x W and M x H x W with the same H x W.
    """
    cars = _binary(car_masks, "car_masks", ndim=3)
    regions = _binary(region_masks, "region_masks", ndim=3)
    if regions.shape[1:] != cars.shape[1:]:
        raise ValueError(f"region_masks are {regions.shape[1:]} but car_masks are {cars.shape[1:]}")
    out = cars.copy()
    for index, car in enumerate(cars):
        out[index] = match_regions(
            car,
            regions,
            iom_threshold=iom_threshold,
            iou_threshold=iou_threshold,
            min_pred_threshold=min_pred_threshold,
        ).mask
    return out


def sam_refine(
    image: np.ndarray, car_masks: np.ndarray, source: MaskSource, settings: SamSettings = SamSettings()
) -> np.ndarray:
    """Generate automatic regions for ``image`` and match the CaR masks to them.

    Arguments:
        image: H x W x 3 uint8 RGB.
        car_masks: N x H x W bool CaR masks at the image's resolution.
        source: a :class:`MaskSource`, e.g. :class:`SamMaskSource` or
            :class:`ColourRegionMaskSource`.
        settings: φ_iom, φ_iou and ``min_pred_threshold`` (see
            :func:`match_masks_to_regions`).

    Returns:
        N x H x W bool refined masks.

    Raises:
        ValueError: if the image, the masks or the source's output disagree in shape.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be H x W x 3 uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    cars = _binary(car_masks, "car_masks", ndim=3)
    if cars.shape[1:] != image.shape[:2]:
        raise ValueError(f"car_masks are {cars.shape[1:]} but the image is {image.shape[:2]}")
    regions = np.asarray(source.generate(image))
    if regions.ndim != 3 or regions.shape[1:] != image.shape[:2]:
        raise ValueError(
            f"{type(source).__name__}.generate returned shape {regions.shape}, "
            f"expected M x {image.shape[0]} x {image.shape[1]}"
        )
    return match_masks_to_regions(
        cars,
        regions,
        iom_threshold=settings.iom_threshold,
        iou_threshold=settings.iou_threshold,
        min_pred_threshold=settings.min_pred_threshold,
    )


def _iom(car: np.ndarray, regions: np.ndarray, car_area: int, min_pred_threshold: float) -> np.ndarray:
    """M IoM values; ``car`` is P bool, ``regions`` M x P bool."""
    intersection = np.count_nonzero(regions & car[None], axis=1).astype(np.float64)
    region_area = np.count_nonzero(regions, axis=1).astype(np.float64)
    over_car = intersection / car_area  # reference: iom_pred
    over_region = np.divide(intersection, region_area, out=np.zeros_like(intersection), where=region_area > 0)
    over_region[over_car < min_pred_threshold] = 0.0  # reference: iom_target zeroed
    return np.maximum(over_region, over_car)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0


def _binary(masks: np.ndarray, name: str, *, ndim: int) -> np.ndarray:
    array = np.asarray(masks)
    if array.ndim != ndim:
        shape = "H x W" if ndim == 2 else "N x H x W"
        raise ValueError(f"{name} must be {shape}, got shape {array.shape}")
    if array.dtype == bool:
        return array
    if not (np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"{name} must be bool or numeric, got dtype {array.dtype}")
    return array > 0.5
