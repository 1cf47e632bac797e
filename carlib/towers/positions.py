"""Absolute positional embeddings at any patch grid."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def interpolate_positional_embedding(
    positional_embedding: torch.Tensor, grid: tuple[int, int], num_prefix: int = 1
) -> torch.Tensor:
    """Resize a ViT positional embedding to a new patch grid.

    The prefix entries (the class token's) are kept as they are; the patch
    entries are reshaped to their square training grid and bilinearly resized
    (``align_corners=False``, as CLIP-ES does). carlib uses this one rule for
    every family, so a tower's maps at a new size differ only by the tower.

    Arguments:
        positional_embedding: (num_prefix + g*g) x D, g the training grid side.
        grid: (rows, cols) of the new patch grid.
        num_prefix: how many leading entries are not patch positions (1 for
            OpenAI's class token, 0 for SigLIP's).

    Returns:
        (num_prefix + rows*cols) x D tensor, same dtype and device.
    """
    prefix, patch_entries = positional_embedding[:num_prefix], positional_embedding[num_prefix:]
    side = math.isqrt(patch_entries.shape[0])
    if side * side != patch_entries.shape[0]:
        raise ValueError(f"positional embedding has {patch_entries.shape[0]} patch entries, not a square grid")
    if (side, side) == tuple(grid):
        return positional_embedding
    square = patch_entries.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    resized = F.interpolate(square, size=tuple(grid), mode="bilinear", align_corners=False)
    resized = resized.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(positional_embedding.dtype)
    return torch.cat([prefix, resized], dim=0)
