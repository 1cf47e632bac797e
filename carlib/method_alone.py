"""A dense method on its own, as its paper evaluates it: per-pixel argmax over [classes; background], no recurrence.

Two protocols, each a :class:`MethodProtocol` recorded whole in the run's protocol card:

- ``"carlib"`` (the default): the method exactly as CaR's proposal stage reads
  it. The image shrunk to the preset's ``max_side`` and resized to a multiple
  of the patch size (as for Grad-CAM), one pass, the preset's class
  vocabulary without a template, the preset's background words as
  ``"a clean origami {}."``, the model's own logit scale. A pixel goes to
  the text with the highest probability; a background word's pixels are
  background (label 0).
- ``"field"``: the shared mmseg harness SCLIP wrote and ClearCLIP and NACLIP
  copied (:data:`FIELD_CONFIGS`): the image resized to a short side (its
  longer side at most 2048), sliding-window inference (a window and a stride;
  each window's patch-text cosines resized bilinearly to the window and
  averaged where windows overlap, then resized to the image), the method's
  per-dataset logit scale, the repositories' class-name files with synonyms
  (a label scores the best of its names), OpenAI's 80 ImageNet templates, and
  the method's background rule: the background line of the class-name file
  (stuff words, or the word "background") plus a probability threshold
  (``prob_thd``: a pixel whose best probability is below it is background),
  and SCLIP's VOC-21 area filter (``area_thd``). PAMR is off, as carlib has none.

Every value can be overridden from the command line; the card says which were.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import cv2
import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from carlib.cam import run_trunk
from carlib.car import CarResult, resolve_max_side
from carlib.class_names import ClassNameList, read_class_name_file, vocabulary_class_names
from carlib.dense_methods import NACLIP_GAUSSIAN_STD, check_method, cosine_maps, dense_patch_embeddings
from carlib.images import fit_within, load_image, proposal_input
from carlib.models import ClipBundle
from carlib.presets import Preset
from carlib.text import BACKGROUND_TEMPLATE, encode_texts

ProtocolName = Literal["carlib", "field"]
PROTOCOLS: tuple[str, ...] = get_args(ProtocolName)

OPENAI_IMAGENET_TEMPLATES: tuple[str, ...] = tuple(
    template("{}") for template in open_clip.zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES
)
"""OpenAI's 80 ImageNet templates (``openai_imagenet_template`` in every method's ``prompts/``), from open_clip."""

LONG_SIDE_LIMIT = 2048
"""The harness resizes with ``scale=(2048, short)``, keep_ratio: the short side to ``short`` unless the long side
would pass 2048."""


@dataclass(frozen=True)
class MethodProtocol:
    """Everything that turns a dense method's maps into a label map, besides the model.

    Attributes:
        name: ``"carlib"`` or ``"field"`` (:mod:`carlib.method_alone`).
        method: the dense method (:data:`carlib.dense_methods.DENSE_METHODS`).
        short_side: resize the image so its shorter side is this many pixels (its longer side at most
            :attr:`long_side_limit`), bilinearly; None: the image shrunk to the preset's ``max_side``.
        long_side_limit: see ``short_side``.
        window, stride: sliding-window inference in pixels of the resized image; None: one pass over the image.
        logit_scale: the multiplier of the cosines before the softmax over texts; None: the model's own.
        templates: the class names' templates (each embedding the normalised mean over them).
        class_names: a class-name file (``data/class_names/...`` or a path); None: the preset's vocabulary.
        class_names_have_background: the file's line 0 is the background (label 0); None: a file with one
            line more than the preset has classes has one.
        background_words: the preset's background words compete too (``"a clean origami {}."``), as label 0.
        probability_threshold: a pixel whose best label probability is below it is background.
        area_threshold: SCLIP's ``area_thd``: a class covering no more than this fraction of the predicted
            foreground is dropped (its probabilities set to 0) before the argmax; None: off.
        neighbourhood_std: NACLIP's σ in patches.
        source: where the values come from.
        overrides: the values set from the command line instead.
    """

    name: str
    method: str
    short_side: int | None = None
    long_side_limit: int = LONG_SIDE_LIMIT
    window: int | None = None
    stride: int | None = None
    logit_scale: float | None = None
    templates: tuple[str, ...] = ("{}",)
    class_names: str | None = None
    class_names_have_background: bool | None = None
    background_words: bool = True
    probability_threshold: float = 0.0
    area_threshold: float | None = None
    neighbourhood_std: float = NACLIP_GAUSSIAN_STD
    source: str = ""
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "templates", tuple(self.templates))
        object.__setattr__(self, "overrides", tuple(self.overrides))
        check_method(self.method)
        if self.name not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.name!r}; choose one of {', '.join(PROTOCOLS)}")
        for option, value in (("short side", self.short_side), ("window", self.window), ("stride", self.stride)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"the {option} must be a positive number of pixels, got {value!r}")
        if (self.window is None) != (self.stride is None):
            raise ValueError(
                "sliding-window inference needs both a window and a stride (--window and --stride), or neither"
            )
        if self.window is not None and self.stride is not None and self.stride > self.window:
            raise ValueError(
                f"a stride ({self.stride} px) longer than the window ({self.window} px) leaves pixels "
                f"no window covers; use a stride of at most {self.window}"
            )
        if self.window is not None and self.short_side is not None and self.window > self.short_side:
            raise ValueError(
                f"the window ({self.window} px) is larger than the image's short side after resizing "
                f"({self.short_side} px); use --window of at most {self.short_side} or a larger "
                "--short-side"
            )
        if self.logit_scale is not None and not self.logit_scale > 0:
            raise ValueError(f"the logit scale must be positive, got {self.logit_scale!r}")
        if not 0.0 <= self.probability_threshold <= 1.0:
            raise ValueError(f"the probability threshold must lie in [0, 1], got {self.probability_threshold!r}")
        if self.area_threshold is not None and not 0.0 <= self.area_threshold <= 1.0:
            raise ValueError(f"the area threshold must lie in [0, 1], got {self.area_threshold!r}")
        if not self.neighbourhood_std > 0:
            raise ValueError(f"NACLIP's Gaussian std must be positive, got {self.neighbourhood_std!r}")
        if not self.templates or any("{}" not in template for template in self.templates):
            raise ValueError(f"each template needs one '{{}}' placeholder; got {list(self.templates)}")

    def replace(self, **changes) -> MethodProtocol:
        """A checked copy with some values changed (each changed name added to :attr:`overrides`)."""
        overrides = tuple(dict.fromkeys([*self.overrides, *(name for name in changes if name != "overrides")]))
        return dataclasses.replace(self, **changes, overrides=overrides)

    def to_dict(self) -> dict:
        """Every value, JSON-ready (the templates as a list)."""
        values = dataclasses.asdict(self)
        values["templates"] = list(self.templates)
        values["overrides"] = list(self.overrides)
        return values


@dataclass(frozen=True)
class FieldConfig:
    """One method's configuration for one dataset in its official harness (``configs/cfg_<dataset>.py``)."""

    short_side: int
    window: int
    stride: int
    logit_scale: float
    probability_threshold: float
    class_names: str
    class_names_have_background: bool
    area_threshold: float | None = None
    source: str = ""


