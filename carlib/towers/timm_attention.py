"""Queries, keys and values of timm's attention modules, computed exactly as their own forward does.

Three timm classes cover the towers carlib supports: ``Attention`` (ViT and
SigLIP: packed ``qkv``), ``EvaAttention`` (EVA02: packed ``qkv`` with separate
``q_bias``/``v_bias``, or ``q_proj``/``k_proj``/``v_proj``, a sub-LN ``norm``
before the output projection) and ``AttentionRope`` (PE-Core: either layout,
grouped key/value heads). Rotary position embeddings are applied to the
patch tokens' queries and keys, never to prefix tokens, as timm does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Attention, AttentionRope, apply_rot_embed_cat
from timm.models.eva import EvaAttention

TimmAttention = Attention | EvaAttention | AttentionRope
"""The timm attention modules read here."""


def timm_qkv(
    attention: TimmAttention, tokens: torch.Tensor, rope: torch.Tensor | None = None, num_prefix_tokens: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-head queries, keys and values of a timm attention module (after its qk-norm and rotary embedding).

    Arguments:
        attention: a timm ``Attention``, ``EvaAttention`` or ``AttentionRope``.
        tokens: B x L x D batch-first input of the attention (its block's ``norm1`` output).
        rope: the rotary embedding of the patch grid, or None.
        num_prefix_tokens: leading tokens the rotary embedding skips.

    Returns:
        (q, k, v), each B x heads x L x d_head in the module's dtype (keys and values
        repeated to every query head under grouped-query attention).
    """
    batch, length, _ = tokens.shape
    heads = attention.num_heads
    qkv = getattr(attention, "qkv", None)
    if qkv is not None:
        q_bias = getattr(attention, "q_bias", None)
        if q_bias is None:
            packed = qkv(tokens)
        else:
            k_bias, v_bias = attention.k_bias, attention.v_bias  # with q_bias, always tensors (EvaAttention)
            assert isinstance(k_bias, torch.Tensor) and isinstance(v_bias, torch.Tensor)
            bias = torch.cat((q_bias, k_bias, v_bias))
            packed = (
                qkv(tokens) + bias
                if getattr(attention, "qkv_bias_separate", False)
                else F.linear(tokens, qkv.weight, bias)
            )
        q, k, v = packed.reshape(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    else:
        kv_heads = getattr(attention, "num_kv_heads", heads)
        q_proj, k_proj, v_proj = attention.q_proj, attention.k_proj, attention.v_proj  # without qkv, always modules
        assert isinstance(q_proj, torch.nn.Module) and isinstance(k_proj, torch.nn.Module)
        assert isinstance(v_proj, torch.nn.Module)
        q = q_proj(tokens).reshape(batch, length, heads, -1).transpose(1, 2)
        k = k_proj(tokens).reshape(batch, length, kv_heads, -1).transpose(1, 2)
        v = v_proj(tokens).reshape(batch, length, kv_heads, -1).transpose(1, 2)
    q, k = attention.q_norm(q), attention.k_norm(k)
    if rope is not None:
        half = getattr(attention, "rotate_half", False)
        p = num_prefix_tokens
        q = torch.cat([q[:, :, :p], apply_rot_embed_cat(q[:, :, p:], rope, half=half)], dim=2).type_as(v)
        k = torch.cat([k[:, :, :p], apply_rot_embed_cat(k[:, :, p:], rope, half=half)], dim=2).type_as(v)
    groups = getattr(attention, "num_kv_groups", 1)
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    return q, k, v


def timm_attention_output(attention: TimmAttention, heads: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """What a timm attention module does after mixing: merge heads, its output norm and gate, the projection.

    Arguments:
        attention: the module :func:`timm_qkv` read.
        heads: B x heads x L x d_head mixed values (for MaskCLIP's value path, the values themselves).
        tokens: the module's B x L x D input (the gate reads it).

    Returns:
        B x L x D_out.
    """
    batch, _, length, _ = heads.shape
    merged = heads.transpose(1, 2).reshape(batch, length, -1)
    merged = attention.norm(merged)
    gate = getattr(attention, "gate", None)
    if gate is not None:
        merged = merged * gate(tokens).sigmoid()
    return attention.proj(merged)


def timm_scale(attention: TimmAttention) -> float:
    """The module's logit multiplier (1/sqrt(d_head))."""
    return float(attention.scale)
