"""Documented figures of ``01_gradcam_on_clip``: how well Grad-CAM finds each object, and its variants.

Every scene is asked about all eight class names with the ``shapes`` preset's
background words (CaR's first step, as :mod:`carlib.evaluation.shapesworld_report`
does); each present class's CAM, cut at :data:`IOU_THRESHOLD`, is compared
with its true mask. The notebook runs :func:`measure_cams` on its three
bundled scenes and prints the result beside these 200-scene figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from carlib.cam import compute_cams, resize_maps
from carlib.evaluation.metrics import iou
from carlib.models import ClipBundle
from carlib.towers import CapabilityError, TransformerTower
from carlib.tutorial.documented import Figure
from carlib.world.classes import CLASS_NAMES
from carlib.world.scene import Scene, split_scene

NOTEBOOK = "01_gradcam_on_clip"

IOU_THRESHOLD = 0.5
"""A CAM pixel counts as the object above this (the notebook's ``threshold``, the ShapesWorld report's)."""

CAM_VARIANTS: dict[str, str] = {
    "gradcam": "Grad-CAM (patch mean, with background words)",
    "class_token": "Grad-CAM explaining the class token",
    "centred": "Grad-CAM with centred features",
    "no_background": "Grad-CAM without background words",
    "final_tokens": "Grad-CAM read at the last block's output instead of its ln_1",
    "full_image": "baseline: the whole image as the mask",
}
"""The masks compared with each present object's truth: key -> what it is."""


@dataclass
class CamMeasures:
    """Per-object measurements of :func:`measure_cams` (one entry per (scene, present class)).

    Attributes:
        classes: the present class of each entry.
        ious: variant (a :data:`CAM_VARIANTS` key) -> IoU of each entry.
        inverted: True where the normalised Grad-CAM is brighter, on average,
            outside the object than on it (the map points at the surroundings).
        present_above_absent: one bool per (present, absent) query pair of a
            scene: is the present word's raw CAM maximum the larger?
    """

    classes: list[str] = field(default_factory=list)
    ious: dict[str, list[float]] = field(default_factory=lambda: {key: [] for key in CAM_VARIANTS})
    inverted: list[bool] = field(default_factory=list)
    present_above_absent: list[bool] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """The figures, keyed as the documented file is: ``<variant>_miou``, ``inverted_share``..."""
        figures = {f"{key}_miou": float(np.mean(values)) for key, values in self.ious.items()}
        figures["inverted_share"] = float(np.mean(self.inverted))
        figures["present_above_absent"] = float(np.mean(self.present_above_absent))
        for name in CLASS_NAMES:
            chosen = [i for i, cls in enumerate(self.classes) if cls == name]
            if chosen:
                figures[f"gradcam_miou_{name}"] = float(np.mean([self.ious["gradcam"][i] for i in chosen]))
                figures[f"inverted_share_{name}"] = float(np.mean([self.inverted[i] for i in chosen]))
        return figures


def gradcam_at_layer(
    bundle: ClipBundle, image: np.ndarray, queries: Sequence[str], background: Sequence[str], layer: torch.nn.Module
) -> np.ndarray:
    """Grad-CAM of each query read at the output of any module of the vision tower (CaR reads the last ``ln_1``).

    The same target as :func:`carlib.compute_cams` (the softmax over queries and
    background words of the patch mean's similarity), computed plainly: one
    forward pass of the whole tower with gradients, one backward pass per query
    (and without :func:`carlib.compute_cams`'s retry of an all-zero map).

    Arguments:
        bundle: the proposal CLIP (an open_clip ``VisionTransformer`` tower, batch-first).
        image: H x W x 3 uint8 RGB.
        queries: N words; ``background``: the background words.
        layer: a module of the tower whose output holds 1 x (1 + n) x K batch-first tokens, e.g. a block
            (``bundle.tower.blocks()[-1]``).

    Returns:
        float32 N x h x w CAMs on the patch grid, min-max normalised to [0, 1].
    """
    from carlib.cam import minmax_normalize
    from carlib.images import proposal_input
    from carlib.text import BACKGROUND_TEMPLATE, encode_texts

    tower = bundle.tower
    if not isinstance(tower, TransformerTower):
        raise CapabilityError(f"Grad-CAM at a block needs a transformer tower; a {tower.family} tower has no blocks")
    texts = torch.cat(
        [encode_texts(bundle, list(queries), ("{}",)), encode_texts(bundle, list(background), (BACKGROUND_TEMPLATE,))]
    ).float()
    features = {}

    def keep(_module, _inputs, output):
        features["A"] = output.detach().requires_grad_()
        return features["A"]

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            tokens, grid = tower.run_all(proposal_input(image, bundle.patch_size, bundle.mean, bundle.std))
            embedding = torch.nn.functional.normalize(tower.finish(tokens, "patch_mean"), dim=-1)
            scores = (bundle.model.logit_scale.exp() * embedding @ texts.T).softmax(dim=-1)[0]
            cams = []
            for index in range(len(queries)):
                (gradient,) = torch.autograd.grad(scores[index], features["A"], retain_graph=True)
                weights = gradient[0, 1:].mean(dim=0)
                cams.append(torch.relu(features["A"][0, 1:].detach() @ weights).reshape(grid))
    finally:
        handle.remove()
    return minmax_normalize(torch.stack(cams)).numpy().astype(np.float32)


