"""Grad-CAM on CLIP: where in the image does CLIP see each text query?

This follows CaR (spec section 3): the feature map is the output of the last
residual block's ``ln_1`` (patch tokens on the patch grid); the Grad-CAM target
for query c is s_c, the softmax over [queries; background words] of
``logit_scale.exp() * cos(image, text)``, where the image embedding is the
mean of the patch tokens after ``ln_post`` and the projection.

Every family of vision tower is read through its adapter (:mod:`carlib.towers`):
for towers with a class token and a projection the definition above holds
exactly; a tower without a class token (SigLIP) is explained through its own
pooling, and a convolutional one through its last feature map
(:attr:`carlib.towers.VisionTower.default_cam_target`). Sigmoid-trained models
can score with a sigmoid instead of the softmax (:mod:`carlib.scores`).

All queries share one forward pass. Blocks 1..L-1 run without gradients, and
the gradients for every query come from one batched backward pass through the
last block only (``torch.autograd.grad(..., is_grads_batched=True)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from carlib.images import ImageInput, load_image, proposal_input
from carlib.memory import gradcam_chunk_size
from carlib.models import ClipBundle
from carlib.precision import full_precision
from carlib.scores import ScoreKind, scaled_logits, scores_from_logits
from carlib.text import BACKGROUND_TEMPLATE, encode_texts, validate_queries
from carlib.towers import CAM_TARGETS, CamForward, CamTarget, Trunk

CLIP_ES_ATTENTION_LAYERS = 8


@dataclass
class CamResult:
    """Grad-CAMs of N queries on one image, at patch-grid resolution.

    Attributes:
        cams: float32 N x h x w in [0, 1], min-max normalised per query.
        raw_cams: float32 N x h x w, ReLU(sum_k alpha_k A^k) before normalisation
            (its scale tells present from absent queries, which min-max hides).
        scores: float32 N, s_c for each query (softmax over queries and background).
        used_fallback: bool N, True where the CAM was all zero with background
            words and was recomputed from the queries alone.
        attention: float32 n x n head-averaged attention of the last
            ``attention_layers`` blocks without the class token, or None.
        grid: (h, w) patch grid.
        image_size: (H, W) of the original image.
    """

    cams: np.ndarray
    raw_cams: np.ndarray
    scores: np.ndarray
    used_fallback: np.ndarray
    attention: np.ndarray | None
    grid: tuple[int, int]
    image_size: tuple[int, int]

    def upsampled(self) -> np.ndarray:
        """The CAMs resized (bilinear) to the image size: float32 N x H x W in [0, 1]."""
        return resize_maps(self.cams, self.image_size)


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize N x h x w maps to N x H x W (``cv2.resize``, as the reference does)."""
    height, width = size
    # Filled in place: N maps at an image's size can be the largest arrays of a run (847 x 512 x 512: 0.9 GB).
    resized = np.empty((maps.shape[0], height, width), dtype=np.float32)
    for index, single in enumerate(maps):
        resized[index] = cv2.resize(single.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return resized


def minmax_normalize(maps: torch.Tensor) -> torch.Tensor:
    """Per-map (x - min) / (max - min); a constant map becomes all zeros.

    pytorch-grad-cam divides by (max + 1e-7) instead; raw CLIP CAMs can be as
    small as 1e-4, where that epsilon shrinks the whole map by 0.1%, so the
    exact range is used (the maps' maximum is exactly 1). The official CaR
    code divides by (max + 1e-15), which is the exact range to float precision.
    """
    flat = maps.flatten(1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    peak = flat.max(dim=1, keepdim=True).values
    flat = torch.where(peak > 0, flat / peak.clamp_min(torch.finfo(flat.dtype).tiny), flat)
    return flat.view_as(maps)


def compute_cams(
    bundle: ClipBundle,
    image: ImageInput,
    queries: Sequence[str],
    background: Sequence[str] = (),
    *,
    query_templates: Sequence[str] = ("{}",),
    background_templates: Sequence[str] = (BACKGROUND_TEMPLATE,),
    target: CamTarget | None = None,
    attention_layers: int = CLIP_ES_ATTENTION_LAYERS,
    query_embeddings: torch.Tensor | None = None,
    background_embeddings: torch.Tensor | None = None,
    center_features: bool = False,
    score_kind: ScoreKind = "softmax",
    chunk_size: int | None = None,
) -> CamResult:
    """Grad-CAM for every query at patch-grid resolution, plus CLIP-ES attention.

    Arguments:
        bundle: the proposal CLIP (a ViT).
        image: path, PIL image or HxWx3 uint8 RGB array.
        queries: N distinct, non-blank text queries.
        background: background words that compete in the softmax (may be empty).
        query_templates: templates for query embeddings; CaR uses the raw name
            (``("{}",)``) in its first step.
        background_templates: templates for background words (``"a clean origami {}."``).
        target: ``"patch_mean"`` (CaR: mean of patch tokens), ``"class_token"``,
            ``"pooled"`` (the tower's own pooling, e.g. SigLIP's attention
            pool), or None: the tower's default
            (:attr:`carlib.towers.VisionTower.default_cam_target`:
            ``"patch_mean"`` for every tower with a class token).
        attention_layers: how many final blocks' attention to average for
            CLIP-ES (8 in CaR); 0 skips the attention (and is the only choice
            for convolutional towers).
        query_embeddings, background_embeddings: precomputed unit text
            embeddings (N x D, M x D) to reuse across calls; they override the
            names and templates for embedding but ``queries`` still sets N.
        center_features: not in the reference. Weigh each channel's deviation
            from its mean over the patches, CAM = ReLU(sum_k alpha_k (A^k - mean A^k)),
            instead of A^k itself. The two differ by the constant
            sum_k alpha_k mean(A^k), which only moves where the ReLU cuts: at the
            image's average evidence instead of at zero. ViT features share a
            large common component, so that constant can be big enough to
            light up, or black out, the whole grid. The default, False, is
            the reference's Grad-CAM.
        score_kind: ``"softmax"`` over [queries; background] (CaR) or ``"sigmoid"``
            of each query alone with the model's logit bias (:mod:`carlib.scores`).
        chunk_size: queries per batched backward pass; None: as many as the
            memory budget allows (:mod:`carlib.memory`). The maps do not depend on it.

    Returns:
        a :class:`CamResult`.
    """
    if target is not None and target not in CAM_TARGETS:
        raise ValueError(f"unknown CAM target {target!r}; choose one of {CAM_TARGETS}")
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
    return _gradcam_on_grid(
        bundle,
        inputs.pixels,
        inputs.query_embeddings,
        inputs.background_embeddings,
        target=target,
        attention_layers=attention_layers,
        image_size=inputs.image_size,
        center_features=center_features,
        score_kind=score_kind,
        chunk_size=chunk_size,
    )


@dataclass
class ProposalInputs:
    """An image and texts made ready for a proposal CLIP (what every dense-map method starts from).

    Attributes:
        queries: the validated queries.
        pixels: 1 x 3 x H' x W' normalised patch-aligned image, on the model's device.
        query_embeddings: float32 N x D unit embeddings, on the model's device.
        background_embeddings: float32 M x D unit embeddings, on the model's device.
        image_size: (H, W) of the image before alignment.
    """

    queries: list[str]
    pixels: torch.Tensor
    query_embeddings: torch.Tensor
    background_embeddings: torch.Tensor
    image_size: tuple[int, int]


def prepare_inputs(
    bundle: ClipBundle,
    image: ImageInput,
    queries: Sequence[str],
    background: Sequence[str] = (),
    *,
    query_templates: Sequence[str] = ("{}",),
    background_templates: Sequence[str] = (BACKGROUND_TEMPLATE,),
    query_embeddings: torch.Tensor | None = None,
    background_embeddings: torch.Tensor | None = None,
) -> ProposalInputs:
    """Validate the queries, read the image, embed the texts (unless given) and preprocess the pixels.

    Arguments: as :func:`compute_cams`.

    Raises:
        ValueError: bad queries, or query embeddings that do not match them in number.
    """
    queries = validate_queries(queries)
    rgb = load_image(image)
    if query_embeddings is None:
        query_embeddings = encode_texts(bundle, queries, query_templates)
    if background_embeddings is None:
        background_embeddings = encode_texts(bundle, list(background), background_templates)
    if query_embeddings.shape[0] != len(queries):
        raise ValueError(f"got {query_embeddings.shape[0]} query embeddings for {len(queries)} queries")
    pixels = proposal_input(rgb, bundle.patch_size, bundle.mean, bundle.std).to(bundle.device)
    return ProposalInputs(
        queries,
        pixels,
        query_embeddings.to(bundle.device).float(),
        background_embeddings.to(bundle.device).float(),
        tuple(rgb.shape[:2]),
    )


def gradcam(
    bundle: ClipBundle,
    image: ImageInput,
    queries: Sequence[str],
    background: Sequence[str] = (),
    **options,
) -> np.ndarray:
    """Grad-CAM of each query on CLIP, at the image's size.

    Arguments:
        bundle: the proposal CLIP, from :func:`carlib.load_clip`.
        image: path, PIL image or HxWx3 uint8 RGB array.
        queries: N distinct, non-blank text queries.
        background: background words competing in the softmax (see
            :data:`carlib.background.DEFAULT_BACKGROUND_WORDS`).
        **options: passed to :func:`compute_cams` (templates, ``target``...).

    Returns:
        float32 array N x H x W in [0, 1]: each query's CAM, min-max normalised
        on the patch grid, then bilinearly resized to the image.
    """
    options.setdefault("attention_layers", 0)
    return compute_cams(bundle, image, queries, background, **options).upsampled()


def run_trunk(
    bundle: ClipBundle, pixels: torch.Tensor, attention_layers: int, *, fp16_positions: bool = False
) -> Trunk:
    """Patch embedding and blocks 1..L-1 without gradients, summing the attention CLIP-ES reads.

    Arguments:
        bundle: the proposal CLIP.
        pixels: 1 x 3 x H x W normalised image, sides multiples of the patch size.
        attention_layers: how many final blocks' attention CLIP-ES averages (0: none).
        fp16_positions: round the resized positional embedding to fp16 (``official_numerics``).

    Returns:
        a :class:`carlib.towers.Trunk`; the last block's own attention is the caller's to add.

    Raises:
        carlib.towers.CapabilityError: attention asked of a convolutional tower.
    """
    return bundle.tower.trunk(pixels.to(bundle.dtype), attention_layers, fp16_positions=fp16_positions)


def mean_attention(
    trunk: Trunk, last_attention: torch.Tensor, attention_layers: int, num_prefix_tokens: int = 1
) -> np.ndarray:
    """The head-averaged attention of the last ``attention_layers`` blocks, prefix tokens dropped: n x n float32."""
    total = last_attention if trunk.attention_sum is None else trunk.attention_sum + last_attention
    p = num_prefix_tokens
    return (total[0, p:, p:] / attention_layers).float().cpu().numpy().astype(np.float32)


def trunk_attention(bundle: ClipBundle, trunk: Trunk, attention_layers: int) -> np.ndarray | None:
    """CLIP-ES's attention: the trunk's blocks plus the last one's, read from its first norm (n x n float32), or None."""
    if not attention_layers:
        return None
    tower = bundle.tower
    return mean_attention(trunk, tower.last_attention(trunk), attention_layers, tower.num_prefix_tokens)


def gradcam_from_trunk(
    bundle: ClipBundle,
    trunk: Trunk,
    query_embeddings: torch.Tensor,
    background_embeddings: torch.Tensor,
    *,
    target: CamTarget | None,
    image_size: tuple[int, int],
    center_features: bool = False,
    attention: np.ndarray | None = None,
    score_kind: ScoreKind = "softmax",
    chunk_size: int | None = None,
) -> CamResult:
    """Grad-CAMs of the queries from a :class:`carlib.towers.Trunk`: the last block forward, batched backward passes.

    This is the only part of :func:`compute_cams` that depends on the texts, so
    the trunk (and its attention) can be computed once per image and reused for
    every step of the recurrence and every group of queries.

    Arguments:
        bundle: the proposal CLIP.
        trunk: from :func:`run_trunk` on the image.
        query_embeddings, background_embeddings: float32 unit text embeddings on the model's device.
        target, center_features, score_kind: see :func:`compute_cams` (target None: the tower's default).
        image_size: (H, W) of the original image.
        attention: stored in the result as is (from :func:`trunk_attention`).
        chunk_size: queries per batched backward; None: as many as the memory
            budget allows (:func:`carlib.memory.gradcam_chunk_size`). The maps
            do not depend on it.

    Returns:
        a :class:`CamResult`.
    """
    tower = bundle.tower
    forward = tower.cam_forward(trunk, tower.default_cam_target if target is None else target)
    with torch.enable_grad():
        embedding = torch.nn.functional.normalize(forward.embedding.float(), dim=-1)
        texts = torch.cat([query_embeddings, background_embeddings])
        with full_precision(embedding):  # under autocast too: bf16 would round logits of ~30 by 0.1
            logits = scaled_logits(embedding, texts, bundle.logit_scale.float())[0]
        count = len(query_embeddings)
        if chunk_size is None:
            width = forward.rows(forward.leaf).shape[-1]
            tokens = forward.leaf.numel() // width  # prefix tokens included
            chunk_size = gradcam_chunk_size(bundle, tokens, count, width=width)
        cams, scores = _batched_cams(
            scores_from_logits(logits, bundle.logit_bias, score_kind, count), forward, center_features, chunk_size
        )
        used_fallback = cams.flatten(1).amax(dim=1) <= 0
        if used_fallback.any() and len(background_embeddings) and score_kind == "softmax":
            # An all-zero CAM carries no location; the reference retries without background words.
            retry = scores_from_logits(logits[:count], bundle.logit_bias, score_kind, count)
            cams_retry, _ = _batched_cams(retry, forward, center_features, chunk_size)
            cams[used_fallback] = cams_retry[used_fallback]
        else:
            used_fallback = torch.zeros_like(used_fallback)
    raw = cams.view(-1, *trunk.grid)
    return CamResult(
        cams=minmax_normalize(raw).float().cpu().numpy().astype(np.float32),
        raw_cams=raw.float().cpu().numpy().astype(np.float32),
        scores=scores.detach().float().cpu().numpy().astype(np.float32),
        used_fallback=used_fallback.cpu().numpy(),
        attention=attention,
        grid=trunk.grid,
        image_size=(image_size[0], image_size[1]),
    )


def _gradcam_on_grid(
    bundle: ClipBundle,
    pixels: torch.Tensor,
    query_embeddings: torch.Tensor,
    background_embeddings: torch.Tensor,
    *,
    target: CamTarget | None,
    attention_layers: int,
    image_size: tuple[int, int],
    center_features: bool = False,
    score_kind: ScoreKind = "softmax",
    chunk_size: int | None = None,
) -> CamResult:
    trunk = run_trunk(bundle, pixels, attention_layers)
    return gradcam_from_trunk(
        bundle,
        trunk,
        query_embeddings,
        background_embeddings,
        target=target,
        image_size=image_size,
        center_features=center_features,
        attention=trunk_attention(bundle, trunk, attention_layers),
        score_kind=score_kind,
        chunk_size=chunk_size,
    )


def _batched_cams(
    scores: torch.Tensor,
    forward: CamForward,
    center_features: bool = False,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM for every score, ``chunk_size`` scores per batched backward.

    Arguments:
        scores: N query scores (the Grad-CAM targets), differentiable with respect to ``forward.leaf``.
        forward: the tower's :class:`carlib.towers.CamForward` (leaf, and how to read its patch rows).
        center_features: subtract each channel's mean over the patches (see
            :func:`compute_cams`).
        chunk_size: queries per backward pass (None: all at once). The
            backward holds ``chunk_size`` copies of the last block's
            activations, so this bounds the memory; the maps do not depend on it.

    Returns:
        (ReLU'd CAMs N x n over the n patch positions, scores N).
    """
    count = scores.shape[0]
    chunk_size = count if chunk_size is None else max(1, int(chunk_size))
    # Only alpha (one D-vector per query) is kept from each chunk; the CAMs are formed once at the end.
    patch_features = forward.rows(forward.leaf.detach()).float()  # n x D
    channel_weights = (
        torch.cat(
            [
                _channel_weights(scores, forward, start, min(start + chunk_size, count))
                for start in range(0, count, chunk_size)
            ]
        )
        if count
        else torch.zeros((0, patch_features.shape[-1]), device=patch_features.device)
    )
    if center_features:
        patch_features = patch_features - patch_features.mean(dim=0, keepdim=True)
    with full_precision(patch_features):
        cams = torch.relu(channel_weights @ patch_features.T)
    return cams, scores.detach()


def _channel_weights(scores: torch.Tensor, forward: CamForward, start: int, stop: int) -> torch.Tensor:
    """alpha_k of scores ``start..stop-1``: the spatial mean of d s_c / d A^k, (stop - start) x D."""
    selector = torch.eye(scores.shape[0], device=scores.device, dtype=scores.dtype)[start:stop]
    (gradients,) = torch.autograd.grad(
        scores, forward.leaf, grad_outputs=selector, is_grads_batched=True, retain_graph=True
    )
    return forward.rows(gradients).float().mean(dim=1)  # alpha_k: spatial mean of the gradient