def _sclip_like(
    repository: str,
    files_note: str,
    logit_scale_default: float,
    overrides: dict[str, tuple[float, float, float | None]],
) -> dict[str, FieldConfig]:
    """The five datasets of a harness with SCLIP's geometry (short side 336, window 224, stride 112)."""
    files = {
        "voc": ("sclip/cls_voc21.txt", True),
        "voc20": ("sclip/cls_voc20.txt", False),
        "context": ("sclip/cls_context60.txt", True),
        "context59": ("sclip/cls_context59.txt", False),
        "coco_object": ("sclip/cls_coco_object.txt", True),
    }
    configs = {}
    for key, (names, background) in files.items():
        scale, threshold, area = overrides.get(key, (logit_scale_default, 0.0, None))
        cfg = {"voc": "voc21", "context": "context60"}.get(key, key)
        configs[key] = FieldConfig(
            336,
            224,
            112,
            scale,
            threshold,
            names,
            background,
            area,
            f"{repository} configs/cfg_{cfg}.py (Resize scale (2048, 336)); {files_note}",
        )
    return configs


def _clearclip_like(note: str) -> dict[str, FieldConfig]:
    """ClearCLIP's harness: short side 448, window 448, stride 224, logit scale 50 (ClearCLIPSegmentation's
    defaults), its per-dataset prob_thd."""
    rows = {
        "voc": ("clearclip/cls_voc21.txt", True, 0.5, "voc21", "its own cls_voc21.txt"),
        "voc20": ("sclip/cls_voc20.txt", False, 0.0, "voc20", "SCLIP's cls_voc20.txt (ClearCLIP's unreadable)"),
        "context": (
            "sclip/cls_context60.txt",
            True,
            0.15,
            "context60",
            "SCLIP's cls_context60.txt (ClearCLIP's unreadable)",
        ),
        "context59": (
            "sclip/cls_context59.txt",
            False,
            0.0,
            "context59",
            "SCLIP's cls_context59.txt (ClearCLIP's unreadable)",
        ),
        "coco_object": (
            "sclip/cls_coco_object.txt",
            True,
            0.4,
            "coco_object",
            "SCLIP's cls_coco_object.txt (ClearCLIP's unreadable)",
        ),
    }
    return {
        key: FieldConfig(
            448,
            448,
            224,
            50.0,
            threshold,
            names,
            background,
            None,
            f"mc-lan/ClearCLIP configs/cfg_{cfg}.py (Resize scale (2048, 448)) and "
            f"clearclip_segmentor.py defaults (slide 448/224, logit_scale 50); {files}{note}",
        )
        for key, (names, background, threshold, cfg, files) in rows.items()
    }


