"""Automatic mask sources: where the regions that CaR masks snap to come from.

A :class:`MaskSource` turns an image into M class-agnostic regions. The
reference uses HQ-SAM ViT-H's automatic mask generator
(``clip_as_rnn/sam/sam.py::SAMPipeline.segment_automask`` in
google-research/google-research, with HQ-SAM's code installed under the name
``segment_anything``); :class:`SamMaskSource` wraps the
``SamAutomaticMaskGenerator`` of the official HQ-SAM package
(``segment_anything_hq``) for HQ-SAM checkpoints and of the original
``segment_anything`` for SAM ones, with the same settings. :class:`ColourRegionMaskSource` needs no model at all: it cuts an
image into connected regions of similar colour, which is enough for
ShapesWorld's flat-coloured objects and lets the matching run end to end
without a SAM checkpoint.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from carlib.postprocess.sam_settings import SamSettings

SAM_CHECKPOINTS: dict[str, tuple[str, str]] = {
    "vit_h": ("sam_vit_h_4b8939.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth"),
    "vit_l": ("sam_vit_l_0b3195.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth"),
    "vit_b": ("sam_vit_b_01ec64.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"),
}
"""Official SAM checkpoint file names and download addresses, by ``model_type``."""

_HQ_SAM_URL = "https://huggingface.co/lkeab/hq-sam/resolve/main/"
HQ_SAM_CHECKPOINTS: dict[str, tuple[str, str]] = {
    model_type: (f"sam_hq_{model_type}.pth", f"{_HQ_SAM_URL}sam_hq_{model_type}.pth")
    for model_type in ("vit_h", "vit_l", "vit_b", "vit_tiny")
}
"""Official HQ-SAM checkpoint file names (SysCV/sam-hq) and download addresses, by ``model_type``.
The reference's is ``sam_hq_vit_h.pth`` (``configs/voc.yaml``)."""

HQ_SAM_KEY = "mask_decoder.hf_token.weight"
"""HQ-SAM's output token: every HQ-SAM checkpoint has it (with ``hf_mlp``, ``compress_vit_feat``,
``embedding_encoder`` and ``embedding_maskfeature``) and no SAM checkpoint does."""

_SAM_MODEL_TYPES = ("auto", "default", "vit_h", "vit_l", "vit_b", "vit_tiny")  # "auto", then the registries' keys
_SAM_ENCODER_WIDTHS = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}  # image_encoder.patch_embed output channels
_TINY_VIT_KEY = "image_encoder.patch_embed.seq.0.c.weight"  # HQ-SAM's vit_tiny (a TinyViT image encoder)
_SAM_INSTALL_HINT = "pip install 'carlib[sam]'  (or: pip install segment-anything)"
_HQ_SAM_INSTALL_HINT = "pip install 'carlib[sam]'  (or: pip install segment-anything-hq)"


@runtime_checkable
class MaskSource(Protocol):
    """Anything that proposes class-agnostic regions for an image."""

    def generate(self, image: np.ndarray) -> np.ndarray:
        """Propose regions.

        Arguments:
            image: H x W x 3 uint8 RGB.

        Returns:
            M x H x W bool masks (M >= 0); they may overlap.
        """
        ...


