"""Text embeddings: class names through prompt templates, averaged the CLIP way."""

from __future__ import annotations

from typing import Sequence

import torch

from carlib.models import ClipBundle

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
    duplicates = [query for query in cleaned if query in seen or seen.add(query)]  # type: ignore[func-returns-value]
    if duplicates:
        raise ValueError(f"duplicate {what}: {sorted(set(duplicates))}; each must appear once")
    return cleaned


@torch.no_grad()
def encode_texts(
    bundle: ClipBundle,
    names: Sequence[str],
    templates: Sequence[str] = ("{}",),
    *,
    batch_size: int = 256,
) -> torch.Tensor:
    """Embed each name through every template; average the normalised embeddings.

    This is CLIP's ``zeroshot_classifier``: for each name, the templates are
    filled in, each embedding is L2-normalised, the mean is taken and
    normalised again.

    Arguments:
        bundle: the CLIP model to use.
        names: N class names or phrases (may be empty).
        templates: T format strings with one ``{}``; ``("{}",)`` means the raw name.
        batch_size: strings per text-encoder forward pass.

    Returns:
        float32 tensor N x D of unit vectors, on ``bundle.device``.
    """
    if not templates or any("{}" not in template for template in templates):
        raise ValueError(f"each template needs one '{{}}' placeholder; got {list(templates)}")
    width = bundle.model.text_projection.shape[-1] if bundle.model.text_projection is not None else None
    if not names:
        return torch.zeros((0, width or 0), device=bundle.device)
    strings = [template.format(name) for name in names for template in templates]
    chunks = []
    for start in range(0, len(strings), batch_size):
        tokens = bundle.tokenizer(strings[start : start + batch_size]).to(bundle.device)
        chunks.append(bundle.model.encode_text(tokens).float())
    embeddings = torch.nn.functional.normalize(torch.cat(chunks), dim=-1)
    per_name = embeddings.view(len(names), len(templates), -1).mean(dim=1)
    return torch.nn.functional.normalize(per_name, dim=-1)
