"""Reading attention modules: per-head queries and keys, attention weights, and the value path.

open_clip's and timm's blocks return no attention weights, so they are
recomputed from the block's first-norm output and the attention module's own
projections. The readers here work on any attention module that exposes its
query and key projections (``nn.MultiheadAttention``, open_clip's own
``Attention``, timm's packed ``qkv``, or separate ``q_proj``/``k_proj``
layers); the tower adapters (:mod:`carlib.towers`) call them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from carlib.precision import full_precision

SUPPORTED_ATTENTION = "an attention module exposing in_proj_weight, qkv, or q_proj/k_proj plus num_heads"


@dataclass
class HeadQueryKey:
    """Per-head queries and keys of one attention module, and how its logits are formed.

    Attributes:
        query: float32 B x heads x L x d_head.
        key: float32 B x heads x L x d_head.
        scale: multiplier of the logits, a float or a float32 heads x 1 x 1
            tensor; None means the usual 1/sqrt(d_head).
        cosine: True for scaled cosine attention (Swin V2): logits are
            cos(q, k) * scale instead of q·k * scale.
        value: float32 B x heads x L x d_head values, when read
            (:func:`head_query_key_value`, the towers' ``head_qkv``); None otherwise.
    """

    query: torch.Tensor
    key: torch.Tensor
    scale: float | torch.Tensor | None = None
    cosine: bool = False
    value: torch.Tensor | None = None

    def logits(self) -> torch.Tensor:
        """Attention logits, float32 B x heads x L x L (rows: queries, columns: keys)."""
        return self.pair_logits(self.query, self.key)

    def pair_logits(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Logits of ``left`` rows against ``right`` rows, formed as this module forms q·kᵀ (scale, cosine).

        The dense methods pair other things than queries with keys (SCLIP's q·qᵀ and
        k·kᵀ, ClearCLIP's q·qᵀ, NACLIP's k·kᵀ); they keep the module's own scale.

        Arguments:
            left, right: float32 B x heads x L x d_head.

        Returns:
            float32 B x heads x L x L.
        """
        if self.cosine:
            cosines = F.normalize(left, dim=-1) @ F.normalize(right, dim=-1).transpose(-2, -1)
            return cosines * (1.0 if self.scale is None else self.scale)
        products = left @ right.transpose(-2, -1)
        if self.scale is None:
            # Dividing (not multiplying by the reciprocal) keeps nn.MultiheadAttention's
            # maps bit-identical to what carlib returned before the adapter existed.
            return products / math.sqrt(left.shape[-1])
        return products * self.scale


def head_query_key(attention: torch.nn.Module, tokens: torch.Tensor) -> HeadQueryKey:
    """Per-head queries and keys of a self-attention module for batch-first tokens.

    Supported modules, checked in this order:

    - ``torch.nn.MultiheadAttention``, with a fused ``in_proj_weight`` or separate
      ``q_proj_weight``/``k_proj_weight``, and optional ``in_proj_bias``;
    - any module with a packed (q, k, v) ``in_proj_weight`` (3D' x D) and
      ``num_heads``, such as open_clip's ``Attention``: its ``ln_q``/``ln_k``
      (qk-norm), its ``scale`` and its scaled-cosine ``logit_scale`` (clamped
      at ``logit_scale_max``) are honoured;
    - a module with a packed ``qkv`` ``nn.Linear`` and ``num_heads`` (timm);
    - a module with ``q_proj`` and ``k_proj`` ``nn.Linear`` and ``num_heads``
      (Hugging Face).

    Projections run in the module's dtype, as the model's own forward does;
    queries and keys are then cast to float32.

    Arguments:
        attention: the attention module.
        tokens: B x L x D batch-first input of the attention (a block's ``ln_1`` output).

    Returns:
        a :class:`HeadQueryKey`.

    Raises:
        NotImplementedError: the module is none of the above, or is an
            ``nn.MultiheadAttention`` whose keys are not the L tokens
            (``add_bias_kv``, ``add_zero_attn``).
    """
    if isinstance(attention, torch.nn.MultiheadAttention):
        return _multihead_query_key(attention, tokens)
    heads = getattr(attention, "num_heads", None)
    if heads is not None:
        in_proj_weight = getattr(attention, "in_proj_weight", None)
        if isinstance(in_proj_weight, torch.Tensor):
            width = in_proj_weight.shape[0] // 3
            bias = getattr(attention, "in_proj_bias", None)
            query, key = F.linear(
                tokens, in_proj_weight[: 2 * width], None if bias is None else bias[: 2 * width]
            ).chunk(2, dim=-1)
            return _split_heads(attention, query, key, heads)
        qkv = getattr(attention, "qkv", None)
        if isinstance(qkv, torch.nn.Linear):
            query, key, _ = qkv(tokens).chunk(3, dim=-1)
            return _split_heads(attention, query, key, heads)
        q_proj, k_proj = getattr(attention, "q_proj", None), getattr(attention, "k_proj", None)
        if isinstance(q_proj, torch.nn.Linear) and isinstance(k_proj, torch.nn.Linear):
            return _split_heads(attention, q_proj(tokens), k_proj(tokens), heads)
    raise NotImplementedError(
        f"cannot read attention weights from {type(attention).__name__}: CLIP-ES needs {SUPPORTED_ATTENTION}"
    )


def _multihead_query_key(attention: torch.nn.MultiheadAttention, tokens: torch.Tensor) -> HeadQueryKey:
    if attention.bias_k is not None or attention.add_zero_attn:
        # Both append keys beyond the L tokens, so the map would not be L x L.
        raise NotImplementedError(
            "cannot read attention weights from nn.MultiheadAttention with add_bias_kv or add_zero_attn"
        )
    width = attention.embed_dim
    bias = attention.in_proj_bias
    if attention._qkv_same_embed_dim:
        query_key = F.linear(
            tokens, attention.in_proj_weight[: 2 * width], None if bias is None else bias[: 2 * width]
        ).float()
        query, key = query_key.chunk(2, dim=-1)
    else:
        query = F.linear(tokens, attention.q_proj_weight, None if bias is None else bias[:width]).float()
        key = F.linear(tokens, attention.k_proj_weight, None if bias is None else bias[width : 2 * width]).float()
    batch, length, _ = query.shape
    head_dim = width // attention.num_heads
    query = query.view(batch, length, attention.num_heads, head_dim).transpose(1, 2)
    key = key.view(batch, length, attention.num_heads, head_dim).transpose(1, 2)
    return HeadQueryKey(query, key)


def _split_heads(attention: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, heads: int) -> HeadQueryKey:
    """Reshape projected queries and keys to heads and apply the module's qk-norm and logit scale."""
    batch, length, width = query.shape
    query = query.reshape(batch, length, heads, width // heads).transpose(1, 2)
    key = key.reshape(batch, length, heads, width // heads).transpose(1, 2)
    logit_scale = getattr(attention, "logit_scale", None)
    if isinstance(logit_scale, torch.Tensor):
        # open_clip's scaled-cosine branch skips ln_q/ln_k (it cannot be combined with qk-norm).
        limit = getattr(attention, "logit_scale_max", None)
        cosine_scale = (logit_scale if limit is None else logit_scale.clamp(max=limit)).float().exp()
        return HeadQueryKey(query.float(), key.float(), scale=cosine_scale, cosine=True)
    # open_clip names its qk-norm layers ln_q/ln_k, timm names them q_norm/k_norm.
    query = _first_layer(attention, ("ln_q", "q_norm"))(query)
    key = _first_layer(attention, ("ln_k", "k_norm"))(key)
    scale = getattr(attention, "scale", None)
    return HeadQueryKey(query.float(), key.float(), scale=None if scale is None else float(scale))


def _first_layer(module: torch.nn.Module, names: tuple[str, ...]) -> torch.nn.Module:
    """The first of ``names`` that is a submodule of ``module``, else the identity."""
    for name in names:
        layer = getattr(module, name, None)
        if isinstance(layer, torch.nn.Module):
            return layer
    return torch.nn.Identity()


def attention_weights(block: torch.nn.Module, normed_tokens: torch.Tensor) -> torch.Tensor:
    """Head-averaged softmax attention of one block, recomputed from its input.

    open_clip's blocks return no attention weights, so they are recomputed from
    the block's ``ln_1`` output and the queries and keys of ``block.attn`` (see
    :func:`head_query_key` for the modules that work): softmax of the logits
    (q kᵀ / sqrt(d_head) by default), in float32, averaged over heads.

    Arguments:
        block: a residual block whose ``attn`` is a supported attention module,
            e.g. open_clip's ``ResidualAttentionBlock`` (``nn.MultiheadAttention``)
            or ``CustomResidualAttentionBlock`` (open_clip's ``Attention``).
        normed_tokens: B x L x D, the output of ``block.ln_1`` (batch-first).

    Returns:
        float32 B x L x L attention (rows: queries, columns: keys), rows sum to 1.

    Raises:
        NotImplementedError: ``block.attn`` is not a supported attention module.
    """
    query_key = head_query_key(block.get_submodule("attn"), normed_tokens)
    with full_precision(normed_tokens):  # the projections follow autocast; the maps CLIP-ES reads stay float32
        return query_key.logits().softmax(dim=-1).mean(dim=1)


def value_path(attention: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The attention's output with every token attending only to itself: out_proj(v).

    MaskCLIP reads CLIP's last block this way: the query-key attention is
    dropped (replaced by the identity), so each patch keeps its own value
    vector, which the output projection maps back into the residual stream.

    Supported: ``nn.MultiheadAttention`` (fused or separate weights) and
    modules with a packed ``in_proj_weight``, ``num_heads`` and ``out_proj``,
    such as open_clip's ``Attention`` (its ``head_scale`` and ``ln_inner``
    are applied, as its forward does).

    Arguments:
        attention: the attention module.
        tokens: B x L x D batch-first input of the attention (a block's ``ln_1`` output).

    Returns:
        B x L x D, in the module's dtype.

    Raises:
        NotImplementedError: another kind of attention module.
    """
    if isinstance(attention, torch.nn.MultiheadAttention):
        width = attention.embed_dim
        bias: torch.Tensor | None = attention.in_proj_bias
        weight = attention.in_proj_weight[2 * width :] if attention._qkv_same_embed_dim else attention.v_proj_weight
        values = F.linear(tokens, weight, None if bias is None else bias[2 * width :])
        return attention.out_proj(values)
    in_proj_weight = getattr(attention, "in_proj_weight", None)
    out_proj = getattr(attention, "out_proj", None)
    heads = getattr(attention, "num_heads", None)
    if isinstance(in_proj_weight, torch.Tensor) and isinstance(out_proj, torch.nn.Linear) and heads:
        width = in_proj_weight.shape[0] // 3
        bias = getattr(attention, "in_proj_bias", None)
        values = F.linear(tokens, in_proj_weight[2 * width :], None if bias is None else bias[2 * width :])
        head_scale = getattr(attention, "head_scale", None)
        if isinstance(head_scale, torch.Tensor):
            batch, length, _ = values.shape
            values = (values.view(batch, length, heads, -1).transpose(1, 2) * head_scale).transpose(1, 2)
            values = values.reshape(batch, length, width)
        return out_proj(_first_layer(attention, ("ln_inner",))(values))
    raise NotImplementedError(
        f"cannot read the value path of {type(attention).__name__}: MaskCLIP needs nn.MultiheadAttention or a "
        "module with in_proj_weight, num_heads and out_proj"
    )


def head_query_key_value(attention: torch.nn.Module, tokens: torch.Tensor) -> HeadQueryKey:
    """Per-head queries, keys and values of a self-attention module for batch-first tokens.

    The queries and keys are :func:`head_query_key`'s (qk-norm and logit scale
    honoured); the values are the module's value projection split into heads.

    Supported: ``nn.MultiheadAttention`` (fused or separate weights) and modules
    with a packed ``in_proj_weight`` and ``num_heads`` (open_clip's ``Attention``).

    Arguments:
        attention: the attention module.
        tokens: B x L x D batch-first input of the attention (a block's ``ln_1`` output).

    Returns:
        a :class:`HeadQueryKey` whose ``value`` is float32 B x heads x L x d_head.

    Raises:
        NotImplementedError: another kind of attention module.
    """
    if isinstance(attention, torch.nn.MultiheadAttention):
        width, heads = attention.embed_dim, attention.num_heads
        bias: torch.Tensor | None = attention.in_proj_bias
        weight = attention.in_proj_weight[2 * width :] if attention._qkv_same_embed_dim else attention.v_proj_weight
    else:
        in_proj_weight = getattr(attention, "in_proj_weight", None)
        heads = getattr(attention, "num_heads", None)
        if not isinstance(in_proj_weight, torch.Tensor) or not heads:
            raise NotImplementedError(
                f"cannot read per-head values from {type(attention).__name__}: the dense methods need "
                "nn.MultiheadAttention or a module with in_proj_weight and num_heads (timm modules go through "
                "carlib.towers.timm_attention)"
            )
        width = in_proj_weight.shape[0] // 3
        bias, weight = getattr(attention, "in_proj_bias", None), in_proj_weight[2 * width :]
    values = F.linear(tokens, weight, None if bias is None else bias[2 * width :])
    batch, length, _ = values.shape
    values = values.reshape(batch, length, heads, -1).transpose(1, 2).float()
    query_key = head_query_key(attention, tokens)
    query_key.value = values
    return query_key


def attention_output(attention: torch.nn.Module, heads: torch.Tensor) -> torch.Tensor:
    """What an attention module does after mixing its values: merge heads, its output scaling and norm, out_proj.

    For ``nn.MultiheadAttention`` that is the output projection; for open_clip's
    ``Attention`` also its ``head_scale`` (per head, before merging) and ``ln_inner``,
    as its forward does. With ``heads`` the unmixed values it is :func:`value_path`.

    Arguments:
        attention: ``nn.MultiheadAttention`` or a module with ``in_proj_weight``, ``num_heads`` and ``out_proj``.
        heads: B x heads x L x d_head mixed values (any float dtype; cast to the module's).

    Returns:
        B x L x D in the module's dtype.

    Raises:
        NotImplementedError: another kind of attention module.
    """
    out_proj = getattr(attention, "out_proj", None)
    if not isinstance(out_proj, torch.nn.Linear) or not getattr(attention, "num_heads", None):
        raise NotImplementedError(
            f"cannot apply the output of {type(attention).__name__}: the dense methods need "
            "nn.MultiheadAttention or a module with num_heads and out_proj"
        )
    heads = heads.to(out_proj.weight.dtype)
    head_scale = None if isinstance(attention, torch.nn.MultiheadAttention) else getattr(attention, "head_scale", None)
    if isinstance(head_scale, torch.Tensor):
        heads = heads * head_scale
    batch, _, length, _ = heads.shape
    merged = heads.transpose(1, 2).reshape(batch, length, -1)
    if not isinstance(attention, torch.nn.MultiheadAttention):
        merged = _first_layer(attention, ("ln_inner",))(merged)
    return out_proj(merged)
