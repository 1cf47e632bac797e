"""Ref-DAVIS17: the DAVIS-2017 videos with the referring expressions of Khoreva et al. (ACCV 2018).

Two layouts are read, both as their users have them:

- **DAVIS** (the downloads themselves): ``DAVIS/JPEGImages/480p/<video>/<frame>.jpg``,
  ``DAVIS/Annotations/480p/<video>/<frame>.png`` (palette PNGs whose indices
  are object ids; or ``Annotations_unsupervised/480p/``, the unsupervised
  download's), ``DAVIS/ImageSets/2017/<split>.txt``, and the expressions
  ``davis_text_annotations/Davis17_annot1.txt``, ``Davis17_annot1_full_video.txt``,
  ``Davis17_annot2.txt``, ``Davis17_annot2_full_video.txt``: one line per
  object, ``<video> <object id> "<expression>"``; annotator 2's files are
  Latin-1, not UTF-8 (both are accepted).
- **ReferFormer's conversion** (``tools/data/convert_davis_to_ytvos.py``,
  also used by MUTR, SgMg, OnlineRefer...): ``valid/JPEGImages/<video>/``,
  ``valid/Annotations/<video>/`` and ``meta_expressions/valid/meta_expressions.json``,
  whose expressions come four per object in the converter's order
  (annotator 1 first-frame, annotator 1 full-video, annotator 2 first-frame,
  annotator 2 full-video).

Each object has four expressions, one per **expression set**
(:data:`EXPRESSION_SETS`: two annotators, each describing it from the first
frame only and from the full video). The objects of a video are ids
1..N, N being the largest id in its first annotation, as the DAVIS
evaluation toolkit counts them.

The layout is checked when the dataset is opened: every frame has its
annotation and the reverse, numbered frames have no gaps, all frames and
annotations of a video have one size (PNG and JPEG headers only), and every
expression names an object the annotations have. Each problem is one line
naming the file.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from carlib.datasets.core import SampleReadError, layout_error, read_image, read_label_png

PathLike = str | Path
AnnotationChoice = Literal["auto", "semi-supervised", "unsupervised"]

REFDAVIS_NAME = "refdavis17"
DOCS_SECTION = "Ref-DAVIS17"

EXPRESSION_SETS: tuple[str, ...] = (
    "annot1-first-frame",
    "annot1-full-video",
    "annot2-first-frame",
    "annot2-full-video",
)
"""The four expressions of every object, in ReferFormer's order (its ``anno_0`` .. ``anno_3``)."""
ALL_EXPRESSIONS = "all"
"""Not a set of the benchmark: every distinct expression of an object as the queries of one CaR run, merged as
RefCOCO's sentences are (:func:`carlib.labels.merge_referring_masks`)."""
EXPRESSION_FILES: dict[str, str] = {
    "annot1-first-frame": "Davis17_annot1.txt",
    "annot1-full-video": "Davis17_annot1_full_video.txt",
    "annot2-first-frame": "Davis17_annot2.txt",
    "annot2-full-video": "Davis17_annot2_full_video.txt",
}
TEXT_FOLDER = "davis_text_annotations"
VIDEO_NAME_FIXES = {"clasic-car": "classic-car", "dog-scale": "dogs-scale", "motor-bike": "motorbike"}
"""Misspelt (training) video names in the expression files, as ReferFormer's converter fixes them."""

ANNOTATION_FOLDERS: dict[str, str] = {
    "semi-supervised": "Annotations/480p",
    "unsupervised": "Annotations_unsupervised/480p",
}
SPLITS = ("train", "val")
REFERFORMER_SPLITS = {"train": "train", "val": "valid"}

