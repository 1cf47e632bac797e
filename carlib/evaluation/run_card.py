"""The protocol card of an eval run folder: written when a run starts, checked when it resumes.

A run folder's predictions are reused only by a run of the same protocol (:func:`claim_eval_folder`);
the card (:mod:`carlib.protocol_card`) also goes into ``metrics.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from carlib.evaluation.tasks import car_label_names
from carlib.files import atomic_write_text
from carlib.pipeline import LoadedModels
from carlib.presets import Preset

PROTOCOL_FILE = "protocol.json"
"""The protocol card a run folder's predictions were made under, written when the run starts."""

VOLATILE_CARD_KEYS = (
    "carlib",
    "software",
    "device",
    "dataset.data_root",
    "models.description",
    "dataset.limit",
    "dataset.samples",
    "dataset.ids_sha256",
    "dataset.expression_sets",
)
"""Card entries that may change when a run resumes without changing what its predictions mean: another checkout,
machine or data folder, or another subset of the samples (``--limit``, expression sets: each prediction is kept
per sample)."""


def card_identity(card: dict) -> dict:
    """The card without :data:`VOLATILE_CARD_KEYS`: what must match for a run folder's predictions to be reused."""
    identity = json.loads(json.dumps(card))
    for key in VOLATILE_CARD_KEYS:
        node, *rest = key.split(".")
        if rest:
            if isinstance(identity.get(node), dict):
                identity[node].pop(rest[0], None)
        else:
            identity.pop(node, None)
    for role in ("proposal", "classifier"):
        record = (identity.get("models") or {}).get(role)
        if isinstance(record, dict):
            record.pop("weights_file", None)
    return identity


def claim_eval_folder(out_dir: Path, card: dict) -> None:
    """Write the run's card to ``out_dir/protocol.json``, or check that the folder's predictions were made under it.

    Raises:
        ValueError: the folder holds a run of another protocol; the message lists what differs.
    """
    path = out_dir / PROTOCOL_FILE
    if path.is_file():
        from carlib.evaluation.compare import flatten

        before, now = flatten(card_identity(json.loads(path.read_text()))), flatten(card_identity(card))
        differ = sorted(
            {
                key.rsplit(".", 1)[0] if key.count(".") > 1 else key
                for key in set(before) | set(now)
                if before.get(key) != now.get(key)
            }
        )
        if differ:
            shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
            raise ValueError(
                f"{out_dir} holds predictions made under another protocol (differs in {shown}); "
                "use another --out, or delete the folder to start over"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(card, indent=1), path)


def run_card(
    preset: Preset,
    settings,
    models: LoadedModels,
    alone,
    dataset,
    scored_ids: list[str],
    data_root,
    split: str,
    limit,
    without_background: bool,
    split_by,
    expression_sets,
    amp: str,
) -> dict:
    """The protocol card of an eval run (:mod:`carlib.protocol_card`); ``scored_ids`` are the ids of what it
    scores on every rank (:attr:`carlib.evaluation.tasks.EvalTask.scored_ids`), for the card's checksum."""
    from carlib.protocol_card import CardModels, dataset_record, protocol_card

    class_labels = car_label_names(dataset) if preset.settings.mode == "semantic" else ()
    extra = {
        "split_by": split_by,
        "limit": limit,
        "expression_sets": list(expression_sets) if expression_sets is not None else None,
    }
    data = dataset_record(
        preset.name,
        split,
        scored_ids,
        without_background=without_background,
        data_root=str(data_root),
        class_labels=class_labels,
        extra=extra,
    )
    if alone is not None:
        return protocol_card(
            preset=preset,
            settings=settings,
            models=CardModels(models.proposal, None, models.description),
            kind="method alone",
            method=alone.protocol.method,
            post=None,
            device=models.proposal.device,
            amp=amp,
            texts=alone.texts_record(),
            image=alone.image_record(),
            dataset=data,
            method_protocol=alone.protocol.to_dict(),
        )
    return protocol_card(
        preset=preset,
        settings=settings,
        models=models,
        kind="CaR",
        method=settings.proposal_method,
        post=settings.post,
        device=models.proposal.device,
        amp=amp,
        dataset=data,
    )
