"""How much memory the query-dependent work may take at once, and so how many queries run together.

Grad-CAM computes the gradients of all N queries in one batched backward
pass, which holds N copies of the last block's activations: about 40 MB per
query for ViT-B/16 on a 512 x 512 image, so ADE-847's 847 queries would need
over 30 GB. carlib therefore runs that backward in chunks of queries, as
many at a time as fit in a **memory budget**; the maps do not depend on the
chunking (tested with chunks of 1, 3 and N queries).

The budget, in order of precedence:

1. :func:`memory_budget` used as a context manager, or :func:`set_memory_budget`
   (``carlib segment`` and ``carlib eval`` set it from ``--memory-budget MB``);
2. the environment variable ``CARLIB_MEMORY_BUDGET_MB``;
3. the device's default (:func:`default_budget`): 1 GiB on CPU, a quarter of
   the card's memory on a GPU.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

MIB = 2**20
CPU_BUDGET = 1024 * MIB
"""The default budget on CPU: 1 GiB. At 40 MB per query (ViT-B/16, 512 x 512) that is 25 queries per backward,
where the batched pass is already most of its speed (5 queries take 2.9 s, 20 queries 6.2 s: docs/benchmarks.md),
and it keeps 847 queries with both CLIPs under 6 GB."""
GPU_BUDGET_SHARE = 0.25
"""The default budget on a GPU: this share of the card's total memory."""
ENVIRONMENT_VARIABLE = "CARLIB_MEMORY_BUDGET_MB"

Device = str | torch.device
_budget_override: int | None = None


def default_budget(device: Device) -> int:
    """The budget in bytes a device gets unless told otherwise: 1 GiB on CPU, 1/4 of a GPU's memory."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(device.index or 0).total_memory
        return int(total * GPU_BUDGET_SHARE)
    return CPU_BUDGET


def budget_bytes(device: Device) -> int:
    """The budget in force for ``device``: an explicit one, else ``$CARLIB_MEMORY_BUDGET_MB``, else the default.

    Raises:
        ValueError: the environment variable is not a positive number of MiB.
    """
    if _budget_override is not None:
        return _budget_override
    text = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if text:
        return _megabytes(text, f"${ENVIRONMENT_VARIABLE}")
    return default_budget(device)


def set_memory_budget(megabytes: float | None) -> None:
    """Set the budget for the rest of the process, in MiB (None: back to the environment or the default).

    Raises:
        ValueError: not a positive number.
    """
    global _budget_override
    _budget_override = None if megabytes is None else _megabytes(megabytes, "the memory budget")


@contextmanager
def memory_budget(megabytes: float | None) -> Iterator[None]:
    """Inside, the budget is ``megabytes`` MiB (None: the environment's or the device's default)."""
    global _budget_override
    previous = _budget_override
    set_memory_budget(megabytes)
    try:
        yield
    finally:
        _budget_override = previous


def _megabytes(value: str | float, what: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0 or isinstance(value, bool):
        raise ValueError(f"{what} must be a positive number of MiB (e.g. 2048), got {value!r}")
    return int(number * MIB)


def items_per_chunk(bytes_per_item: int, total: int, budget: int) -> int:
    """How many items of ``bytes_per_item`` fit in ``budget`` bytes: at least 1, at most ``total``."""
    if total <= 0:
        return 1
    return max(1, min(total, budget // max(1, int(bytes_per_item))))


def gradcam_bytes_per_query(tokens: int, width: int, mlp_width: int) -> int:
    """Memory one query adds to the batched Grad-CAM backward through the last block, in bytes.

    The backward holds, per query, float32 gradients of the block's
    activations: tokens x width tensors (the residual stream, its norms, the
    attention's queries, keys, values and output) and tokens x MLP-width ones
    (the MLP's hidden layer and its activation). Measured on ViT-B/16, a query
    costs 31 KB per token (32 MB at 512 x 512, 1025 tokens; 71 MB at
    768 x 768); this counts 6 width and 2 MLP-width floats per token, 43 KB
    for ViT-B/16, to stay on the safe side.

    Arguments:
        tokens: sequence length entering the last block (patches + class token).
        width: the residual width D.
        mlp_width: the MLP's hidden width (4 D in CLIP).

    Returns:
        bytes per query.
    """
    return 4 * tokens * (6 * width + 2 * mlp_width)


def gradcam_fixed_bytes(tokens: int, heads: int) -> int:
    """Memory the batched Grad-CAM backward needs whatever the chunk: one query's attention maps (bytes).

    The attention's backward runs one query at a time under the batching
    (``vmap``), so it needs heads x tokens x tokens floats once, not per query.
    """
    return 4 * heads * tokens * tokens


def gradcam_chunk_size(
    bundle, tokens: int, num_queries: int, budget: int | None = None, width: int | None = None
) -> int:
    """Queries per batched Grad-CAM backward for a proposal CLIP, from the budget in force.

    Arguments:
        bundle: the proposal :class:`carlib.models.ClipBundle` (any tower: its
            ``gradcam_tail`` is what the backward runs through).
        tokens: sequence length entering its last block (feature-map cells for a CNN).
        num_queries: how many queries need gradients.
        budget: bytes; None uses :func:`budget_bytes` for the bundle's device.
        width: channels of the Grad-CAM feature map; None reads it from the tail.

    Returns:
        between 1 and ``num_queries``.
    """
    tail = bundle.tower.gradcam_tail
    width = _residual_width(tail) if width is None else int(width)
    heads = max((int(getattr(module, "num_heads", 1)) for module in tail.modules()), default=1)
    budget = budget_bytes(bundle.device) if budget is None else budget
    free = budget - gradcam_fixed_bytes(tokens, heads)
    return items_per_chunk(gradcam_bytes_per_query(tokens, width, _mlp_width(tail, width)), num_queries, free)


def _residual_width(tail: torch.nn.Module) -> int:
    """The width entering ``tail``: its first norm's size, else its first linear layer's input."""
    for module in tail.modules():
        if isinstance(module, torch.nn.LayerNorm):
            return int(module.normalized_shape[0])
        if isinstance(module, torch.nn.Linear):
            return int(module.in_features)
        if isinstance(module, torch.nn.Conv2d):
            return int(module.in_channels)
    raise ValueError(f"cannot tell the width of {type(tail).__name__}: no LayerNorm or Linear layer in it")


def _mlp_width(tail: torch.nn.Module, width: int) -> int:
    widths = [
        layer.out_features
        for layer in tail.modules()
        if isinstance(layer, torch.nn.Linear) and layer.out_features > width
    ]
    return max(widths, default=4 * width)
