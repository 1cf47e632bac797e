"""Vision-tower adapters: the one place in carlib that reads a tower's attributes.

:func:`tower_for` wraps a model's vision tower in the :class:`VisionTower`
of its family; the loaded :class:`carlib.models.ClipBundle` holds it as
``bundle.tower``, and every stage asks it for tokens, attention, Grad-CAM's
feature map and the image embedding. :data:`FAMILIES` lists the supported
families with what each can do in each stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import open_clip
import torch

from carlib.towers.base import (
    CAM_TARGETS,
    CamForward,
    CamTarget,
    CapabilityError,
    TrainingPass,
    TransformerTower,
    Trunk,
    VisionTower,
    replace_output,
)
from carlib.towers.convolutional import ConvTower
from carlib.towers.openclip_vit import OpenClipViT
from carlib.towers.timm_vit import TimmEva, TimmViT

__all__ = [
    "CAM_TARGETS",
    "CamForward",
    "CamTarget",
    "CapabilityError",
    "ConvTower",
    "FAMILIES",
    "Family",
    "OpenClipViT",
    "TimmEva",
    "TimmViT",
    "TrainingPass",
    "TransformerTower",
    "Trunk",
    "VisionTower",
    "replace_output",
    "tower_for",
]


def tower_for(model: torch.nn.Module) -> VisionTower:
    """The adapter of a CLIP model's vision tower (``clip.visual``; the tower itself is accepted too).

    Raises:
        CapabilityError: a tower carlib has no adapter for (the message lists the families it has).
    """
    visual = getattr(model, "visual", model)
    if isinstance(visual, open_clip.transformer.VisionTransformer):
        return OpenClipViT(visual)
    trunk = getattr(visual, "trunk", None)
    if isinstance(visual, open_clip.timm_model.TimmModel) and trunk is not None:
        from timm.models.eva import Eva
        from timm.models.vision_transformer import VisionTransformer

        if isinstance(trunk, Eva):
            return TimmEva(visual)
        if isinstance(trunk, VisionTransformer):
            return TimmViT(visual)
        if hasattr(trunk, "stages") and hasattr(trunk, "forward_head") and hasattr(trunk, "feature_info"):
            return ConvTower(visual)
    raise CapabilityError(
        f"carlib has no adapter for {type(visual).__name__} vision towers"
        f"{' around ' + type(trunk).__name__ if trunk is not None else ''}; supported: "
        + "; ".join(f"{family.name} ({', '.join(family.examples)})" for family in FAMILIES)
    )


@dataclass(frozen=True)
class Family:
    """One supported family of vision towers and what CaR can do with it.

    Attributes:
        name: e.g. ``"OpenAI-style ViT"``.
        tower: the adapter class.
        examples: open_clip model names of the family (every one builds offline).
        weights: the pretrained tags of those models, in words.
        training_loss: ``"softmax"`` (contrastive) or ``"sigmoid"`` (SigLIP's loss, with a logit bias).
        classifier_feature: what ``classifier_feature="auto"`` means for it.
        note: what differs from the paper's towers.
    """

    name: str
    tower: type[VisionTower]
    examples: tuple[str, ...]
    weights: str
    training_loss: str
    classifier_feature: str
    note: str

    @property
    def gradcam(self) -> bool:
        return True

    @property
    def clip_es(self) -> bool:
        return bool(self.tower.has_attention)

    @property
    def dense_maps(self) -> bool:
        return bool(self.tower.has_attention)

    @property
    def classifier(self) -> bool:
        return True


FAMILIES: tuple[Family, ...] = (
    Family(
        "open_clip ViT",
        OpenClipViT,
        ("ViT-B-16", "ViT-L-14", "ViT-B-16-quickgelu"),
        "openai, laion2b_*, datacomp_*, dfn2b, metaclip_* (MetaCLIP and DFN: QuickGELU)",
        "softmax",
        "penultimate_class_token",
        "the paper's towers: class token, ln_post and a projection",
    ),
    Family(
        "EVA02",
        TimmEva,
        ("EVA02-B-16",),
        "merged2b_s8b_b131k",
        "softmax",
        "final",
        "rotary positions (timm computes them at any grid) beside absolute ones; class-token pooling",
    ),
    Family(
        "PE-Core",
        TimmEva,
        ("PE-Core-B-16",),
        "meta",
        "softmax",
        "final",
        "rotary positions; a class token, but the embedding is a MAP attention pool",
    ),
    Family(
        "SigLIP / SigLIP 2",
        TimmViT,
        ("ViT-B-16-SigLIP2", "ViT-B-16-SigLIP"),
        "webli",
        "sigmoid",
        "final",
        "no class token: Grad-CAM explains the MAP attention pool; sigmoid loss with a logit bias; "
        "its tokenizer is a Hugging Face one (--tokenizer DIR offline)",
    ),
    Family(
        "MobileCLIP (FastViT)",
        ConvTower,
        ("MobileCLIP-S2",),
        "datacompdr",
        "softmax",
        "final",
        "convolutional at stride 32: Grad-CAM on the last feature map; no CLIP-ES",
    ),
    Family(
        "ConvNeXt",
        ConvTower,
        ("convnext_base",),
        "laion400m_s13b_b51k",
        "softmax",
        "final",
        "convolutional at stride 32: Grad-CAM on the last feature map; no CLIP-ES",
    ),
)
"""The families carlib supports, in the order ``carlib models`` prints them."""