TREE = (
    "DATA_ROOT/   (or ref-davis/ inside it, or DAVIS/ itself)\n"
    "  DAVIS/JPEGImages/480p/<video>/<frame>.jpg\n"
    "  DAVIS/Annotations/480p/<video>/<frame>.png      (or Annotations_unsupervised/480p/)\n"
    "  DAVIS/ImageSets/2017/val.txt\n"
    "  davis_text_annotations/Davis17_annot1.txt, Davis17_annot1_full_video.txt,\n"
    "                         Davis17_annot2.txt, Davis17_annot2_full_video.txt\n"
    "or ReferFormer's conversion: valid/JPEGImages/<video>/, valid/Annotations/<video>/,\n"
    "  meta_expressions/valid/meta_expressions.json\n"
)


@dataclass(frozen=True)
class ReferringVideo:
    """One video: its frames, where they are, and its objects.

    Attributes:
        name: the video's folder name (``"bike-packing"``).
        frames: the frame names without suffix, sorted (``"00000"``, ``"00001"``...).
        image_dir: folder of the ``<frame>.jpg`` images.
        annotation_dir: folder of the ``<frame>.png`` annotations.
        object_ids: the objects' ids, 1..N (N: the largest id of the first annotation).
        size: (H, W) of every frame.
    """

    name: str
    frames: tuple[str, ...]
    image_dir: Path
    annotation_dir: Path
    object_ids: tuple[int, ...]
    size: tuple[int, int]

    def image_path(self, frame: str) -> Path:
        """Where frame ``frame`` (``"00000"``) is stored."""
        return self.image_dir / f"{frame}.jpg"

    def annotation_path(self, frame: str) -> Path:
        """Where the annotation of frame ``frame`` is stored."""
        return self.annotation_dir / f"{frame}.png"


