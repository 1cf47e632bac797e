"""`carlib compare RUN_A RUN_B [...]`: two or more runs' protocols and numbers side by side.

A run is a ``carlib eval`` folder (its ``metrics.json``) or a ``carlib segment``
result (``result.json``). The protocol cards (:mod:`carlib.protocol_card`) are
flattened to dotted keys and every key whose values differ is listed; then
the metrics (and each class's IoU) of every run beside the first's, with the
differences. Runs are *comparable* when they scored the same samples with the
same labels: same dataset, split, sample ids (their sha256), label list and
background setting. Everything else (models, method, settings, texts,
geometry) is what a comparison is for, so it is listed, not judged. Runs that
are not comparable still get their table, headed by why not.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COMPARABILITY_KEYS = (
    "dataset.name",
    "dataset.split",
    "dataset.samples",
    "dataset.ids_sha256",
    "dataset.without_background",
    "dataset.labels_sha256",
    "dataset.split_by",
    "dataset.expression_sets",
)
"""Card entries that must be equal for two runs' numbers to measure the same thing."""

NOT_METRICS = {
    "images",
    "seconds",
    "model_busy",
    "paper_mIoU",
    "count",
    "without_background",
    "background_dropped_from_matrix",
}
"""Numeric top-level entries of metrics.json that are not measurements of the predictions."""


@dataclass
class Run:
    """One run as read from disk.

    Attributes:
        label: ``A``, ``B``, ...
        path: the file read.
        record: its JSON (metrics.json or result.json).
        card: its protocol card, or None (a run from before carlib wrote cards).
    """

    label: str
    path: Path
    record: dict
    card: dict | None

    @property
    def kind(self) -> str:
        """``"eval"`` (metrics.json) or ``"segment"`` (result.json)."""
        return "segment" if self.path.name == "result.json" else "eval"


