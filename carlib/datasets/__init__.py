"""Benchmark readers: the datasets CaR is evaluated on, as images and ground truth.

``open_dataset(preset_name, data_root, split)`` opens the benchmark of a
preset; ``check_dataset`` lists what is missing. Layouts, sources and
conversions: docs/datasets.md.

>>> dataset = open_dataset("voc", "/data/VOCdevkit")          # doctest: +SKIP
>>> image, labels = dataset.load(dataset.ids()[0])             # doctest: +SKIP
"""

from carlib.datasets.core import (
    IGNORE_LABEL,
    ReferringDataset,
    ReferringObject,
    SampleReadError,
    SemanticDataset,
    drop_background,
    read_label_png,
    segmentation_mask,
)
from carlib.datasets.gres import GresDataset, GresExpression
from carlib.datasets.refdavis import EXPRESSION_SETS, RefDavisDataset, ReferringVideo
from carlib.datasets.referring import load_refs
from carlib.datasets.registry import DATASET_PRESETS, check_dataset, open_dataset
from carlib.datasets.semantic import (
    COCO_THING_CATEGORY_IDS,
    WIDE_IGNORE_LABEL,
    FullLabelSetDataset,
    coco_object_lut,
    convert_coco_object,
)

__all__ = [
    "COCO_THING_CATEGORY_IDS",
    "DATASET_PRESETS",
    "EXPRESSION_SETS",
    "FullLabelSetDataset",
    "GresDataset",
    "GresExpression",
    "IGNORE_LABEL",
    "ReferringDataset",
    "ReferringObject",
    "ReferringVideo",
    "RefDavisDataset",
    "SampleReadError",
    "SemanticDataset",
    "WIDE_IGNORE_LABEL",
    "check_dataset",
    "coco_object_lut",
    "convert_coco_object",
    "drop_background",
    "load_refs",
    "open_dataset",
    "read_label_png",
    "segmentation_mask",
]
