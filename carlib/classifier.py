"""The visual-prompt mask classifier: which query does each prompted image show?

Spec section 4. Each prompted image goes through the classifier CLIP's standard
preprocessing. For every template, the image is compared with the surviving
queries (softmax of ``logit_scale.exp() · cos`` over the queries only); the
per-template probabilities are summed and softmaxed again.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from carlib.embeddings import pixel_embeddings
from carlib.images import pixel_digest
from carlib.models import ClipBundle
from carlib.precision import full_precision
from carlib.scores import scaled_logits, score_kind_for, scores_from_logits
from carlib.settings import CarSettings, ImageFeature
from carlib.text import TextEmbeddingCache


@runtime_checkable
class ClassifierStage(Protocol):
    """Anything that scores prompted images against the alive queries for :class:`carlib.car.CaR`."""

    def classify(self, images: Sequence[np.ndarray], queries: Sequence[str], settings: CarSettings) -> np.ndarray:
        """M prompted HxWx3 uint8 images against N queries: float32 M x N, rows summing to 1."""
        ...


def classifier_feature_for(bundle: ClipBundle) -> str:
    """The image embedding ``classifier_feature="auto"`` means for a model.

    ``"penultimate_class_token"`` (the reference's quirk) for open_clip ViTs
    (OpenAI, LAION, MetaCLIP, DFN weights); ``"final"`` for every other family
    and for the ShapesWorld models, which are trained on their final embedding
    (:attr:`carlib.models.ClipBundle.default_classifier_feature`).
    """
    return bundle.default_classifier_feature


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
        encoded = pixel_embeddings(self.bundle, torch.stack(list(pending.values())), feature)
        for key, embedding in zip(pending, encoded, strict=True):
            self._images[key] = embedding
        count = len(pending)
        pending.clear()
        return count

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
                is softmaxed once, not twice); and ``score_rule``: for a
                sigmoid-trained model, ``"as_trained"`` replaces every softmax
                by SigLIP's per-pair sigmoid with the model's logit bias (per
                template, then averaged; or once, over the mean-template embeddings).

        Returns:
            float32 M x N matrix; each row sums to 1 (with ``"sigmoid"`` scores: each entry on its own in [0, 1]).
        """
        if not images or not queries:
            return np.zeros((len(images), len(queries)), dtype=np.float32)
        image_embeddings = self.image_embeddings(images, settings.classifier_feature)  # M x D
        texts = self.text_embeddings(queries, settings.templates)  # T x N x D
        scale = self.bundle.logit_scale.float()
        with full_precision(image_embeddings):  # the encoders follow autocast; the scores stay float32
            if score_kind_for(self.bundle.training_loss, settings.score_rule) == "sigmoid":
                probabilities = self._sigmoid_scores(image_embeddings, texts, scale, settings)
            elif settings.classifier_aggregation == "softmax":
                mean_texts = torch.nn.functional.normalize(texts.mean(dim=0), dim=-1)
                probabilities = (scale * image_embeddings @ mean_texts.T).softmax(dim=-1)
            else:
                per_template = (scale * torch.einsum("md,tnd->tmn", image_embeddings, texts)).softmax(dim=-1)
                probabilities = per_template.sum(dim=0).softmax(dim=-1)
        return probabilities.float().cpu().numpy().astype(np.float32)

    def _sigmoid_scores(
        self, image_embeddings: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor, settings: CarSettings
    ) -> torch.Tensor:
        count = texts.shape[1]
        if settings.classifier_aggregation == "softmax":
            mean_texts = torch.nn.functional.normalize(texts.mean(dim=0), dim=-1)
            return scores_from_logits(
                scaled_logits(image_embeddings, mean_texts, scale), self.bundle.logit_bias, "sigmoid", count
            )
        per_template = [
            scores_from_logits(
                scaled_logits(image_embeddings, template, scale), self.bundle.logit_bias, "sigmoid", count
            )
            for template in texts
        ]
        return torch.stack(per_template).mean(dim=0)
