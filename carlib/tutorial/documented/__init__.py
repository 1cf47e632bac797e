"""Documented figures: what a notebook's small live sample is compared with.

A notebook runs CaR on a handful of scenes so it stays quick; a handful of
scenes is noisy, so every number it shows is printed beside the *documented*
figure, measured by the same code on at least 200 held-out ShapesWorld test
scenes and stored in ``data/documented_figures/<notebook>.json``. Claims about
rankings are printed from those files by code (never typed into markdown), so
they cannot go stale.

Each notebook that needs documented figures has a module in this package
(``carlib/tutorial/documented/nb04.py`` for ``04_recurrence``...) defining

- ``NOTEBOOK``: the notebook's stem, e.g. ``"04_recurrence"``;
- ``compute(n: int, seed: int) -> dict[str, Figure]``: measure every figure on
  ``n`` test scenes (default :data:`DOCUMENTED_SCENES`);
- optionally ``MODEL_FOLDERS``: the ShapesWorld models (folders under ``data/``)
  its figures depend on, ``("shapes_clip",)`` by default; a stored file is stale
  when any of their weights changed.

Refresh them after changing the model or the library with one command::

    carlib documented refresh            # every notebook's file
    carlib documented refresh 04_recurrence --n 200
    carlib documented show 04_recurrence

and read them in a notebook with :func:`documented`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from carlib.files import atomic_write_text
from carlib.models import data_dir

DOCUMENTED_SCENES = 200
"""Held-out test scenes behind every documented figure (the issue's minimum)."""

DOCUMENTED_SEED = 0
"""Base seed of those scenes: the same test split as ``docs/shapesworld.md``."""

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Figure:
    """One documented number.

    Attributes:
        value: the figure (an mIoU in [0, 1], a rate, a mean...).
        what: one line saying what was measured, shown beside the value.
    """

    value: float
    what: str


@dataclass(frozen=True)
class DocumentedFigures:
    """The stored figures of one notebook."""

    notebook: str
    figures: dict[str, Figure]
    scenes: int
    seed: int
    split: str
    model_digest: str
    command: str
    seconds: float

    def __getitem__(self, name: str) -> float:
        return self.value(name)

    def value(self, name: str) -> float:
        """The figure ``name``; a ``KeyError`` that lists the known names otherwise."""
        if name not in self.figures:
            raise KeyError(
                f"{self.notebook} has no documented figure {name!r}; known: {sorted(self.figures)}. "
                f"Add it to carlib/tutorial/documented/ and run `carlib documented refresh {self.notebook}`"
            )
        return self.figures[name].value

    @property
    def source(self) -> str:
        """Where the numbers come from, for a table's caption."""
        return f"{self.scenes} held-out ShapesWorld {self.split} scenes (seed {self.seed}), `{self.command}`"

    def ranked(self, names: Sequence[str], *, descending: bool = True) -> list[str]:
        """``names`` ordered by their documented value, best first by default."""
        return sorted(names, key=self.value, reverse=descending)


def documented_dir() -> Path:
    """``data/documented_figures``: one JSON file per notebook."""
    return data_dir() / "documented_figures"


DEFAULT_MODEL_FOLDERS = ("shapes_clip",)


def shapes_model_digest(folders: Sequence[str] = DEFAULT_MODEL_FOLDERS) -> str:
    """Digest of the shipped ShapesWorld weights in ``folders`` (under ``data/``): a file from other weights is stale."""
    digest = hashlib.blake2b(digest_size=8)
    for folder in folders:
        with open(data_dir() / folder / "model.safetensors", "rb") as weights:
            for block in iter(lambda: weights.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_folders(notebook: str) -> tuple[str, ...]:
    """The ShapesWorld model folders ``notebook``'s documented figures depend on."""
    module = modules().get(notebook)
    return tuple(getattr(module, "MODEL_FOLDERS", DEFAULT_MODEL_FOLDERS))


def modules() -> dict[str, Any]:
    """Every notebook module of this package, keyed by its notebook's stem."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "NOTEBOOK") and hasattr(module, "compute"):
            found[module.NOTEBOOK] = module
    return dict(sorted(found.items()))


def path_for(notebook: str, directory: Path | None = None) -> Path:
    """The file of ``notebook``'s figures in ``directory`` (default :func:`documented_dir`)."""
    return Path(directory or documented_dir()) / f"{notebook}.json"


def documented(notebook: str, *, check_model: bool = True, directory: Path | None = None) -> DocumentedFigures:
    """Read the stored figures of ``notebook``.

    Arguments:
        notebook: the notebook's stem, e.g. ``"04_recurrence"``.
        check_model: refuse a file measured with other ShapesWorld weights than the shipped ones.
        directory: where the files are (default ``data/documented_figures``).

    Raises:
        FileNotFoundError: no stored file (run ``carlib documented refresh NOTEBOOK``).
        ValueError: the file was measured with other ShapesWorld weights (``check_model``), or is not one of ours.
    """
    path = path_for(notebook, directory)
    if not path.is_file():
        raise FileNotFoundError(
            f"no documented figures for {notebook} at {path}; run `carlib documented refresh {notebook}`"
        )
    try:
        # UnicodeDecodeError is a ValueError too, but without the fix in its message.
        record = json.loads(path.read_text(encoding="utf-8"))
        if record["format"] != FORMAT_VERSION:
            raise ValueError(f"format {record['format']!r}, this carlib reads format {FORMAT_VERSION}")
        figures = {name: Figure(**entry) for name, entry in record["figures"].items()}
        for name, figure in figures.items():
            # bool is an int subclass, and a string value would only fail later, in a notebook's format().
            if isinstance(figure.value, bool) or not isinstance(figure.value, (int, float)):
                raise TypeError(f"figure {name!r} has the value {figure.value!r}, not a number")
        stored = DocumentedFigures(
            notebook=record["notebook"],
            figures=figures,
            scenes=record["scenes"],
            seed=record["seed"],
            split=record["split"],
            model_digest=record["model_digest"],
            command=record["command"],
            seconds=record["seconds"],
        )
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ValueError(
            f"{path} is not a documented-figures file ({error}); rewrite it with `carlib documented refresh {notebook}`"
        ) from error
    if check_model and stored.model_digest != shapes_model_digest(model_folders(notebook)):
        raise ValueError(
            f"{path} was measured with other ShapesWorld weights (digest {stored.model_digest}, "
            f"shipped {shapes_model_digest(model_folders(notebook))}); "
            f"run `carlib documented refresh {notebook}`"
        )
    return stored


def refresh(
    notebook: str, *, n: int = DOCUMENTED_SCENES, seed: int = DOCUMENTED_SEED, out_dir: Path | None = None
) -> Path:
    """Measure ``notebook``'s figures on ``n`` test scenes and store them atomically; returns the file."""
    known = modules()
    if notebook not in known:
        raise ValueError(f"no documented figures are defined for {notebook!r}; known: {list(known)}")
    if n < 1:
        raise ValueError(f"documented figures need at least 1 scene, got n={n}")
    start = time.perf_counter()
    figures: Mapping[str, Figure] = known[notebook].compute(n, seed)
    seconds = time.perf_counter() - start
    command = f"carlib documented refresh {notebook}" + (f" --n {n}" if n != DOCUMENTED_SCENES else "")
    record = {
        "format": FORMAT_VERSION,
        "notebook": notebook,
        "scenes": n,
        "seed": seed,
        "split": "test",
        "model_digest": shapes_model_digest(model_folders(notebook)),
        "command": command,
        "seconds": round(seconds, 1),
        "figures": {name: asdict(figure) for name, figure in figures.items()},
    }
    path = (out_dir or documented_dir()) / f"{notebook}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", path)
    return path


def beside_documented(
    live: Mapping[str, float],
    stored: DocumentedFigures,
    *,
    live_scenes: int,
    labels: Mapping[str, str] | None = None,
    fmt: Callable[[float], str] = "{:.3f}".format,
) -> str:
    """A markdown table: each live figure beside its documented one, with the sample sizes in the header."""
    labels = labels or {}
    rows = [f"| | this run ({live_scenes} scenes) | documented ({stored.scenes} held-out scenes) |", "|---|---|---|"]
    for name, value in live.items():
        rows.append(
            f"| {labels.get(name, stored.figures[name].what if name in stored.figures else name)} "
            f"| {fmt(value)} | {fmt(stored.value(name))} |"
        )
    rows.append("")
    rows.append(f"Documented figures: {stored.source}.")
    return "\n".join(rows)
