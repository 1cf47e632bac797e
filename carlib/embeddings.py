"""Image embeddings of any supported VLM: what ``encode_image`` gives for the model's own preprocessing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from PIL import Image

from carlib.images import ImageInput, load_image
from carlib.models import ClipBundle

EmbeddingFeature = Literal["final", "penultimate_class_token"]


@torch.no_grad()
def image_embeddings(
    bundle: ClipBundle, images: Sequence[ImageInput], *, batch_size: int = 16, feature: EmbeddingFeature = "final"
) -> torch.Tensor:
    """Unit image embeddings, one per image, for any family (:mod:`carlib.towers`).

    Each image goes through the model's own preprocessing (``bundle.preprocess``:
    resize, centre crop or squash, normalise, as its pretrained tag says) and
    the tower's own forward, as open_clip's ``encode_image`` does.

    Arguments:
        bundle: a model from :func:`carlib.load_clip`.
        images: N paths, PIL images or H x W x 3 uint8 RGB arrays.
        batch_size: images per forward pass.
        feature: ``"final"`` (the embedding) or ``"penultimate_class_token"``
            (the reference classifier's quirk: the class token after all blocks
            but the last; open_clip ViTs only).

    Returns:
        float32 N x E unit vectors on ``bundle.device``.
    """
    check_feature(feature)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack(
            [bundle.preprocess(Image.fromarray(load_image(image))) for image in images[start : start + batch_size]]
        )
        chunks.append(pixel_embeddings(bundle, batch, feature))
    if not chunks:
        return torch.zeros((0, bundle.embed_dim), device=bundle.device)
    return torch.cat(chunks)


def check_feature(feature: str) -> None:
    """Raise ValueError unless ``feature`` is ``"final"`` or ``"penultimate_class_token"``."""
    if feature not in ("final", "penultimate_class_token"):
        raise ValueError(f"unknown image feature {feature!r}; choose 'final' or 'penultimate_class_token'")


@torch.no_grad()
def pixel_embeddings(bundle: ClipBundle, pixels: torch.Tensor, feature: str = "final") -> torch.Tensor:
    """Unit embeddings of a batch already through ``bundle.preprocess``: B x 3 x S x S -> float32 B x E.

    What :func:`image_embeddings` and the classifier (:class:`carlib.classifier.MaskClassifier`) both encode with.
    """
    tower = bundle.tower
    encode = tower.encode if feature == "final" else tower.penultimate_class_token
    return torch.nn.functional.normalize(encode(pixels.to(bundle.device, bundle.dtype)).float(), dim=-1)
