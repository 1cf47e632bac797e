"""The ShapesWorld report: how well the shipped CLIP classifies and localises.

Three figures on held-out ``test``-split scenes (never seen in training):

- zero-shot accuracy on single-object scenes (image embedding vs the raw
  class names, argmax);
- Grad-CAM IoU of every present class, thresholded at 0.5, with all class
  names queried and the ``shapes`` preset's background words competing in the
  softmax (CaR step one, through :func:`carlib.compute_cams`), next to the full-image baseline
  (predicting the whole image for each present class);
- the same after CLIP-ES refinement (:func:`carlib.clip_es_refine`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from carlib.cam import CLIP_ES_ATTENTION_LAYERS
from carlib.evaluation.metrics import iou
from carlib.presets import SHAPES_CLIPES_THRESHOLD
from carlib.scores import ScoreKind
from carlib.world.classes import CLASS_NAMES
from carlib.world.scene import split_scene

CAM_THRESHOLD = 0.5
CLIP_ES_THRESHOLD = SHAPES_CLIPES_THRESHOLD
CLIP_ES_LAYERS = CLIP_ES_ATTENTION_LAYERS


@dataclass
class WorldReport:
    """The measured figures.

    Attributes:
        scenes: number of multi-object test scenes used for the CAM figures.
        single_object_scenes: number of single-object scenes for zero-shot.
        zero_shot_accuracy: fraction of single-object scenes classified right.
        gradcam_miou: mean IoU over (scene, present class) pairs, Grad-CAM > 0.5.
        clip_es_miou: the same after CLIP-ES refinement.
        full_image_miou: the same when the whole image is predicted.
        gradcam_class_miou, clip_es_class_miou: dataset mIoU (intersections and
            unions summed over scenes per class, then averaged over classes).
        per_class: per-class mean IoU (Grad-CAM, CLIP-ES, full image).
        seed, split: which scenes were used.
        clip_es_layers: how many final blocks' attention CLIP-ES used.
    """

    scenes: int
    single_object_scenes: int
    zero_shot_accuracy: float
    gradcam_miou: float
    clip_es_miou: float
    full_image_miou: float
    gradcam_class_miou: float
    clip_es_class_miou: float
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    seed: int = 0
    split: str = "test"
    clip_es_layers: int = CLIP_ES_LAYERS

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict copy (JSON-serialisable)."""
        return asdict(self)

    def format(self) -> str:
        """Human-readable summary, one figure per line."""
        lines = [
            f"ShapesWorld report on {self.split} scenes (seed {self.seed})",
            f"  zero-shot accuracy, {self.single_object_scenes} single-object scenes: {self.zero_shot_accuracy:.3f}",
            f"  mean IoU of present classes over {self.scenes} scenes (threshold {CAM_THRESHOLD}):",
            f"    full-image baseline  {self.full_image_miou:.3f}",
            f"    Grad-CAM             {self.gradcam_miou:.3f}   (dataset mIoU {self.gradcam_class_miou:.3f})",
            f"    Grad-CAM + CLIP-ES   {self.clip_es_miou:.3f}   (dataset mIoU {self.clip_es_class_miou:.3f}; "
            f"attention of the last {self.clip_es_layers} blocks)",
            "  per class (Grad-CAM / CLIP-ES / full image):",
        ]
        for name, values in self.per_class.items():
            lines.append(
                f"    {name:<9} {values['gradcam']:.3f} / {values['clip_es']:.3f} / {values['full_image']:.3f}"
            )
        return "\n".join(lines)


