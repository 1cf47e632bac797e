"""Convolutional towers in open_clip's ``TimmModel``: ConvNeXt (``convnext_base``) and FastViT (``MobileCLIP-S2``).

They serve CaR as classifiers (the tower's own embedding) and for Grad-CAM,
whose feature map is the trunk's final feature map (``forward_features``,
stride 32) and whose target is the pooled image embedding. They have no
attention to read, so CLIP-ES and MaskCLIP-style maps are refused with a
:class:`~carlib.towers.base.CapabilityError` that says so. (MobileCLIP's
FastViT has attention blocks in its last stage, but their tokens are a
convolutional map at stride 32, mixed again by a final convolution; carlib
treats the tower as convolutional.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import torch

from carlib.towers.base import CamForward, CamTarget, Trunk, VisionTower

if TYPE_CHECKING:
    from open_clip.timm_model import TimmModel


class TimmConvNet(Protocol):
    """What :class:`ConvTower` reads of a timm CNN (ConvNeXt, FastViT): timm gives them no common base class."""

    feature_info: list[dict[str, Any]]
    stages: torch.nn.Sequential

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...


class ConvTower(VisionTower):
    """Adapter for a timm CNN trunk (``forward_features`` -> B x C x h x w, ``forward_head``) plus open_clip's head."""

    has_attention = False

    visual: TimmModel

    def __init__(self, visual: TimmModel) -> None:
        super().__init__(visual)
        self.net: TimmConvNet = visual.trunk  # the timm model (not called "trunk": that is a method)
        self.family = f"timm {type(self.net).__name__}"

    @property
    def patch_size(self) -> int:
        return int(self.net.feature_info[-1]["reduction"])

    @property
    def num_blocks(self) -> int:
        return len(self.net.stages)

    @property
    def pooling(self) -> str:
        return "global average"

    @property
    def gradcam_tail(self) -> torch.nn.Module:
        return self.visual.head

    def trunk(self, pixels: torch.Tensor, attention_layers: int, *, fp16_positions: bool = False) -> Trunk:
        if attention_layers:
            self.require_attention("CLIP-ES")
        with torch.no_grad():
            features = self.net.forward_features(pixels.to(next(self.net.parameters()).dtype))
        return Trunk(features, (features.shape[-2], features.shape[-1]), None)

    def cam_forward(self, trunk: Trunk, target: CamTarget) -> CamForward:
        self.check_target(target)
        leaf = trunk.tokens.detach().requires_grad_(True)
        with torch.enable_grad():
            embedding = self.visual.head(self.net.forward_head(leaf))
        return CamForward(leaf, embedding, _map_rows)


def _map_rows(tensor: torch.Tensor) -> torch.Tensor:
    """``(*extra, 1, C, h, w)`` feature maps to ``(*extra, h*w, C)`` rows in row-major grid order."""
    return tensor.flatten(-2).transpose(-1, -2)[..., 0, :, :]
