"""Post-processing of CaR masks (spec section 6): dense CRF, or snapping to SAM regions.

- :class:`CrfSettings`, :class:`SamSettings` — their settings, each passed whole.
- :func:`dense_crf` — one CRF over ``[background, masks...]`` (semantic mode).
- :func:`dense_crf_per_mask` — one two-label CRF per mask (referring mode).
- :func:`match_masks_to_regions` — replace CaR masks by unions of automatic
  regions they match (IoM / IoU rule); :func:`match_regions` keeps the trace of one mask.
- :class:`MaskSource` — where regions come from: :class:`SamMaskSource`
  (``segment_anything`` or, for HQ-SAM checkpoints, ``segment_anything_hq``; optional) or
  :class:`ColourRegionMaskSource` (no model).
- :func:`sam_refine` — ``source.generate(image)`` then the matching.
"""

from carlib.postprocess.crf import (
    REFERENCE_MEAN_BGR,
    CrfSettings,
    dense_crf,
    dense_crf_per_mask,
    reference_bilateral_image,
)
from carlib.postprocess.mask_sources import (
    HQ_SAM_CHECKPOINTS,
    SAM_CHECKPOINTS,
    ColourRegionMaskSource,
    MaskSource,
    SamMaskSource,
)
from carlib.postprocess.sam import (
    DEFAULT_MIN_PRED_THRESHOLD,
    RegionMatch,
    SamSettings,
    intersection_over_mask,
    match_masks_to_regions,
    match_regions,
    sam_refine,
)

__all__ = [
    "DEFAULT_MIN_PRED_THRESHOLD",
    "HQ_SAM_CHECKPOINTS",
    "REFERENCE_MEAN_BGR",
    "SAM_CHECKPOINTS",
    "ColourRegionMaskSource",
    "CrfSettings",
    "MaskSource",
    "RegionMatch",
    "SamMaskSource",
    "SamSettings",
    "dense_crf",
    "dense_crf_per_mask",
    "intersection_over_mask",
    "match_masks_to_regions",
    "match_regions",
    "reference_bilateral_image",
    "sam_refine",
]
