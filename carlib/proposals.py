"""The proposal stage of CaR: where in the image is each text? (spec section 3)

A proposal stage is anything with ``propose(image, texts, settings)``
returning :class:`ProposalMaps` (:class:`ProposalStage`). :class:`carlib.car.CaR`
builds the one its settings name (``CarSettings.proposal_method``) or takes
one passed in, so a new proposal method is one class. Two ship:

- :class:`GradCamProposals`, the paper's: Grad-CAM on CLIP, refined by CLIP-ES.
- :class:`MaskClipProposals`, MaskCLIP dense maps (Table B's baseline), no
  gradients, optionally refined by CLIP-ES the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from carlib.cam import CLIP_ES_ATTENTION_LAYERS, CamResult, compute_cams
from carlib.clip_es import clip_es_refine
from carlib.maskclip import compute_maskclip
from carlib.models import ClipBundle
from carlib.settings import CarSettings
from carlib.text import BACKGROUND_TEMPLATE, encode_texts


@dataclass
class ProposalMaps:
    """One step's proposals, at the image's size.

    Attributes:
        cams: float32 K x H x W maps before any refinement (Grad-CAM's or MaskCLIP's), in [0, 1].
        proposals: float32 K x H x W, what the step prompts with (the refined maps, or ``cams``).
    """

    cams: np.ndarray
    proposals: np.ndarray


@runtime_checkable
class ProposalStage(Protocol):
    """Anything that proposes one soft mask per text for :class:`carlib.car.CaR`."""

    def propose(self, image: np.ndarray, texts: Sequence[str], settings: CarSettings) -> ProposalMaps:
        """Maps of each text on ``image`` (H x W x 3 uint8); K texts give K x H x W maps in [0, 1]."""
        ...


class _DenseMapProposals:
    """What both shipped stages share: background embeddings cached per word set, groups, CLIP-ES.

    Subclasses set ``_maps``, a function with :func:`carlib.cam.compute_cams`'s signature.
    """

    _maps: Callable[..., CamResult]

    def __init__(self, bundle: ClipBundle) -> None:
        self.bundle = bundle
        self._background_cache: dict[tuple[str, ...], torch.Tensor] = {}

    def background_embeddings(self, words: Sequence[str]) -> torch.Tensor:
        """Unit embeddings of background words (``"a clean origami {}."``), cached per word set."""
        key = tuple(words)
        if key not in self._background_cache:
            self._background_cache[key] = encode_texts(self.bundle, key, (BACKGROUND_TEMPLATE,))
        return self._background_cache[key]

    def propose(self, image: np.ndarray, texts: Sequence[str], settings: CarSettings) -> ProposalMaps:
        """Maps of every text at the image's size; in referring mode each text competes alone with the background."""
        background = self.background_embeddings(settings.background)
        groups = [list(texts)] if settings.mode == "semantic" else [[text] for text in texts]
        cams, proposals = [], []
        for group in groups:
            result = self._maps(
                self.bundle, image, group,
                attention_layers=CLIP_ES_ATTENTION_LAYERS if settings.use_clip_es else 0,
                background_embeddings=background,
                **self._options(settings),
            )
            cams.append(result.upsampled())
            if settings.use_clip_es:
                proposals.append(clip_es_refine(result.cams, result.attention, threshold=settings.clipes_threshold,
                                                output_size=result.image_size))
            else:
                proposals.append(cams[-1])
        return ProposalMaps(np.concatenate(cams), np.concatenate(proposals))

    def _options(self, settings: CarSettings) -> dict:
        return {}


class GradCamProposals(_DenseMapProposals):
    """The paper's proposals: Grad-CAM on the proposal CLIP, refined by CLIP-ES unless ``use_clip_es`` is off.

    Arguments:
        bundle: the proposal CLIP (ViT-B/16 in the paper).
    """

    _maps = staticmethod(compute_cams)

    def _options(self, settings: CarSettings) -> dict:
        return {"center_features": settings.center_cam_features}


class MaskClipProposals(_DenseMapProposals):
    """MaskCLIP dense maps as proposals (:mod:`carlib.maskclip`): no gradients; CLIP-ES refines them if on.

    Arguments:
        bundle: the proposal CLIP.
    """

    _maps = staticmethod(compute_maskclip)


PROPOSAL_STAGES: dict[str, type] = {"gradcam": GradCamProposals, "maskclip": MaskClipProposals}
"""``CarSettings.proposal_method`` -> the stage class :class:`carlib.car.CaR` builds for it."""