class SamMaskSource:
    """SAM's or HQ-SAM's automatic mask generator as a :class:`MaskSource`.

    The reference (``SAMPipeline`` in ``clip_as_rnn/sam/sam.py``, settings from
    ``configs/voc.yaml``'s ``sam`` section) runs HQ-SAM ViT-H
    (``sam_hq_vit_h.pth``) with ``points_per_side=64, pred_iou_thresh=0.88,
    stability_score_thresh=0.95, box_nms_thresh=0.7, crop_n_layers=0,
    crop_n_points_downscale_factor=1`` and the generator's defaults otherwise
    (``min_mask_region_area=0``, multimask output): the
    :class:`~carlib.postprocess.sam.SamSettings` defaults, used for both families.

    **Which family.** A checkpoint holding HQ-SAM's extra decoder weights
    (:data:`HQ_SAM_KEY`) is built with ``segment_anything_hq``; any other with
    ``segment_anything`` (:data:`SAM_CHECKPOINTS`). A file named like an HQ-SAM
    checkpoint (``sam_hq_*.pth``) without those weights is refused: HQ-SAM's
    own builder would load it silently (``strict=False``) and run its HQ token
    on random weights.

    Both packages' builders call ``torch.load(f)`` without ``weights_only``; we
    instead load the state dict with ``torch.load(..., weights_only=True)``
    (tensors only, no pickled code), build the model with
    ``sam_model_registry[model_type](checkpoint=None)`` and load it strictly.

    Arguments:
        checkpoint: path to an official SAM checkpoint (``sam_vit_h_4b8939.pth``)
            or HQ-SAM checkpoint (``sam_hq_vit_h.pth``, ``sam_hq_vit_l.pth``,
            ``sam_hq_vit_b.pth``, ``sam_hq_vit_tiny.pth``).
        model_type: ``"auto"`` (read from the checkpoint: its image encoder's
            width, or HQ-SAM's TinyViT), ``"vit_h"``, ``"vit_l"``, ``"vit_b"``,
            ``"vit_tiny"`` (HQ-SAM only), or ``"default"`` (= vit_h).
        device: torch device; None picks ``"cuda"`` when available, else ``"cpu"``.
        settings: the generator's ``points_per_side``, ``pred_iou_thresh``,
            ``stability_score_thresh``, ``box_nms_thresh`` and
            ``min_mask_region_area`` (a preset's
            :class:`~carlib.postprocess.sam.SamSettings`; the reference's values by default).

    Attributes:
        hq: True for an HQ-SAM checkpoint.
        model_type: the architecture built.
        model: the ``Sam`` model (``segment_anything_hq``'s or ``segment_anything``'s).
        generator: its ``SamAutomaticMaskGenerator``.
        description: one line naming the family, architecture and file (also logged under ``carlib``).

    Raises:
        ValueError: for an unknown ``model_type``.
        FileNotFoundError: if ``checkpoint`` does not exist (the message names
            the official file and where to download it).
        ImportError: if the package the checkpoint needs is not installed.
        RuntimeError: if the checkpoint is no SAM checkpoint, does not fit
            ``model_type``, or is named ``sam_hq_*`` but holds plain SAM weights.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        model_type: str = "auto",
        device: str | None = None,
        settings: SamSettings | None = None,
    ) -> None:
        settings = settings or SamSettings()
        if model_type not in _SAM_MODEL_TYPES:
            raise ValueError(f"unknown SAM model_type {model_type!r}; choose one of {', '.join(_SAM_MODEL_TYPES)}")
        path = Path(checkpoint).expanduser()
        named_hq = path.name.lower().startswith("sam_hq")
        # The checkpoint is checked before the import so that a wrong path is
        # reported the same way whether or not the package is installed.
        if not path.is_file():
            official = HQ_SAM_CHECKPOINTS if named_hq or model_type == "vit_tiny" else SAM_CHECKPOINTS
            name, url = official["vit_h" if model_type in ("auto", "default") else model_type]
            raise FileNotFoundError(
                f"SAM checkpoint not found: {str(path)!r}. Download the official {model_type} weights "
                f"({name}) from {url} and pass their path."
            )
        import torch

        # Read before importing: its keys say which package (SAM or HQ-SAM) it needs.
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
            raise RuntimeError(
                f"cannot read {str(path)!r} as a SAM checkpoint (a torch.save'd state dict of "
                f"tensors): {str(error).splitlines()[0] if str(error) else type(error).__name__}"
            ) from error
        if not isinstance(state_dict, dict):
            raise RuntimeError(
                f"{str(path)!r} is not a SAM checkpoint (not a state dict); pass an official "
                "sam_vit_*.pth or sam_hq_vit_*.pth file"
            )
        hq = HQ_SAM_KEY in state_dict
        if named_hq and not hq:
            name, url = HQ_SAM_CHECKPOINTS["vit_h"]
            raise RuntimeError(
                f"{str(path)!r} is named like an HQ-SAM checkpoint but holds plain SAM weights (no {HQ_SAM_KEY}): "
                f"get the HQ-SAM file ({name}, {url}) or name a SAM checkpoint as the official one "
                f"({SAM_CHECKPOINTS['vit_h'][0]})"
            )
        if model_type == "auto":
            model_type = _sam_model_type(state_dict, path)
        if model_type == "vit_tiny" and not hq:
            raise RuntimeError(
                f"{str(path)!r}: vit_tiny exists only as HQ-SAM (sam_hq_vit_tiny.pth), and this "
                f"checkpoint has no {HQ_SAM_KEY}"
            )
        package = _import_segment_anything_hq() if hq else _import_segment_anything()
        family = "HQ-SAM" if hq else "SAM"
        model = package.sam_model_registry[model_type](checkpoint=None)
        try:
            model.load_state_dict(state_dict)
        except RuntimeError as error:
            raise RuntimeError(
                f"{str(path)!r} does not fit {family} {model_type!r}: pass the model_type the checkpoint was "
                f"trained as ({' '.join(str(error).split())[:300]})"
            ) from error
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device=device).eval()
        self.checkpoint = path
        self.hq = hq
        self.model_type = model_type
        self.device = device
        self.model = model
        self.description = f"{family} {model_type} ({package.__name__}) from {path.name}"
        self.generator = package.SamAutomaticMaskGenerator(
            model=model,
            points_per_side=settings.points_per_side,
            pred_iou_thresh=settings.pred_iou_thresh,
            stability_score_thresh=settings.stability_score_thresh,
            box_nms_thresh=settings.box_nms_thresh,
            crop_n_layers=0,
            crop_n_points_downscale_factor=1,
            min_mask_region_area=settings.min_mask_region_area,
        )
        logging.getLogger("carlib").info(
            "SAM post-processing: %s, points_per_side=%d", self.description, settings.points_per_side
        )

    def generate(self, image: np.ndarray) -> np.ndarray:
        """SAM's automatic masks for ``image``.

        Arguments:
            image: H x W x 3 uint8 RGB.

        Returns:
            M x H x W bool, in the generator's output order (as the reference keeps it).
        """
        image = _check_rgb(image)
        records = self.generator.generate(image)
        if not records:
            return np.zeros((0, *image.shape[:2]), dtype=bool)
        return np.stack([np.asarray(record["segmentation"], dtype=bool) for record in records])


@dataclass(frozen=True)
class ColourRegionMaskSource:
    """Connected regions of similar colour, as a model-free stand-in for SAM.

    Steps: (1) ``cv2.pyrMeanShiftFiltering`` flattens texture and noise while
    keeping colour edges; (2) 4-neighbouring pixels whose filtered colours differ
    by at most ``tolerance`` in every channel are joined, and the connected
    components of that graph are the regions; (3) regions smaller than
    ``min_area`` pixels are dropped (texture specks, object accents). No ground
    truth is used and the result is deterministic.

    On ShapesWorld an object's body comes out as one region and its large
    accents (a wheel's rim, a tent's door) as others, much like SAM's part
    masks; the IoM matching then unions the parts a CaR mask covers. Textured
    backgrounds split into several large regions.

    Attributes:
        spatial_radius: mean-shift spatial window radius in pixels.
        colour_radius: mean-shift colour window radius (0..255 units).
        tolerance: largest per-channel difference (0..255) between neighbouring
            filtered pixels of one region. Larger merges more.
        min_area: smallest region kept, in pixels.
    """

    spatial_radius: int = 5
    colour_radius: float = 12.0
    tolerance: int = 8
    min_area: int = 32

    def __post_init__(self) -> None:
        if self.spatial_radius < 1:
            raise ValueError(f"spatial_radius must be >= 1, got {self.spatial_radius}")
        if self.colour_radius <= 0:
            raise ValueError(f"colour_radius must be > 0, got {self.colour_radius}")
        if self.tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if self.min_area < 1:
            raise ValueError(f"min_area must be >= 1, got {self.min_area}")

    def generate(self, image: np.ndarray) -> np.ndarray:
        """Colour regions of ``image``.

        Arguments:
            image: H x W x 3 uint8 RGB.

        Returns:
            M x H x W bool, disjoint, largest region first (ties: the region
            whose first pixel in raster order comes first).
        """
        import cv2
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        image = _check_rgb(image)
        height, width = image.shape[:2]
        smooth = cv2.pyrMeanShiftFiltering(
            np.ascontiguousarray(image), float(self.spatial_radius), float(self.colour_radius)
        ).astype(np.int16)
        index = np.arange(height * width).reshape(height, width)
        right = np.abs(smooth[:, 1:] - smooth[:, :-1]).max(axis=2) <= self.tolerance
        down = np.abs(smooth[1:] - smooth[:-1]).max(axis=2) <= self.tolerance
        sources = np.concatenate([index[:, :-1][right], index[:-1][down]])
        targets = np.concatenate([index[:, 1:][right], index[1:][down]])
        graph = coo_matrix((np.ones(sources.size, dtype=np.int8), (sources, targets)), shape=(height * width,) * 2)
        # Component labels are numbered in raster order of each component's
        # first pixel, which makes the tie-break of the sort below stable.
        count, labels = connected_components(graph, directed=False)
        areas = np.bincount(labels, minlength=count)
        keep = np.flatnonzero(areas >= self.min_area)
        keep = keep[np.argsort(-areas[keep], kind="stable")]
        if keep.size == 0:
            return np.zeros((0, height, width), dtype=bool)
        labels = labels.reshape(height, width)
        return labels[None] == keep[:, None, None]


def _import_segment_anything():
    try:
        import segment_anything
    except ImportError as error:
        raise ImportError(
            f"SamMaskSource needs the optional segment_anything package, which is not installed: {_SAM_INSTALL_HINT}. "
            "ColourRegionMaskSource works without it."
        ) from error
    return segment_anything


def _import_segment_anything_hq():
    try:
        with warnings.catch_warnings():
            # Its TinyViT re-registers timm model names and imports timm's deprecated paths: noise, not problems.
            warnings.simplefilter("ignore")
            import segment_anything_hq
    except ImportError as error:
        raise ImportError(
            "this is an HQ-SAM checkpoint, which needs the optional segment_anything_hq package (not installed): "
            f"{_HQ_SAM_INSTALL_HINT}"
        ) from error
    return segment_anything_hq


def _check_rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"image must be H x W x 3 uint8 RGB, got shape {array.shape} dtype {array.dtype}")
    return array


def _sam_model_type(state_dict: dict, path: Path) -> str:
    """vit_b, vit_l or vit_h from the width of a SAM checkpoint's image encoder; vit_tiny for HQ-SAM's TinyViT."""
    if _TINY_VIT_KEY in state_dict:
        return "vit_tiny"
    weight = state_dict.get("image_encoder.patch_embed.proj.weight")
    if weight is None or int(weight.shape[0]) not in _SAM_ENCODER_WIDTHS:
        raise RuntimeError(
            f"{str(path)!r} is not a SAM checkpoint (no image_encoder.patch_embed.proj.weight of a "
            f"known width); pass an official sam_vit_*.pth or sam_hq_vit_*.pth file"
        )
    return _SAM_ENCODER_WIDTHS[int(weight.shape[0])]
