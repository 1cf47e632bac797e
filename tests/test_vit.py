"""Attention maps read from every supported attention module, checked against independent references."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.transformer import Attention

import carlib
from carlib.towers.attention import attention_weights

WIDTH, HEADS, LENGTH = 64, 4, 11


class _Block(torch.nn.Module):
    """A residual block with an ``ln_1`` in front of any attention module."""

    def __init__(self, attn: torch.nn.Module):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(WIDTH)
        self.attn = attn

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens + self.attn(self.ln_1(tokens))


class _SeparateProjections(torch.nn.Module):
    """Hugging Face style attention: q_proj/k_proj/v_proj, an explicit ``scale``, probabilities kept."""

    def __init__(self, scale: float):
        super().__init__()
        self.num_heads = HEADS
        self.scale = scale
        self.q_proj, self.k_proj, self.v_proj = (torch.nn.Linear(WIDTH, WIDTH) for _ in range(3))
        self.out_proj = torch.nn.Linear(WIDTH, WIDTH)
        self.probabilities: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = (
            proj(x).view(batch, length, HEADS, -1).transpose(1, 2) for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        self.probabilities = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * self.scale, dim=-1)
        return self.out_proj((self.probabilities @ v).transpose(1, 2).reshape(batch, length, WIDTH))


class _PackedQkv(torch.nn.Module):
    """timm style attention: one qkv Linear, q_norm/k_norm, no ``scale`` attribute (1/sqrt(d) in forward)."""

    def __init__(self):
        super().__init__()
        self.num_heads = HEADS
        self.qkv = torch.nn.Linear(WIDTH, 3 * WIDTH)
        self.q_norm = torch.nn.LayerNorm(WIDTH // HEADS)
        self.k_norm = torch.nn.LayerNorm(WIDTH // HEADS)
        self.proj = torch.nn.Linear(WIDTH, WIDTH)
        self.probabilities: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, HEADS, -1).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        logits = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(WIDTH // HEADS)
        self.probabilities = logits.softmax(dim=-1)
        return self.proj((self.probabilities @ v).transpose(1, 2).reshape(batch, length, WIDTH))


def _randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every parameter (layer norms included) seeded values far from their trivial init."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return module.eval()


def _tokens(seed: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, LENGTH, WIDTH, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("scale", [0.3, (WIDTH // HEADS) ** -0.5])
def test_separate_q_and_k_projections_match_the_modules_own_probabilities(scale):
    block = _randomise(_Block(_SeparateProjections(scale)), seed=1)
    tokens = _tokens(2)
    with torch.no_grad():
        block(tokens)
        ours = attention_weights(block, block.ln_1(tokens))
    torch.testing.assert_close(ours, block.attn.probabilities.mean(dim=1), atol=1e-6, rtol=0)


def test_packed_qkv_with_qk_norm_matches_the_modules_own_probabilities():
    block = _randomise(_Block(_PackedQkv()), seed=3)
    tokens = _tokens(4)
    with torch.no_grad():
        block(tokens)
        ours = attention_weights(block, block.ln_1(tokens))
    torch.testing.assert_close(ours, block.attn.probabilities.mean(dim=1), atol=1e-6, rtol=0)


def _open_clip_reference(attention: Attention, x: torch.Tensor) -> torch.Tensor:
    """Per-head probabilities B x H x L x L written out from open_clip's ``Attention.forward``."""
    batch, length, _ = x.shape
    q, k, _v = F.linear(x, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)
    q = q.reshape(batch, length, attention.num_heads, -1).transpose(1, 2)
    k = k.reshape(batch, length, attention.num_heads, -1).transpose(1, 2)
    if attention.logit_scale is not None:
        cosines = (q / q.norm(dim=-1, keepdim=True)) @ (k / k.norm(dim=-1, keepdim=True)).transpose(-1, -2)
        logits = cosines * torch.clamp(attention.logit_scale, max=attention.logit_scale_max).exp()
    else:
        if not isinstance(attention.ln_q, torch.nn.Identity):
            q = F.layer_norm(q, q.shape[-1:], attention.ln_q.weight, attention.ln_q.bias, attention.ln_q.eps)
            k = F.layer_norm(k, k.shape[-1:], attention.ln_k.weight, attention.ln_k.bias, attention.ln_k.eps)
        logits = (q * attention.head_dim**-0.5) @ k.transpose(-1, -2)
    return logits.softmax(dim=-1)