def evaluate_world(
    model: str | None = None,
    *,
    name: str = "shapes",
    score_kind: ScoreKind = "softmax",
    n: int = 200,
    seed: int = 0,
    split: str = "test",
    cam_threshold: float = CAM_THRESHOLD,
    clip_es_threshold: float = CLIP_ES_THRESHOLD,
    clip_es_layers: int = CLIP_ES_LAYERS,
    background: Sequence[str] | None = None,
    progress: bool = False,
) -> WorldReport:
    """Measure zero-shot accuracy, Grad-CAM and CLIP-ES IoU of a ShapesWorld CLIP.

    Arguments:
        model: checkpoint folder (``config.json`` + ``model.safetensors``);
            None means the shipped one (``data/shapes_clip`` or ``data/shapes_siglip``).
        name: which ShapesWorld model: ``"shapes"`` (contrastive, open_clip ViT) or
            ``"shapes-siglip"`` (sigmoid loss, timm ViT with a MAP head).
        score_kind: Grad-CAM's target, ``"softmax"`` over [classes; background words] or
            ``"sigmoid"`` (each class alone with the logit bias; sigmoid-trained models only).
        n: number of scenes for each figure (n single-object scenes for the
            zero-shot figure, n ordinary 1..4-object scenes for the CAM figures).
        seed: base seed of the scene streams.
        split: the scene split (``"test"``: disjoint from training's ``"train"``).
        cam_threshold: a CAM pixel counts as the class when its value is > this.
        clip_es_threshold: CLIP-ES box threshold λ.
        clip_es_layers: how many final blocks' attention CLIP-ES averages
            (CaR: 8, which on this 6-block model means all of them).
        background: background words competing in the Grad-CAM softmax; None
            uses the ``shapes`` preset's (as CaR's first step does).
        progress: show a progress bar.

    Returns:
        a :class:`WorldReport`.
    """
    import carlib  # the library's public pipeline is what the report measures

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    # --- the library calls the report measures (load_clip, encode_texts, compute_cams, clip_es_refine) ---
    bundle = carlib.load_clip(name, pretrained=model, device="cpu")
    class_embeddings = carlib.encode_texts(bundle, CLASS_NAMES)
    if background is None:
        background = carlib.get_preset("shapes").settings.background
    background = list(background)
    background_embeddings = carlib.encode_texts(bundle, background, (carlib.text.BACKGROUND_TEMPLATE,))

    correct = 0
    for index in tqdm(range(n), disable=not progress, desc="zero-shot"):
        scene = split_scene(split, index, seed, num_objects=1)
        pixels = carlib.images.proposal_input(scene.image, bundle.patch_size, bundle.mean, bundle.std)
        with torch.no_grad():
            embedding = torch.nn.functional.normalize(bundle.tower.encode(pixels).float(), dim=-1)
        predicted = int((embedding @ class_embeddings.T).argmax())
        correct += int(CLASS_NAMES[predicted] == scene.objects[0].class_name)

    pair_ious: dict[str, list[float]] = {"gradcam": [], "clip_es": [], "full_image": []}
    per_class: dict[str, dict[str, list[float]]] = {name: {key: [] for key in pair_ious} for name in CLASS_NAMES}
    sums = {key: np.zeros((len(CLASS_NAMES), 2)) for key in ("gradcam", "clip_es")}  # intersection, union
    for index in tqdm(range(n), disable=not progress, desc="cams"):
        scene = split_scene(split, index, seed)
        result = carlib.compute_cams(
            bundle,
            scene.image,
            list(CLASS_NAMES),
            background,
            query_embeddings=class_embeddings,
            background_embeddings=background_embeddings,
            attention_layers=clip_es_layers,
            score_kind=score_kind,
        )
        cams = result.upsampled()
        refined = carlib.clip_es_refine(
            result.cams, result.attention, threshold=clip_es_threshold, output_size=scene.image.shape[:2]
        )
        for name in scene.class_names_present:
            k = CLASS_NAMES.index(name)
            truth = scene.class_mask(name)
            for key, prediction in (
                ("gradcam", cams[k] > cam_threshold),
                ("clip_es", refined[k] > cam_threshold),
                ("full_image", np.ones_like(truth)),
            ):
                value = iou(prediction, truth)
                pair_ious[key].append(value)
                per_class[name][key].append(value)
                if key in sums:
                    sums[key][k] += (np.logical_and(prediction, truth).sum(), np.logical_or(prediction, truth).sum())
    # --- end of library calls ---

    def class_miou(table: np.ndarray) -> float:
        seen = table[:, 1] > 0
        return float((table[seen, 0] / table[seen, 1]).mean())

    return WorldReport(
        scenes=n,
        single_object_scenes=n,
        zero_shot_accuracy=correct / n,
        gradcam_miou=float(np.mean(pair_ious["gradcam"])),
        clip_es_miou=float(np.mean(pair_ious["clip_es"])),
        full_image_miou=float(np.mean(pair_ious["full_image"])),
        gradcam_class_miou=class_miou(sums["gradcam"]),
        clip_es_class_miou=class_miou(sums["clip_es"]),
        per_class={
            name: {key: float(np.mean(values)) if values else float("nan") for key, values in table.items()}
            for name, table in per_class.items()
        },
        seed=seed,
        split=split,
        clip_es_layers=clip_es_layers,
    )
