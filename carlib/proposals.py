"""The proposal stage of CaR: where in the image is each text? (spec section 3)

A proposal stage is anything with ``propose(image, texts, settings)``
returning :class:`ProposalMaps` (:class:`ProposalStage`). :class:`carlib.car.CaR`
builds the one its settings name (``CarSettings.proposal_method``) or takes
one passed in, so a new proposal method is one class. Two ship:

- :class:`GradCamProposals`, the paper's: Grad-CAM on CLIP, refined by CLIP-ES.
- :class:`MaskClipProposals`, MaskCLIP dense maps (Table B's baseline), no
  gradients, optionally refined by CLIP-ES the same way;
  :class:`SclipProposals`, :class:`ClearClipProposals` and
  :class:`NaclipProposals` likewise from the field's later dense methods
  (:mod:`carlib.dense_methods`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from carlib.cam import CLIP_ES_ATTENTION_LAYERS, CamResult, gradcam_from_trunk, run_trunk, trunk_attention
from carlib.clip_es import affinity_from_attention, refine_with_affinity
from carlib.dense_methods import dense_patch_embeddings
from carlib.images import pixel_digest, proposal_input
from carlib.maskclip import dense_probabilities, maskclip_result
from carlib.models import ClipBundle
from carlib.scores import score_kind_for
from carlib.settings import CarSettings
from carlib.text import BACKGROUND_TEMPLATE, TextEmbeddingCache
from carlib.towers import Trunk


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


@dataclass
class ImageWork:
    """What a proposal stage computes once per image, whatever the texts: CaR reuses it at every step.

    Attributes:
        key: identifies the image (its pixels' digest, shape) and the attention depth.
        trunk: the tokens entering the last block, and the summed attention of the blocks before it.
        image_size: (H, W) of the image.
        attention: CLIP-ES's n x n attention, or None when CLIP-ES is off.
        affinity: Sinkhorn-normalised, symmetrised, squared attention (float64 n x n; float32 with
            ``official_numerics``), or None.
        extra: what a stage derives from the trunk on top (MaskCLIP's patch embeddings).
    """

    key: tuple
    trunk: Trunk
    image_size: tuple[int, int]
    attention: np.ndarray | None
    affinity: np.ndarray | None
    extra: dict = field(default_factory=dict)


class DenseMapProposals:
    """A proposal stage built on dense maps from one ViT pass: Grad-CAM or MaskCLIP, CLIP-ES on top.

    The work that does not depend on the texts, the frozen trunk (blocks
    1..L-1), the CLIP-ES attention, its Sinkhorn normalisation and its square,
    is done once per image and kept (:class:`ImageWork`), so every step of the
    recurrence, every query of referring mode and both passes of Pascal
    Context reuse it. Text embeddings are computed once per text
    (:class:`carlib.text.TextEmbeddingCache`). Subclasses say how the texts
    make maps from the trunk (:meth:`maps`).

    Arguments:
        bundle: the proposal CLIP.

    Attributes:
        passes: how many times each kind of work ran (``"trunk"``: a pass over
            blocks 1..L-1; ``"affinity"``: Sinkhorn and A·A; ``"maps"``: the
            text-dependent part, e.g. Grad-CAM's last block forward and batched backward).
    """

    def __init__(self, bundle: ClipBundle) -> None:
        self.bundle = bundle
        self.texts = TextEmbeddingCache(bundle)
        self.passes: Counter = Counter()
        self._work: ImageWork | None = None

    def background_embeddings(self, words: Sequence[str]) -> torch.Tensor:
        """Unit embeddings of background words (``"a clean origami {}."``), each computed once."""
        return self.texts.embed(words, BACKGROUND_TEMPLATE)

    def image_work(self, image: np.ndarray, attention_layers: int, official_numerics: bool = False) -> ImageWork:
        """The query-independent work for ``image`` (H x W x 3 uint8), computed unless it is the last image's.

        ``official_numerics``: fp16-rounded positions and a float32 affinity (:class:`CarSettings`).
        """
        key = (pixel_digest(image), attention_layers, official_numerics)
        if self._work is None or self._work.key != key:
            bundle = self.bundle
            pixels = proposal_input(image, bundle.patch_size, bundle.mean, bundle.std).to(bundle.device)
            trunk = run_trunk(bundle, pixels, attention_layers, fp16_positions=official_numerics)
            self.passes["trunk"] += 1
            attention = trunk_attention(bundle, trunk, attention_layers)
            affinity = None
            if attention is not None:
                affinity = affinity_from_attention(attention, dtype=np.float32 if official_numerics else np.float64)
                self.passes["affinity"] += 1
            self._work = ImageWork(key, trunk, tuple(image.shape[:2]), attention, affinity)
        return self._work

    def propose(self, image: np.ndarray, texts: Sequence[str], settings: CarSettings) -> ProposalMaps:
        """Maps of every text at the image's size; in referring mode each text competes alone with the background."""
        layers = CLIP_ES_ATTENTION_LAYERS if settings.use_clip_es else 0
        work = self.image_work(image, layers, settings.official_numerics)
        background = self.background_embeddings(settings.background)
        embedded = self.texts.embed(texts)  # all texts in one batch, also in referring mode
        groups = [list(range(len(texts)))] if settings.mode == "semantic" else [[k] for k in range(len(texts))]
        cams, proposals = [], []
        for group in groups:
            result = self.maps(work, embedded[group], background, settings)
            self.passes["maps"] += 1
            cams.append(result.upsampled())
            if settings.use_clip_es:
                assert work.affinity is not None  # computed whenever CLIP-ES is on (layers > 0)
                proposals.append(
                    refine_with_affinity(
                        result.cams, work.affinity, threshold=settings.clipes_threshold, output_size=result.image_size
                    )
                )
            else:
                proposals.append(cams[-1])
        if len(groups) == 1:  # no copy: at 847 queries each array is N x H x W float32 (0.9 GB at 512 x 512)
            return ProposalMaps(cams[0], proposals[0])
        return ProposalMaps(np.concatenate(cams), np.concatenate(proposals))

    def maps(
        self, work: ImageWork, queries: torch.Tensor, background: torch.Tensor, settings: CarSettings
    ) -> CamResult:
        """The texts' maps on the patch grid from the image's work (queries and background: unit embeddings)."""
        raise NotImplementedError


class GradCamProposals(DenseMapProposals):
    """The paper's proposals: Grad-CAM on the proposal CLIP, refined by CLIP-ES unless ``use_clip_es`` is off.

    Arguments:
        bundle: the proposal CLIP (ViT-B/16 in the paper).
    """

    def maps(
        self, work: ImageWork, queries: torch.Tensor, background: torch.Tensor, settings: CarSettings
    ) -> CamResult:
        target = None if settings.cam_target == "auto" else settings.cam_target
        return gradcam_from_trunk(
            self.bundle,
            work.trunk,
            queries,
            background,
            target=target,
            image_size=work.image_size,
            center_features=settings.center_cam_features,
            attention=work.attention,
            score_kind=score_kind_for(self.bundle.training_loss, settings.score_rule),
        )


class DenseMethodProposals(DenseMapProposals):
    """A dense method's maps as proposals (:mod:`carlib.dense_methods`): no gradients; CLIP-ES refines them if on.

    Each patch embedding of the method is scored against [queries; background
    words] with the softmax of Grad-CAM's target at the model's logit scale (or
    the sigmoid under ``score_rule="as_trained"`` for SigLIP), and each query's
    map is min-max normalised like a CAM. The patch embeddings are computed once
    per image (:class:`ImageWork`).

    Arguments:
        bundle: the proposal CLIP.

    Attributes:
        method: the dense method (``"maskclip"``, ``"sclip"``, ``"clearclip"``, ``"naclip"``).
    """

    method: str = "maskclip"

    def maps(
        self, work: ImageWork, queries: torch.Tensor, background: torch.Tensor, settings: CarSettings
    ) -> CamResult:
        key = ("patches", self.method, settings.neighbourhood_std if self.method == "naclip" else None)
        if key not in work.extra:
            work.extra[key] = dense_patch_embeddings(self.bundle, work.trunk, self.method, settings.neighbourhood_std)
        with torch.no_grad():
            probabilities = dense_probabilities(
                work.extra[key],
                torch.cat([queries, background]),
                len(queries),
                float(self.bundle.logit_scale),
                self.bundle.logit_bias,
                score_kind_for(self.bundle.training_loss, settings.score_rule),
            )
        return maskclip_result(probabilities, work.trunk.grid, work.image_size, work.attention)


class MaskClipProposals(DenseMethodProposals):
    """MaskCLIP dense maps as proposals (:mod:`carlib.maskclip`): the last block's value path."""

    method = "maskclip"


class SclipProposals(DenseMethodProposals):
    """SCLIP's maps as proposals: correlative self-attention in the last block, its residual and MLP kept."""

    method = "sclip"


class ClearClipProposals(DenseMethodProposals):
    """ClearCLIP's maps as proposals: query-query attention, the last block's residual and MLP dropped."""

    method = "clearclip"


class NaclipProposals(DenseMethodProposals):
    """NACLIP's maps as proposals: key-key attention plus a Gaussian neighbourhood, the reduced last block."""

    method = "naclip"


PROPOSAL_STAGES: dict[str, type] = {
    "gradcam": GradCamProposals,
    "maskclip": MaskClipProposals,
    "sclip": SclipProposals,
    "clearclip": ClearClipProposals,
    "naclip": NaclipProposals,
}
"""``CarSettings.proposal_method`` -> the stage class :class:`carlib.car.CaR` builds for it."""
