"""The visual-prompt mask classifier: which query does each prompted image show?

Spec section 4. Each prompted image goes through the classifier CLIP's standard
preprocessing. For every template, the image is compared with the surviving
queries (softmax of ``logit_scale.exp() · cos`` over the queries only); the
per-template probabilities are summed and softmaxed again.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
from PIL import Image

from carlib.models import ClipBundle
from carlib.text import encode_texts
from carlib.vit import embed_patches, run_block

ImageFeature = Literal["penultimate_class_token", "final"]
IMAGE_FEATURES = ("penultimate_class_token", "final")
Aggregation = Literal["sum_softmax", "softmax"]
AGGREGATIONS = ("sum_softmax", "softmax")


class MaskClassifier:
    """Scores prompted images against text queries with a second CLIP.

    Text embeddings are computed once per (query, template) and cached, so the
    recurrence only pays for new queries.

    Arguments:
        bundle: the classifier CLIP (ViT-L/14 for semantic presets in the paper).
        templates: prompt templates; each query is embedded once per template.
        image_feature: ``"penultimate_class_token"`` (the reference's quirk: the
            class token after L-1 blocks, then ``ln_post`` and the projection;
            the faithful default for OpenAI models) or ``"final"`` (the model's
            standard image embedding, ``encode_image``).
        aggregation: ``"sum_softmax"`` (the reference's semantic path: softmax
            per template, summed, softmaxed again) or ``"softmax"`` (its
            referring path: one softmax over the mean-template text
            embeddings, so a single template is softmaxed once, not twice).
        batch_size: prompted images per forward pass.
    """

    def __init__(
        self,
        bundle: ClipBundle,
        templates: Sequence[str],
        *,
        image_feature: ImageFeature = "penultimate_class_token",
        aggregation: Aggregation = "sum_softmax",
        batch_size: int = 16,
    ) -> None:
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {AGGREGATIONS}")
        if image_feature not in IMAGE_FEATURES:
            raise ValueError(f"unknown image_feature {image_feature!r}; choose one of {IMAGE_FEATURES}")
        if not templates:
            raise ValueError("the classifier needs at least one template, e.g. ('a photo of a {}.',)")
        self.bundle = bundle
        self.templates = tuple(templates)
        self.image_feature = image_feature
        self.aggregation = aggregation
        self.batch_size = batch_size
        self._text_cache: dict[str, torch.Tensor] = {}

    def text_embeddings(self, queries: Sequence[str]) -> torch.Tensor:
        """Unit embeddings of every query under every template: T x N x D (cached)."""
        missing = [query for query in dict.fromkeys(queries) if query not in self._text_cache]
        for query in missing:
            per_template = torch.cat([encode_texts(self.bundle, [query], (template,)) for template in self.templates])
            self._text_cache[query] = per_template  # T x D
        return torch.stack([self._text_cache[query] for query in queries], dim=1)

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Unit image embeddings of RGB uint8 images: M x D, in batches."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack(
                [self.bundle.preprocess(Image.fromarray(image)) for image in images[start : start + self.batch_size]]
            ).to(self.bundle.device, self.bundle.dtype)
            chunks.append(self._encode(batch).float())
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        model = self.bundle.model
        if self.image_feature == "final":
            return model.encode_image(pixels)
        visual = model.visual
        tokens, _ = embed_patches(visual, pixels)
        batch_first = getattr(visual.transformer, "batch_first", True)
        for block in list(visual.transformer.resblocks)[:-1]:
            tokens = run_block(block, tokens, batch_first)
        pooled = visual.ln_post(tokens[:, 0])
        return pooled @ visual.proj if visual.proj is not None else pooled

    def classify(self, images: Sequence[np.ndarray], queries: Sequence[str]) -> np.ndarray:
        """Probability that each image shows each query.

        Arguments:
            images: M prompted images, HxWx3 uint8 RGB.
            queries: the N surviving queries (no background words).

        Returns:
            float32 M x N matrix; each row sums to 1.
        """
        if not images or not queries:
            return np.zeros((len(images), len(queries)), dtype=np.float32)
        image_embeddings = self.image_embeddings(images)  # M x D
        texts = self.text_embeddings(queries)  # T x N x D
        scale = self.bundle.model.logit_scale.exp().float()
        if self.aggregation == "softmax":
            mean_texts = torch.nn.functional.normalize(texts.mean(dim=0), dim=-1)
            probabilities = (scale * image_embeddings @ mean_texts.T).softmax(dim=-1)
        else:
            per_template = (scale * torch.einsum("md,tnd->tmn", image_embeddings, texts)).softmax(dim=-1)
            probabilities = per_template.sum(dim=0).softmax(dim=-1)
        return probabilities.cpu().numpy().astype(np.float32)