@dataclass(frozen=True, eq=False)
class RefDavisDataset:
    """One split of Ref-DAVIS17 (build it with :func:`open_refdavis` or ``open_dataset("refdavis17", ...)``).

    Attributes:
        name: ``"refdavis17"``.
        preset: the :func:`carlib.presets.get_preset` name to run on it.
        split: ``"val"`` or ``"train"``.
        root: the folder the layout was found in.
        layout: ``"davis"`` or ``"referformer"``.
        annotations: the annotation folder read, relative to the DAVIS folder
            (``"Annotations/480p"``, ``"Annotations_unsupervised/480p"``), or ``"valid/Annotations"``.
        clips: the split's videos, sorted by name.
        expressions: expression set -> video -> object id -> expression.
        expression_sources: expression set -> the file it was read from.
    """

    name: str
    preset: str
    split: str
    root: Path
    layout: str
    annotations: str
    clips: tuple[ReferringVideo, ...] = field(repr=False)
    expressions: Mapping[str, Mapping[str, Mapping[int, str]]] = field(repr=False)
    expression_sources: Mapping[str, Path] = field(repr=False)

    def __len__(self) -> int:
        return len(self.clips)

    def videos(self) -> list[ReferringVideo]:
        """The split's videos, sorted by name (a new list each call)."""
        return list(self.clips)

    def ids(self) -> list[str]:
        """The videos' names, sorted."""
        return [clip.name for clip in self.clips]

    def video(self, name: str) -> ReferringVideo:
        """The video called ``name`` (KeyError if it is not in the split)."""
        for clip in self.clips:
            if clip.name == name:
                return clip
        raise KeyError(name)

    def sentences(self, expression_set: str, video: str, object_id: int) -> tuple[str, ...]:
        """The queries of one object under ``expression_set``: one expression, or every distinct one for ``"all"``.

        Raises:
            ValueError: an unknown expression set.
        """
        if expression_set == ALL_EXPRESSIONS:
            return tuple(dict.fromkeys(self.expressions[name][video][object_id] for name in EXPRESSION_SETS))
        if expression_set not in EXPRESSION_SETS:
            raise ValueError(
                f"unknown expression set {expression_set!r}; choose from "
                f"{', '.join((*EXPRESSION_SETS, ALL_EXPRESSIONS))}"
            )
        return (self.expressions[expression_set][video][object_id],)

    def load_frame(self, item: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
        """Read one frame and its annotation.

        Arguments:
            item: ``(video name, frame name)``.

        Returns:
            ``(image, labels)``: H x W x 3 uint8 RGB and H x W int64 object ids
            (0 background; the toolkit's void value 255 read as background, as the toolkit does).

        Raises:
            SampleReadError: a file is missing or unreadable, or the two differ in size.
        """
        video, frame = item
        clip = self.video(video)
        sample = f"{video}/{frame}"
        image = read_image(clip.image_path(frame), sample)
        labels = read_label_png(clip.annotation_path(frame), sample)
        if labels.shape != image.shape[:2]:
            raise SampleReadError(
                sample,
                clip.annotation_path(frame),
                f"annotation is {labels.shape[1]}x{labels.shape[0]} but the frame is {image.shape[1]}x{image.shape[0]}",
            )
        labels[labels == 255] = 0
        return image, labels


# --- finding the layout ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DavisLayout:
    """DAVIS 2017 with the Ref-DAVIS17 expression files beside it."""

    root: Path
    davis: Path
    texts: Path
    kind: str = "davis"


@dataclass(frozen=True)
class _ReferFormerLayout:
    """ReferFormer's conversion: one meta_expressions.json per split."""

    root: Path
    meta: Path
    kind: str = "referformer"


_Layout = _DavisLayout | _ReferFormerLayout


def _davis_folder(folder: Path) -> Path | None:
    for candidate in (folder / "DAVIS", folder):
        if (candidate / "JPEGImages").is_dir() and (candidate / "ImageSets").is_dir():
            return candidate
    return None


def _text_folder(folder: Path, davis: Path) -> Path | None:
    for candidate in (folder / TEXT_FOLDER, davis / TEXT_FOLDER, davis.parent / TEXT_FOLDER):
        if candidate.is_dir():
            return candidate
    return None


def _find_layout(data_root: Path, split: str) -> _Layout | None:
    """The first layout found under ``data_root``, ``data_root/ref-davis`` or ``data_root/Ref-DAVIS17``."""
    for folder in (data_root, data_root / "ref-davis", data_root / "Ref-DAVIS17", data_root / "refdavis17"):
        if not folder.is_dir():
            continue
        davis = _davis_folder(folder)
        texts = _text_folder(folder, davis) if davis is not None else None
        if davis is not None and texts is not None:
            return _DavisLayout(folder, davis=davis, texts=texts)
        meta = folder / "meta_expressions" / REFERFORMER_SPLITS[split] / "meta_expressions.json"
        if meta.is_file() and (folder / REFERFORMER_SPLITS[split] / "JPEGImages").is_dir():
            return _ReferFormerLayout(folder, meta=meta)
    return None


def _check_split(split: str | None) -> str:
    split = split or "val"
    if split not in SPLITS:
        raise ValueError(f"Ref-DAVIS17: unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return split


def _annotation_folder(davis: Path, choice: AnnotationChoice) -> tuple[Path | None, str]:
    if choice not in ("auto", *ANNOTATION_FOLDERS):
        raise ValueError(f"annotations must be 'auto', 'semi-supervised' or 'unsupervised', not {choice!r}")
    names = list(ANNOTATION_FOLDERS.values()) if choice == "auto" else [ANNOTATION_FOLDERS[choice]]
    for name in names:
        if (davis / name).is_dir():
            return davis / name, name
    return None, " or ".join(names)


# --- reading the expressions -------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark (Windows editors) is not part of the first video name
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # annotator 2's files are Latin-1


_LINE = re.compile(r"^(\S+)\s+(\d+)\s+(.*)$")


def read_expression_file(path: PathLike) -> dict[str, dict[int, str]]:
    """One of Khoreva et al.'s files: video -> object id -> expression.

    Each non-blank line is ``<video> <object id> "<expression>"`` (the quotes
    are dropped); the misspelt training video names are corrected
    (:data:`VIDEO_NAME_FIXES`).

    Raises:
        ValueError: a line in another form, or a second expression for the same object (naming file and line).
    """
    path = Path(path)
    expressions: dict[str, dict[int, str]] = {}
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line.strip())
        text = match.group(3).strip() if match else ""
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1].strip()
        if not match or not text:
            raise ValueError(f"{path}:{number}: expected '<video> <object id> \"<expression>\"', got {line.strip()!r}")
        video = VIDEO_NAME_FIXES.get(match.group(1), match.group(1))
        object_id = int(match.group(2))
        if object_id in expressions.setdefault(video, {}):
            raise ValueError(f"{path}:{number}: a second expression for object {object_id} of video {video!r}")
        expressions[video][object_id] = text
    return expressions


