"""How CaR turns image-text similarities into scores: the contrastive softmax, or SigLIP's sigmoid.

Both of CaR's decisions read a score: Grad-CAM explains a query's score, and
the classifier keeps a query whose prompted image scores above θ. CLIP was
trained with a softmax over texts at its logit scale, and CaR uses exactly
that (``"softmax"``): the queries and the background words compete, so a
query scores high only where it beats the others.

SigLIP was trained with a sigmoid per image-text pair, ``σ(scale · cos + bias)``
with a learned bias (about -10 to -17), so its scores are calibrated one pair
at a time, not as a distribution over texts. ``"sigmoid"`` uses that instead:
each query's own probability, no competition (background words play no part
in Grad-CAM's target).

A run chooses with a rule (``CarSettings.score_rule``): ``"softmax"`` scores
every model with the softmax (the bias cancels in it), ``"as_trained"`` scores
each model the way it was trained (:func:`score_kind_for`). Which serves CaR
better with a sigmoid-trained model is measured on ShapesWorld
(docs/shapesworld.md, ``carlib ablate --table backbones``).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

ScoreKind = Literal["softmax", "sigmoid"]
SCORE_KINDS: tuple[str, ...] = get_args(ScoreKind)
ScoreRule = Literal["softmax", "as_trained"]
SCORE_RULES: tuple[str, ...] = get_args(ScoreRule)


def score_kind_for(training_loss: str, rule: ScoreRule) -> ScoreKind:
    """The score a model gets under a rule: the sigmoid only for a sigmoid-trained model under ``"as_trained"``.

    Arguments:
        training_loss: the model's, ``"softmax"`` or ``"sigmoid"`` (:attr:`carlib.models.ClipBundle.training_loss`).
        rule: ``"softmax"`` (every model) or ``"as_trained"``.
    """
    if rule not in SCORE_RULES:
        raise ValueError(f"unknown score rule {rule!r}; choose one of {SCORE_RULES}")
    return "sigmoid" if rule == "as_trained" and training_loss == "sigmoid" else "softmax"


def scaled_logits(embeddings: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """``scale · embeddings @ textsᵀ``: B x K logits of unit image embeddings (B x E) against unit texts (K x E)."""
    return scale * embeddings @ texts.T


def scores_from_logits(
    logits: torch.Tensor, bias: torch.Tensor | None, kind: ScoreKind, num_queries: int
) -> torch.Tensor:
    """The first ``num_queries`` texts' scores from scaled logits (..., K), queries first then background words.

    Arguments:
        logits: from :func:`scaled_logits`.
        bias: the model's logit bias (SigLIP), or None.
        kind: ``"softmax"`` over all K texts, or ``"sigmoid"`` of each query's logit plus the bias.
        num_queries: how many leading texts are queries.

    Returns:
        (..., num_queries) scores in [0, 1].

    Raises:
        ValueError: an unknown kind, or ``"sigmoid"`` for a model without a logit bias.
    """
    if kind == "softmax":
        return logits.softmax(dim=-1)[..., :num_queries]
    if kind == "sigmoid":
        if bias is None:
            raise ValueError(
                "score_kind 'sigmoid' needs a model trained with a sigmoid loss and a logit bias "
                "(SigLIP); this model has none: use score_kind 'softmax'"
            )
        return torch.sigmoid(logits[..., :num_queries] + bias.to(logits.dtype))
    raise ValueError(f"unknown score kind {kind!r}; choose one of {SCORE_KINDS}")
