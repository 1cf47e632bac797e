"""open_clip's ``VisionTransformer``: OpenAI, LAION, DataComp, DFN and MetaCLIP weights, and the ShapesWorld CLIP.

This is the paper's tower (ViT-B/16 proposals, ViT-L/14 classifier), and its
numbers are exactly those carlib computed before the adapter existed: the
positional embedding is resized bilinearly to the input's grid, the Grad-CAM
feature is the last block's ``ln_1`` output, and the image embedding is
``ln_post`` then the projection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from carlib.towers.attention import HeadQueryKey, attention_output, head_query_key, head_query_key_value, value_path
from carlib.towers.base import CamTarget, CapabilityError, TransformerTower
from carlib.towers.positions import interpolate_positional_embedding

if TYPE_CHECKING:
    from open_clip.transformer import VisionTransformer

LONG_SEQUENCE = 512
"""From this many tokens on, PyTorch's fused inference attention (the MHA "fast path") is slower on CPU than
the regular path with scaled_dot_product_attention: 2.95 s against 2.3-2.6 s for ViT-B/16's blocks 1..11 on
a 500 x 500 image (962 tokens). At ViT-L/14's 257 tokens it is faster (1.4 against 1.9 s per image)."""


class OpenClipViT(TransformerTower):
    """Adapter for ``open_clip.transformer.VisionTransformer`` (class token, ``ln_post``, ``proj``).

    Raises:
        CapabilityError: the tower has an attentional pooler (CoCa), which CaR's targets do not cover.
    """

    family = "open_clip ViT"
    visual: VisionTransformer

    def __init__(self, visual: VisionTransformer) -> None:
        super().__init__(visual)
        if getattr(visual, "attn_pool", None) is not None:
            raise CapabilityError("open_clip vision towers with attentional pooling (CoCa) are not supported")
        self._blocks = list(visual.transformer.resblocks)
        self._batch_first = getattr(visual.transformer, "batch_first", True)

    @property
    def patch_size(self) -> int:
        patch = self.visual.patch_size
        return int(patch if isinstance(patch, int) else patch[0])

    @property
    def num_prefix_tokens(self) -> int:
        return 1

    @property
    def pooling(self) -> str:
        return {"tok": "class token", "avg": "patch mean"}.get(getattr(self.visual, "pool_type", "tok"), "none")

    @property
    def supports_penultimate_class_token(self) -> bool:
        return True

    def blocks(self) -> list[torch.nn.Module]:
        return self._blocks

    def embed(self, pixels: torch.Tensor, *, fp16_positions: bool = False) -> tuple[torch.Tensor, tuple[int, int]]:
        visual = self.visual
        patches = visual.conv1(pixels.to(visual.conv1.weight.dtype))
        grid = (patches.shape[-2], patches.shape[-1])
        patches = patches.flatten(2).transpose(1, 2)
        class_token = visual.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        tokens = torch.cat([class_token, patches], dim=1)
        positions = interpolate_positional_embedding(visual.positional_embedding, grid)
        if fp16_positions:
            positions = positions.half()
        tokens = tokens + positions.to(tokens.dtype)
        return visual.ln_pre(tokens), grid

    def run_block(self, index: int, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        block = self._blocks[index]
        if self._batch_first:
            return block(tokens)
        return block(tokens.transpose(0, 1)).transpose(0, 1)

    def first_norm(self, index: int) -> torch.nn.Module:
        return self._blocks[index].ln_1

    def query_key(self, index: int, normed: torch.Tensor, grid: tuple[int, int]) -> HeadQueryKey:
        return head_query_key(self._blocks[index].attn, normed)

    def value_path(self, index: int, normed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        return value_path(self._blocks[index].attn, normed)

    def head_qkv(self, index: int, normed: torch.Tensor, grid: tuple[int, int]) -> HeadQueryKey:
        return head_query_key_value(self._blocks[index].attn, normed)

    def attention_branch(self, index: int, heads: torch.Tensor, normed: torch.Tensor) -> torch.Tensor:
        block = self._blocks[index]
        output = attention_output(block.attn, heads)
        # CustomResidualAttentionBlock normalises the attention output (ln_attn) before its layer scale.
        output = getattr(block, "ln_attn", torch.nn.Identity())(output)
        return block.ls_1(output)

    def block_tail(self, index: int, tokens: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        block = self._blocks[index]
        tokens = tokens + branch
        return tokens + block.ls_2(block.mlp(block.ln_2(tokens)))

    def patch_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        # The hooked ln_1 output is in the transformer's own layout: L x 1 x D when it is sequence-first.
        if not self._batch_first:
            tensor = tensor.transpose(-3, -2)
        return tensor[..., 0, 1:, :]

    def finish(self, tokens: torch.Tensor, target: CamTarget) -> torch.Tensor:
        self.check_target(target)
        visual = self.visual
        if target == "pooled":
            target = "patch_mean" if getattr(visual, "pool_type", "tok") == "avg" else "class_token"
        if getattr(visual, "final_ln_after_pool", False):
            pooled = tokens[:, 1:].mean(dim=1) if target == "patch_mean" else tokens[:, 0]
            pooled = visual.ln_post(pooled)
        else:
            normed = visual.ln_post(tokens)
            pooled = normed[:, 1:].mean(dim=1) if target == "patch_mean" else normed[:, 0]
        return pooled @ visual.proj if visual.proj is not None else pooled

    def readout(self, tokens: torch.Tensor) -> torch.Tensor:
        normed = self.visual.ln_post(tokens)
        return normed @ self.visual.proj if self.visual.proj is not None else normed

    def penultimate_class_token(self, pixels: torch.Tensor) -> torch.Tensor:
        tokens, _ = self.run_all(pixels, stop=self.num_blocks - 1)
        pooled = self.visual.ln_post(tokens[:, 0])
        return pooled @ self.visual.proj if self.visual.proj is not None else pooled

    def attention_block_context(self, tokens: int):
        return attention_path_for(tokens)


@contextmanager
def attention_path_for(tokens: int) -> Iterator[None]:
    """Inside, ``nn.MultiheadAttention`` skips its fused inference path for long sequences on CPU.

    Both paths compute the same attention (to float rounding; the trunk's
    tokens agree to 1e-5 in the tests), so this only picks the faster one.
    """
    previous = torch.backends.mha.get_fastpath_enabled()
    if tokens >= LONG_SEQUENCE:
        torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)
