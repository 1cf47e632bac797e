"""Segmenting a folder of photos: resumable, shardable over ``torchrun`` ranks, or as pseudo-labels.

The paper suggests CaR as a pseudo-label generator for training other
segmenters. :func:`segment_folder` runs one :class:`~carlib.car.CaR` over many
images with the models loaded once. Each image's outputs are written
atomically, so a killed run, started again with the same command, skips what
is done and ends with the same files. Under ``torchrun`` the images are
sharded over ranks exactly as ``carlib eval`` shards samples (sorted, then
every world-size-th from the rank).
"""

from __future__ import annotations

import glob
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from carlib.car import CarResult
from carlib.evaluation.distributed import Distributed
from carlib.files import atomic_directory, atomic_write_text
from carlib.images import IMAGE_SUFFIXES, load_image
from carlib.labels import save_label_png
from carlib.progress import counting

RUN_FILE = "run.json"
ERRORS_FILE = "errors.json"
CLASSES_FILE = "classes.txt"


@dataclass(frozen=True)
class ImageItem:
    """One input image and the name its outputs are written under (its path, relative, without suffix)."""

    key: str
    path: Path


@dataclass
class FolderSummary:
    """What :func:`segment_folder` did (on rank 0: over all ranks).

    Attributes:
        done: images segmented in this run.
        skipped: images whose outputs were already there (a resumed run).
        errors: one ``{"path", "error"}`` per unreadable image, which was skipped.
    """

    done: int = 0
    skipped: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)


def is_image_collection(spec: str | Path) -> bool:
    """True when ``spec`` names a folder or a glob pattern rather than one file."""
    path = Path(spec)
    return path.is_dir() or (not path.exists() and glob.has_magic(str(spec)))


