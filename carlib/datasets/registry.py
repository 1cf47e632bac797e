"""One entry point per task: open a benchmark by preset name, or list what is missing for it."""

from __future__ import annotations

from pathlib import Path

from carlib.datasets.core import ReferringDataset, SemanticDataset
from carlib.datasets.gres import GRES_NAME, GresDataset, check_gres, open_gres
from carlib.datasets.refdavis import REFDAVIS_NAME, RefDavisDataset, check_refdavis, open_refdavis
from carlib.datasets.referring import REFERRING_NAMES, SentenceField, check_referring, open_referring
from carlib.datasets.semantic import SEMANTIC_LAYOUTS, check_semantic, open_semantic

PathLike = str | Path

DATASET_PRESETS: tuple[str, ...] = (*SEMANTIC_LAYOUTS, *REFERRING_NAMES, GRES_NAME, REFDAVIS_NAME)
"""The preset names with a dataset reader: voc, shapes, context, coco_object, ade150, ade847, context459,
refcoco, refcoco+, refcocog, gres, refdavis17."""


def _known(preset_name: str) -> None:
    if preset_name not in DATASET_PRESETS:
        raise ValueError(f"no dataset reader for preset {preset_name!r}; known: {', '.join(DATASET_PRESETS)}")


def open_dataset(
    preset_name: str,
    data_root: PathLike,
    split: str | None = None,
    *,
    without_background: bool = False,
    split_by: str | None = None,
    image_dir: PathLike | None = None,
    sentence_field: SentenceField = "raw",
) -> SemanticDataset | ReferringDataset | GresDataset | RefDavisDataset:
    """Open the benchmark that preset ``preset_name`` is evaluated on.

    Checks the layout (folders, split file) but reads no sample; samples are
    read by ``load``. Layouts and how to obtain them: docs/datasets.md.

    Arguments:
        preset_name: ``"voc"`` (PASCAL VOC 2012), ``"shapes"`` (a ShapesWorld
            VOC export), ``"context"`` (PASCAL Context), ``"coco_object"``,
            ``"ade150"``, ``"ade847"`` (ADE20K-full), ``"context459"`` (PASCAL
            Context, full label set), ``"refcoco"``, ``"refcoco+"``, ``"refcocog"``,
            ``"gres"`` (gRefCOCO: one sample per expression, a :class:`GresDataset`),
            ``"refdavis17"`` (Ref-DAVIS17 videos, a :class:`carlib.datasets.refdavis.RefDavisDataset`).
        data_root: the folder holding the dataset (see docs/datasets.md for
            which levels are accepted).
        split: default ``"val"`` (ADE's and the detectron2 layouts'
            ``"validation"``, COCO's ``"val2017"`` and ReferFormer's ``"valid"`` folders are what
            ``"val"`` means there).
        without_background: semantic only. Background (label 0) becomes 255
            and labels shift down by one: VOC-20 and Context-59 instead of
            VOC-21 and Context-60. ADE-150 always drops its label 0 ("other");
            ADE-847 and Context-459 have no background label (it has no effect).
        split_by: referring only: ``"unc"``, ``"umd"`` or ``"google"``
            (default: unc for RefCOCO/RefCOCO+, umd for RefCOCOg).
        image_dir: referring only: the COCO train2014 image folder, when it is
            not inside ``data_root``.
        sentence_field: referring only: ``"raw"`` (default, as the reference
            loader) or ``"sent"`` (refer's normalised sentences).

    Returns:
        a :class:`SemanticDataset` or a :class:`ReferringDataset`.

    Raises:
        FileNotFoundError: the layout is incomplete; the message shows the
            expected tree and points to docs/datasets.md.
        ValueError: unknown preset, split or option for this dataset.
    """
    _known(preset_name)
    if preset_name == REFDAVIS_NAME:  # videos: every frame of each, one expression per object and expression set
        if without_background or split_by is not None or image_dir is not None:
            raise ValueError("without_background, split_by and image_dir do not apply to refdavis17")
        return open_refdavis(data_root, split)
    if preset_name == GRES_NAME:  # gRefCOCO: one sample per expression, which may refer to several objects or none
        if without_background:
            raise ValueError("without_background applies to semantic datasets, not gres")
        return open_gres(data_root, split, split_by=split_by, image_dir=image_dir, sentence_field=sentence_field)
    if preset_name in REFERRING_NAMES:
        if without_background:
            raise ValueError(f"without_background applies to semantic datasets, not {preset_name}")
        return open_referring(
            preset_name, data_root, split, split_by=split_by, image_dir=image_dir, sentence_field=sentence_field
        )
    if split_by is not None or image_dir is not None:
        raise ValueError(f"split_by and image_dir apply to referring datasets, not {preset_name}")
    return open_semantic(preset_name, data_root, split, without_background=without_background)


def check_dataset(
    preset_name: str, data_root: PathLike, split: str | None = None, *, split_by: str | None = None
) -> list[str]:
    """List what is missing for preset ``preset_name``'s benchmark under ``data_root``.

    Looks at the expected tree: folders, split file, and (semantic datasets)
    that each listed sample has its image and ground-truth file, by name.
    Opens no pickle, and no image except for refdavis17, whose check reads
    the frames' headers (sizes) and each video's first annotation (its objects).

    Arguments:
        preset_name: as for :func:`open_dataset`.
        data_root: the folder holding the dataset.
        split: default ``"val"``.
        split_by: referring only, as for :func:`open_dataset`.

    Returns:
        human-readable problems, one per line; empty when the layout is complete.

    Raises:
        ValueError: unknown preset.
    """
    _known(preset_name)
    if preset_name == REFDAVIS_NAME:
        if split_by is not None:
            return [f"split_by applies to RefCOCO-style datasets, not {preset_name}"]
        return check_refdavis(data_root, split)
    if preset_name == GRES_NAME:
        return check_gres(data_root, split, split_by=split_by)
    if preset_name in REFERRING_NAMES:
        return check_referring(preset_name, data_root, split, split_by=split_by)
    if split_by is not None:
        return [f"split_by applies to referring datasets, not {preset_name}"]
    return check_semantic(preset_name, data_root, split)
