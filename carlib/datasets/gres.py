"""gRefCOCO, the GRES benchmark: referring expressions for one object, several, or none.

The layout is the one the dataset's authors release (henghuiding/ReLA, read
by its ``grefer.py`` ``G_REFER``; the official CaR code reads the same
files, ``clip_as_rnn/data/gres.py``): under one data folder,
``grefcoco/grefs(unc).json`` (the refs) and ``grefcoco/instances.json``
(COCO-style images, annotations, categories), and the COCO train2014 images
under ``images/train2014/`` (ReLA) or ``images/mscoco/images/train2014/``
(the official CaR loader).

Each ref is a dict with ``ref_id``, ``image_id``, ``split``, ``sentences``
(each with ``raw``/``sent`` and ``sent_id``), ``category_id`` and
``ann_id``: a *list* of annotation ids, ``[-1]`` for a no-target
expression (an empty list, or ``no_target: true``, are read the same way).
As ReLA does, every sentence is one sample, whose ground truth is the union
of the ref's non-crowd annotations (empty for no-target).

The official CaR loader differs in one way that matters: its ground truth is
the *first* annotation's mask only (``getMaskByRef`` without ``merge``), so
a multi-target expression is scored against one of its objects. carlib
follows the benchmark (the union) and says so in the preset's notes.

A ``grefs(unc).p`` pickle, if that is what the folder holds, is read with
the plain-data unpickler of :mod:`carlib.datasets.referring`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carlib.datasets.core import SampleReadError, first_existing, layout_error, read_image, segmentation_mask
from carlib.datasets.referring import SentenceField, load_refs, read_instances

PathLike = str | Path

GRES_NAME = "gres"
DATASET_FOLDER = "grefcoco"
GRES_SPLITS: tuple[str, ...] = ("train", "val", "testA", "testB")
IMAGE_DIR_CANDIDATES = ("images/train2014", "images/mscoco/images/train2014")
"""Where the COCO train2014 images may be, relative to the data folder: ReLA's, then the official CaR loader's."""
DOCS_SECTION = "gRefCOCO (GRES)"
NO_TARGET_ANN_ID = -1

GRES_TREE = (
    "DATA_ROOT/\n"
    "  grefcoco/\n"
    "    grefs(unc).json   (the gRefCOCO refs; or grefs(unc).p)\n"
    "    instances.json\n"
    "  images/train2014/COCO_train2014_<id>.jpg   (or images/mscoco/images/train2014/)\n"
)


@dataclass(frozen=True)
class GresExpression:
    """One GRES sample: one sentence of a gRefCOCO ref, and the objects it refers to.

    Attributes:
        id: ``"<ref_id>_<sentence index>"``, unique in the dataset and safe as a file name.
        ref_id: the ref the sentence belongs to.
        image_id: the COCO image id.
        ann_ids: the COCO annotation ids referred to (empty for a no-target expression).
        sentence: the expression.
        split: the ref's split.
        file_name: the image's file name.
    """

    id: str
    ref_id: int
    image_id: int
    ann_ids: tuple[int, ...]
    sentence: str
    split: str
    file_name: str

    @property
    def no_target(self) -> bool:
        """True when the expression refers to nothing in the image."""
        return not self.ann_ids


@dataclass(frozen=True, eq=False)
class GresDataset:
    """One split of gRefCOCO, one sample per expression (build it with :func:`open_gres`).

    Attributes:
        name: ``"gres"``.
        preset: the :func:`carlib.presets.get_preset` name to run on it.
        split: the split read.
        root: the ``grefcoco/`` folder.
        image_dir: folder of the COCO train2014 images.
        expressions: the split's samples, sorted by ref id then sentence order.
        images: COCO image id -> the ``images`` entry of instances.json.
        annotations: COCO annotation id -> the ``annotations`` entry.
    """

    name: str
    preset: str
    split: str
    root: Path
    image_dir: Path
    expressions: tuple[GresExpression, ...] = field(repr=False)
    images: Mapping[int, Mapping[str, Any]] = field(repr=False)
    annotations: Mapping[int, Mapping[str, Any]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.expressions)

    def objects(self) -> list[GresExpression]:
        """The split's expressions (a new list each call); named as :class:`ReferringDataset`'s, for the harness."""
        return list(self.expressions)

    def image_path(self, expression: GresExpression) -> Path:
        """Where the image of ``expression`` is stored."""
        return self.image_dir / expression.file_name

    def load(self, expression: GresExpression | str) -> tuple[np.ndarray, np.ndarray]:
        """Read one expression's image and ground truth.

        Arguments:
            expression: one of :meth:`objects` (or its id).

        Returns:
            ``(image, mask)``: H x W x 3 uint8 RGB, and the H x W bool union of
            the referred objects' non-crowd masks (all False for no-target).

        Raises:
            SampleReadError: the image is missing or unreadable, its size
                differs from instances.json's, or a segmentation cannot be decoded.
            KeyError: an id not in this split.
        """
        if isinstance(expression, str):
            expression = {item.id: item for item in self.expressions}[expression]
        path = self.image_path(expression)
        image = read_image(path, expression.id)
        info = self.images[expression.image_id]
        height, width = int(info["height"]), int(info["width"])
        if image.shape[:2] != (height, width):
            raise SampleReadError(
                expression.id,
                path,
                f"image is {image.shape[1]}x{image.shape[0]} but instances.json says {width}x{height}",
            )
        mask = np.zeros((height, width), dtype=bool)
        for ann_id in expression.ann_ids:
            annotation = self.annotations[ann_id]
            if annotation.get("iscrowd", 0):
                continue  # ReLA skips crowd annotations in the merged ground truth
            try:
                mask |= segmentation_mask(annotation["segmentation"], height, width)
            except (ValueError, TypeError, KeyError) as error:
                raise SampleReadError(
                    expression.id,
                    self.root / "instances.json",
                    f"cannot decode segmentation of annotation {ann_id} ({error})",
                ) from error
        return image, mask


def _ann_ids(ref: Mapping[str, Any], path: Path) -> tuple[int, ...]:
    raw = ref["ann_id"]
    ids = [int(value) for value in (raw if isinstance(raw, (list, tuple)) else [raw])]
    real = tuple(dict.fromkeys(value for value in ids if value != NO_TARGET_ANN_ID))
    if ref.get("no_target") and real:
        raise ValueError(f"{path}: ref {ref['ref_id']} says no_target but lists annotations {list(real)}")
    if NO_TARGET_ANN_ID in ids and real:
        raise ValueError(f"{path}: ref {ref['ref_id']} mixes the no-target id -1 with annotations {list(real)}")
    return real


def _read_refs(root: Path, split_by: str) -> tuple[Path, list[dict[str, Any]]]:
    json_path, pickle_path = root / f"grefs({split_by}).json", root / f"grefs({split_by}).p"
    if json_path.is_file():
        try:
            refs = json.loads(json_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"cannot read refs file {json_path}: {error}") from error
        required = {"ref_id", "ann_id", "image_id", "split", "sentences"}
        if not isinstance(refs, list) or not all(isinstance(r, dict) and required <= r.keys() for r in refs):
            raise ValueError(
                f"{json_path} is not a gRefCOCO refs file: expected a list of dicts with keys {sorted(required)}"
            )
        return json_path, refs
    if pickle_path.is_file():
        return pickle_path, load_refs(pickle_path)
    raise layout_error("gRefCOCO", json_path, GRES_TREE, DOCS_SECTION)


def _locate(data_root: Path) -> tuple[Path | None, Path]:
    """(grefcoco folder or None, data folder) for ``data_root`` = the data folder or the grefcoco folder."""
    if (data_root / DATASET_FOLDER).is_dir():
        return data_root / DATASET_FOLDER, data_root
    if data_root.name == DATASET_FOLDER and data_root.is_dir():
        return data_root, data_root.parent
    return None, data_root


def _check_split(split: str | None) -> str:
    split = split or "val"
    if split not in GRES_SPLITS:
        raise ValueError(f"gRefCOCO: unknown split {split!r}; choose one of {', '.join(GRES_SPLITS)}")
    return split


def open_gres(
    data_root: PathLike,
    split: str | None = None,
    *,
    split_by: str | None = None,
    image_dir: PathLike | None = None,
    sentence_field: SentenceField = "raw",
) -> GresDataset:
    """Open gRefCOCO (see :func:`carlib.datasets.open_dataset`).

    Arguments:
        data_root: the data folder holding ``grefcoco/``, or ``grefcoco/`` itself.
        split: ``"val"`` (default), ``"testA"``, ``"testB"`` or ``"train"``.
        split_by: the refs file's partition; gRefCOCO has only ``"unc"`` (the default).
        image_dir: the COCO train2014 images, if not in the data folder.
        sentence_field: ``"raw"`` (default, what ReLA and the CaR loader read) or ``"sent"``.

    Returns:
        the :class:`GresDataset`; sentences whose text is empty are skipped, as
        the official CaR loader skips them.

    Raises:
        FileNotFoundError: the folder, refs file, instances.json or image folder is
            missing (the message shows the expected layout).
        ValueError: unknown split, or files that are not gRefCOCO's (a ref whose
            annotation or image instances.json lacks; a no-target ref with annotations).
    """
    split = _check_split(split)
    split_by = split_by or "unc"
    if split_by != "unc":
        raise ValueError(f"gRefCOCO has only the 'unc' partition, not {split_by!r}")
    if sentence_field not in ("raw", "sent"):
        raise ValueError(f"sentence_field must be 'raw' or 'sent', not {sentence_field!r}")
    data_root = Path(data_root)
    root, base = _locate(data_root)
    if root is None:
        raise layout_error("gRefCOCO", f"folder {data_root / DATASET_FOLDER}", GRES_TREE, DOCS_SECTION)
    instances_path = root / "instances.json"
    refs_path, all_refs = _read_refs(root, split_by)
    if not instances_path.is_file():
        raise layout_error("gRefCOCO", instances_path, GRES_TREE, DOCS_SECTION)
    images_folder = (
        Path(image_dir)
        if image_dir is not None
        else first_existing([base / candidate for candidate in IMAGE_DIR_CANDIDATES])
    )
    if images_folder is None or not images_folder.is_dir():
        looked = str(image_dir) if image_dir is not None else " or ".join(str(base / c) for c in IMAGE_DIR_CANDIDATES)
        raise layout_error("gRefCOCO", f"image folder {looked}", GRES_TREE, DOCS_SECTION)

    refs = sorted((ref for ref in all_refs if str(ref["split"]) == split), key=lambda ref: int(ref["ref_id"]))
    targets = {int(ref["ref_id"]): _ann_ids(ref, refs_path) for ref in refs}
    annotations, images = read_instances(
        instances_path,
        {ann_id for ids in targets.values() for ann_id in ids},
        {int(ref["image_id"]) for ref in refs},
        f"the gRefCOCO {split} refs",
    )

    expressions = []
    for ref in refs:
        ref_id = int(ref["ref_id"])
        for index, sentence in enumerate(ref["sentences"]):
            text = sentence.get(sentence_field, sentence.get("sent" if sentence_field == "raw" else "raw"))
            if text is None:
                raise ValueError(f"{refs_path}: ref {ref_id}: a sentence has neither 'raw' nor 'sent'")
            if not str(text).strip():
                continue
            expressions.append(
                GresExpression(
                    id=f"{ref_id}_{index}",
                    ref_id=ref_id,
                    image_id=int(ref["image_id"]),
                    ann_ids=targets[ref_id],
                    sentence=str(text),
                    split=split,
                    file_name=str(images[int(ref["image_id"])]["file_name"]),
                )
            )
    return GresDataset(
        name=GRES_NAME,
        preset=GRES_NAME,
        split=split,
        root=root,
        image_dir=images_folder,
        expressions=tuple(expressions),
        images=images,
        annotations=annotations,
    )


def check_gres(data_root: PathLike, split: str | None = None, *, split_by: str | None = None) -> list[str]:
    """What is missing for gRefCOCO under ``data_root`` (empty: complete). Checks files by name only."""
    try:
        _check_split(split)
    except ValueError as error:
        return [str(error)]
    split_by = split_by or "unc"
    if split_by != "unc":
        return [f"gRefCOCO has only the 'unc' partition, not {split_by!r}"]
    data_root = Path(data_root)
    root, base = _locate(data_root)
    if root is None:
        return [f"missing dataset folder {data_root / DATASET_FOLDER}"]
    problems = []
    if not ((root / f"grefs({split_by}).json").is_file() or (root / f"grefs({split_by}).p").is_file()):
        problems.append(f"missing refs file {root / f'grefs({split_by}).json'}")
    if not (root / "instances.json").is_file():
        problems.append(f"missing {root / 'instances.json'}")
    images_folder = first_existing([base / candidate for candidate in IMAGE_DIR_CANDIDATES])
    if images_folder is None:
        looked = " or ".join(str(base / candidate) for candidate in IMAGE_DIR_CANDIDATES)
        problems.append(f"missing COCO train2014 image folder: {looked}")
    elif not any(images_folder.glob("*.jpg")):
        problems.append(f"no .jpg images in {images_folder}")
    return problems
