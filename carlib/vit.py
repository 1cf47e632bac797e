"""Running an open_clip vision transformer at any input size, exposing its inner parts.

CaR feeds the proposal CLIP images at about their native resolution, so the
positional embedding is resized to the input's patch grid. This module also
reads the attention weights that CLIP-ES needs, which ``nn.MultiheadAttention``
does not return when open_clip calls it.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F


def interpolate_positional_embedding(
    positional_embedding: torch.Tensor, grid: tuple[int, int]
) -> torch.Tensor:
    """Resize a ViT positional embedding to a new patch grid.

    The class token's entry is kept as is; the patch entries are reshaped to
    their square training grid and bilinearly resized (``align_corners=False``,
    as CLIP-ES does).

    Arguments:
        positional_embedding: (1 + g*g) x D, g the training grid side.
        grid: (rows, cols) of the new patch grid.

    Returns:
        (1 + rows*cols) x D tensor, same dtype and device.
    """
    class_entry, patch_entries = positional_embedding[:1], positional_embedding[1:]
    side = math.isqrt(patch_entries.shape[0])
    if side * side != patch_entries.shape[0]:
        raise ValueError(f"positional embedding has {patch_entries.shape[0]} patch entries, not a square grid")
    if (side, side) == tuple(grid):
        return positional_embedding
    square = patch_entries.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    resized = F.interpolate(square, size=tuple(grid), mode="bilinear", align_corners=False)
    resized = resized.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(positional_embedding.dtype)
    return torch.cat([class_entry, resized], dim=0)


def embed_patches(visual: torch.nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Patch embedding + class token + resized positional embedding + ``ln_pre``.

    Arguments:
        visual: an ``open_clip`` ``VisionTransformer``.
        pixels: B x 3 x H x W normalised images, H and W multiples of the patch size.

    Returns:
        (tokens B x (1 + h*w) x D batch-first, (h, w) patch grid).
    """
    if getattr(visual, "attn_pool", None) is not None:
        raise NotImplementedError("vision towers with attentional pooling (CoCa) are not supported")
    patches = visual.conv1(pixels.to(visual.conv1.weight.dtype))
    grid = (patches.shape[-2], patches.shape[-1])
    patches = patches.flatten(2).transpose(1, 2)
    class_token = visual.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
    tokens = torch.cat([class_token, patches], dim=1)
    tokens = tokens + interpolate_positional_embedding(visual.positional_embedding, grid).to(tokens.dtype)
    return visual.ln_pre(tokens), grid


def run_block(block: torch.nn.Module, tokens: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """Apply one residual block to batch-first tokens, whatever layout the tower uses."""
    if batch_first:
        return block(tokens)
    return block(tokens.transpose(0, 1)).transpose(0, 1)


def attention_weights(block: torch.nn.Module, normed_tokens: torch.Tensor) -> torch.Tensor:
    """Head-averaged softmax attention of one block, recomputed from its input.

    ``open_clip`` calls ``nn.MultiheadAttention`` with ``need_weights=False``, so
    the weights are recomputed here from the block's ``ln_1`` output and the
    attention's input projection: softmax(q kᵀ / sqrt(d_head)), averaged over heads.

    Arguments:
        block: an open_clip ``ResidualAttentionBlock`` (``attn`` is ``nn.MultiheadAttention``).
        normed_tokens: B x L x D, the output of ``block.ln_1`` (batch-first).

    Returns:
        B x L x L attention (rows: queries, columns: keys), rows sum to 1.
    """
    attention = block.attn
    if not isinstance(attention, torch.nn.MultiheadAttention) or not attention._qkv_same_embed_dim:
        raise NotImplementedError(
            f"attention maps need nn.MultiheadAttention with a fused in-projection; got {type(attention).__name__}"
        )
    heads = attention.num_heads
    query_key = F.linear(
        normed_tokens,
        attention.in_proj_weight[: 2 * attention.embed_dim],
        None if attention.in_proj_bias is None else attention.in_proj_bias[: 2 * attention.embed_dim],
    ).float()
    query, key = query_key.chunk(2, dim=-1)
    batch, length, width = query.shape
    query = query.view(batch, length, heads, width // heads).transpose(1, 2)
    key = key.view(batch, length, heads, width // heads).transpose(1, 2)
    logits = query @ key.transpose(-2, -1) / math.sqrt(width // heads)
    return logits.softmax(dim=-1).mean(dim=1)


@contextmanager
def replace_output(module: torch.nn.Module, store: dict) -> Iterator[None]:
    """Swap a module's output for a detached leaf that requires grad, for the duration.

    The leaf is kept in ``store["output"]``, so gradients can be taken with
    respect to exactly that activation while the module's own forward code
    runs unchanged. The hook is removed however the block exits.
    """

    def hook(_module: torch.nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        leaf = output.detach().requires_grad_(True)
        store["output"] = leaf
        return leaf

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