def find_images(spec: str | Path) -> list[ImageItem]:
    """The images a folder or glob pattern names, sorted by their output key.

    A folder contributes the files directly inside it whose suffix is an image
    suffix (:data:`carlib.images.IMAGE_SUFFIXES`, any case); a glob pattern
    (``"photos/**/*.jpg"``, recursive) contributes every file it matches.
    Keys are paths relative to the folder (or to the pattern's fixed leading
    folders), without the suffix.

    Raises:
        FileNotFoundError: the folder or pattern holds no images.
        ValueError: two inputs would write the same outputs (``a.jpg`` and ``a.png``).
    """
    spec = str(spec)
    if Path(spec).is_dir():
        base = Path(spec)
        files = [p for p in base.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise FileNotFoundError(
                f"no images in folder {base} (looked for {', '.join(IMAGE_SUFFIXES)}); give a folder of photos "
                "or a pattern such as 'photos/*.JPG'"
            )
    else:
        base = _fixed_prefix(spec)
        files = [Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file()]
        if not files:
            raise FileNotFoundError(f"no files match {spec!r}")
    items: dict[str, ImageItem] = {}
    for path in files:
        key = path.relative_to(base).with_suffix("").as_posix()
        if key in items:
            raise ValueError(f"{items[key].path} and {path} would both write {key!r}; rename one of them")
        items[key] = ImageItem(key, path)
    return [items[key] for key in sorted(items)]


def _fixed_prefix(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = list(parts[: next(i for i, part in enumerate(parts) if glob.has_magic(part))])
    return Path(*fixed) if fixed else Path(".")


class Segmenter(Protocol):
    """What :func:`segment_folder` runs: a :class:`carlib.car.CaR`, or a method alone
    (:class:`carlib.method_alone.AloneSegmenter`)."""

    def segment(self, image: np.ndarray, queries: Sequence[str]) -> CarResult: ...


def segment_folder(
    car: Segmenter,
    items: Sequence[ImageItem],
    queries: Sequence[str],
    out: str | Path,
    *,
    settings: dict[str, Any],
    labels_only: bool = False,
    write_result: Callable[[Path, np.ndarray, CarResult], None] | None = None,
    progress: bool = True,
) -> FolderSummary | None:
    """Segment every image with the same queries; resumable and shardable.

    Arguments:
        car: the configured :class:`CaR` (models loaded once for all images).
        items: from :func:`find_images`.
        queries: the text queries, the same for every image.
        out: the output folder. With ``labels_only``: ``KEY.png`` palette label
            maps (0 = background, i = query i, as VOC's ``SegmentationClass``)
            and ``classes.txt``; otherwise a folder ``KEY/`` per image, written
            by ``write_result(folder, image, result)``.
        settings: what defines the run (queries, preset, models...), stored in
            ``run.json``; resuming into a folder made with other settings is refused.
        labels_only: write only the label maps.
        write_result: writes one image's files into a fresh folder (needed
            unless ``labels_only``).
        progress: show a tqdm bar.

    Returns:
        a :class:`FolderSummary` on rank 0 (``None`` on other ranks); it is also
        written, with the unreadable files, to ``errors.json``.

    Raises:
        ValueError: ``out`` holds a run with other settings.
    """
    if not labels_only and write_result is None:
        raise ValueError("segment_folder needs write_result unless labels_only=True")
    out = Path(out)
    claim_run_folder(out, settings, queries, labels_only)
    if labels_only:
        names = ["background", *queries]
        atomic_write_text("".join(f"{index} {name}\n" for index, name in enumerate(names)), out / CLASSES_FILE)
    distributed = Distributed.from_environment()
    try:
        summary = FolderSummary()
        shard = distributed.shard(list(items))
        bar = tqdm(shard, desc=f"segment (rank {distributed.rank})", unit="image", disable=not progress)
        with counting(len(shard), "images") as count:  # what an interrupted run says it got through
            for item in bar:
                done_marker = out / f"{item.key}.png" if labels_only else out / item.key / "result.json"
                if done_marker.is_file():
                    summary.skipped += 1
                    count.advance()
                    continue
                try:
                    image = load_image(item.path)
                except (ValueError, FileNotFoundError) as error:
                    summary.errors.append({"path": str(item.path), "error": str(error)})
                    continue
                result = car.segment(image, list(queries))
                if labels_only:
                    save_label_png(result.label_map, done_marker)
                else:
                    assert write_result is not None  # checked on entry
                    with atomic_directory(out / item.key, overwrite=True) as staging:
                        write_result(staging, image, result)
                summary.done += 1
                count.advance()
        counts = distributed.sum_array(np.array([summary.done, summary.skipped], dtype=np.float64))
        errors = distributed.gather(summary.errors)
        if distributed.rank != 0:
            return None
        total = FolderSummary(int(counts[0]), int(counts[1]), sorted(errors, key=lambda e: e["path"]))
        atomic_write_text(
            json.dumps({"done": total.done, "skipped": total.skipped, "errors": total.errors}, indent=2),
            out / ERRORS_FILE,
        )
        return total
    finally:
        distributed.close()


def claim_run_folder(
    out: Path, settings: dict[str, Any], queries: Sequence[str], labels_only: bool, *, write: bool = True
) -> None:
    """Store a run's settings in ``out/run.json``, or check that a resumed run has the same ones.

    ``write=False`` only checks (a command line does so before loading any model).

    Raises:
        ValueError: ``out`` holds a run with other settings; the message names them.
    """
    run_file = Path(out) / RUN_FILE
    wanted = json.loads(json.dumps({**settings, "queries": list(queries), "labels_only": labels_only}))
    if run_file.is_file():
        try:
            existing = json.loads(run_file.read_text())
        except json.JSONDecodeError:
            existing = None
        if existing != wanted:
            differing = sorted(k for k in set(wanted) | set(existing or {}) if (existing or {}).get(k) != wanted.get(k))
            raise ValueError(
                f"{out} holds a run with other settings ({', '.join(differing) or 'unreadable run.json'} differ); "
                "choose another --out, or delete it to start again"
            )
        return
    if write:
        atomic_write_text(json.dumps(wanted, indent=2), run_file)