FIELD_CONFIGS: dict[str, dict[str, FieldConfig]] = {
    "sclip": _sclip_like(
        "wangf3014/SCLIP",
        "its own class-name files",
        40.0,
        {"voc": (65.0, 0.1, 0.1), "context": (50.0, 0.1, None), "coco_object": (50.0, 0.1, None)},
    ),
    "naclip": _sclip_like(
        "sinahmr/NACLIP",
        "SCLIP's class-name files (NACLIP's configs name cls_*.txt files that could not be read; "
        "its README: dataset configurations following SCLIP); PAMR off (NACLIP's default is on)",
        40.0,
        {"voc": (40.0, 0.1, None), "context": (40.0, 0.1, None), "coco_object": (40.0, 0.1, None)},
    ),
    "clearclip": _clearclip_like(""),
    "maskclip": _clearclip_like("; MaskCLIP as ClearCLIP's code evaluates it (model_type 'MaskCLIP')"),
}
"""Each method's official per-dataset configuration, keyed by method, then by carlib preset (``voc``, ``context``,
``coco_object``) or its without-background setting (``voc20``, ``context59``)."""

HARNESS_DEFAULTS: dict[str, tuple[int, int, float, str]] = {
    "sclip": (224, 112, 40.0, "wangf3014/SCLIP clip_segmentor.py CLIPForSegmentation defaults"),
    "naclip": (224, 112, 40.0, "sinahmr/NACLIP naclip.py NACLIP defaults (PAMR off)"),
    "clearclip": (448, 224, 50.0, "mc-lan/ClearCLIP clearclip_segmentor.py ClearCLIPSegmentation defaults"),
    "maskclip": (448, 224, 50.0, "mc-lan/ClearCLIP clearclip_segmentor.py defaults (model_type 'MaskCLIP')"),
}
"""(window, stride, logit scale, source) of each harness, for datasets it has no config for."""


def field_key(preset_name: str, without_background: bool = False) -> str:
    """The key of a preset (and its without-background setting) in :data:`FIELD_CONFIGS`."""
    if without_background:
        return {"voc": "voc20", "context": "context59"}.get(preset_name, preset_name)
    return preset_name