def load_run(path: str | Path, label: str) -> Run:
    """Read a run: a folder holding ``metrics.json`` or ``result.json``, or either file.

    Raises:
        FileNotFoundError: nothing to read there.
        ValueError: a file that is not JSON.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("metrics.json", "result.json"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise FileNotFoundError(
                f"{path} holds neither metrics.json (carlib eval) nor result.json (carlib "
                "segment); give a run folder or one of those files"
            )
    if not path.is_file():
        raise FileNotFoundError(f"run not found: {path}; give a carlib eval folder, a metrics.json or a result.json")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a JSON file ({error.msg} at line {error.lineno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} does not hold a carlib run record")
    card = record.get("protocol")
    return Run(label, path, record, card if isinstance(card, dict) else None)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict of dotted keys; lists and scalars are leaves."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def comparability(runs: Sequence[Run]) -> list[str]:
    """Why the runs do not measure the same thing (an empty list: they do)."""
    reasons = [
        f"run {run.label} has no protocol card (made before carlib wrote one): nothing says what it measured"
        for run in runs
        if run.card is None
    ]
    if reasons:
        return reasons
    kinds = {run.kind for run in runs}
    if len(kinds) > 1:
        return ["a benchmark run (metrics.json) and a single-image segmentation (result.json)"]
    if kinds == {"segment"}:
        images = [
            ((run.card or {}).get("image_input") or {}).get("pixels_sha256") for run in runs
        ]  # no card is None here
        return [] if len(set(images)) == 1 and images[0] else ["different images (image_input.pixels_sha256)"]
    cards = [flatten(run.card) for run in runs]
    for key in COMPARABILITY_KEYS:
        values = [card.get(key) for card in cards]
        if any(value != values[0] for value in values[1:]):
            reasons.append(f"{key} differs ({' / '.join(_short(value, 24) for value in values)})")
    headlines = {run.record.get("headline", "mIoU") for run in runs}
    if len(headlines) > 1:
        reasons.append(f"different headline metrics ({', '.join(sorted(headlines))})")
    return reasons


def protocol_differences(runs: Sequence[Run]) -> list[tuple[str, list[Any]]]:
    """Every card entry whose values differ between the runs, in key order: (key, one value per run).

    A group of entries that some runs lack entirely (a CaR run has no ``method_protocol``, a method alone no
    classifier or CRF settings) and that the others agree on is one row, ``group.*``, saying who has it.
    """
    cards = [flatten(run.card or {}) for run in runs]
    keys = sorted(set().union(*cards))
    # A missing entry and a null one both mean "not set".
    differing = [key for key in keys if any(card.get(key) != cards[0].get(key) for card in cards[1:])]
    collapsed: dict[str, list[str]] = {}
    rows: list[tuple[str, list[Any]]] = []
    for key in differing:
        parent = _collapsible_parent(key, cards)
        if parent is not None:
            collapsed.setdefault(parent, []).append(key)
            continue
        rows.append((key, [card.get(key) for card in cards]))
    for parent, members in collapsed.items():
        has = [any(k.startswith(parent + ".") for k in card) for card in cards]
        rows.append((f"{parent}.* ({len(members)} entries)", ["present" if present else "—" for present in has]))
    return sorted(rows, key=lambda row: row[0])


def _collapsible_parent(key: str, cards: list[dict]) -> str | None:
    """The shallowest parent of ``key`` that some cards lack entirely and the others agree on, or None."""
    parts = key.split(".")
    for depth in range(1, len(parts)):
        parent = ".".join(parts[:depth])
        present = [card for card in cards if any(k.startswith(parent + ".") for k in card)]
        if len(present) == len(cards) or not present:
            continue
        members = {k for card in present for k in card if k.startswith(parent + ".")}
        if all(card.get(member) == present[0].get(member) for card in present[1:] for member in members):
            return parent
    return None


def metric_rows(runs: Sequence[Run]) -> list[tuple[str, list[float | None]]]:
    """The numeric measurements of eval runs (mIoU, pixel accuracy, ...), one value per run (None: absent)."""
    names: list[str] = []
    for run in runs:
        for key, value in run.record.items():
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and key not in NOT_METRICS
                and key not in names
            ):
                names.append(key)
    return [(name, [_number(run.record.get(name)) for run in runs]) for name in names]


def class_rows(runs: Sequence[Run]) -> list[tuple[str, list[float | None]]]:
    """Each class's IoU in every eval run (classes in the first run's order, then any others)."""
    names: list[str] = []
    for run in runs:
        for name in run.record.get("per_class_iou") or {}:
            if name not in names:
                names.append(name)
    return [(name, [_number((run.record.get("per_class_iou") or {}).get(name)) for run in runs]) for name in names]


def compare_runs(paths: Sequence[str | Path]) -> str:
    """The comparison of two or more runs as markdown (module docstring).

    Raises:
        ValueError: fewer than two runs, or an unreadable one.
        FileNotFoundError: a run that is not there.
    """
    if len(paths) < 2:
        raise ValueError("carlib compare needs at least two runs: carlib compare RUN_A RUN_B [...]")
    runs = [load_run(path, chr(ord("A") + index) if index < 26 else f"R{index}") for index, path in enumerate(paths)]
    labels = [run.label for run in runs]
    lines = ["# carlib compare", "", "| run | what | preset | data | headline | file |", "|---|---|---|---|---|---|"]
    for run in runs:
        lines.append(f"| {run.label} | {_what(run)} | {_preset(run)} | {_data(run)} | {_headline(run)} | {run.path} |")
    reasons = comparability(runs)
    lines.append("")
    if reasons:
        lines.append(
            "**NOT COMPARABLE**: " + "; ".join(reasons) + ". The differences below do not measure one "
            "thing; read them as two separate results."
        )
    else:
        same = (
            "the same image (pixels sha256)"
            if runs[0].kind == "segment"
            else "same samples (ids sha256), same labels, same background setting"
        )
        lines.append(f"**Comparable**: {same}; the differences below come from the protocol differences listed.")
    differences = protocol_differences(runs)
    lines += ["", f"## Protocol differences ({len(differences)})", ""]
    if differences:
        lines += ["| entry | " + " | ".join(labels) + " |", "|---|" + "---|" * len(runs)]
        lines += [f"| {key} | " + " | ".join(_short(value) for value in values) + " |" for key, values in differences]
    else:
        lines.append("None: the cards are identical.")
    metrics = metric_rows(runs)
    if metrics:
        lines += ["", "## Metrics (%)", "", _diff_header(labels)] + _diff_lines(metrics, percent=True)
    classes = class_rows(runs)
    if classes:
        lines += ["", "## IoU per class (%)", "", _diff_header(labels)] + _diff_lines(classes, percent=True)
    if all(run.kind == "segment" for run in runs):
        lines += ["", "## Queries kept (score)", ""] + _segment_lines(runs)
    return "\n".join(lines) + "\n"


# --- formatting ----------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, (list, dict)):
        text = json.dumps(value, ensure_ascii=False)
        if len(text) > limit:
            return f"{text[: limit - 20]}… ({len(value)} items)"
        return text.replace("|", "\\|")
    text = "—" if value is None else str(value)
    return (text if len(text) <= limit else text[: limit - 1] + "…").replace("|", "\\|")


def _preset(run: Run) -> str:
    if run.card and run.card.get("preset"):
        return str(run.card["preset"])
    preset = run.record.get("preset")
    return preset.get("name", "—") if isinstance(preset, dict) else str(preset or "—")


def _what(run: Run) -> str:
    card = run.card or {}
    method = card.get("method") or run.record.get("method") or "?"
    if card.get("kind") == "method alone":
        return f"{method} alone ({(card.get('method_protocol') or {}).get('name', '?')} protocol)"
    return f"CaR, {method} proposals, post {(card.get('post') or {}).get('post', run.record.get('post', '?'))}"


def _data(run: Run) -> str:
    dataset = (run.card or {}).get("dataset")
    if not dataset:
        return "one image" if run.kind == "segment" else "—"
    return f"{dataset.get('name')} {dataset.get('split')}, {dataset.get('samples')} samples"


def _headline(run: Run) -> str:
    name = run.record.get("headline", "mIoU")
    value = _number(run.record.get(name))
    return "—" if value is None else f"{name} {value * 100:.2f}"


def _diff_header(labels: list[str]) -> str:
    extra = " | ".join(f"{label} − {labels[0]}" for label in labels[1:])
    return "| | " + " | ".join(labels) + " | " + extra + " |\n|---|" + "---|" * (2 * len(labels) - 1)


def _diff_lines(rows, percent: bool) -> list[str]:
    scale = 100.0 if percent else 1.0
    lines = []
    for name, values in rows:
        shown = ["—" if value is None else f"{value * scale:.2f}" for value in values]
        deltas = [
            "—" if value is None or values[0] is None else f"{(value - values[0]) * scale:+.2f}" for value in values[1:]
        ]
        lines.append(f"| {name} | " + " | ".join(shown + deltas) + " |")
    return lines


def _segment_lines(runs: Sequence[Run]) -> list[str]:
    lines = ["| query | " + " | ".join(run.label for run in runs) + " |", "|---|" + "---|" * len(runs)]
    queries: list[str] = []
    for run in runs:
        queries += [query for query in run.record.get("queries", []) if query not in queries]
    for query in queries:
        cells = []
        for run in runs:
            names = run.record.get("queries", [])
            if query not in names:
                cells.append("—")
                continue
            index = names.index(query)
            kept, score = run.record.get("kept", [])[index], run.record.get("scores", [])[index]
            cells.append(f"{'kept' if kept else 'dropped'} ({score:.3f})")
        lines.append(f"| {query} | " + " | ".join(cells) + " |")
    return lines