def _open_clip_attention(seed: int, **options) -> Attention:
    torch.manual_seed(seed)
    attention = Attention(dim=WIDTH, num_heads=HEADS, **options)
    with torch.no_grad():
        attention.in_proj_bias.normal_(0, 0.5)
        if options.get("qk_norm"):
            for norm in (attention.ln_q, attention.ln_k):
                norm.weight.normal_(1.0, 0.5)
                norm.bias.normal_(0.0, 0.5)
        if options.get("scaled_cosine"):
            # One head above logit_scale_max, so the clamp matters.
            attention.logit_scale.copy_(torch.tensor([0.5, 2.0, 3.5, 6.0]).view(HEADS, 1, 1))
    return attention.eval()


def test_open_clip_qk_norm_attention_matches_the_hand_reference():
    attention = _open_clip_attention(5, qk_norm=True)
    x = _tokens(6)
    with torch.no_grad():
        reference = _open_clip_reference(attention, x)
        # The reference is open_clip's forward: the same probabilities reproduce its output.
        v = F.linear(x, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)[2]
        v = v.reshape(*x.shape[:2], HEADS, -1).transpose(1, 2)
        mixed = (reference @ v).transpose(1, 2).reshape(x.shape)
        torch.testing.assert_close(attention.out_proj(mixed), attention(x), atol=1e-5, rtol=1e-5)
        ours = attention_weights(_Block(attention), x)
    assert not torch.allclose(reference, _open_clip_reference(_open_clip_attention(5), x), atol=1e-3)
    torch.testing.assert_close(ours, reference.mean(dim=1), atol=1e-6, rtol=0)


def test_open_clip_scaled_cosine_attention_matches_the_hand_reference():
    # open_clip 3.3's own forward cannot run this branch (torch.bmm on 4-D tensors), so only the
    # reference written from its code is compared.
    attention = _open_clip_attention(7, scaled_cosine=True)
    x = _tokens(8)
    with torch.no_grad():
        reference = _open_clip_reference(attention, x)
        ours = attention_weights(_Block(attention), x)
    torch.testing.assert_close(ours, reference.mean(dim=1), atol=1e-6, rtol=0)
    unclamped = attention.logit_scale.detach().clone()
    with torch.no_grad():
        attention.logit_scale[-1] = attention.logit_scale_max
        torch.testing.assert_close(attention_weights(_Block(attention), x), ours, atol=1e-6, rtol=0)
        attention.logit_scale.copy_(unclamped)