def field_protocol(method: str, preset_name: str, without_background: bool = False) -> MethodProtocol:
    """The field's protocol of ``method`` on a dataset: its official config, or its harness's defaults.

    For datasets the method's repository has no config for (ShapesWorld, ADE...), the harness's defaults apply
    (window, stride and logit scale of its segmentor, no resize, no threshold, the preset's vocabulary) and the
    source says so.
    """
    check_method(method)
    config = FIELD_CONFIGS[method].get(field_key(preset_name, without_background))
    if config is None:
        window, stride, scale, source = HARNESS_DEFAULTS[method]
        return MethodProtocol(
            "field",
            method,
            window=window,
            stride=stride,
            logit_scale=scale,
            templates=OPENAI_IMAGENET_TEMPLATES,
            background_words=False,
            source=f"no per-dataset config for {field_key(preset_name, without_background)}: "
            f"{source}, the preset's vocabulary, no threshold",
        )
    return MethodProtocol(
        "field",
        method,
        short_side=config.short_side,
        window=config.window,
        stride=config.stride,
        logit_scale=config.logit_scale,
        templates=OPENAI_IMAGENET_TEMPLATES,
        class_names=config.class_names,
        class_names_have_background=config.class_names_have_background,
        background_words=False,
        probability_threshold=config.probability_threshold,
        area_threshold=config.area_threshold,
        source=config.source,
    )


def carlib_protocol(method: str, neighbourhood_std: float = NACLIP_GAUSSIAN_STD) -> MethodProtocol:
    """carlib's protocol: the method as CaR's proposal stage reads it (module docstring)."""
    return MethodProtocol(
        "carlib",
        method,
        neighbourhood_std=neighbourhood_std,
        source="carlib: the proposal stage's texts (queries without a template, the preset's "
        "background words as 'a clean origami {}.'), the model's logit scale, one pass over "
        "the image shrunk to max_side",
    )


