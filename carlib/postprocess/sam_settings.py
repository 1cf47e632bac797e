"""SAM's settings: the automatic mask generator's and CaR's region matching's (spec section 6).

Its own module so that the region sources (:mod:`carlib.postprocess.mask_sources`) and the matching
(:mod:`carlib.postprocess.sam`) both read it without importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class SamSettings:
    """SAM post-processing, passed whole to :func:`sam_refine` and :class:`SamMaskSource` (spec section 6).

    Attributes:
        iom_threshold: φ_iom, regions with IoM above it are kept for a CaR mask
            (``car.iom_thres`` in the configs).
        iou_threshold: φ_iou, their union replaces the CaR mask if its IoU with
            it exceeds this; None replaces unconditionally (the demo scripts).
            No config defines it (the code reads a missing
            ``sam.matching_thresh``); 0.7 is the paper's value.
        min_pred_threshold: I/area_region is zeroed where I/area_car is below
            this (``sam.min_pred_threshold``, set only in ``voc.yaml``: 0.05).
        model: the checkpoint family the reference uses (HQ-SAM ViT-H).
        points_per_side: automatic mask generator grid of point prompts per side.
        pred_iou_thresh: generator quality filter.
        stability_score_thresh: generator stability filter.
        box_nms_thresh: generator box non-maximum suppression.
        min_mask_region_area: generator's removal of small holes and islands, in
            pixels (0, the generator default the reference keeps: off).
    """

    iom_threshold: float = 0.7
    iou_threshold: float | None = 0.7
    min_pred_threshold: float = 0.05
    model: str = "hq_sam_vit_h"
    points_per_side: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0

    def __post_init__(self) -> None:
        for name in (
            "iom_threshold",
            "iou_threshold",
            "min_pred_threshold",
            "pred_iou_thresh",
            "stability_score_thresh",
            "box_nms_thresh",
        ):
            value = getattr(self, name)
            if value is None and name == "iou_threshold":
                continue
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SAM {name} must lie in [0, 1], got {value}")
        if int(self.points_per_side) != self.points_per_side or self.points_per_side < 1:
            raise ValueError(f"SAM points_per_side must be a positive integer, got {self.points_per_side}")
        if int(self.min_mask_region_area) != self.min_mask_region_area or self.min_mask_region_area < 0:
            raise ValueError(
                f"SAM min_mask_region_area must be a non-negative integer, got {self.min_mask_region_area}"
            )

    def replace(self, **changes) -> SamSettings:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)
