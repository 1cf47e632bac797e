"""timm's ``VisionTransformer`` and ``Eva`` inside open_clip's ``TimmModel``: SigLIP / SigLIP 2, EVA02, PE-Core.

- SigLIP and SigLIP 2 (``ViT-B-16-SigLIP2``): no class token; a MAP head (an
  attention pool with one learned query, then an MLP) makes the image
  embedding. Grad-CAM explains that embedding (target ``"pooled"``).
- EVA02 (``EVA02-B-16``) and PE-Core (``PE-Core-B-16``): timm ``Eva`` with a
  class token and rotary position embeddings, computed by timm for any grid.
  Grad-CAM keeps CaR's target: the mean of the patch tokens after the final
  norm, through the projection.

The absolute positional embedding is resized as for open_clip's ViT
(bilinear, :func:`carlib.towers.positions.interpolate_positional_embedding`).

MaskCLIP-style dense maps read the last block's value path (as for open_clip)
and then the head token by token: for an attention pool that is the pool's
own value projection, output projection and MLP with its attention replaced
by the identity (each patch pooled as if it were alone), the analogue of
MaskCLIP's reading of OpenAI's ResNet attention pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from carlib.towers.attention import HeadQueryKey
from carlib.towers.base import CamTarget, CapabilityError, TransformerTower
from carlib.towers.positions import interpolate_positional_embedding
from carlib.towers.timm_attention import timm_attention_output, timm_qkv, timm_scale

if TYPE_CHECKING:
    from open_clip.timm_model import TimmModel
    from timm.models.eva import Eva
    from timm.models.vision_transformer import VisionTransformer


class TimmViT(TransformerTower):
    """Adapter for open_clip's ``TimmModel`` around a timm ``VisionTransformer`` (SigLIP, SigLIP 2).

    Raises:
        CapabilityError: a head carlib cannot read token by token (an open_clip
            attention pool on top of the trunk, an attention pool with its own positions).
    """

    family = "timm ViT"
    visual: TimmModel

    def __init__(self, visual: TimmModel) -> None:
        super().__init__(visual)
        self.net: VisionTransformer | Eva = visual.trunk  # the timm model (not called "trunk": that is a method)
        if any(name == "pool" for name, _ in visual.head.named_children()):
            raise CapabilityError(f"{type(self.net).__name__} with an open_clip attention-pool head is not supported")
        pool = getattr(self.net, "attn_pool", None)
        if pool is not None and getattr(pool, "pos_embed", None) is not None:
            raise CapabilityError("attention-pool heads with their own positional embedding are not supported")
        if getattr(self.net, "reg_token", None) is not None and not getattr(self.net, "cls_token", None) is not None:
            raise CapabilityError("register tokens without a class token are not supported")
        self._blocks = list(self.net.blocks)

    @property
    def patch_size(self) -> int:
        return int(self.net.patch_embed.patch_size[0])

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.net.num_prefix_tokens)

    @property
    def has_class_token(self) -> bool:
        return getattr(self.net, "cls_token", None) is not None

    @property
    def pooling(self) -> str:
        if getattr(self.net, "attn_pool", None) is not None:
            return "attention pool (MAP)"
        return {"token": "class token", "avg": "patch mean"}.get(self.net.global_pool, self.net.global_pool)

    def blocks(self) -> list[torch.nn.Module]:
        return self._blocks

    # --- embedding -----------------------------------------------------------------------------------
    def embed(self, pixels: torch.Tensor, *, fp16_positions: bool = False) -> tuple[torch.Tensor, tuple[int, int]]:
        trunk = self.net
        patch_embed = trunk.patch_embed
        patches = patch_embed.proj(pixels.to(patch_embed.proj.weight.dtype))
        grid = (patches.shape[-2], patches.shape[-1])
        patches = patch_embed.norm(patches.flatten(2).transpose(1, 2))
        prefix = [
            token.expand(patches.shape[0], -1, -1) for token in (trunk.cls_token, trunk.reg_token) if token is not None
        ]
        positions: torch.Tensor | None = None
        if trunk.pos_embed is not None:
            embedded_prefix = 0 if trunk.no_embed_class else self.num_prefix_tokens
            positions = interpolate_positional_embedding(trunk.pos_embed[0], grid, embedded_prefix)
            if fp16_positions:
                positions = positions.half()
            positions = positions.to(patches.dtype)
        if trunk.no_embed_class:
            tokens = patches if positions is None else patches + positions
            tokens = torch.cat([*prefix, tokens], dim=1)
        else:
            tokens = torch.cat([*prefix, patches], dim=1)
            tokens = tokens if positions is None else tokens + positions
        return trunk.norm_pre(tokens), grid

    # --- blocks --------------------------------------------------------------------------------------
    def rope(self, grid: tuple[int, int]) -> torch.Tensor | None:
        """The rotary position embedding of the grid (None: the tower has none)."""
        return None

    def run_block(self, index: int, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        return self._blocks[index](tokens)

    def first_norm(self, index: int) -> torch.nn.Module:
        return self._blocks[index].norm1

    def _qkv(self, index: int, normed: torch.Tensor, grid: tuple[int, int]):
        attention = self._blocks[index].attn
        prefix = getattr(attention, "num_prefix_tokens", self.num_prefix_tokens)
        return attention, timm_qkv(attention, normed, self.rope(grid), prefix)

    def query_key(self, index: int, normed: torch.Tensor, grid: tuple[int, int]) -> HeadQueryKey:
        attention, (q, k, _) = self._qkv(index, normed, grid)
        return HeadQueryKey(q.float(), k.float(), scale=timm_scale(attention))

    def value_path(self, index: int, normed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        attention, (_, _, v) = self._qkv(index, normed, grid)
        return timm_attention_output(attention, v, normed)

    def head_qkv(self, index: int, normed: torch.Tensor, grid: tuple[int, int]) -> HeadQueryKey:
        attention, (q, k, v) = self._qkv(index, normed, grid)
        return HeadQueryKey(q.float(), k.float(), scale=timm_scale(attention), value=v.float())

    def attention_branch(self, index: int, heads: torch.Tensor, normed: torch.Tensor) -> torch.Tensor:
        block = self._blocks[index]
        output = timm_attention_output(block.attn, heads.to(block.attn.proj.weight.dtype), normed)
        return _layer_scale(block, "ls1", "gamma_1", output)

    def block_tail(self, index: int, tokens: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        block = self._blocks[index]
        tokens = tokens + branch
        return tokens + _layer_scale(block, "ls2", "gamma_2", block.mlp(block.norm2(tokens)))

    # --- head ----------------------------------------------------------------------------------------
    def _project(self, pooled: torch.Tensor) -> torch.Tensor:
        trunk = self.net
        return self.visual.head(trunk.head(trunk.head_drop(trunk.fc_norm(pooled))))

    def finish(self, tokens: torch.Tensor, target: CamTarget) -> torch.Tensor:
        self.check_target(target)
        normed = self.net.norm(tokens)
        if target == "pooled":
            return self.visual.head(self.net.forward_head(normed))
        pooled = normed[:, self.num_prefix_tokens :].mean(dim=1) if target == "patch_mean" else normed[:, 0]
        return self._project(pooled)

    def readout(self, tokens: torch.Tensor) -> torch.Tensor:
        normed = self.net.norm(tokens)
        pool = getattr(self.net, "attn_pool", None)
        if pool is not None:
            # The attention pool with its attention replaced by the identity: each token's own value.
            values = pool.kv(normed).unflatten(-1, (2, -1))[..., 1, :]
            normed = pool.proj(values)
            if pool.mlp is not None:
                normed = normed + pool.mlp(pool.norm(normed))
        return self._project(normed)


class TimmEva(TimmViT):
    """Adapter for open_clip's ``TimmModel`` around a timm ``Eva`` (EVA02, PE-Core): rotary positions at any grid.

    Raises:
        CapabilityError: depth-dependent ("mixed") rotary embeddings, which carlib does not read.
    """

    family = "timm Eva"

    def __init__(self, visual: TimmModel) -> None:
        super().__init__(visual)
        if getattr(self.net, "rope_mixed", False):
            raise CapabilityError("Eva towers with mixed (per-block) rotary embeddings are not supported")
        self._ropes: dict[tuple, torch.Tensor] = {}

    def rope(self, grid: tuple[int, int]) -> torch.Tensor | None:
        rope = getattr(self.net, "rope", None)
        if rope is None:
            return None
        key = tuple(grid)
        if key not in self._ropes:
            if getattr(rope, "_use_cached_embed", False) and list(getattr(rope, "feat_shape", [])) != list(grid):
                # Built for a fixed grid, timm's rope ignores get_embed's shape; build the grid's own from its
                # bands, as it does with dynamic image sizes (equal to the cached one at the training grid).
                self._ropes[key] = rope._build_embed_cat(list(grid), rope.bands)
            else:
                self._ropes[key] = rope.get_embed(shape=list(grid))
        return self._ropes[key]

    def run_block(self, index: int, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        return self._blocks[index](tokens, rope=self.rope(grid))


def _layer_scale(block: torch.nn.Module, module_name: str, parameter_name: str, branch: torch.Tensor) -> torch.Tensor:
    """A timm block's layer scale applied to one branch: ``ls1``/``ls2`` modules (ViT) or ``gamma_1``/``gamma_2`` (Eva)."""
    module = getattr(block, module_name, None)
    if isinstance(module, torch.nn.Module):
        return module(branch)
    gamma = getattr(block, parameter_name, None)
    return branch if gamma is None else gamma * branch