def make_protocol(name: str, method: str, preset_name: str, without_background: bool = False) -> MethodProtocol:
    """The named protocol of a method on a preset's dataset (:func:`field_protocol` or :func:`carlib_protocol`)."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    if name == "field":
        return field_protocol(method, preset_name, without_background)
    return carlib_protocol(method)


# --- geometry ------------------------------------------------------------------------------------------------


def short_side_size(
    height: int, width: int, short_side: int, long_side_limit: int = LONG_SIDE_LIMIT
) -> tuple[int, int]:
    """mmcv's keep-ratio rescale to ``(long_side_limit, short_side)``: (new height, new width).

    The scale is min(long_side_limit / long side, short_side / short side); each side becomes
    ``int(side * scale + 0.5)``.
    """
    scale = min(long_side_limit / max(height, width), short_side / min(height, width))
    return int(height * scale + 0.5), int(width * scale + 0.5)


def sliding_windows(height: int, width: int, window: int, stride: int) -> list[tuple[int, int, int, int]]:
    """The windows of the harness's ``forward_slide``: (top, bottom, left, right), each ``window`` square.

    Rows of windows start every ``stride`` pixels; the last row and column are moved back to end at the
    image's edge, so every window lies inside the image and every pixel is covered.

    Raises:
        ValueError: a window larger than the image (the harness would then run a smaller crop).
    """
    if window > min(height, width):
        raise ValueError(
            f"the window ({window} px) is larger than the image ({height} x {width} px after "
            f"resizing); use --window of at most {min(height, width)} or --short-side of at least "
            f"{window}"
        )
    rows = max(height - window + stride - 1, 0) // stride + 1
    columns = max(width - window + stride - 1, 0) // stride + 1
    windows = []
    for row in range(rows):
        for column in range(columns):
            bottom, right = min(row * stride + window, height), min(column * stride + window, width)
            windows.append((max(bottom - window, 0), bottom, max(right - window, 0), right))
    return windows


# --- the segmenter -------------------------------------------------------------------------------------------


@dataclass
class AloneResult:
    """A dense method's segmentation of one image.

    Attributes:
        label_map: int32 H x W, CaR's labels (0 = background, k = class k).
        probabilities: float32 (K + 1) x H x W, each label's best probability among its texts (-1 for
            a label without texts, such as 0 when nothing stands for the background).
        working_size: (h, w) the windows ran on.
        windows: how many passes the model made.
        seconds: wall time.
    """

    label_map: np.ndarray
    probabilities: np.ndarray
    working_size: tuple[int, int]
    windows: int
    seconds: float = 0.0
    dropped_by_area: list[int] = field(default_factory=list)


class MethodAlone:
    """A dense method as a segmenter on its own, under one :class:`MethodProtocol`.

    Arguments:
        bundle: the CLIP (a ViT-like tower).
        preset: gives the class vocabulary (when the protocol names no file), the number of labels, the
            background words and ``max_side``.
        protocol: the protocol.
        class_names: a list to use instead of the protocol's file or the preset's vocabulary (``carlib segment``'s
            queries); its length sets the labels.

    Raises:
        ValueError: a class-name file whose number of labels does not match the preset's classes.
        FileNotFoundError: a class-name file that does not exist.
        carlib.towers.CapabilityError: a convolutional tower.
    """

    def __init__(
        self, bundle: ClipBundle, preset: Preset, protocol: MethodProtocol, class_names: ClassNameList | None = None
    ) -> None:
        spec = check_method(protocol.method)
        bundle.tower.require_attention(f"{spec.title} dense maps")
        self.bundle, self.preset, self.protocol = bundle, preset, protocol
        given = class_names is not None
        classes = (
            len(class_names.labels) - (1 - class_names.first_label)
            if class_names is not None
            else len(preset.class_names)
        )
        if class_names is None and protocol.class_names is not None:
            background = protocol.class_names_have_background
            class_names = read_class_name_file(protocol.class_names, has_background=bool(background))
            if background is None and len(class_names.labels) == classes + 1:
                class_names = dataclasses.replace(class_names, first_label=0)
        elif class_names is None:
            class_names = vocabulary_class_names(preset.class_names, preset.name)
        expected = classes + (1 if class_names.first_label == 0 else 0)
        if not given and len(class_names.labels) != expected:
            raise ValueError(
                f"{class_names.source} lists {len(class_names.labels)} labels; preset {preset.name} has "
                f"{classes} classes{' plus the background' if class_names.first_label == 0 else ''} "
                f"({expected}): use a class-name file of that dataset"
            )
        self.class_names = class_names
        self.background = tuple(preset.settings.background) if protocol.background_words else ()
        self.num_labels = classes + 1
        with torch.no_grad():
            names = encode_texts(bundle, class_names.names, protocol.templates)
            words = encode_texts(bundle, list(self.background), (BACKGROUND_TEMPLATE,))
        self.texts = torch.cat([names, words]).float()
        self.text_labels = torch.tensor(class_names.label_of_name + [0] * len(self.background), dtype=torch.long)
        self.max_side = resolve_max_side(preset.settings.max_side, bundle)

    def texts_record(self) -> dict:
        """The protocol card's texts: templates, background words, the class-name list with its sha256."""
        return {
            "templates": list(self.protocol.templates),
            "background_template": BACKGROUND_TEMPLATE,
            "background_words": list(self.background),
            "class_names": self.class_names.to_dict(),
            "logit_scale": self.logit_scale,
        }

    def image_record(self) -> dict:
        """The protocol card's geometry: resize rule, max side, window and stride."""
        protocol = self.protocol
        if protocol.short_side is None:
            rule = (
                "shrunk to max_side (area) when larger; each window resized bicubically to a multiple of the "
                "patch size (no crop), positional embedding resized bilinearly"
            )
        else:
            rule = (
                f"short side resized to {protocol.short_side} px (bilinear, keep ratio, long side at most "
                f"{protocol.long_side_limit}); each window resized bicubically to a multiple of the patch size "
                "(no crop), positional embedding resized bilinearly; maps resized bilinearly to each window, "
                "averaged where windows overlap, resized bilinearly to the image"
            )
        return {
            "resize_rule": rule,
            "max_side": self.max_side if protocol.short_side is None else None,
            "short_side": protocol.short_side,
            "patch_size": self.bundle.patch_size,
            "window": protocol.window,
            "stride": protocol.stride,
        }

    @property
    def logit_scale(self) -> float:
        """The protocol's logit scale, or the model's own."""
        scale = self.protocol.logit_scale
        return float(self.bundle.logit_scale) if scale is None else float(scale)

    def working_image(self, image: np.ndarray) -> np.ndarray:
        """The image the windows run on: resized to the protocol's short side (bilinear), else shrunk to max_side."""
        if self.protocol.short_side is None:
            return fit_within(image, self.max_side)
        height, width = image.shape[:2]
        size = short_side_size(height, width, self.protocol.short_side, self.protocol.long_side_limit)
        if size == tuple(image.shape[:2]):
            return image
        return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)

    def cosines(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int], int]:
        """Every text's cosine map at the image's size (float32 T x H x W), the working size and the passes."""
        working = self.working_image(image)
        height, width = working.shape[:2]
        window, stride = self.protocol.window, self.protocol.stride
        if window is None:
            windows = [(0, height, 0, width)]
        else:
            assert stride is not None  # MethodProtocol checks: both or neither
            windows = sliding_windows(height, width, window, stride)
        device = self.bundle.device
        total = torch.zeros((len(self.texts), height, width), device=device)
        count = torch.zeros((1, height, width), device=device)
        texts = self.texts.to(device)
        for top, bottom, left, right in windows:
            crop = np.ascontiguousarray(working[top:bottom, left:right])
            pixels = proposal_input(crop, self.bundle.patch_size, self.bundle.mean, self.bundle.std).to(device)
            with torch.no_grad():
                trunk = run_trunk(self.bundle, pixels, 0)
                patches = dense_patch_embeddings(
                    self.bundle, trunk, self.protocol.method, self.protocol.neighbourhood_std
                )
                maps = cosine_maps(patches, texts, trunk.grid)
                maps = F.interpolate(
                    maps[None], size=(bottom - top, right - left), mode="bilinear", align_corners=False
                )[0]
            total[:, top:bottom, left:right] += maps
            count[:, top:bottom, left:right] += 1
        cosines = total / count
        if (height, width) != tuple(image.shape[:2]):
            cosines = F.interpolate(cosines[None], size=tuple(image.shape[:2]), mode="bilinear", align_corners=False)[0]
        return cosines, (height, width), len(windows)

    def segment(self, image) -> AloneResult:
        """The label map of one image (path, PIL image or H x W x 3 uint8) under the protocol."""
        start = time.perf_counter()
        rgb = load_image(image)
        cosines, working_size, passes = self.cosines(rgb)
        labels, per_label, dropped = labels_from_cosines(
            cosines,
            self.text_labels,
            self.num_labels,
            self.logit_scale,
            self.protocol.probability_threshold,
            self.protocol.area_threshold,
        )
        return AloneResult(
            labels.to(torch.int32).cpu().numpy(),
            per_label.float().cpu().numpy(),
            working_size,
            passes,
            time.perf_counter() - start,
            dropped,
        )


