"""The field's training-free dense methods: MaskCLIP, SCLIP, ClearCLIP and NACLIP, as patch embeddings.

Each reads CLIP's last block differently and then reads every patch token out
into the text space (the final norm, the pooling's per-token equivalent and the
projection: :meth:`carlib.towers.TransformerTower.readout`). The blocks before
the last run unchanged. What each does to the last block, as its official code
does it (where paper and code differ, carlib follows the code):

| method | attention of the last block | residual and MLP | official code read |
|---|---|---|---|
| MaskCLIP | none: each token keeps its own value (identity) | dropped | carlib's :mod:`carlib.maskclip` |
| SCLIP | softmax(q·qᵀ·s) + softmax(k·kᵀ·s) (rows sum to 2) | kept | wangf3014/SCLIP ``clip/model.py`` ``custom_attn(csa=True)`` |
| ClearCLIP | softmax(q·qᵀ·s) | dropped | mc-lan/ClearCLIP ``open_clip/transformer.py`` ``custom_attn('ClearCLIP')``, ``ignore_residual=True`` |
| NACLIP | softmax(k·kᵀ·s + Ω), Ω a Gaussian of the patch-grid distance | dropped (``arch='reduced'``) | sinahmr/NACLIP ``clip/model.py`` ``custom_attn``, ``gaussian_window``, ``get_attention_addition`` |

s is the module's own logit scale (1/√d_head). The attention output goes
through the module's output projection (its bias added once, also for SCLIP's
doubled weights) and, on towers that have them, its output norm, gate and
layer scale (:meth:`carlib.towers.TransformerTower.attention_branch`); the
official code runs OpenAI's towers, which have none. Rotary embeddings
(EVA02, PE-Core) are applied to the queries and keys before they are paired.
Prefix tokens (the class token) take part in the attention as in the official
code; NACLIP's Ω is zero in their rows and columns (its ``adjust_for_cls``).

Functions here are the maths alone (small, pure, tested on hand-computed
blocks); :func:`dense_patch_embeddings` runs one through a tower and
:func:`dense_similarity` is the public entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

from carlib.cam import prepare_inputs, run_trunk
from carlib.images import ImageInput
from carlib.models import ClipBundle
from carlib.towers import Trunk
from carlib.towers.attention import HeadQueryKey

DenseMethod = Literal["maskclip", "sclip", "clearclip", "naclip"]
DENSE_METHODS: tuple[str, ...] = get_args(DenseMethod)
NACLIP_GAUSSIAN_STD = 5.0
"""σ of NACLIP's neighbourhood, in patches (its ``gaussian_std`` default and the README's main results)."""


@dataclass(frozen=True)
class DenseMethodSpec:
    """What one method does to the last block, and where that was read.

    Attributes:
        name: the method's key (``--method``, ``--proposal-method``).
        title: its name as its paper writes it.
        attention: the last block's attention, in words.
        keeps_residual_and_mlp: True if the rest of the last block runs as it is.
        source: the official code read (repository and file).
        code_vs_paper: where the official code and the paper differ, and what carlib does.
    """

    name: str
    title: str
    attention: str
    keeps_residual_and_mlp: bool
    source: str
    code_vs_paper: tuple[str, ...] = ()


METHOD_SPECS: dict[str, DenseMethodSpec] = {
    "maskclip": DenseMethodSpec(
        "maskclip",
        "MaskCLIP",
        "identity (each token keeps its own value)",
        False,
        "carlib.maskclip (Zhou et al., ECCV 2022; the value path of the last block)",
        (
            "carlib's MaskCLIP skips the layer scale of towers that have one (its value path); the three newer "
            "methods keep it",
        ),
    ),
    "sclip": DenseMethodSpec(
        "sclip",
        "SCLIP",
        "correlative self-attention: softmax(q qᵀ s) + softmax(k kᵀ s)",
        True,
        "wangf3014/SCLIP clip/model.py (VisionTransformer.forward, custom_attn with csa=True)",
        (
            "the official last block keeps its residual and MLP (x + attn, then x + mlp(ln_2 x)); carlib does too",
            "the two softmaxes are added, not averaged: each row of the weights sums to 2, so the value part of "
            "the attention output is doubled while the output projection's bias is added once; carlib keeps that",
            "the official code interpolates the positional embedding bicubically (scale factor, +0.1); carlib "
            "resizes it bilinearly to the grid, as for every method (carlib.towers.positions)",
        ),
    ),
    "clearclip": DenseMethodSpec(
        "clearclip",
        "ClearCLIP",
        "query-query attention: softmax(q qᵀ s)",
        False,
        "mc-lan/ClearCLIP open_clip/transformer.py (VisionTransformer.forward with ignore_residual=True, "
        "custom_attn with model_type='ClearCLIP'); clearclip_segmentor.py",
        (
            "the stored configs/base_config.py sets model_type='vanilla' (q-k attention without residual, the "
            "paper's ablation); the method is model_type='ClearCLIP', the forward's default, which carlib implements",
            "the official code runs the model in fp16; carlib in the model's precision (fp32 by default)",
            "the official code interpolates the positional embedding bicubically; carlib bilinearly",
        ),
    ),
    "naclip": DenseMethodSpec(
        "naclip",
        "NACLIP",
        "key-key attention plus a Gaussian neighbourhood: softmax(k kᵀ s + Ω)",
        False,
        "sinahmr/NACLIP clip/model.py (VisionTransformer.forward with arch='reduced', custom_attn with "
        "attn_strategy='naclip'); naclip.py",
        (
            "Ω is added after the scale: logits = k kᵀ s + Ω, Ω[p, p'] = exp(-|p - p'|² / (2σ²)) over patch-grid "
            "positions, σ = 5 patches; Ω is 0 (not -inf) in the class token's row and column",
            "the official segmentor turns PAMR on by default (pamr_steps=10, and the README's results use it); "
            "carlib has no PAMR: the numbers to compare with are the paper's without PAMR",
            "the official code interpolates the positional embedding bicubically; carlib bilinearly",
        ),
    ),
}
"""Every dense method by name."""


def check_method(method: str) -> DenseMethodSpec:
    """The spec of ``method``; a ``ValueError`` naming the known ones otherwise."""
    if method not in METHOD_SPECS:
        raise ValueError(f"unknown dense method {method!r}; choose one of {', '.join(DENSE_METHODS)}")
    return METHOD_SPECS[method]


# --- the attention variants (pure functions) -----------------------------------------------------------------


def identity_attention(qkv: HeadQueryKey, grid: tuple[int, int] = (0, 0), num_prefix: int = 0) -> torch.Tensor:
    """MaskCLIP's attention: every token attends only to itself. float32 B x heads x L x L identity matrices."""
    batch, heads, length, _ = qkv.query.shape
    return torch.eye(length, device=qkv.query.device).expand(batch, heads, length, length)


