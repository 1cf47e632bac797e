"""The visual-prompt mask classifier: which query does each prompted image show?

Spec section 4. Each prompted image goes through the classifier CLIP's standard
preprocessing. For every template, the image is compared with the surviving
queries (softmax of ``logit_scale.exp() · cos`` over the queries only); the
per-template probabilities are summed and softmaxed again.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from PIL import Image

from carlib.images import pixel_digest
from carlib.models import SHAPES_MODEL_NAME, ClipBundle
from carlib.precision import full_precision
from carlib.settings import CarSettings, ImageFeature
from carlib.text import TextEmbeddingCache
from carlib.vit import embed_patches, run_block


@runtime_checkable
class ClassifierStage(Protocol):
    """Anything that scores prompted images against the alive queries for :class:`carlib.car.CaR`."""

    def classify(self, images: Sequence[np.ndarray], queries: Sequence[str], settings: CarSettings) -> np.ndarray:
        """M prompted HxWx3 uint8 images against N queries: float32 M x N, rows summing to 1.

        ``images`` is a sequence; :class:`carlib.car.CaR` passes a
        :class:`carlib.prompts.PromptedImages`, which draws each image when it
        is read, so read them in order and do not keep them if memory matters.
        """
        ...


def classifier_feature_for(bundle: ClipBundle) -> str:
    """The image embedding ``classifier_feature="auto"`` means for a model.

    ``"penultimate_class_token"`` (the reference's quirk) for real CLIP; ``"final"``
    for the ShapesWorld CLIP, which is trained on its final embedding.
    """
    return "final" if bundle.name == SHAPES_MODEL_NAME else "penultimate_class_token"


class MaskClassifier:
    """Scores prompted images against text queries with a second CLIP (the paper's classifier stage).

    The settings of each call decide the templates, the image feature and the
    aggregation (:class:`carlib.settings.CarSettings`). It pays only for what
    is new: text embeddings are computed once per (template, query), all the
    missing ones in one batch; a prompted image it has already seen (a query
    whose mask did not change since the last step) is not encoded again.

    Arguments:
        bundle: the classifier CLIP (ViT-L/14 for semantic presets in the paper).
        batch_size: prompted images per forward pass.
        remembered_images: how many image embeddings to keep (oldest dropped first).

    Attributes:
        passes: ``"images"``: prompted images encoded; ``"reused"``: ones answered from memory.
    """

    def __init__(self, bundle: ClipBundle, *, batch_size: int = 16, remembered_images: int = 256) -> None:
        self.bundle = bundle
        self.batch_size = batch_size
        self.texts = TextEmbeddingCache(bundle)
        self.passes: Counter = Counter()
        self._images: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._remembered = remembered_images

    def text_embeddings(self, queries: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """Unit embeddings of every query under every template: T x N x D (each computed once)."""
        return self.texts.embed_templates(queries, templates)

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[np.ndarray], image_feature: ImageFeature = "auto") -> torch.Tensor:
        """Unit image embeddings of RGB uint8 images: M x D, the unseen ones encoded in batches.

        Arguments:
            images: M HxWx3 uint8 RGB pictures.
            image_feature: ``"penultimate_class_token"``, ``"final"`` or ``"auto"``
                (:func:`classifier_feature_for`).
        """
        feature = classifier_feature_for(self.bundle) if image_feature == "auto" else image_feature
        # Each image is read once, in order, and only a batch of preprocessed unseen ones is held, so
        # the images may be drawn on demand (carlib.prompts.PromptedImages). The batches are the
        # unseen images in order of first appearance, batch_size at a time.
        keys: list[tuple] = []
        pending: dict[tuple, torch.Tensor] = {}
        encoded = 0
        for image in images:
            key = (feature, pixel_digest(image))
            keys.append(key)
            if key in self._images or key in pending:
                continue
            pending[key] = self.bundle.preprocess(Image.fromarray(image))
            if len(pending) == self.batch_size:
                encoded += self._encode_pending(pending, feature)
        encoded += self._encode_pending(pending, feature)
        self.passes["images"] += encoded
        self.passes["reused"] += len(keys) - encoded
        result = torch.stack([self._images[key] for key in keys])
        while len(self._images) > self._remembered:
            self._images.popitem(last=False)
        return result

    def _encode_pending(self, pending: dict, feature: str) -> int:
        """Encode the preprocessed images in ``pending`` as one batch, remember them, empty it; how many."""
        if not pending:
            return 0
        batch = torch.stack(list(pending.values())).to(self.bundle.device, self.bundle.dtype)
        encoded = torch.nn.functional.normalize(self._encode(batch, feature).float(), dim=-1)
        for key, embedding in zip(pending, encoded):
            self._images[key] = embedding
        count = len(pending)
        pending.clear()
        return count

    def _encode(self, pixels: torch.Tensor, feature: str) -> torch.Tensor:
        model = self.bundle.model
        if feature == "final":
            return model.encode_image(pixels)
        visual = model.visual
        tokens, _ = embed_patches(visual, pixels)
        batch_first = getattr(visual.transformer, "batch_first", True)
        for block in list(visual.transformer.resblocks)[:-1]:
            tokens = run_block(block, tokens, batch_first)
        pooled = visual.ln_post(tokens[:, 0])
        return pooled @ visual.proj if visual.proj is not None else pooled

    def classify(
        self, images: Sequence[np.ndarray], queries: Sequence[str], settings: CarSettings = CarSettings()
    ) -> np.ndarray:
        """Probability that each image shows each query.

        Arguments:
            images: M prompted images, HxWx3 uint8 RGB.
            queries: the N surviving queries (no background words).
            settings: ``templates``, ``classifier_feature`` and
                ``classifier_aggregation``: ``"sum_softmax"`` (the reference's
                semantic path: softmax over the queries per template, summed,
                softmaxed again) or ``"softmax"`` (its referring path: one
                softmax over the mean-template embeddings, so a single template
                is softmaxed once, not twice).

        Returns:
            float32 M x N matrix; each row sums to 1.
        """
        if not images or not queries:
            return np.zeros((len(images), len(queries)), dtype=np.float32)
        image_embeddings = self.image_embeddings(images, settings.classifier_feature)  # M x D
        texts = self.text_embeddings(queries, settings.templates)  # T x N x D
        scale = self.bundle.model.logit_scale.exp().float()
        with full_precision(image_embeddings):  # the encoders follow autocast; the scores stay float32
            if settings.classifier_aggregation == "softmax":
                mean_texts = torch.nn.functional.normalize(texts.mean(dim=0), dim=-1)
                probabilities = (scale * image_embeddings @ mean_texts.T).softmax(dim=-1)
            else:
                per_template = (scale * torch.einsum("md,tnd->tmn", image_embeddings, texts)).softmax(dim=-1)
                probabilities = per_template.sum(dim=0).softmax(dim=-1)
        return probabilities.float().cpu().numpy().astype(np.float32)
