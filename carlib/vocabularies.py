"""Class vocabularies of the benchmarks: the exact strings CaR feeds to CLIP, one per class id.

Entry ``i`` of every list is dataset class id ``i + 1`` (0 is background),
which is also how CaR paints label maps (query index + 1).

Comma-separated entries (``"person with clothes,people,human"``, ADE's
``"door, double, door"``) are **one query each**. The reference code never
splits them: the whole string is formatted into every template and embedded
once (``zeroshot_classifier`` in ``clip_as_rnn/modeling/model/clipcam.py``,
``forward_clip`` in ``clip_wrapper.py``), as CLIP-ES does. Splitting would
also be ill-defined: ADE's strings are word-split WordNet synonym sets
(``"door, double, door"``) and share words across classes (``"screen"``
occurs in four classes). So a class maps to exactly one query and the
query-to-class map is the identity; :meth:`ClassVocabulary.synonyms` splits
an entry only for display.

The lists are data, read here at import from ``data/vocabularies/`` (one
entry per line, line ``k`` for class id ``k``; the stuff groups one
``<index> <query>`` per line); that folder's README gives each file's format
and provenance in full.

Sources (the ``google-research/google-research`` repository, folder
``clip_as_rnn/``), reproduced as data:

- VOC: ``data/voc.py`` ``VOC_CLASSES`` (CLIP-ES-style synonyms).
- COCO-Object: ``data/coco.py`` ``COCO_OBJECT_CLASSES``, including its typo
  ``"sknowboard"`` (kept: it is what produced the published numbers).
- Pascal Context-59: ``data/context.py`` ``PASCAL_CONTEXT_CLASSES`` and the
  thing/stuff split ``PASCAL_CONTEXT_{THING,STUFF}_CLASS_ID``.
- ADE20K-150: ``data/ade.py`` ``ADE_CLASSES`` and ``ADE_{THING,STUFF}_CLASS_ID``.
- ADE20K-full (847): ``data/ade847.py`` ``ADE_847_CLASSES`` and
  ``ADE_847_{THING,STUFF}_CLASS_ID``; the names and their order are those of
  MaskFormer's ``datasets/prepare_ade20k_full_sem_seg.py``
  ``ADE20K_SEM_SEG_FULL_CATEGORIES`` (``trainId`` 0..846), which wrote the
  ground truth (checked name by name at a spread of ids in tests/test_presets.py).
- PASCAL Context-459: ``data/pascal459.py`` ``PASCAL_459_CLASSES`` and
  ``PASCAL_459_{THING,STUFF}_CLASS_ID``; the order is the dataset's
  ``labels.txt`` (1 accordion .. 459 wool), as in FC-CLIP's
  ``pascal_ctx_459_with_prompt_eng.txt`` (whose prompt-engineered names,
  e.g. "computer case" for 62 "case", are not used).
- Display names: the datasets' official short names (VOC devkit, COCO
  2017 ``instances`` categories; Context and ADE use the first synonym, and
  ADE-847 the whole query where that first synonym is shared, e.g. its three
  "bag" classes).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

VOCABULARY_DIR = Path(__file__).resolve().parent.parent / "data" / "vocabularies"
"""The folder of the class lists: the repository's ``data/vocabularies``.

