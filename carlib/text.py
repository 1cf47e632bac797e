"""Text embeddings: class names through prompt templates, averaged the CLIP way, computed as few times as possible.

CLIP's text transformer is causal, so the tokens after a sentence's end token
cannot change its embedding: :func:`encode_tokens` runs a batch only up to
its longest end token (about a dozen of the 77 positions for CaR's
templates). :class:`TextEmbeddingCache` keeps every embedding a run has
made, so each text is encoded once, in batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import open_clip
import torch
from open_clip.transformer import text_global_pool

from carlib.models import ClipBundle, OpenClipModel

BACKGROUND_TEMPLATE = "a clean origami {}."


def validate_queries(queries: Sequence[str], *, what: str = "queries") -> list[str]:
    """Check a query list: non-empty, no blank entries, no duplicates.

    Arguments:
        queries: the text queries (class names or referring expressions).
        what: how to call them in error messages.

    Returns:
        the queries as a list of stripped strings, in the given order.

    Raises:
        ValueError: empty list, a blank or non-string entry, or a duplicate.
    """
    if isinstance(queries, str):
        raise ValueError(f"{what} must be a list of strings, not one string; wrap it: [{queries!r}]")
    cleaned = []
    for position, query in enumerate(queries):
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"{what}[{position}] is blank or not a string ({query!r}); remove it")
        cleaned.append(query.strip())
    if not cleaned:
        raise ValueError(f"{what} is empty; give at least one word or phrase")
    seen: set[str] = set()
    duplicates = []
    for query in cleaned:
        if query in seen:
            duplicates.append(query)
        seen.add(query)
    if duplicates:
        raise ValueError(f"duplicate {what}: {sorted(set(duplicates))}; each must appear once")
    return cleaned


@torch.no_grad()
def encode_texts(
    bundle: ClipBundle,
    names: Sequence[str],
    templates: Sequence[str] = ("{}",),
    *,
    batch_size: int = 64,
) -> torch.Tensor:
    """Embed each name through every template; average the normalised embeddings.

    This is CLIP's ``zeroshot_classifier``: for each name, the templates are
    filled in, each embedding is L2-normalised, the mean is taken and
    normalised again. The strings are encoded shortest first in batches of
    ``batch_size``, each batch only up to its longest end token
    (:func:`encode_tokens`), so the text tower runs close to the number of
    tokens the strings really have (VOC's 300 strings: 3,125 of 5,100).

    Arguments:
        bundle: the CLIP model to use.
        names: N class names or phrases (may be empty).
        templates: T format strings with one ``{}``; ``("{}",)`` means the raw name.
        batch_size: strings per text-encoder forward pass.

    Returns:
        float32 tensor N x D of unit vectors, on ``bundle.device``.
    """
    _check_templates(templates)
    if not names:
        return torch.zeros((0, bundle.embed_dim), device=bundle.device)
    strings = [template.format(name) for name in names for template in templates]
    tokens = bundle.tokenizer(strings).to(bundle.device)
    order = torch.argsort(_end_positions(bundle.model, tokens), stable=True)
    embeddings = torch.empty((len(strings), 0), device=bundle.device)
    for start in range(0, len(strings), batch_size):
        chosen = order[start : start + batch_size]
        encoded = encode_tokens(bundle.model, tokens[chosen]).float()
        if embeddings.shape[1] == 0:
            embeddings = torch.empty((len(strings), encoded.shape[1]), device=bundle.device)
        embeddings[chosen] = encoded
    embeddings = torch.nn.functional.normalize(embeddings, dim=-1)
    per_name = embeddings.view(len(names), len(templates), -1).mean(dim=1)
    return torch.nn.functional.normalize(per_name, dim=-1)


def _check_templates(templates: Sequence[str]) -> None:
    if not templates or any("{}" not in template for template in templates):
        raise ValueError(f"each template needs one '{{}}' placeholder; got {list(templates)}")


def _end_positions(model: OpenClipModel, tokens: torch.Tensor) -> torch.Tensor:
    """Where each row's end token is (the pooled position); the last position when the model pools elsewhere."""
    pool = getattr(model, "text_pool_type", None)
    if pool == "argmax":
        return tokens.argmax(dim=-1)
    eos_id = getattr(model, "text_eos_id", None)
    if pool == "eos" and eos_id is not None:
        return (tokens == eos_id).int().argmax(dim=-1)
    return torch.full((tokens.shape[0],), tokens.shape[1] - 1, device=tokens.device)


@torch.no_grad()
def encode_tokens(model: OpenClipModel, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)``, running only the positions up to the batch's last end token.

    The text transformer is causal and pools at the end token, so dropping the
    padding after it changes nothing but the cost (checked against
    ``encode_text`` to 1e-5 in the tests). Models this cannot be done for
    (no causal mask, pooling at the last position, a custom text tower) go
    through ``encode_text`` unchanged.

    Arguments:
        model: an open_clip CLIP.
        tokens: B x C token ids from the model's tokenizer.

    Returns:
        B x D unnormalised text embeddings, in the model's dtype.
    """
    pool = getattr(model, "text_pool_type", None)
    mask = getattr(model, "attn_mask", None)
    if not isinstance(model, open_clip.CLIP) or mask is None or pool not in ("argmax", "eos"):
        return model.encode_text(tokens)
    length = int(_end_positions(model, tokens).max()) + 1
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens[:, :length]).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens[:, :length], pool, eos_token_id=getattr(model, "text_eos_id", None))
    if model.text_projection is not None:
        x = (
            model.text_projection(x)
            if isinstance(model.text_projection, torch.nn.Linear)
            else x @ model.text_projection
        )
    return x


class TextEmbeddingCache:
    """Unit text embeddings of one model, each computed once and in batches, kept for the run.

    Arguments:
        bundle: the CLIP whose text tower embeds.
    """

    def __init__(self, bundle: ClipBundle) -> None:
        self.bundle = bundle
        self._store: dict[tuple[str, str], torch.Tensor] = {}
        self.encoded = 0  # texts sent through the text tower so far
        self.seconds = 0.0  # spent encoding them

    def embed(self, names: Sequence[str], template: str = "{}") -> torch.Tensor:
        """Unit embeddings of ``template.format(name)`` for each name: float32 N x D (the missing ones in one batch)."""
        if not names:
            return encode_texts(self.bundle, [], (template,))
        return self.embed_templates(names, (template,))[0]

    def embed_templates(self, names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """Unit embeddings of every name under every template, T x N x D; all missing pairs in one batch."""
        _check_templates(templates)
        missing = [
            (template, name)
            for template in templates
            for name in dict.fromkeys(names)
            if (template, name) not in self._store
        ]
        if missing:
            start = time.perf_counter()
            strings = [template.format(name) for template, name in missing]
            for key, embedding in zip(missing, encode_texts(self.bundle, strings), strict=True):
                self._store[key] = embedding
            self.encoded += len(missing)
            self.seconds += time.perf_counter() - start
        return torch.stack([torch.stack([self._store[template, name] for name in names]) for template in templates])