def correlative_attention(qkv: HeadQueryKey, grid: tuple[int, int] = (0, 0), num_prefix: int = 0) -> torch.Tensor:
    """SCLIP's correlative self-attention: softmax(q·qᵀ·s) + softmax(k·kᵀ·s); each row sums to 2.

    Arguments:
        qkv: per-head queries and keys (float32 B x heads x L x d_head) and the module's scale.
        grid, num_prefix: unused (the signature every variant shares).

    Returns:
        float32 B x heads x L x L.
    """
    return qkv.pair_logits(qkv.query, qkv.query).softmax(dim=-1) + qkv.pair_logits(qkv.key, qkv.key).softmax(dim=-1)


def query_query_attention(qkv: HeadQueryKey, grid: tuple[int, int] = (0, 0), num_prefix: int = 0) -> torch.Tensor:
    """ClearCLIP's self-self attention: softmax(q·qᵀ·s). float32 B x heads x L x L, rows sum to 1."""
    return qkv.pair_logits(qkv.query, qkv.query).softmax(dim=-1)


def gaussian_neighbourhood(grid: tuple[int, int], std: float, num_prefix: int = 0) -> torch.Tensor:
    """NACLIP's Ω: exp(-d² / (2σ²)) between every two patches, d their distance on the grid, in patches.

    Arguments:
        grid: (h, w) patch grid; patches are in row-major order.
        std: σ in patches (> 0).
        num_prefix: tokens before the patches (the class token); their rows and columns are 0.

    Returns:
        float32 L x L with L = num_prefix + h * w; symmetric, 1 on the patch diagonal.

    Raises:
        ValueError: a non-positive σ.
    """
    if not std > 0:
        raise ValueError(f"NACLIP's Gaussian std must be positive (patches), got {std!r}")
    rows, columns = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    positions = torch.stack([rows.flatten(), columns.flatten()], dim=1).double()
    squared = torch.cdist(positions, positions).pow(2)
    patches = torch.exp(-squared / (2.0 * std * std)).float()
    omega = torch.zeros(num_prefix + patches.shape[0], num_prefix + patches.shape[0])
    omega[num_prefix:, num_prefix:] = patches
    return omega