@pytest.mark.parametrize("bias", [True, False])
def test_fused_multihead_attention_matches_torchs_weights(bias):
    torch.manual_seed(9)
    attention = torch.nn.MultiheadAttention(WIDTH, HEADS, bias=bias, batch_first=True).eval()
    if bias:
        torch.nn.init.normal_(attention.in_proj_bias, 0, 0.5)
    x = _tokens(10)
    with torch.no_grad():
        expected = attention(x, x, x, need_weights=True, average_attn_weights=True)[1]
        ours = attention_weights(_Block(attention), x)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
    # The formula carlib used before the adapter, kept within 1e-7.
    in_bias = attention.in_proj_bias[: 2 * WIDTH] if bias else None
    q, k = F.linear(x, attention.in_proj_weight[: 2 * WIDTH], in_bias).chunk(2, dim=-1)
    q, k = (t.view(2, LENGTH, HEADS, -1).transpose(1, 2) for t in (q, k))
    before = (q @ k.transpose(-2, -1) / math.sqrt(WIDTH // HEADS)).softmax(-1).mean(1)
    torch.testing.assert_close(ours, before, atol=1e-7, rtol=0)


def test_separate_weight_multihead_attention_matches_torchs_weights():
    torch.manual_seed(11)
    # A value width unlike the embedding width makes torch keep q/k/v projections separate.
    attention = torch.nn.MultiheadAttention(WIDTH, HEADS, vdim=WIDTH + 8, batch_first=True).eval()
    assert not attention._qkv_same_embed_dim and attention.in_proj_weight is None
    torch.nn.init.normal_(attention.in_proj_bias, 0, 0.5)
    x = _tokens(12)
    values = torch.randn(2, LENGTH, WIDTH + 8)
    with torch.no_grad():
        expected = attention(x, x, values, need_weights=True, average_attn_weights=True)[1]
        ours = attention_weights(_Block(attention), x)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_bf16_attention_is_returned_in_float32_with_rows_summing_to_one():
    block = _randomise(_Block(_PackedQkv()), seed=13).to(torch.bfloat16)
    ours = attention_weights(block, _tokens(14).to(torch.bfloat16))
    assert ours.dtype == torch.float32 and ours.shape == (2, LENGTH, LENGTH)
    torch.testing.assert_close(ours.sum(dim=-1), torch.ones(2, LENGTH), atol=1e-6, rtol=0)


class _OpaqueAttention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(WIDTH, WIDTH)


def test_unsupported_attention_names_the_class_and_what_is_needed():
    needed = "_OpaqueAttention.*in_proj_weight, qkv, or q_proj/k_proj plus num_heads"
    with pytest.raises(NotImplementedError, match=needed):
        attention_weights(_Block(_OpaqueAttention()), _tokens(0))
    with pytest.raises(NotImplementedError, match="add_bias_kv"):
        attention_weights(_Block(torch.nn.MultiheadAttention(WIDTH, HEADS, add_bias_kv=True)), _tokens(0))


MODEL = "ViT-S-32"
QUERIES = ["a cat", "a dog", "a red car"]
BACKGROUND = ["grass", "wall"]


@pytest.fixture(scope="module")
def default_and_custom_bundles() -> tuple[carlib.ClipBundle, carlib.ClipBundle]:
    """The same seeded ViT-S/32 with open_clip's default blocks and with its custom (``Attention``) blocks."""
    torch.set_num_threads(2)
    default = carlib.load_clip(MODEL, device="cpu", seed=0)
    # Random-init attention is nearly uniform, so CLIP-ES's min-max normalisation would
    # magnify float rounding ~1e4 times; sharper q/k (same on both models) keeps the test informative.
    with torch.no_grad():
        for block in default.model.visual.transformer.resblocks:
            block.attn.in_proj_weight[: 2 * block.attn.embed_dim] *= 3.0
    config = copy.deepcopy(open_clip.get_model_config(MODEL))
    config["vision_cfg"]["block_type"] = "custom"
    custom_model = open_clip.CLIP(**config)
    custom_model.load_state_dict(default.model.state_dict(), strict=True)
    custom_model.eval().requires_grad_(False)
    return default, dataclasses.replace(default, model=custom_model)


def test_custom_blocks_really_use_open_clips_attention_class(default_and_custom_bundles):
    default, custom = default_and_custom_bundles
    assert all(isinstance(b.attn, torch.nn.MultiheadAttention) for b in default.model.visual.transformer.resblocks)
    assert all(type(b.attn) is Attention for b in custom.model.visual.transformer.resblocks)
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        custom.model.encode_image(pixels), default.model.encode_image(pixels), atol=1e-5, rtol=1e-5
    )


def test_cams_attention_and_clip_es_agree_between_default_and_custom_blocks(
    default_and_custom_bundles, noise_image
):
    default, custom = default_and_custom_bundles
    results = [
        carlib.compute_cams(bundle, noise_image, QUERIES, BACKGROUND, attention_layers=4)
        for bundle in (default, custom)
    ]
    expected, actual = results
    assert expected.attention is not None and expected.attention.max() > 10 * expected.attention.min()
    np.testing.assert_allclose(actual.attention, expected.attention, atol=1e-5, rtol=0)
    np.testing.assert_allclose(actual.cams, expected.cams, atol=1e-5, rtol=0)
    np.testing.assert_allclose(actual.scores, expected.scores, atol=1e-5, rtol=0)
    refined = [carlib.clip_es_refine(r.cams, r.attention, output_size=r.image_size) for r in results]
    assert not np.allclose(refined[0], expected.upsampled(), atol=1e-2)
    np.testing.assert_allclose(refined[1], refined[0], atol=1e-5, rtol=0)