def labels_from_cosines(
    cosines: torch.Tensor,
    text_labels: torch.Tensor,
    num_labels: int,
    logit_scale: float,
    probability_threshold: float = 0.0,
    area_threshold: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The harness's post-processing: scale, softmax over every text, each label's best text, argmax, thresholds.

    Arguments:
        cosines: float32 T x H x W, every text's cosine map.
        text_labels: long T, the label of each text (0: background).
        num_labels: K + 1 labels, 0..K.
        logit_scale: the cosines' multiplier before the softmax.
        probability_threshold: pixels whose best label probability is below it become 0.
        area_threshold: SCLIP's area filter (:func:`drop_small_classes`), applied before the argmax; None: off.

    Returns:
        (int64 H x W labels, float32 (K + 1) x H x W best probability per label (-1 where a label has no text),
        labels dropped by the area filter).
    """
    probabilities = (cosines * logit_scale).softmax(dim=0)
    per_label = torch.full((num_labels, *probabilities.shape[1:]), -1.0, device=probabilities.device)
    index = text_labels.to(probabilities.device)[:, None, None].expand_as(probabilities)
    per_label = per_label.scatter_reduce(0, index, probabilities, reduce="amax", include_self=True)
    dropped: list[int] = []
    if area_threshold is not None:
        per_label, dropped = drop_small_classes(per_label, area_threshold)
    best, labels = per_label.max(dim=0)
    labels[best < probability_threshold] = 0
    return labels, per_label, dropped


def drop_small_classes(per_label: torch.Tensor, area_threshold: float) -> tuple[torch.Tensor, list[int]]:
    """SCLIP's ``area_thd``: zero the probabilities of every class (label ≥ 1) whose argmax area is at most
    ``area_threshold`` of all pixels predicted as a class. Returns the new maps and the labels dropped."""
    winners = per_label.argmax(dim=0)
    areas = torch.bincount(winners.flatten(), minlength=per_label.shape[0])[1:].float()
    keep = areas > area_threshold * areas.sum()
    result = per_label.clone()
    result[1:] = result[1:] * keep[:, None, None].to(result.dtype)
    return result, [int(label) + 1 for label in torch.nonzero(~keep).flatten()]


def protocol_from_options(
    name: str,
    method: str,
    preset_name: str,
    without_background: bool = False,
    *,
    short_side: object = "default",
    window: object = "default",
    stride: object = "default",
    logit_scale: float | None = None,
    probability_threshold: float | None = None,
    class_names: str | None = None,
    neighbourhood_std: float | None = None,
    templates: Sequence[str] | None = None,
) -> MethodProtocol:
    """The named protocol with the command line's values on top (``"default"``: the protocol's own; None for
    short side and window: off). Each value given is listed in the card's ``overrides``."""
    protocol = make_protocol(name, method, preset_name, without_background)
    changes: dict = {}
    for option, value in (("short_side", short_side), ("window", window), ("stride", stride)):
        if value != "default":
            changes[option] = value
    if "window" in changes and changes["window"] is None:
        changes["stride"] = None
    for option, value in (
        ("logit_scale", logit_scale),
        ("probability_threshold", probability_threshold),
        ("neighbourhood_std", neighbourhood_std),
    ):
        if value is not None:
            changes[option] = value
    if templates is not None:
        changes["templates"] = tuple(templates)
    if class_names is not None:
        changes["class_names"] = class_names
        changes["class_names_have_background"] = None  # read from the file's length
    return protocol.replace(**changes) if changes else protocol