def measure_cams(
    proposal: ClipBundle, scenes: Sequence[Scene], background: Sequence[str], threshold: float = IOU_THRESHOLD
) -> CamMeasures:
    """Grad-CAM and its variants on ``scenes``, each asked about every class name.

    Arguments:
        proposal: the proposal CLIP.
        scenes: ShapesWorld scenes (with ground truth).
        background: background words competing in the softmax.
        threshold: CAM cut for the IoUs, in [0, 1].

    Returns:
        a :class:`CamMeasures`.
    """
    names = list(CLASS_NAMES)
    background = list(background)
    tower = proposal.tower
    if not isinstance(tower, TransformerTower):
        raise CapabilityError(f"the final-token Grad-CAM reads a block; a {tower.family} tower has no blocks")
    measures = CamMeasures()
    for scene in scenes:
        size = scene.image.shape[:2]
        # attention_layers=0: CLIP-ES's attention is not needed here, so it is not collected
        plain = compute_cams(proposal, scene.image, names, background, attention_layers=0)
        maps = {
            "gradcam": plain.upsampled(),
            "class_token": compute_cams(
                proposal, scene.image, names, background, target="class_token", attention_layers=0
            ).upsampled(),
            "centred": compute_cams(
                proposal, scene.image, names, background, center_features=True, attention_layers=0
            ).upsampled(),
            "no_background": compute_cams(proposal, scene.image, names, (), attention_layers=0).upsampled(),
            "final_tokens": resize_maps(
                gradcam_at_layer(proposal, scene.image, names, background, tower.blocks()[-1]), size
            ),
        }
        raw_peaks = resize_maps(plain.raw_cams, size).reshape(len(names), -1).max(axis=1)
        present = scene.class_names_present
        for name in present:
            k = names.index(name)
            truth = scene.class_mask(name)
            measures.classes.append(name)
            for key, variant_maps in maps.items():
                measures.ious[key].append(iou(variant_maps[k] > threshold, truth))
            measures.ious["full_image"].append(iou(np.ones_like(truth), truth))
            cam = maps["gradcam"][k]
            measures.inverted.append(bool(cam[~truth].mean() > cam[truth].mean()))
            for other in names:
                if other not in present:
                    measures.present_above_absent.append(bool(raw_peaks[k] > raw_peaks[names.index(other)]))
    return measures


def compute(n: int, seed: int) -> dict[str, Figure]:
    from carlib.pipeline import load_models
    from carlib.presets import get_preset

    preset = get_preset("shapes")
    proposal = load_models(preset, "shapes", device="cpu").proposal
    scenes = (split_scene("test", index, seed) for index in range(n))
    values = measure_cams(proposal, list(scenes), preset.settings.background).summary()
    described = {
        f"{key}_miou": f"mean IoU of present objects, {what}, CAM > {IOU_THRESHOLD}"
        for key, what in CAM_VARIANTS.items()
    }
    described["full_image_miou"] = "mean IoU of present objects, baseline: the whole image as the mask"
    described["inverted_share"] = "share of present objects whose Grad-CAM is brighter outside the object than on it"
    described["present_above_absent"] = (
        "share of (present, absent) word pairs of a scene where the present word's raw CAM peak is the larger"
    )
    for name in CLASS_NAMES:
        described[f"gradcam_miou_{name}"] = f"mean Grad-CAM IoU of {name} objects"
        described[f"inverted_share_{name}"] = f"share of {name} objects with an inverted Grad-CAM"
    return {key: Figure(value, described[key]) for key, value in values.items()}


def find_inverted(
    proposal: ClipBundle, background: Sequence[str], class_name: str, *, seed: int = 0, limit: int = 50
) -> tuple[Scene, np.ndarray] | None:
    """The first test scene (from index 0) where ``class_name``'s Grad-CAM is inverted, and that CAM.

    Arguments:
        proposal: the proposal CLIP.
        background: background words competing in the softmax.
        class_name: a ShapesWorld class.
        seed: base seed of the test scenes.
        limit: how many scenes to look through.

    Returns:
        (scene, H x W CAM in [0, 1]), or None when none of the first ``limit`` scenes has one.
    """
    if class_name not in CLASS_NAMES:
        raise ValueError(f"unknown class {class_name!r}; choose one of {CLASS_NAMES}")
    names = list(CLASS_NAMES)
    for index in range(limit):
        scene = split_scene("test", index, seed)
        if class_name not in scene.class_names_present:
            continue
        cam = compute_cams(proposal, scene.image, names, list(background), attention_layers=0).upsampled()[
            names.index(class_name)
        ]
        truth = scene.class_mask(class_name)
        if cam[~truth].mean() > cam[truth].mean():
            return scene, cam
    return None