def _read_meta_expressions(path: Path) -> dict[str, dict[str, dict[int, str]]]:
    """ReferFormer's meta_expressions.json as expression set -> video -> object id -> expression."""
    try:
        videos = json.loads(path.read_text())["videos"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a meta_expressions.json with a 'videos' entry ({error})") from error
    result: dict[str, dict[str, dict[int, str]]] = {name: {} for name in EXPRESSION_SETS}
    for video, entry in videos.items():
        expressions = entry.get("expressions", {})
        ordered = [expressions[key] for key in sorted(expressions, key=int)]
        if len(ordered) % len(EXPRESSION_SETS):
            raise ValueError(
                f"{path}: video {video!r} has {len(ordered)} expressions, not four per object in "
                "ReferFormer's order; use the DAVIS layout with davis_text_annotations/"
            )
        for start in range(0, len(ordered), len(EXPRESSION_SETS)):
            group = ordered[start : start + len(EXPRESSION_SETS)]
            ids = sorted({int(item["obj_id"]) for item in group})
            if len(ids) != 1:
                raise ValueError(
                    f"{path}: video {video!r}, expressions {start}-{start + 3} name objects "
                    f"{ids}: not four per object in ReferFormer's order"
                )
            for name, item in zip(EXPRESSION_SETS, group, strict=True):
                result[name].setdefault(video, {})[ids[0]] = str(item["exp"])
    return result


# --- checking the videos -----------------------------------------------------------------------------------


def _header_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file's header, without decoding it."""
    try:
        with Image.open(path) as opened:
            width, height = opened.size
    except (UnidentifiedImageError, OSError) as error:
        raise SampleReadError(path.parent.name + "/" + path.stem, path, f"cannot read ({error})") from error
    return height, width


def _video_problems(name: str, image_dir: Path, annotation_dir: Path) -> tuple[list[str], ReferringVideo | None]:
    """Every problem of one video folder, one line each, and the video when there is none."""
    if not image_dir.is_dir():
        return [f"video {name!r}: missing frame folder {image_dir}"], None
    if not annotation_dir.is_dir():
        return [f"video {name!r}: missing annotation folder {annotation_dir}"], None
    images = {path.stem for path in image_dir.glob("*.jpg")}
    labels = {path.stem for path in annotation_dir.glob("*.png")}
    restore = "; restore it from the dataset's download"
    problems = [
        f"video {name!r}: missing annotation {annotation_dir / (stem + '.png')} (its frame exists){restore}"
        for stem in sorted(images - labels)
    ]
    problems += [
        f"video {name!r}: missing frame {image_dir / (stem + '.jpg')} (its annotation exists){restore}"
        for stem in sorted(labels - images)
    ]
    frames = sorted(images | labels)
    if not frames:
        return [f"video {name!r}: no frames (.jpg) in {image_dir}"], None
    if all(stem.isdigit() for stem in frames):
        width = len(frames[0])
        numbers = sorted(int(stem) for stem in frames)
        for before, after in itertools.pairwise(numbers):
            for number in range(before + 1, after):
                problems.append(
                    f"video {name!r}: missing frame {image_dir / f'{number:0{width}d}.jpg'} and its "
                    f"annotation (frames {before:0{width}d} and {after:0{width}d} exist; a video's frames "
                    "are numbered without gaps); restore them from the dataset's download"
                )
    if problems:
        return problems, None
    try:
        size = _header_size(image_dir / f"{frames[0]}.jpg")
        for stem in frames:
            for path in (image_dir / f"{stem}.jpg", annotation_dir / f"{stem}.png"):
                found = _header_size(path)
                if found != size:
                    problems.append(
                        f"video {name!r}: {path} is {found[1]}x{found[0]} but frame "
                        f"{image_dir / (frames[0] + '.jpg')} is {size[1]}x{size[0]}: all frames and "
                        "annotations of a video must have one size"
                    )
        if problems:
            return problems, None
        first = read_label_png(annotation_dir / f"{frames[0]}.png", f"{name}/{frames[0]}")
    except SampleReadError as error:
        return [f"video {name!r}: {error}"], None
    first[first == 255] = 0
    count = int(first.max())
    if count == 0:
        return [f"video {name!r}: its first annotation {annotation_dir / (frames[0] + '.png')} has no object"], None
    return [], ReferringVideo(name, tuple(frames), image_dir, annotation_dir, tuple(range(1, count + 1)), size)


def _expression_problems(
    clip: ReferringVideo, expressions: Mapping[str, Mapping[str, Mapping[int, str]]], sources: Mapping[str, Path]
) -> list[str]:
    problems = []
    first = clip.annotation_path(clip.frames[0])
    for name in EXPRESSION_SETS:
        named = expressions[name].get(clip.name, {})
        for object_id in sorted(set(named) - set(clip.object_ids)):
            problems.append(
                f"{sources[name]}: video {clip.name!r} object {object_id} is not in its annotations "
                f"(its first annotation {first} has objects 1..{len(clip.object_ids)}); are the "
                "expressions and the annotations from the same release?"
            )
        for object_id in sorted(set(clip.object_ids) - set(named)):
            problems.append(
                f"{sources[name]}: no expression for object {object_id} of video {clip.name!r}, which "
                f"its annotations have ({first}); every object needs one in each expression file"
            )
    return problems


def _video_names(layout: _Layout, split: str) -> tuple[list[str], str | None]:
    if isinstance(layout, _DavisLayout):
        listing = layout.davis / "ImageSets" / "2017" / f"{split}.txt"
        if not listing.is_file():
            return [], f"missing split file {listing}"
        return [line.strip() for line in listing.read_text().splitlines() if line.strip()], None
    videos = json.loads(layout.meta.read_text()).get("videos", {}) if layout.meta else {}
    return sorted(videos), None


class _LayoutMissing(Exception):
    """A folder or file of the layout is missing (not a problem of one video)."""


def _gather(data_root: PathLike, split: str | None, annotations: AnnotationChoice):
    """(layout, annotation folder name, expressions, sources, videos, problems of the videos).

    Raises:
        _LayoutMissing: the layout, a folder or a file of it is missing (the message names it).
    """
    split = _check_split(split)
    data_root = Path(data_root)
    layout = _find_layout(data_root, split)
    if layout is None:
        raise _LayoutMissing(
            f"no DAVIS folder with {TEXT_FOLDER}/ beside it, and no ReferFormer conversion, under {data_root}"
        )
    if isinstance(layout, _DavisLayout):
        folder, annotation_name = _annotation_folder(layout.davis, annotations)
        if folder is None:
            raise _LayoutMissing(f"missing annotation folder {layout.davis / annotation_name}")
        sources = {name: layout.texts / file for name, file in EXPRESSION_FILES.items()}
        for path in sources.values():
            if not path.is_file():
                raise _LayoutMissing(f"missing expression file {path}")
        expressions = {name: read_expression_file(path) for name, path in sources.items()}
        image_root, annotation_root = layout.davis / "JPEGImages" / "480p", folder
    else:
        if annotations != "auto":
            raise ValueError(
                "annotations= chooses a DAVIS annotation folder; ReferFormer's conversion has one "
                f"({REFERFORMER_SPLITS[split]}/Annotations)"
            )
        part = layout.root / REFERFORMER_SPLITS[split]
        annotation_name = f"{REFERFORMER_SPLITS[split]}/Annotations"
        sources = dict.fromkeys(EXPRESSION_SETS, layout.meta)
        expressions = _read_meta_expressions(layout.meta)
        image_root, annotation_root = part / "JPEGImages", part / "Annotations"
    names, missing_split = _video_names(layout, split)
    if missing_split:
        raise _LayoutMissing(missing_split)
    videos, problems = [], []
    for name in names:
        video_problems, clip = _video_problems(name, image_root / name, annotation_root / name)
        problems += video_problems
        if clip is not None:
            problems += _expression_problems(clip, expressions, sources)
            videos.append(clip)
    return layout, annotation_name, expressions, sources, videos, problems


def open_refdavis(
    data_root: PathLike, split: str | None = None, *, annotations: AnnotationChoice = "auto"
) -> RefDavisDataset:
    """Open Ref-DAVIS17 (see :func:`carlib.datasets.open_dataset`), checking every video of the split.

    Arguments:
        data_root: a folder holding ``DAVIS/`` and ``davis_text_annotations/``
            (or ``ref-davis/`` with them), ``DAVIS/`` itself with the text
            folder inside or beside it, or ReferFormer's converted folder.
        split: ``"val"`` (default; the benchmark's 30 videos) or ``"train"``.
        annotations: the DAVIS annotation folder: ``"semi-supervised"``
            (``Annotations/480p``), ``"unsupervised"`` (``Annotations_unsupervised/480p``,
            what ReferFormer's instructions download), or ``"auto"``: the
            first of the two that exists.

    Returns:
        the :class:`RefDavisDataset`.

    Raises:
        FileNotFoundError: no layout (the message shows the expected tree), or a
            missing folder or file of it (one line naming it).
        ValueError: a video with a missing frame or annotation, frames of
            different sizes, or an expression naming an object the
            annotations lack (one line naming the file).
    """
    try:
        layout, annotation_name, expressions, sources, videos, problems = _gather(data_root, split, annotations)
    except _LayoutMissing as missing:
        if "no DAVIS folder" in str(missing):
            raise layout_error("Ref-DAVIS17", str(missing), TREE, DOCS_SECTION) from None
        raise FileNotFoundError(f"Ref-DAVIS17: {missing} (see docs/datasets.md, section '{DOCS_SECTION}')") from None
    if problems:
        more = len(problems) - 1
        raise ValueError(
            f"Ref-DAVIS17: {problems[0]}"
            + (f" (and {more} more; `carlib data check --preset {REFDAVIS_NAME}` lists them)" if more else "")
        )
    return RefDavisDataset(
        name=REFDAVIS_NAME,
        preset=REFDAVIS_NAME,
        split=_check_split(split),
        root=layout.root,
        layout=layout.kind,
        annotations=annotation_name,
        clips=tuple(sorted(videos, key=lambda clip: clip.name)),
        expressions=expressions,
        expression_sources=sources,
    )


def check_refdavis(data_root: PathLike, split: str | None = None) -> list[str]:
    """Every problem of Ref-DAVIS17 under ``data_root``, one line each (empty: complete and consistent).

    Reads the expression files, the image and PNG headers and each video's first annotation; decodes no frame.
    """
    try:
        return _gather(data_root, split, "auto")[-1]
    except (_LayoutMissing, ValueError) as problem:
        return [str(problem)]