class AloneSegmenter:
    """A dense method alone with :class:`carlib.car.CaR`'s ``segment(image, queries)``, for ``carlib segment``.

    The queries are the classes (label k = query k - 1); the result is a :class:`carlib.car.CarResult` with no
    steps: ``soft_masks`` are each query's probability, ``masks`` its pixels of the label map, ``scores`` the mean
    probability over them (0 when it won no pixel, so ``kept`` says which queries appear).

    Arguments:
        bundle, preset, protocol: as :class:`MethodAlone` (the protocol's class-name file is not used).
    """

    def __init__(self, bundle: ClipBundle, preset: Preset, protocol: MethodProtocol) -> None:
        self.bundle, self.preset, self.protocol = bundle, preset, protocol
        self._segmenters: dict[tuple[str, ...], MethodAlone] = {}

    def method_alone(self, queries: Sequence[str]) -> MethodAlone:
        """The :class:`MethodAlone` of these queries (built once per query list)."""
        key = tuple(queries)
        if key not in self._segmenters:
            self._segmenters[key] = MethodAlone(
                self.bundle, self.preset, self.protocol, class_names=vocabulary_class_names(key, source="the queries")
            )
        return self._segmenters[key]

    def segment(self, image, queries: Sequence[str]) -> CarResult:
        from carlib.text import validate_queries

        queries = validate_queries(queries)
        result = self.method_alone(queries).segment(image)
        label_map = result.label_map
        probabilities = np.clip(result.probabilities[1:], 0.0, 1.0).astype(np.float32)
        masks = np.stack([label_map == index + 1 for index in range(len(queries))])
        scores = np.array(
            [float(probabilities[index][mask].mean()) if mask.any() else 0.0 for index, mask in enumerate(masks)],
            dtype=np.float32,
        )
        return CarResult(
            queries=list(queries),
            soft_masks=probabilities,
            masks=masks,
            scores=scores,
            label_map=label_map,
            steps=[],
            seconds={"method": result.seconds},
            working_size=result.working_size,
        )
