"""Class-name lists: one entry per label, each with one or more names (synonyms), and a checksum of the list.

The field's protocol reads them from SCLIP-style files (one line per label,
names separated by commas; ``data/class_names/``); carlib's own protocol makes
them from a preset's vocabulary. Either way a run's protocol card records the
list and its sha256 (:func:`ClassNameList.digest`), so two runs can tell
whether they asked the model the same questions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from carlib.models import data_dir

CLASS_NAMES_FOLDER = "class_names"
"""Where the shipped class-name files live, under the data folder (``data/class_names``)."""


@dataclass(frozen=True)
class ClassNameList:
    """The texts of each label, in label order.

    Attributes:
        labels: one tuple of names per entry; entry i is CaR label ``i + first_label``.
        first_label: 0 when entry 0 is the background (the file's line 0), 1 when the list starts at the
            first class (a preset's vocabulary, a VOC-20 / Context-59 file).
        source: where the list comes from (a file under ``data/``, a path, or ``preset <name> vocabulary``).
    """

    labels: tuple[tuple[str, ...], ...]
    first_label: int
    source: str

    @property
    def names(self) -> list[str]:
        """Every name, flattened in label order (the texts the model is asked about)."""
        return [name for names in self.labels for name in names]

    @property
    def label_of_name(self) -> list[int]:
        """The CaR label of each entry of :attr:`names`."""
        return [index + self.first_label for index, names in enumerate(self.labels) for _ in names]

    def digest(self) -> str:
        """sha256 of the list (labels, names, first label) as canonical JSON: equal lists, equal digests."""
        payload = json.dumps(
            {"first_label": self.first_label, "labels": [list(names) for names in self.labels]},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict:
        """What a protocol card records: source, first label, every label's names, the digest."""
        return {
            "source": self.source,
            "first_label": self.first_label,
            "labels": [list(names) for names in self.labels],
            "sha256": self.digest(),
        }


def parse_class_name_lines(lines: Sequence[str], *, has_background: bool, source: str) -> ClassNameList:
    """A list from SCLIP-style lines: one label per line, its names separated by commas (stripped).

    Raises:
        ValueError: an empty line or name, naming the line.
    """
    labels = []
    for number, line in enumerate(lines, start=1):
        names = tuple(name.strip() for name in line.split(","))
        if not line.strip() or not all(names):
            raise ValueError(f"{source} line {number} has an empty class name ({line!r}); give every label a name")
        labels.append(names)
    if not labels:
        raise ValueError(f"{source} holds no class names")
    return ClassNameList(tuple(labels), 0 if has_background else 1, source)


def resolve_class_name_file(name: str | Path) -> Path:
    """A shipped file's path (``"sclip/cls_voc21.txt"`` under ``data/class_names``) or a path as given.

    Raises:
        FileNotFoundError: neither exists; the message lists the shipped files.
    """
    path = Path(name).expanduser()
    if path.is_file():
        return path
    shipped = data_dir() / CLASS_NAMES_FOLDER / str(name)
    if shipped.is_file():
        return shipped
    available = sorted(
        str(p.relative_to(data_dir() / CLASS_NAMES_FOLDER)) for p in (data_dir() / CLASS_NAMES_FOLDER).glob("*/*.txt")
    )
    raise FileNotFoundError(
        f"class-name file {name} not found; give a path or one of the shipped files: {', '.join(available)}"
    )


def read_class_name_file(name: str | Path, *, has_background: bool) -> ClassNameList:
    """Read a class-name file (:func:`resolve_class_name_file`); line 0 is the background when ``has_background``.

    Trailing blank lines are ignored; the source is recorded relative to the data folder for shipped files.
    """
    path = resolve_class_name_file(name)
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    try:
        source = str(path.resolve().relative_to((data_dir()).resolve()).as_posix())
        source = f"data/{source}"
    except ValueError:
        source = str(path)
    return parse_class_name_lines(lines, has_background=has_background, source=source)


def vocabulary_class_names(queries: Sequence[str], preset_name: str = "", *, source: str = "") -> ClassNameList:
    """A preset's vocabulary (or any queries) as a list starting at label 1, one name per class (the query CaR asks).

    ``source`` says where the queries come from (default: ``preset <name> vocabulary``).
    """
    return ClassNameList(tuple((query,) for query in queries), 1, source or f"preset {preset_name} vocabulary")
