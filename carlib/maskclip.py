"""MaskCLIP dense maps: where each text is, read straight off CLIP's patch tokens, without gradients.

MaskCLIP (Zhou et al., ECCV 2022) is the paper's Table B baseline and a
second way to propose masks. The last block is read with its query-key
attention replaced by the identity: every patch token entering it goes
through ``ln_1``, the value projection and the attention's output projection,
then ``ln_post`` and the image projection, which puts each patch in the space
of the text embeddings. The residual and the MLP of the last block are
skipped. The tower's adapter does the reading
(:meth:`carlib.towers.VisionTower.dense_embeddings`), so every ViT-like family
works; for an attention-pooled tower (SigLIP) each patch then goes through the
pool with its attention replaced by the identity. Each patch then gets a softmax over
[queries; background words] of ``logit_scale.exp() · cos``, the same
competition Grad-CAM's target uses, and each query's map is min-max
normalised like a CAM. One forward pass, no backward.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from carlib.cam import CLIP_ES_ATTENTION_LAYERS, CamResult, minmax_normalize, prepare_inputs, run_trunk, trunk_attention
from carlib.images import ImageInput
from carlib.models import ClipBundle
from carlib.precision import full_precision
from carlib.scores import ScoreKind, scaled_logits, scores_from_logits
from carlib.text import BACKGROUND_TEMPLATE


def dense_probabilities(
    patches: torch.Tensor,
    texts: torch.Tensor,
    num_queries: int,
    logit_scale: float,
    logit_bias: torch.Tensor | None = None,
    score_kind: ScoreKind = "softmax",
) -> torch.Tensor:
    """Each patch's score for each query: its softmax over the texts (or SigLIP's sigmoid, :mod:`carlib.scores`).

    Arguments:
        patches: n x E unit patch embeddings.
        texts: K x E unit text embeddings, queries first, then background words.
        num_queries: how many of the texts are queries.
        logit_scale: the temperature's inverse, CLIP's ``logit_scale.exp()``.
        logit_bias, score_kind: see :func:`carlib.scores.scores_from_logits`.

    Returns:
        float32 num_queries x n probabilities (with the softmax each column sums to at most 1).
    """
    with full_precision(patches):
        logits = scaled_logits(patches, texts, logit_scale)  # n x K
        return scores_from_logits(logits, logit_bias, score_kind, num_queries).T.contiguous()


@torch.no_grad()
def compute_maskclip(
    bundle: ClipBundle,
    image: ImageInput,
    queries: Sequence[str],
    background: Sequence[str] = (),
    *,
    query_templates: Sequence[str] = ("{}",),
    background_templates: Sequence[str] = (BACKGROUND_TEMPLATE,),
    attention_layers: int = CLIP_ES_ATTENTION_LAYERS,
    query_embeddings: torch.Tensor | None = None,
    background_embeddings: torch.Tensor | None = None,
    score_kind: ScoreKind = "softmax",
) -> CamResult:
    """MaskCLIP maps of every query at patch-grid resolution, plus the attention CLIP-ES reads.

    Takes the arguments of :func:`carlib.cam.compute_cams` (no ``target`` or
    centring: there is no gradient). The image is fed as Grad-CAM's is
    (patch-aligned, no crop).

    Raises:
        carlib.towers.CapabilityError: a convolutional tower (no value path to read).

    Returns:
        a :class:`carlib.cam.CamResult`: ``raw_cams`` are the per-patch
        probabilities, ``cams`` their per-query min-max normalisation,
        ``scores`` the probabilities averaged over the patches; ``used_fallback``
        is all False.
    """
    inputs = prepare_inputs(
        bundle,
        image,
        queries,
        background,
        query_templates=query_templates,
        background_templates=background_templates,
        query_embeddings=query_embeddings,
        background_embeddings=background_embeddings,
    )
    trunk = run_trunk(bundle, inputs.pixels, attention_layers)
    patches = bundle.tower.dense_embeddings(trunk)
    texts = torch.cat([inputs.query_embeddings, inputs.background_embeddings])
    probabilities = dense_probabilities(
        patches, texts, len(inputs.queries), float(bundle.logit_scale), bundle.logit_bias, score_kind
    )
    return maskclip_result(
        probabilities, trunk.grid, inputs.image_size, trunk_attention(bundle, trunk, attention_layers)
    )


def maskclip_result(
    probabilities: torch.Tensor, grid: tuple[int, int], image_size: tuple[int, int], attention: np.ndarray | None
) -> CamResult:
    """A :class:`CamResult` of MaskCLIP's per-patch probabilities (num_queries x n) on a patch grid."""
    raw = probabilities.view(-1, *grid)
    return CamResult(
        cams=minmax_normalize(raw).float().cpu().numpy().astype(np.float32),
        raw_cams=raw.float().cpu().numpy().astype(np.float32),
        scores=probabilities.mean(dim=1).float().cpu().numpy().astype(np.float32),
        used_fallback=np.zeros(raw.shape[0], dtype=bool),
        attention=attention,
        grid=grid,
        image_size=image_size,
    )
