"""Semantic benchmarks in their commonly used on-disk layouts.

Each layout follows the loader of the official CaR code
(google-research/google-research ``clip_as_rnn/data/*.py`` and
``evaluate.py``), which in turn follows mmsegmentation / GroupViT / FC-CLIP:

- PASCAL VOC 2012 (``voc.py``, torchvision ``VOCSegmentation``):
  ``VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation/val.txt}``;
  palette PNGs, 0 background, 1..20, 255 border. ShapesWorld's
  ``carlib world export --format voc`` writes the same layout.
- PASCAL Context (``context.py``, ``year='2010'`` in ``evaluate.py``):
  ``VOCdevkit/VOC2010/{JPEGImages,SegmentationClassContext,ImageSets/SegmentationContext/val.txt}``
  as mmseg's detail-api conversion writes it; 0 background, 1..59.
- COCO-Object (``coco.py``): ``images/val2017/<id>.jpg`` and
  ``annotations/val2017/<id>_instanceTrainIds.png`` from GroupViT's
  conversion of COCO-Stuff; 0 background, 1..80.
- ADE20K-150 (``ade.py``): ``ADEChallengeData2016/images/validation/<id>.jpg``
  and ``annotations/validation/<id>.png``; 0 "other", 1..150.
- ADE20K-full, 847 classes (``ade847.py``): ``ADE20K_2021_17_01/images_detectron2/validation/<id>.jpg``
  and ``annotations_detectron2/validation/<id>.tif`` as MaskFormer's / FC-CLIP's
  ``datasets/prepare_ade20k_full_sem_seg.py`` writes them: 16-bit TIFFs,
  0..846 = class index, 65535 unlabelled.
- PASCAL Context, 459 classes (``pascal459.py``): ``pascal_ctx_d2/images/validation/<id>.jpg``
  and ``annotations_ctx459/validation/<id>.tif`` as FC-CLIP's / ODISE's
  ``datasets/prepare_pascal_ctx_full_sem_seg.py`` writes them: 16-bit TIFFs,
  ``LabelMap - 1`` (0..458 = class index), 65535 unlabelled.

The two full label sets need more than 8 bits, so their ignore value is
65535, not 255 (255 is ADE-847's "pier"), and a label file of 8 bits per
pixel is refused rather than read as classes 0..255.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from carlib.datasets.core import IGNORE_LABEL, SampleReadError, SemanticDataset, layout_error
from carlib.files import read_text_file, read_text_lines
from carlib.vocabularies import ADE_150, ADE_847, COCO_OBJECT, CONTEXT_59, CONTEXT_459, VOC

PathLike = str | Path

# The 80 COCO "thing" category ids, in the order of COCO-Object labels 1..80.
COCO_THING_CATEGORY_IDS: tuple[int, ...] = (
    *range(1, 12),
    *range(13, 26),
    27,
    28,
    *range(31, 45),
    *range(46, 66),
    67,
    70,
    *range(72, 83),
    *range(84, 91),
)


@dataclass(frozen=True)
class SemanticLayout:
    """Where one semantic benchmark keeps its files, relative to its dataset folder.

    Attributes:
        key: the layout's name (``"voc"``, ``"context"``, ``"coco_object"``, ``"ade150"``).
        title: human name for messages.
        docs_section: heading in docs/datasets.md.
        tree: the expected layout, printed in errors.
        candidates: sub-folders of ``data_root`` that may be the dataset
            folder, tried in order (``""`` is ``data_root`` itself).
        marker: a path inside the dataset folder that identifies it.
        image_dir: images folder; ``{split}`` is replaced by the split's folder name.
        label_dir: ground-truth folder, same substitution.
        image_suffix: image file name ending.
        label_suffix: label file name ending.
        split_file: the split's id list (``{split}`` substituted), or None to
            list ``image_dir`` instead (as the reference does for COCO and ADE).
        split_folders: user split name -> folder name (None: the name itself).
        conversion_hint: what to run when the ground-truth folder is missing.
        ignore_label: the stored value of unscored pixels.
        full_label_set: stored label k is class index k (no background, nothing
            dropped) and the files are 16-bit: the detectron2 TIFFs of ADE-847
            and Context-459.
    """

    key: str
    title: str
    docs_section: str
    tree: str
    candidates: tuple[str, ...]
    marker: str
    image_dir: str
    label_dir: str
    image_suffix: str
    label_suffix: str
    split_file: str | None
    split_folders: dict[str, str] | None = None
    conversion_hint: str = ""
    ignore_label: int = IGNORE_LABEL
    full_label_set: bool = False

    def split_folder(self, split: str) -> str:
        if self.split_folders is None:
            return split
        if split not in self.split_folders:
            raise ValueError(
                f"{self.title}: unknown split {split!r}; choose one of {', '.join(sorted(self.split_folders))}"
            )
        return self.split_folders[split]


VOC_LAYOUT = SemanticLayout(
    key="voc",
    title="PASCAL VOC 2012",
    docs_section="PASCAL VOC 2012",
    tree=(
        "DATA_ROOT/                       (or DATA_ROOT = VOCdevkit/ or VOCdevkit/VOC2012/)\n"
        "  VOCdevkit/VOC2012/\n"
        "    JPEGImages/<id>.jpg\n"
        "    SegmentationClass/<id>.png   (palette PNG: 0 background, 1..20, 255 border)\n"
        "    ImageSets/Segmentation/val.txt\n"
        "    class_names.txt              (optional; ShapesWorld exports write it)\n"
    ),
    candidates=("", "VOC2012", "VOCdevkit/VOC2012"),
    marker="JPEGImages",
    image_dir="JPEGImages",
    label_dir="SegmentationClass",
    image_suffix=".jpg",
    label_suffix=".png",
    split_file="ImageSets/Segmentation/{split}.txt",
)

CONTEXT_LAYOUT = SemanticLayout(
    key="context",
    title="PASCAL Context",
    docs_section="PASCAL Context (59 / 60)",
    tree=(
        "DATA_ROOT/                       (or DATA_ROOT = VOCdevkit/ or VOCdevkit/VOC2010/)\n"
        "  VOCdevkit/VOC2010/\n"
        "    JPEGImages/<id>.jpg\n"
        "    SegmentationClassContext/<id>.png   (0 background, 1..59; mmseg conversion)\n"
        "    ImageSets/SegmentationContext/val.txt\n"
    ),
    candidates=("", "VOC2010", "VOCdevkit/VOC2010"),
    marker="JPEGImages",
    image_dir="JPEGImages",
    label_dir="SegmentationClassContext",
    image_suffix=".jpg",
    label_suffix=".png",
    split_file="ImageSets/SegmentationContext/{split}.txt",
    conversion_hint=(
        "SegmentationClassContext/ and ImageSets/SegmentationContext/ are written by mmsegmentation's "
        "tools/dataset_converters/pascal_context.py from trainval_merged.json"
    ),
)

COCO_OBJECT_LAYOUT = SemanticLayout(
    key="coco_object",
    title="COCO-Object",
    docs_section="COCO-Object",
    tree=(
        "DATA_ROOT/                       (or DATA_ROOT = coco/)\n"
        "  coco/\n"
        "    images/val2017/<id>.jpg\n"
        "    annotations/val2017/<id>_instanceTrainIds.png   (0 background, 1..80; GroupViT conversion)\n"
    ),
    candidates=("", "coco", "coco_stuff164k"),
    marker="images",
    image_dir="images/{split}",
    label_dir="annotations/{split}",
    image_suffix=".jpg",
    label_suffix="_instanceTrainIds.png",
    split_file=None,
    split_folders={"val": "val2017", "val2017": "val2017", "train": "train2017", "train2017": "train2017"},
    conversion_hint=(
        "the *_instanceTrainIds.png files are converted from COCO-Stuff's stuffthingmaps "
        "(GroupViT convert_dataset/convert_coco_object.py, or carlib.datasets.convert_coco_object)"
    ),
)

ADE_LAYOUT = SemanticLayout(
    key="ade150",
    title="ADE20K-150",
    docs_section="ADE20K-150",
    tree=(
        "DATA_ROOT/                       (or DATA_ROOT = ADEChallengeData2016/)\n"
        "  ADEChallengeData2016/\n"
        "    images/validation/<id>.jpg\n"
        "    annotations/validation/<id>.png   (0 other, 1..150)\n"
    ),
    candidates=("", "ADEChallengeData2016", "ade/ADEChallengeData2016"),
    marker="images",
    image_dir="images/{split}",
    label_dir="annotations/{split}",
    image_suffix=".jpg",
    label_suffix=".png",
    split_file=None,
    split_folders={"val": "validation", "validation": "validation", "train": "training", "training": "training"},
)

WIDE_IGNORE_LABEL = 65535
"""Unlabelled pixels in the 16-bit ground truth of ADE-847 and Context-459 (detectron2 ``ignore_label``)."""

_DETECTRON2_SPLITS = {"val": "validation", "validation": "validation", "train": "training", "training": "training"}

ADE_847_LAYOUT = SemanticLayout(
    key="ade847",
    title="ADE20K-full (847 classes)",
    docs_section="ADE20K-847",
    tree=(
        "DATA_ROOT/                       (or DATA_ROOT = ADE20K_2021_17_01/)\n"
        "  ADE20K_2021_17_01/\n"
        "    images_detectron2/validation/<id>.jpg\n"
        "    annotations_detectron2/validation/<id>.tif   (16-bit: 0..846 classes, 65535 unlabelled)\n"
    ),
    candidates=("", "ADE20K_2021_17_01"),
    marker="images_detectron2",
    image_dir="images_detectron2/{split}",
    label_dir="annotations_detectron2/{split}",
    image_suffix=".jpg",
    label_suffix=".tif",
    split_file=None,
    split_folders=_DETECTRON2_SPLITS,
    conversion_hint=(
        "images_detectron2/ and annotations_detectron2/ are written by prepare_ade20k_full_sem_seg.py "
        "(MaskFormer / FC-CLIP datasets/) from ADE20K_2021_17_01/index_ade20k.pkl"
    ),
    ignore_label=WIDE_IGNORE_LABEL,
    full_label_set=True,
)

CONTEXT_459_LAYOUT = SemanticLayout(
    key="context459",
    title="PASCAL Context (459 classes)",
    docs_section="PASCAL Context-459",
    tree=(
        "DATA_ROOT/                       (or DATA_ROOT = pascal_ctx_d2/)\n"
        "  pascal_ctx_d2/\n"
        "    images/validation/<id>.jpg\n"
        "    annotations_ctx459/validation/<id>.tif   (16-bit: 0..458 classes, 65535 unlabelled)\n"
    ),
    candidates=("", "pascal_ctx_d2"),
    marker="images",
    image_dir="images/{split}",
    label_dir="annotations_ctx459/{split}",
    image_suffix=".jpg",
    label_suffix=".tif",
    split_file=None,
    split_folders=_DETECTRON2_SPLITS,
    conversion_hint=(
        "annotations_ctx459/ is written by prepare_pascal_ctx_full_sem_seg.py (FC-CLIP / ODISE datasets/) "
        "from the PASCAL-Context trainval/*.mat files; images/ by prepare_pascal_ctx_sem_seg.py"
    ),
    ignore_label=WIDE_IGNORE_LABEL,
    full_label_set=True,
)

SEMANTIC_LAYOUTS: dict[str, SemanticLayout] = {
    "voc": VOC_LAYOUT,
    "shapes": VOC_LAYOUT,
    "context": CONTEXT_LAYOUT,
    "coco_object": COCO_OBJECT_LAYOUT,
    "ade150": ADE_LAYOUT,
    "ade847": ADE_847_LAYOUT,
    "context459": CONTEXT_459_LAYOUT,
}
"""Preset name -> layout (ShapesWorld's VOC export uses the VOC layout)."""


@dataclass(frozen=True)
class ResolvedLayout:
    """A layout's concrete paths under one ``data_root`` for one split."""

    layout: SemanticLayout
    root: Path
    split: str
    image_dir: Path
    label_dir: Path
    split_file: Path | None


def find_root(layout: SemanticLayout, data_root: PathLike) -> Path | None:
    """The dataset folder under ``data_root`` (the first candidate holding ``layout.marker``), or None."""
    data_root = Path(data_root)
    for candidate in layout.candidates:
        folder = data_root / candidate if candidate else data_root
        if (folder / layout.marker).is_dir():
            return folder
    return None


def _looked_for(layout: SemanticLayout, data_root: Path) -> str:
    places = [str((data_root / c if c else data_root) / layout.marker) for c in layout.candidates]
    return "a folder " + " or ".join(places)


def resolve(layout: SemanticLayout, data_root: PathLike, split: str) -> ResolvedLayout:
    """Concrete paths of ``layout`` under ``data_root``; checks only that ``data_root`` holds the dataset.

    Raises:
        FileNotFoundError: no candidate folder holds ``layout.marker``.
        ValueError: an unknown split for a layout with fixed split folders.
    """
    data_root = Path(data_root)
    folder_split = layout.split_folder(split)
    root = find_root(layout, data_root)
    if root is None:
        raise layout_error(layout.title, _looked_for(layout, data_root), layout.tree, layout.docs_section)
    split_file = root / layout.split_file.format(split=folder_split) if layout.split_file else None
    return ResolvedLayout(
        layout=layout,
        root=root,
        split=split,
        image_dir=root / layout.image_dir.format(split=folder_split),
        label_dir=root / layout.label_dir.format(split=folder_split),
        split_file=split_file,
    )


def _available_splits(resolved: ResolvedLayout) -> list[str]:
    if resolved.split_file is None or not resolved.split_file.parent.is_dir():
        return []
    return sorted(path.stem for path in resolved.split_file.parent.glob("*.txt"))


def _require(resolved: ResolvedLayout) -> None:
    layout = resolved.layout
    for folder in (resolved.image_dir, resolved.label_dir):
        if not folder.is_dir():
            hint = f"\n{layout.conversion_hint}" if folder == resolved.label_dir and layout.conversion_hint else ""
            raise layout_error(layout.title, f"folder {folder}{hint}", layout.tree, layout.docs_section)
    if resolved.split_file is not None and not resolved.split_file.is_file():
        available = _available_splits(resolved)
        extra = f" (split files present: {', '.join(available)})" if available else ""
        raise layout_error(layout.title, f"split file {resolved.split_file}{extra}", layout.tree, layout.docs_section)


def split_ids(resolved: ResolvedLayout) -> list[str]:
    """The split's ids, sorted: the split file's lines, or the image folder's file stems."""
    if resolved.split_file is not None:
        lines = read_text_file(resolved.split_file, "split file").split()
        return sorted(dict.fromkeys(line.strip() for line in lines if line.strip()))
    suffix = resolved.layout.image_suffix
    return sorted(path.name[: -len(suffix)] for path in resolved.image_dir.iterdir() if path.name.endswith(suffix))


def read_class_names_file(path: Path) -> tuple[str, ...]:
    """The non-empty lines of a ``class_names.txt`` (label 0 first; UTF-8 with or without a BOM, any line ends)."""
    names = tuple(line.strip() for line in read_text_lines(path, "class-name file") if line.strip())
    if not names:
        raise ValueError(f"{path} is empty; it should list one class name per label, background first")
    return names


def _class_names(preset: str, root: Path) -> tuple[tuple[str, ...], bool]:
    """Display names per stored label, and whether they come from the folder's ``class_names.txt``."""
    names_file = root / "class_names.txt"
    if preset in ("voc", "shapes") and names_file.is_file():
        return read_class_names_file(names_file), True
    if preset == "voc":
        return ("background", *VOC.display_names), False
    if preset == "shapes":
        from carlib.vocabularies import shapes_vocabulary

        return ("background", *shapes_vocabulary().display_names), False
    if preset == "context":
        return ("background", *CONTEXT_59.display_names), False
    if preset == "coco_object":
        return ("background", *COCO_OBJECT.display_names), False
    if preset == "ade150":
        return ("other", *ADE_150.display_names), False
    if preset == "ade847":
        return ADE_847.display_names, False
    if preset == "context459":
        return CONTEXT_459.display_names, False
    raise ValueError(f"no semantic dataset for preset {preset!r}")


_STANDARD_NAMES = {
    # preset -> (name with background, name without)
    "voc": ("voc21", "voc20"),
    "context": ("context60", "context59"),
    "coco_object": ("coco_object", "coco_object_without_background"),
    "shapes": ("shapes", "shapes_without_background"),
}


def open_semantic(
    preset: str, data_root: PathLike, split: str | None = None, *, without_background: bool = False
) -> SemanticDataset:
    """Open a semantic benchmark (see :func:`carlib.datasets.open_dataset`)."""
    layout = SEMANTIC_LAYOUTS[preset]
    resolved = resolve(layout, data_root, split or "val")
    _require(resolved)
    names, from_file = _class_names(preset, resolved.root)
    if layout.full_label_set:
        # Every stored label is a class; there is no background to keep or drop.
        return FullLabelSetDataset(
            name=preset,
            preset=preset,
            split=resolved.split,
            root=resolved.root,
            class_names=tuple(names),
            has_background=False,
            image_dir=resolved.image_dir,
            label_dir=resolved.label_dir,
            image_suffix=layout.image_suffix,
            label_suffix=layout.label_suffix,
            sample_ids=tuple(split_ids(resolved)),
            reduce_zero=False,
            ignore_label=layout.ignore_label,
        )
    if preset == "ade150":
        # ADE's 0 is "other", never a class: always reduce_zero_label (reference: ignore_background).
        reduce_zero, has_background, names = True, False, names[1:]
    else:
        has_background = names[0].lower() == "background"
        if without_background and not has_background:
            raise ValueError(
                f"{layout.title} at {resolved.root}: label 0 is {names[0]!r}, not 'background'; "
                "without_background needs a background label to drop"
            )
        reduce_zero = without_background
        if reduce_zero:
            names = names[1:]
            has_background = False
    if preset == "ade150":
        name = "ade150"
    elif from_file and preset == "voc":
        name = "voc_layout_without_background" if reduce_zero else "voc_layout"
    else:
        name = _STANDARD_NAMES[preset][1 if reduce_zero else 0]
    return SemanticDataset(
        name=name,
        preset=preset,
        split=resolved.split,
        root=resolved.root,
        class_names=tuple(names),
        has_background=has_background,
        image_dir=resolved.image_dir,
        label_dir=resolved.label_dir,
        image_suffix=layout.image_suffix,
        label_suffix=layout.label_suffix,
        sample_ids=tuple(split_ids(resolved)),
        reduce_zero=reduce_zero,
    )


_NARROW_MODES = ("1", "L", "P")


@dataclass(frozen=True)
class FullLabelSetDataset(SemanticDataset):
    """A benchmark whose ground truth is 16-bit: ADE-847, Context-459 (stored label = class index, 65535 ignored).

    Reads like :class:`carlib.datasets.SemanticDataset`, but first refuses a
    label file of 8 bits per pixel: in it 255 could not be told from a class
    (ADE-847's class 255 is "pier") and labels above 255 would be lost, so it
    is a sign of a conversion other than the 16-bit one this layout expects.
    """

    def load(self, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Read one sample (see :meth:`carlib.datasets.SemanticDataset.load`).

        Raises:
            SampleReadError: as :meth:`carlib.datasets.SemanticDataset.load`, and
                for a ground-truth file with 8 bits per pixel.
        """
        path = self.label_path(sample_id)
        try:
            with Image.open(path) as opened:
                mode = opened.mode
        except (UnidentifiedImageError, OSError, SyntaxError):
            mode = None  # the base reader reports missing and unreadable files
        if mode in _NARROW_MODES:
            raise SampleReadError(
                sample_id,
                path,
                f"ground truth has 8 bits per pixel (mode {mode}); {self.num_classes} classes and the ignore value "
                f"{self.ignore_label} need the 16-bit TIFFs of the detectron2 conversion (see docs/datasets.md)",
            )
        return super().load(sample_id)


def _first(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (", ..." if len(names) > limit else "")


def check_semantic(preset: str, data_root: PathLike, split: str | None = None) -> list[str]:
    """What is missing for ``preset``'s benchmark under ``data_root`` (empty: complete).

    Checks the folders, the split file and that every listed sample has an
    image and a ground-truth file (by name only; nothing is opened).
    """
    layout = SEMANTIC_LAYOUTS[preset]
    data_root = Path(data_root)
    try:
        resolved = resolve(layout, data_root, split or "val")
    except FileNotFoundError:
        return [f"no {layout.title} folder: looked for {_looked_for(layout, data_root)}"]
    except ValueError as error:
        return [str(error)]
    problems = []
    for what, folder in (("images", resolved.image_dir), ("ground truth", resolved.label_dir)):
        if not folder.is_dir():
            hint = f" ({layout.conversion_hint})" if what == "ground truth" and layout.conversion_hint else ""
            problems.append(f"missing {what} folder {folder}{hint}")
    if resolved.split_file is not None and not resolved.split_file.is_file():
        available = _available_splits(resolved)
        extra = f" (split files present: {', '.join(available)})" if available else ""
        problems.append(f"missing split file {resolved.split_file}{extra}")
    if problems:
        return problems
    ids = split_ids(resolved)
    if not ids:
        source = resolved.split_file if resolved.split_file is not None else resolved.image_dir
        return [f"no samples: {source} lists no {layout.image_suffix} ids"]
    files = (
        ("image", resolved.image_dir, layout.image_suffix),
        ("ground-truth", resolved.label_dir, layout.label_suffix),
    )
    for what, folder, suffix in files:
        present = {path.name for path in folder.iterdir()}
        missing = [f"{sample_id}{suffix}" for sample_id in ids if f"{sample_id}{suffix}" not in present]
        if missing:
            problems.append(f"{len(missing)} of {len(ids)} {what} files missing from {folder}: {_first(missing)}")
    return problems


# --- COCO-Stuff -> COCO-Object ---------------------------------------------------


def coco_object_lut() -> np.ndarray:
    """Lookup table COCO-Stuff stuffthingmaps value -> COCO-Object label (256 uint8 entries).

    stuffthingmaps store ``category_id - 1`` per pixel (255 unlabeled). The 80
    thing categories become 1..80 in COCO category order; stuff, unlabeled
    (255) and unused ids become 0 (background), as GroupViT's
    ``convert_coco_object.py`` does, so COCO-Object has no ignored pixels.
    """
    lut = np.zeros(256, dtype=np.uint8)
    for label, category_id in enumerate(COCO_THING_CATEGORY_IDS, start=1):
        lut[category_id - 1] = label
    return lut


def convert_coco_object(stuff_dir: PathLike, out_dir: PathLike, *, overwrite: bool = False) -> int:
    """Write COCO-Object ground truth from COCO-Stuff 164k label PNGs (no mmcv needed).

    Arguments:
        stuff_dir: a folder of stuffthingmaps PNGs (e.g. ``stuffthingmaps_trainval2017/val2017``),
            named ``<id>.png``.
        out_dir: where ``<id>_instanceTrainIds.png`` are written (e.g.
            ``coco/annotations/val2017``); created if needed.
        overwrite: rewrite files that already exist.

    Returns:
        the number of files written.

    Raises:
        FileNotFoundError: ``stuff_dir`` does not exist or holds no PNG.
    """
    from PIL import Image

    stuff_dir, out_dir = Path(stuff_dir), Path(out_dir)
    sources = []
    if stuff_dir.is_dir():
        sources = sorted(p for p in stuff_dir.glob("*.png") if not p.name.endswith("_instanceTrainIds.png"))
    if not sources:
        raise FileNotFoundError(
            f"no COCO-Stuff label PNGs in {stuff_dir} (see docs/datasets.md, section 'COCO-Object')"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    lut = coco_object_lut()
    written = 0
    for source in sources:
        target = out_dir / f"{source.stem}_instanceTrainIds.png"
        if target.exists() and not overwrite:
            continue
        with Image.open(source) as opened:
            values = np.asarray(opened)
        if values.ndim != 2:
            raise ValueError(f"{source}: expected a single-channel label PNG, got shape {values.shape}")
        Image.fromarray(lut[values.astype(np.uint8)]).save(target)
        written += 1
    return written