def neighbourhood_key_attention(
    qkv: HeadQueryKey, grid: tuple[int, int], num_prefix: int = 0, *, std: float = NACLIP_GAUSSIAN_STD
) -> torch.Tensor:
    """NACLIP's attention: softmax(k·kᵀ·s + Ω), Ω :func:`gaussian_neighbourhood`. float32 B x heads x L x L."""
    omega = gaussian_neighbourhood(grid, std, num_prefix).to(qkv.key.device)
    return (qkv.pair_logits(qkv.key, qkv.key) + omega).softmax(dim=-1)


def attention_of(method: str, neighbourhood_std: float = NACLIP_GAUSSIAN_STD):
    """The attention variant of ``method`` as the towers take it: ``mix(qkv, grid, num_prefix)``."""
    check_method(method)
    if method == "naclip":
        if not neighbourhood_std > 0:
            raise ValueError(f"NACLIP's Gaussian std must be positive (patches), got {neighbourhood_std!r}")
        return lambda qkv, grid, prefix: neighbourhood_key_attention(qkv, grid, prefix, std=neighbourhood_std)
    return {"maskclip": identity_attention, "sclip": correlative_attention, "clearclip": query_query_attention}[method]


# --- through a tower ---------------------------------------------------------------------------------------


def dense_patch_embeddings(
    bundle: ClipBundle, trunk: Trunk, method: str, neighbourhood_std: float = NACLIP_GAUSSIAN_STD
) -> torch.Tensor:
    """Per-patch embeddings of ``method`` from the tokens entering the last block.

    MaskCLIP is carlib's :meth:`carlib.towers.VisionTower.dense_embeddings` (the
    value path); the others run the last block with their attention
    (:meth:`carlib.towers.VisionTower.attention_variant_embeddings`).

    Arguments:
        bundle: the CLIP whose tower ran ``trunk``.
        trunk: from :func:`carlib.cam.run_trunk`.
        method: one of :data:`DENSE_METHODS`.
        neighbourhood_std: NACLIP's σ in patches.

    Returns:
        float32 n x E unit embeddings, n = h * w patches in row-major order.

    Raises:
        ValueError: an unknown method.
        carlib.towers.CapabilityError: a convolutional tower (no attention to change).
    """
    spec = check_method(method)
    with torch.no_grad():
        if method == "maskclip":
            return bundle.tower.dense_embeddings(trunk)
        return bundle.tower.attention_variant_embeddings(
            trunk, attention_of(method, neighbourhood_std), keep_residual_and_mlp=spec.keeps_residual_and_mlp
        )


def dense_similarity(
    bundle: ClipBundle,
    image: ImageInput,
    texts: Sequence[str],
    method: str = "maskclip",
    *,
    neighbourhood_std: float = NACLIP_GAUSSIAN_STD,
) -> np.ndarray:
    """The cosine of every patch's final embedding with every text, on the patch grid.

    The image is prepared as for Grad-CAM (:func:`carlib.images.proposal_input`:
    resized bicubically to a multiple of the patch size, no crop; the positional
    embedding resized to the grid); the texts are embedded without a template and
    normalised. No softmax, no scale, no normalisation of the maps.

    Arguments:
        bundle: a CLIP with a ViT-like vision tower (:func:`carlib.load_clip`).
        image: path, PIL image or H x W x 3 uint8 RGB.
        texts: N distinct, non-blank texts.
        method: ``"maskclip"``, ``"sclip"``, ``"clearclip"`` or ``"naclip"`` (:data:`METHOD_SPECS`).
        neighbourhood_std: NACLIP's σ in patches.

    Returns:
        float32 N x h x w cosines in [-1, 1], (h, w) the patch grid.

    Raises:
        ValueError: an unknown method, or bad texts.
        carlib.towers.CapabilityError: a convolutional tower.
    """
    check_method(method)
    bundle.tower.require_attention(f"{METHOD_SPECS[method].title} dense maps")
    inputs = prepare_inputs(bundle, image, texts, (), query_templates=("{}",))
    with torch.no_grad():
        trunk = run_trunk(bundle, inputs.pixels, 0)
        patches = dense_patch_embeddings(bundle, trunk, method, neighbourhood_std)
        cosines = patches @ inputs.query_embeddings.T  # n x N
    return cosines.T.reshape(len(inputs.queries), *trunk.grid).cpu().numpy().astype(np.float32)


def cosine_maps(patches: torch.Tensor, texts: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """float32 N x h x w cosines of unit patch embeddings (n x E) with unit text embeddings (N x E)."""
    return (patches.float() @ texts.float().T).T.reshape(texts.shape[0], *grid)
