"""RefCOCO, RefCOCO+ and RefCOCOg in the layout of the ``refer`` toolkit.

Follows the official CaR loader (google-research/google-research
``clip_as_rnn/data/refcoco.py``, class ``REFER``, adapted from LAVT): under
one data folder, ``<dataset>/refs(<split_by>).p`` (the dataset authors'
pickle of refs) and ``<dataset>/instances.json`` (COCO-style images,
annotations with polygon segmentations, categories), and the COCO train2014
images under ``images/mscoco/images/train2014/``.

**The refs files are pickles.** Unpickling can run code, so they are read
only from the folder the caller names (never from anywhere else), and with
an unpickler that refuses to build any object other than plain lists,
dicts, strings and numbers, which is all the authors' files contain.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, Literal

from carlib.datasets.core import ReferringDataset, ReferringObject, first_existing, layout_error

PathLike = str | Path
SentenceField = Literal["raw", "sent"]

REFERRING_NAMES = ("refcoco", "refcoco+", "refcocog")

DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}

SPLITS: dict[tuple[str, str], tuple[str, ...]] = {
    ("refcoco", "unc"): ("train", "val", "testA", "testB"),
    ("refcoco+", "unc"): ("train", "val", "testA", "testB"),
    ("refcocog", "umd"): ("train", "val", "test"),
    ("refcocog", "google"): ("train", "val"),
}
"""(dataset, split_by) -> its splits. The paper evaluates val/testA/testB (RefCOCO,
RefCOCO+), val/test of umd and val of google (RefCOCOg)."""

IMAGE_DIR_CANDIDATES = ("images/mscoco/images/train2014", "images/train2014")
"""Where the COCO train2014 images may be, relative to the data folder: the
refer toolkit's layout (the reference's ``IMAGE_DIR``) first."""

DOCS_SECTION = "RefCOCO, RefCOCO+, RefCOCOg"


def referring_tree(name: str) -> str:
    """The expected layout for ``name``, as printed in errors."""
    refs = "refs(umd).p, refs(google).p" if name == "refcocog" else "refs(unc).p"
    return (
        "DATA_ROOT/                       (the refer toolkit's data/ folder)\n"
        f"  {name}/\n"
        f"    {refs}   (the dataset authors' pickles)\n"
        "    instances.json\n"
        "  images/mscoco/images/train2014/COCO_train2014_<id>.jpg   (or images/train2014/)\n"
    )


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles lists, dicts, tuples, strings and numbers only; any class or function is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"the refs file asks to build {module}.{name}; only plain lists, dicts, strings and numbers "
            "are accepted (is this the refer toolkit's refs file?)"
        )


def read_instances(
    instances_path: Path, wanted_annotations: set[int], wanted_images: set[int], refs_named: str
) -> tuple[dict[int, dict], dict[int, dict]]:
    """The COCO annotations and images (by id) that a refs file refers to, from ``instances.json``.

    Raises:
        ValueError: an annotation or image the refs name is not in the file (``refs_named`` says whose refs).
    """
    instances = json.loads(Path(instances_path).read_text())
    annotations = {int(a["id"]): a for a in instances.get("annotations", []) if int(a["id"]) in wanted_annotations}
    images = {int(i["id"]): i for i in instances.get("images", []) if int(i["id"]) in wanted_images}
    missing = sorted(wanted_annotations - annotations.keys())
    if missing:
        raise ValueError(
            f"{instances_path} lacks {len(missing)} annotation(s) {refs_named} refer to "
            f"(first: {missing[:3]}); refs file and instances.json do not belong together"
        )
    missing = sorted(wanted_images - images.keys())
    if missing:
        raise ValueError(f"{instances_path} lacks {len(missing)} image(s) the refs refer to (first: {missing[:3]})")
    return annotations, images


def load_refs(path: Path) -> list[dict[str, Any]]:
    """Read a refer ``refs(*).p`` pickle from exactly ``path``, refusing anything but plain data.

    Arguments:
        path: the refs file the caller's data folder holds.

    Returns:
        the list of ref dicts.

    Raises:
        ValueError: not a pickle of plain data, or not a list of refs.
    """
    try:
        with open(path, "rb") as handle:
            refs = _PlainDataUnpickler(handle, encoding="utf-8").load()
    except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"cannot read refs file {path}: {error}") from error
    required = {"ref_id", "ann_id", "image_id", "split", "sentences"}
    if not isinstance(refs, list) or not all(isinstance(ref, dict) and required <= ref.keys() for ref in refs):
        raise ValueError(f"{path} is not a refer refs file: expected a list of dicts with keys {sorted(required)}")
    return refs


def _in_split(ref_split: str, split: str) -> bool:
    # The reference's getRefIds: testA/testB match any test split containing the letter,
    # "test" any split starting with test, train/val exactly.
    if split in ("testA", "testB", "testC"):
        return ref_split.startswith("test") and split[-1] in ref_split[4:]
    if split == "test":
        return ref_split.startswith("test")
    return ref_split == split


def _sentences(ref: dict[str, Any], field: SentenceField) -> tuple[str, ...]:
    sentences = []
    for sentence in ref["sentences"]:
        text = sentence.get(field, sentence.get("sent" if field == "raw" else "raw"))
        if text is None:
            raise ValueError(f"ref {ref['ref_id']}: a sentence has neither 'raw' nor 'sent'")
        sentences.append(str(text))
    return tuple(sentences)


def _locate(name: str, data_root: Path) -> tuple[Path | None, Path]:
    """(dataset folder or None, data folder) for ``data_root`` = the data folder or the dataset folder."""
    if (data_root / name).is_dir():
        return data_root / name, data_root
    if data_root.name == name and data_root.is_dir():
        return data_root, data_root.parent
    return None, data_root


def _check_names(name: str, split_by: str | None, split: str | None) -> tuple[str, str]:
    if name not in REFERRING_NAMES:
        raise ValueError(f"unknown referring dataset {name!r}; choose one of {', '.join(REFERRING_NAMES)}")
    split_by = split_by or DEFAULT_SPLIT_BY[name]
    split = split or "val"
    if (name, split_by) not in SPLITS:
        known = ", ".join(by for (dataset, by) in SPLITS if dataset == name)
        raise ValueError(f"{name}: unknown split_by {split_by!r}; choose one of {known}")
    if split not in SPLITS[(name, split_by)]:
        raise ValueError(
            f"{name} ({split_by}): unknown split {split!r}; choose one of {', '.join(SPLITS[(name, split_by)])}"
        )
    return split_by, split


def open_referring(
    name: str,
    data_root: PathLike,
    split: str | None = None,
    *,
    split_by: str | None = None,
    image_dir: PathLike | None = None,
    sentence_field: SentenceField = "raw",
) -> ReferringDataset:
    """Open a referring benchmark (see :func:`carlib.datasets.open_dataset`).

    Arguments:
        name: ``"refcoco"``, ``"refcoco+"`` or ``"refcocog"``.
        data_root: the refer toolkit's data folder (holding ``<name>/``), or
            the ``<name>/`` folder itself. Its ``refs(<split_by>).p`` is
            unpickled (plain data only); no other pickle is ever read.
        split: ``"val"`` (default), ``"testA"``, ``"testB"``, ``"test"``, ``"train"``.
        split_by: ``"unc"`` (RefCOCO, RefCOCO+; default), ``"umd"`` (RefCOCOg
            default) or ``"google"`` (RefCOCOg).
        image_dir: the COCO train2014 images, if not in the data folder.
        sentence_field: ``"raw"`` (the original sentence, what the reference
            loader feeds CaR) or ``"sent"`` (refer's lower-cased, tokenised form).

    Returns:
        the :class:`ReferringDataset`.

    Raises:
        FileNotFoundError: the dataset folder, refs file, instances.json or
            image folder is missing (the message shows the expected layout).
        ValueError: unknown split / split_by, or files that are not the refer
            toolkit's (a ref whose annotation or image instances.json lacks).
    """
    split_by, split = _check_names(name, split_by, split)
    if sentence_field not in ("raw", "sent"):
        raise ValueError(f"sentence_field must be 'raw' or 'sent', not {sentence_field!r}")
    data_root = Path(data_root)
    tree = referring_tree(name)
    root, base = _locate(name, data_root)
    if root is None:
        raise layout_error(name, f"folder {data_root / name}", tree, DOCS_SECTION)
    refs_path = root / f"refs({split_by}).p"
    instances_path = root / "instances.json"
    for path in (refs_path, instances_path):
        if not path.is_file():
            raise layout_error(name, path, tree, DOCS_SECTION)
    images_folder = (
        Path(image_dir)
        if image_dir is not None
        else first_existing([base / candidate for candidate in IMAGE_DIR_CANDIDATES])
    )
    if images_folder is None or not images_folder.is_dir():
        looked = str(image_dir) if image_dir is not None else " or ".join(str(base / c) for c in IMAGE_DIR_CANDIDATES)
        raise layout_error(name, f"image folder {looked}", tree, DOCS_SECTION)

    refs = [ref for ref in load_refs(refs_path) if _in_split(str(ref["split"]), split)]
    annotations, images = read_instances(
        instances_path,
        {int(ref["ann_id"]) for ref in refs},
        {int(ref["image_id"]) for ref in refs},
        f"the refs of {name} {split}",
    )

    objects = tuple(
        ReferringObject(
            id=str(ref["ref_id"]),
            image_id=int(ref["image_id"]),
            ann_id=int(ref["ann_id"]),
            category_id=int(ref.get("category_id", annotations[int(ref["ann_id"])].get("category_id", 0))),
            sentences=_sentences(ref, sentence_field),
            split=str(ref["split"]),
            file_name=str(images[int(ref["image_id"])]["file_name"]),
        )
        for ref in sorted(refs, key=lambda ref: int(ref["ref_id"]))
    )
    return ReferringDataset(
        name=name,
        preset=name,
        split=split,
        split_by=split_by,
        root=root,
        image_dir=images_folder,
        referred=objects,
        images=images,
        annotations=annotations,
    )


def check_referring(
    name: str, data_root: PathLike, split: str | None = None, *, split_by: str | None = None
) -> list[str]:
    """What is missing for a referring benchmark under ``data_root`` (empty: complete).

    Checks the files by name only: the refs pickle is not opened.
    """
    try:
        split_by, split = _check_names(name, split_by, split)
    except ValueError as error:
        return [str(error)]
    data_root = Path(data_root)
    root, base = _locate(name, data_root)
    if root is None:
        return [f"missing dataset folder {data_root / name}"]
    problems = []
    refs_path = root / f"refs({split_by}).p"
    if not refs_path.is_file():
        present = sorted(path.name for path in root.glob("refs(*).p"))
        extra = f" (present: {', '.join(present)})" if present else ""
        problems.append(f"missing refs file {refs_path}{extra}")
    if not (root / "instances.json").is_file():
        problems.append(f"missing {root / 'instances.json'}")
    images_folder = first_existing([base / candidate for candidate in IMAGE_DIR_CANDIDATES])
    if images_folder is None:
        looked = " or ".join(str(base / candidate) for candidate in IMAGE_DIR_CANDIDATES)
        problems.append(f"missing COCO train2014 image folder: {looked}")
    elif not any(images_folder.glob("*.jpg")):
        problems.append(f"no .jpg images in {images_folder}")
    return problems