Deliberately not under ``$CARLIB_DATA_DIR`` (:func:`carlib.models.data_dir`):
the class lists define what the code computes (a preset's queries, its
things/stuff passes, the class-name checksum of every protocol card), so
pointing the data folder elsewhere for models or scenes must not change or
remove them."""

_RESTORE = "restore it with `git checkout -- data/vocabularies` in the carlib repository"


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"class list {path} is missing: carlib reads its benchmark class lists from the repository's "
            f"data/vocabularies/; {_RESTORE} (an install without the repository has no data/: install carlib "
            "from a clone with `pip install -e .`)"
        ) from None
    except UnicodeDecodeError as error:
        raise ValueError(f"class list {path} is not UTF-8 ({error.reason} at byte {error.start}); {_RESTORE}") from None
    return text.splitlines()


def read_class_list(path: Path, count: int) -> tuple[str, ...]:
    """Read a class list: one entry per line, line ``k`` for class id ``k``; a comma is part of its entry.

    Arguments:
        path: a UTF-8 text file (``data/vocabularies/<name>.txt``).
        count: how many classes the benchmark has; a file with more or fewer lines is refused.

    Returns:
        the ``count`` entries in line order (entry ``i`` is class id ``i + 1``).

    Raises:
        FileNotFoundError: the file is missing (the message says how to restore it).
        ValueError: the file is not UTF-8, has a blank line, an entry with surrounding
            spaces, a repeated entry, or not ``count`` lines; the message names the file (and line).
    """
    lines = _read_lines(path)
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line != line.strip():
            raise ValueError(
                f"class list {path} line {number} ({line!r}) is blank or has surrounding spaces; "
                f"each line is one class's entry, as it is sent to CLIP; {_RESTORE}"
            )
    if len(lines) != count:
        raise ValueError(f"class list {path} has {len(lines)} lines, not one per class ({count}); {_RESTORE}")
    repeated = [line for line, times in Counter(lines).items() if times > 1]
    if repeated:
        raise ValueError(f"class list {path} holds {repeated[0]!r} more than once; {_RESTORE}")
    return tuple(lines)


def read_stuff_ids(path: Path, queries: tuple[str, ...]) -> tuple[int, ...]:
    """Read the stuff group of a things/stuff split: one ``<index> <query>`` per line, in the reference's order.

    The index is 0-based (class id - 1), as the reference numbers its groups;
    the query after it is there for the reader and is checked against ``queries``.

    Arguments:
        path: a UTF-8 text file (``data/vocabularies/<name>_stuff.txt``).
        queries: the vocabulary's class list (:func:`read_class_list`).

    Returns:
        the stuff indices in file order (that order sets the stuff pass's query order).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: a line is not ``<index> <query>`` with the query at that index, or an index repeats.
    """
    ids: list[int] = []
    for number, line in enumerate(_read_lines(path), start=1):
        index_text, _, query = line.partition(" ")
        index = int(index_text) if index_text.isascii() and index_text.isdigit() else -1
        if not 0 <= index < len(queries) or queries[index] != query:
            raise ValueError(
                f"stuff list {path} line {number} ({line!r}) is not '<index> <query>' with the query at that "
                f"0-based index of the class list ({len(queries)} classes); {_RESTORE}"
            )
        if index in ids:
            raise ValueError(f"stuff list {path} line {number} repeats index {index}; {_RESTORE}")
        ids.append(index)
    return tuple(ids)


def _class_list(name: str, count: int) -> tuple[str, ...]:
    return read_class_list(VOCABULARY_DIR / f"{name}.txt", count)


def _stuff_ids(name: str, queries: tuple[str, ...]) -> tuple[int, ...]:
    return read_stuff_ids(VOCABULARY_DIR / f"{name}_stuff.txt", queries)


def _all_but(stuff_ids: tuple[int, ...], count: int) -> tuple[int, ...]:
    # The reference's THING lists are exactly the ascending complements of its STUFF lists (all four splits),
    # so the stuff group alone is stored.
    stuff = set(stuff_ids)
    return tuple(index for index in range(count) if index not in stuff)


VOC_CLASSES: tuple[str, ...] = _class_list("voc", 20)
"""Queries for VOC class ids 1..20 (reference ``clip_as_rnn/data/voc.py``)."""

VOC_DISPLAY_NAMES: tuple[str, ...] = _class_list("voc_display_names", 20)
"""The official VOC devkit class names, for legends and per-class tables."""

COCO_OBJECT_CLASSES: tuple[str, ...] = _class_list("coco_object", 80)
"""Queries for COCO-Object class ids 1..80 (reference ``clip_as_rnn/data/coco.py``)."""

COCO_OBJECT_DISPLAY_NAMES: tuple[str, ...] = _class_list("coco_object_display_names", 80)
"""The official COCO 2017 category names, in category order (ids 1..80 contiguous)."""

CONTEXT_59_CLASSES: tuple[str, ...] = _class_list("context", 59)
"""Queries for Context-59 class ids 1..59 (reference ``clip_as_rnn/data/context.py``)."""

CONTEXT_59_STUFF_IDS: tuple[int, ...] = _stuff_ids("context", CONTEXT_59_CLASSES)
"""Indices into :data:`CONTEXT_59_CLASSES` of the reference's "stuff" group, in its order (the pass's query order)."""

CONTEXT_59_THING_IDS: tuple[int, ...] = _all_but(CONTEXT_59_STUFF_IDS, len(CONTEXT_59_CLASSES))
"""Every other Context-59 index, ascending (the reference's ``PASCAL_CONTEXT_THING_CLASS_ID``)."""

ADE_150_CLASSES: tuple[str, ...] = _class_list("ade150", 150)
"""Queries for ADE20K-150 class ids 1..150 (reference ``clip_as_rnn/data/ade.py``)."""

ADE_150_STUFF_IDS: tuple[int, ...] = _stuff_ids("ade150", ADE_150_CLASSES)
"""Indices into :data:`ADE_150_CLASSES` of the reference's "stuff" group, in its order."""

ADE_150_THING_IDS: tuple[int, ...] = _all_but(ADE_150_STUFF_IDS, len(ADE_150_CLASSES))
"""Every ADE-150 index not in the stuff group, ascending (exactly the reference's list)."""

ADE_847_CLASSES: tuple[str, ...] = _class_list("ade847", 847)
"""Queries for ADE-847 class ids 1..847 (reference ``clip_as_rnn/data/ade847.py``
``ADE_847_CLASSES``): the WordNet synonym sets of ADE20K-full, comma-separated
with their spaces kept (unlike ADE-150's word-split strings), in the order of
the ``trainId`` s that ``prepare_ade20k_full_sem_seg.py`` (MaskFormer, FC-CLIP)
writes into the ground truth, so label ``k`` of the TIFFs is entry ``k``."""

ADE_847_STUFF_IDS: tuple[int, ...] = _stuff_ids("ade847", ADE_847_CLASSES)
"""Indices into :data:`ADE_847_CLASSES` of the reference's ``ADE_847_STUFF_CLASS_ID``, in its order."""

ADE_847_THING_IDS: tuple[int, ...] = _all_but(ADE_847_STUFF_IDS, len(ADE_847_CLASSES))
"""Every ADE-847 index not in the stuff group, ascending (the reference's ``ADE_847_THING_CLASS_ID``)."""

CONTEXT_459_CLASSES: tuple[str, ...] = _class_list("context459", 459)
"""Queries for Context-459 class ids 1..459 (reference ``clip_as_rnn/data/pascal459.py``
``PASCAL_459_CLASSES``): the PASCAL-Context ``labels.txt`` names in label order,
``"unknown"`` (431) included, so label ``k`` of the ``annotations_ctx459`` TIFFs is entry ``k``."""

CONTEXT_459_STUFF_IDS: tuple[int, ...] = _stuff_ids("context459", CONTEXT_459_CLASSES)
"""Indices into :data:`CONTEXT_459_CLASSES` of the reference's ``PASCAL_459_STUFF_CLASS_ID``, in its order."""

CONTEXT_459_THING_IDS: tuple[int, ...] = _all_but(CONTEXT_459_STUFF_IDS, len(CONTEXT_459_CLASSES))
"""Every Context-459 index not in the stuff group, ascending (the reference's ``PASCAL_459_THING_CLASS_ID``)."""


def _first_synonyms(queries: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(query.split(",")[0].strip() for query in queries)


def _distinct_short_names(queries: tuple[str, ...]) -> tuple[str, ...]:
    """The first synonym, or the whole query where that first synonym is shared.

    ADE-847 has three classes starting "bag" and three starting "screen";
    per-class tables are keyed by display name, so each must be distinct.
    """
    first = _first_synonyms(queries)
    counts = Counter(first)
    return tuple(name if counts[name] == 1 else query for name, query in zip(first, queries, strict=True))


@dataclass(frozen=True)
class ClassVocabulary:
    """One dataset's classes: the CLIP query and a short display name per class id.

    Attributes:
        name: the vocabulary's name (``"voc"``, ``"coco_object"``, ...).
        queries: the exact string fed to CLIP for each class; entry ``i`` is
            class id ``i + 1``. May hold comma-separated synonyms (one query).
        display_names: a short name per class for legends and tables.
        source: where the query strings come from.
    """

    name: str
    queries: tuple[str, ...]
    display_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.display_names):
            raise ValueError(
                f"vocabulary {self.name!r}: {len(self.queries)} queries but "
                f"{len(self.display_names)} display names; give one of each per class"
            )
        if len(set(self.queries)) != len(self.queries):
            raise ValueError(f"vocabulary {self.name!r} has duplicate queries")

    def __len__(self) -> int:
        return len(self.queries)

    def synonyms(self, index: int) -> tuple[str, ...]:
        """The comma-separated parts of query ``index`` (display only; CaR queries the whole string).

        Arguments:
            index: 0-based class index (class id - 1).

        Returns:
            the stripped, non-empty parts, in order, duplicates removed.
        """
        parts = (part.strip() for part in self.queries[index].split(","))
        return tuple(dict.fromkeys(part for part in parts if part))

    def to_dict(self) -> dict:
        """JSON-ready dict (lists instead of tuples); inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "queries": list(self.queries),
            "display_names": list(self.display_names),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ClassVocabulary:
        """Rebuild a vocabulary from :meth:`to_dict`'s output.

        Arguments:
            data: a dict with keys ``name``, ``queries``, ``display_names``, ``source``.

        Returns:
            the equal :class:`ClassVocabulary`.
        """
        return cls(
            name=data["name"],
            queries=tuple(data["queries"]),
            display_names=tuple(data["display_names"]),
            source=data["source"],
        )


_REFERENCE = "google-research/google-research clip_as_rnn/"

VOC = ClassVocabulary("voc", VOC_CLASSES, VOC_DISPLAY_NAMES, _REFERENCE + "data/voc.py VOC_CLASSES")
COCO_OBJECT = ClassVocabulary(
    "coco_object",
    COCO_OBJECT_CLASSES,
    COCO_OBJECT_DISPLAY_NAMES,
    _REFERENCE + "data/coco.py COCO_OBJECT_CLASSES",
)
CONTEXT_59 = ClassVocabulary(
    "context",
    CONTEXT_59_CLASSES,
    CONTEXT_59_CLASSES,
    _REFERENCE + "data/context.py PASCAL_CONTEXT_CLASSES",
)
ADE_150 = ClassVocabulary(
    "ade150",
    ADE_150_CLASSES,
    _first_synonyms(ADE_150_CLASSES),
    _REFERENCE + "data/ade.py ADE_CLASSES",
)
ADE_847 = ClassVocabulary(
    "ade847",
    ADE_847_CLASSES,
    _distinct_short_names(ADE_847_CLASSES),
    _REFERENCE + "data/ade847.py ADE_847_CLASSES",
)
CONTEXT_459 = ClassVocabulary(
    "context459",
    CONTEXT_459_CLASSES,
    CONTEXT_459_CLASSES,
    _REFERENCE + "data/pascal459.py PASCAL_459_CLASSES",
)


def shapes_vocabulary() -> ClassVocabulary:
    """ShapesWorld's object classes as a vocabulary (read from :mod:`carlib.world.classes`).

    Imported here, not at module load, so the benchmark vocabularies and
    presets stay usable even when :mod:`carlib.world` cannot be imported.

    Returns:
        a :class:`ClassVocabulary` whose queries and display names are the
        single-word class names; class id ``i + 1`` is ``queries[i]``.
    """
    from carlib.world.classes import CLASS_NAMES

    return ClassVocabulary("shapes", tuple(CLASS_NAMES), tuple(CLASS_NAMES), "carlib/world/classes.py CLASS_NAMES")


def shapes_background_words() -> tuple[str, ...]:
    """ShapesWorld's background surface names (grass, sky, ...), its CaR background words.

    Returns:
        the names from :data:`carlib.world.classes.BACKGROUND_NAMES`, in order.
    """
    from carlib.world.classes import BACKGROUND_NAMES

    return tuple(BACKGROUND_NAMES)
