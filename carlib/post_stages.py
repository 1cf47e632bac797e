"""The post-processing stage of CaR: the kept queries' final binary masks (spec section 6).

A post-processing stage is anything with ``refine(image, soft_masks, settings)``
returning bool masks (:class:`PostStage`). :class:`carlib.car.CaR` builds the
one ``CarSettings.post`` names (:func:`build_post_stage`) or takes one passed
in, as it does the proposal and classifier stages. Three ship:

- :class:`NoPostProcessing` (``post="none"``): the proposals binarised at η.
- :class:`CrfPostProcessing` (``post="crf"``): dense CRF over all the masks
  (:func:`carlib.postprocess.dense_crf`), one CRF per mask in referring mode.
- :class:`SamPostProcessing` (``post="sam"``): the masks binarised at η and
  snapped to the regions of its region source
  (:class:`carlib.postprocess.SamMaskSource` for SAM or HQ-SAM,
  :class:`carlib.postprocess.ColourRegionMaskSource` on ShapesWorld).

The algorithms live in :mod:`carlib.postprocess`; a stage only says which one
runs on which masks under which of the run's settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from carlib.postprocess.crf import dense_crf, dense_crf_per_mask
from carlib.postprocess.mask_sources import MaskSource
from carlib.postprocess.sam import sam_refine
from carlib.settings import POST_PROCESSING, CarSettings

REGION_SOURCE_HINT = (
    "pass sam_source=carlib.postprocess.SamMaskSource(checkpoint) (or ColourRegionMaskSource() on ShapesWorld)"
)
"""How to give SAM post-processing its regions, for the error that says it has none."""


@runtime_checkable
class PostStage(Protocol):
    """Anything that turns the kept queries' final proposals into binary masks for :class:`carlib.car.CaR`."""

    @property
    def runs_in_workers(self) -> bool:
        """Whether ``carlib eval`` may run it in worker processes (it is small and picklable).

        False keeps it in the process that holds its model (SAM's).
        """
        ...

    def refine(self, image: np.ndarray, soft_masks: np.ndarray, settings: CarSettings) -> np.ndarray:
        """The masks of K kept queries.

        Arguments:
            image: H x W x 3 uint8 RGB, the picture the recurrence ran on.
            soft_masks: float32 K x H x W final proposals in [0, 1] (K >= 1).
            settings: the run's settings (``mask_threshold``, ``mode``, ``crf``, ``sam``...).

        Returns:
            bool K x H x W.
        """
        ...


@dataclass(frozen=True)
class NoPostProcessing:
    """``post="none"``: each proposal binarised at η (``settings.mask_threshold``, strictly above)."""

    runs_in_workers = True

    def refine(self, image: np.ndarray, soft_masks: np.ndarray, settings: CarSettings) -> np.ndarray:
        """bool K x H x W: ``soft_masks > settings.mask_threshold`` (the image is not read)."""
        return soft_masks > settings.mask_threshold


@dataclass(frozen=True)
class CrfPostProcessing:
    """``post="crf"``: dense CRF with ``settings.crf``.

    Semantic mode runs one CRF over ``[background, masks...]``
    (:func:`carlib.postprocess.dense_crf`), so the masks never overlap;
    referring mode one two-label CRF per mask
    (:func:`carlib.postprocess.dense_crf_per_mask`), so each expression keeps its own.
    """

    runs_in_workers = True

    def refine(self, image: np.ndarray, soft_masks: np.ndarray, settings: CarSettings) -> np.ndarray:
        """bool K x H x W, the CRF's labels of the soft masks on ``image``."""
        crf = dense_crf_per_mask if settings.mode == "referring" else dense_crf
        return crf(image, soft_masks, settings.crf)


@dataclass(frozen=True)
class SamPostProcessing:
    """``post="sam"``: masks binarised at η, then replaced by the union of the regions they match.

    :func:`carlib.postprocess.sam_refine` with ``settings.sam`` (φ_iom, φ_iou,
    ``min_pred_threshold``): the regions come from ``region_source``, which
    this stage owns. It runs in the process that made it, where SAM's model lives.

    Attributes:
        region_source: a :class:`carlib.postprocess.MaskSource`:
            :class:`carlib.postprocess.SamMaskSource` (SAM or HQ-SAM) or
            :class:`carlib.postprocess.ColourRegionMaskSource` (no model).

    Raises:
        ValueError: ``region_source`` is None or has no ``generate(image)``.
    """

    region_source: MaskSource
    runs_in_workers = False

    def __post_init__(self) -> None:
        source: object = self.region_source
        if source is None:
            raise ValueError(f"post='sam' needs a region source: {REGION_SOURCE_HINT}")
        if not isinstance(source, MaskSource):
            raise ValueError(
                f"the SAM region source must have generate(image) (a carlib.postprocess.MaskSource), "
                f"got {type(source).__name__}: {REGION_SOURCE_HINT}"
            )

    def refine(self, image: np.ndarray, soft_masks: np.ndarray, settings: CarSettings) -> np.ndarray:
        """bool K x H x W: each mask binarised at η, then matched to the regions of ``image``."""
        return sam_refine(image, soft_masks > settings.mask_threshold, self.region_source, settings.sam)


def build_post_stage(post: str, region_source: MaskSource | None = None) -> PostStage:
    """The stage a ``CarSettings.post`` value names.

    Arguments:
        post: ``"none"``, ``"crf"`` or ``"sam"``.
        region_source: the regions of ``"sam"`` (ignored by the others).

    Returns:
        a :class:`NoPostProcessing`, :class:`CrfPostProcessing` or :class:`SamPostProcessing`.

    Raises:
        ValueError: an unknown ``post``, or ``"sam"`` without a region source.
    """
    if post == "none":
        return NoPostProcessing()
    if post == "crf":
        return CrfPostProcessing()
    if post == "sam":
        if region_source is None:
            raise ValueError(f"post='sam' needs a region source: {REGION_SOURCE_HINT}")
        return SamPostProcessing(region_source)
    raise ValueError(f"unknown post {post!r}; choose one of {', '.join(POST_PROCESSING)}")
