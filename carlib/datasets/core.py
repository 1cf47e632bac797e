"""The common interface of the benchmark readers: errors, label PNGs, the two dataset classes.

Every benchmark is read into one of two frozen objects:

- :class:`SemanticDataset` (VOC, Context, COCO-Object, ADE-150, ShapesWorld):
  ``ids()`` then ``load(sample_id)`` -> (HxWx3 uint8 RGB image, HxW int64
  labels 0..C-1 with 255 ignored).
- :class:`ReferringDataset` (RefCOCO, RefCOCO+, RefCOCOg): ``objects()`` then
  ``load(obj)`` -> (HxWx3 uint8 RGB image, HxW bool mask of the referred object).

A folder or file the layout needs is missing: :class:`FileNotFoundError`
with the expected tree. One sample cannot be read (missing, corrupt, wrong
size, unexpected label values): :class:`SampleReadError`, so that an
evaluation loop can count such samples and go on.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

IGNORE_LABEL = 255
DOCS_HINT = "see docs/datasets.md"


class SampleReadError(ValueError):
    """One sample of a dataset could not be read: its image or ground truth is missing or unusable.

    A distinct type so that an evaluation harness can count these and go on,
    while other errors (a wrong layout, a bug) still stop it.

    Attributes:
        sample_id: the sample (semantic id, or referring object id).
        path: the file that failed.
    """

    def __init__(self, sample_id: str, path: str | Path, reason: str) -> None:
        self.sample_id = str(sample_id)
        self.path = Path(path)
        super().__init__(f"sample {self.sample_id!r}: {reason}: {self.path}")


def layout_error(what: str, missing: str | Path, tree: str, docs_section: str) -> FileNotFoundError:
    """A :class:`FileNotFoundError` naming what is missing, the expected tree and the docs section.

    Arguments:
        what: the dataset's human name (``"PASCAL VOC 2012"``).
        missing: the path (or description) that was looked for.
        tree: the expected layout, one entry per line.
        docs_section: the heading in docs/datasets.md.

    Returns:
        the error, to be raised by the caller.
    """
    return FileNotFoundError(
        f"{what}: not found: {missing}\nExpected layout:\n{tree.rstrip()}\n({DOCS_HINT}, section '{docs_section}')"
    )


def read_label_png(path: Path, sample_id: str) -> np.ndarray:
    """Read a single-channel label PNG as its stored integer values.

    Palette (``P``) PNGs give their indices, not colours (``np.asarray`` of a
    mode-P image is the index map); ``L`` and 16-bit PNGs give their values.

    Arguments:
        path: the PNG.
        sample_id: the sample it belongs to (for the error).

    Returns:
        H x W int64 array of the stored values.

    Raises:
        SampleReadError: the file is missing, not a readable image, or has
            colour channels (an RGB rendering of the labels instead of indices).
    """
    if not path.is_file():
        raise SampleReadError(sample_id, path, "ground-truth file missing")
    try:
        with Image.open(path) as opened:
            opened.load()
            mode = opened.mode
            if mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
                raise SampleReadError(
                    sample_id,
                    path,
                    f"ground truth must be a single-channel (palette or grey) PNG or TIFF of label ids, got mode {mode}",
                )
            labels = np.asarray(opened)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise SampleReadError(sample_id, path, f"cannot read ground truth ({error})") from error
    return labels.astype(np.int64)


def read_image(path: Path, sample_id: str) -> np.ndarray:
    """Read a dataset image as HxWx3 uint8 RGB (:func:`carlib.images.load_image`).

    Raises:
        SampleReadError: the file is missing or not a readable image.
    """
    from carlib.images import load_image

    if not path.is_file():
        raise SampleReadError(sample_id, path, "image file missing")
    try:
        return load_image(path)
    except (ValueError, OSError) as error:
        raise SampleReadError(sample_id, path, f"cannot read image ({error})") from error


def drop_background(labels: np.ndarray, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """Label 0 becomes ``ignore_label`` and every other label moves down by one.

    The "without background" setting (VOC-20, Context-59) and mmseg's
    ``reduce_zero_label`` (ADE-150, whose 0 means "other"); the same
    arithmetic as :func:`carlib.evaluation.metrics.foreground_only`.

    Arguments:
        labels: H x W int64 raw labels (0 = background, 1..C, ``ignore_label``).

    Returns:
        a new H x W int64 array: 0..C-1, ``ignore_label`` where the input was 0
        or ``ignore_label``.
    """
    out = labels.astype(np.int64, copy=True)
    ignored = (labels == 0) | (labels == ignore_label)
    out -= 1
    out[ignored] = ignore_label
    return out


@dataclass(frozen=True)
class SemanticDataset:
    """One split of a semantic-segmentation benchmark in its on-disk layout.

    Build it with :func:`carlib.datasets.open_dataset`. Sample ``i`` is read
    from ``image_dir / (id + image_suffix)`` and
    ``label_dir / (id + label_suffix)``.

    Attributes:
        name: the benchmark setting (``"voc21"``, ``"voc20"``, ``"context60"``,
            ``"context59"``, ``"coco_object"``, ``"ade150"``, ``"shapes"``).
        preset: the :func:`carlib.presets.get_preset` name to run on it.
        split: the split read (``"val"``, ...).
        root: the dataset folder the paths below live in.
        class_names: one display name per label 0..C-1 (``"background"``
            first when :attr:`has_background`).
        has_background: label 0 is the background class. Then label ``k`` is
            the preset's query ``k - 1`` (CaR's label maps use the same ids);
            otherwise label ``k`` is query ``k`` and CaR's background has no
            label (only ground-truth foreground pixels are scored).
        image_dir: folder of the images.
        label_dir: folder of the ground-truth PNGs.
        image_suffix: file name ending of an image (``".jpg"``).
        label_suffix: file name ending of a label PNG (``".png"``,
            ``"_instanceTrainIds.png"``).
        sample_ids: the split's ids, sorted.
        reduce_zero: stored label 0 becomes 255 and labels shift down by one
            (:func:`drop_background`) on loading.
        ignore_label: ground-truth value that is not scored.
    """

    name: str
    preset: str
    split: str
    root: Path
    class_names: tuple[str, ...]
    has_background: bool
    image_dir: Path
    label_dir: Path
    image_suffix: str
    label_suffix: str
    sample_ids: tuple[str, ...] = field(repr=False)
    reduce_zero: bool = False
    ignore_label: int = IGNORE_LABEL

    @property
    def num_classes(self) -> int:
        """Number of scored labels, background included where it is a class (VOC-21: 21)."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.sample_ids)

    def ids(self) -> list[str]:
        """The split's sample ids, sorted (a new list each call)."""
        return list(self.sample_ids)

    def image_path(self, sample_id: str) -> Path:
        """Where the image of ``sample_id`` is stored."""
        return self.image_dir / f"{sample_id}{self.image_suffix}"

    def label_path(self, sample_id: str) -> Path:
        """Where the ground truth of ``sample_id`` is stored."""
        return self.label_dir / f"{sample_id}{self.label_suffix}"

    def load(self, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Read one sample.

        Arguments:
            sample_id: one of :meth:`ids`.

        Returns:
            ``(image, labels)``: H x W x 3 uint8 RGB, and H x W int64 labels in
            0..C-1 with :attr:`ignore_label` (255) for unscored pixels.

        Raises:
            SampleReadError: the image or ground truth is missing or unreadable,
                their sizes differ, or the ground truth holds a value outside
                0..C-1 and 255 (a sign of a wrong layout or conversion).
        """
        image = read_image(self.image_path(sample_id), sample_id)
        label_path = self.label_path(sample_id)
        labels = read_label_png(label_path, sample_id)
        if labels.shape != image.shape[:2]:
            raise SampleReadError(
                sample_id,
                label_path,
                f"ground truth is {labels.shape[1]}x{labels.shape[0]} but the image is "
                f"{image.shape[1]}x{image.shape[0]} (width x height)",
            )
        if self.reduce_zero:
            labels = drop_background(labels, self.ignore_label)
        scored = labels[labels != self.ignore_label]
        if scored.size and (scored.min() < 0 or scored.max() >= self.num_classes):
            bad = int(scored.max()) if scored.max() >= self.num_classes else int(scored.min())
            raise SampleReadError(
                sample_id,
                label_path,
                f"label value {bad} outside 0..{self.num_classes - 1} and not {self.ignore_label} "
                "(is this the converted layout? see docs/datasets.md)",
            )
        return image, labels


@dataclass(frozen=True)
class ReferringObject:
    """One referred object: a COCO instance annotation and every sentence that describes it.

    Attributes:
        id: the ref id (``str(ref["ref_id"])``), unique in the dataset.
        image_id: the COCO image id.
        ann_id: the COCO annotation id of the object.
        category_id: its COCO category id.
        sentences: every referring expression of the object, in file order.
        split: the split the ref belongs to (``"val"``, ``"testA"``, ...).
        file_name: the image's file name (``COCO_train2014_....jpg``).
    """

    id: str
    image_id: int
    ann_id: int
    category_id: int
    sentences: tuple[str, ...]
    split: str
    file_name: str


@dataclass(frozen=True, eq=False)
class ReferringDataset:
    """One split of a referring-segmentation benchmark (RefCOCO, RefCOCO+, RefCOCOg).

    Build it with :func:`carlib.datasets.open_dataset`. Masks are decoded only
    in :meth:`load`, from the COCO annotation's segmentation.

    Attributes:
        name: ``"refcoco"``, ``"refcoco+"`` or ``"refcocog"``.
        preset: the :func:`carlib.presets.get_preset` name to run on it.
        split: the split read (``"val"``, ``"testA"``, ``"testB"``, ``"test"``).
        split_by: the refs file's partition (``"unc"``, ``"umd"``, ``"google"``).
        root: the dataset folder (holding ``refs(<split_by>).p`` and ``instances.json``).
        image_dir: folder of the COCO train2014 images.
        referred: the split's objects, sorted by ref id.
        images: COCO image id -> the ``images`` entry of instances.json.
        annotations: COCO annotation id -> the ``annotations`` entry.
    """

    name: str
    preset: str
    split: str
    split_by: str
    root: Path
    image_dir: Path
    referred: tuple[ReferringObject, ...] = field(repr=False)
    images: Mapping[int, Mapping[str, Any]] = field(repr=False)
    annotations: Mapping[int, Mapping[str, Any]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.referred)

    def objects(self) -> list[ReferringObject]:
        """The split's referred objects, sorted by ref id (a new list each call)."""
        return list(self.referred)

    def image_path(self, obj: ReferringObject) -> Path:
        """Where the image of ``obj`` is stored."""
        return self.image_dir / obj.file_name

    def load(self, obj: ReferringObject | str) -> tuple[np.ndarray, np.ndarray]:
        """Read one referred object's image and ground-truth mask.

        Arguments:
            obj: one of :meth:`objects` (or its id).

        Returns:
            ``(image, mask)``: H x W x 3 uint8 RGB, and the H x W bool mask of
            the object (union of its polygons, or its RLE, decoded with
            pycocotools).

        Raises:
            SampleReadError: the image is missing or unreadable, its size
                differs from instances.json's, or the segmentation cannot be decoded.
            KeyError: an id not in this split.
        """
        if isinstance(obj, str):
            by_id = {item.id: item for item in self.referred}
            obj = by_id[obj]
        path = self.image_path(obj)
        image = read_image(path, obj.id)
        info = self.images[obj.image_id]
        height, width = int(info["height"]), int(info["width"])
        if image.shape[:2] != (height, width):
            raise SampleReadError(
                obj.id,
                path,
                f"image is {image.shape[1]}x{image.shape[0]} but instances.json says {width}x{height}",
            )
        annotation = self.annotations[obj.ann_id]
        try:
            mask = segmentation_mask(annotation["segmentation"], height, width)
        except (ValueError, TypeError, KeyError) as error:
            raise SampleReadError(
                obj.id, self.root / "instances.json", f"cannot decode segmentation of annotation {obj.ann_id} ({error})"
            ) from error
        return image, mask


def segmentation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode a COCO ``segmentation`` field to a bool mask (what ``COCO.annToMask`` gives).

    Arguments:
        segmentation: a list of polygons ``[[x0, y0, x1, y1, ...], ...]`` (the
            parts are united), an uncompressed RLE ``{"size": [h, w],
            "counts": [ints]}`` or a compressed one (``counts`` a string).
        height: image height.
        width: image width.

    Returns:
        H x W bool mask.

    Raises:
        ValueError: an empty or malformed segmentation.
    """
    from pycocotools import mask as coco_mask

    if isinstance(segmentation, list):
        if not segmentation or any(len(polygon) < 6 or len(polygon) % 2 for polygon in segmentation):
            raise ValueError("polygons need at least 3 (x, y) points each")
        rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = coco_mask.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict):
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    else:
        raise ValueError(f"unsupported segmentation of type {type(segmentation).__name__}")
    with warnings.catch_warnings():
        # pycocotools 2.0.x's Cython decoder trips numpy 2's __array__(copy=...) deprecation; harmless.
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword")
        decoded = coco_mask.decode(rle)
    if decoded.ndim == 3:
        decoded = decoded.any(axis=2)
    if decoded.shape != (height, width):
        raise ValueError(f"decoded mask is {decoded.shape}, expected {(height, width)}")
    return decoded.astype(bool)


def first_existing(candidates: list[Path]) -> Path | None:
    """The first path of ``candidates`` that exists, or None."""
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return None
