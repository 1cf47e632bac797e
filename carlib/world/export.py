"""Writing ShapesWorld scenes to disk: colourised samples and PASCAL VOC 2012 layout.

Both writers build the whole output in a temporary sibling folder and rename
it into place at the end, so an error (or Ctrl-C) never leaves a half-written
dataset under the requested name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from carlib.files import atomic_directory
from carlib.labels import palette_image
from carlib.world.captions import referring_expressions, scene_caption
from carlib.world.classes import BACKGROUND_KINDS, CLASS_NAMES
from carlib.world.scene import SPLIT_KEYS, Scene, split_scene

EXPORT_FORMATS = ("voc",)
JPEG_QUALITY = 95


def colorize_background(background_map: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB picture of a background map, each kind in its base colour."""
    colors = np.array([kind.color for kind in BACKGROUND_KINDS], dtype=np.uint8)
    return colors[background_map]


def scene_record(scene: Scene, scene_id: str) -> dict:
    """JSON-ready description of a scene: caption, objects, referring expressions."""
    return {
        "id": scene_id,
        "seed": scene.seed,
        "caption": scene_caption(scene),
        "backgrounds": scene.background_names_present,
        "objects": [
            {"instance_id": o.instance_id, "class": o.class_name, "class_id": o.class_id, "size": o.size,
             "background": o.background, "bbox_xyxy": list(o.bbox), "area": o.area}
            for o in scene.objects
        ],
        "referring_expressions": [{"text": text, "instance_id": k} for text, k in referring_expressions(scene)],
    }


def write_samples(out: str | os.PathLike, *, seed: int = 0, n: int = 4, split: str = "test",
                  overwrite: bool = False) -> list[Path]:
    """Write ``n`` scenes with colourised ground truth as PNGs, plus ``scenes.json``.

    For scene i: ``scene_i.png`` (the image), ``scene_i_class.png`` and
    ``scene_i_instance.png`` (VOC palette PNGs), ``scene_i_background.png``
    (RGB), and ``scene_i_panel.png`` (all four side by side).

    Arguments:
        out: output folder (written atomically).
        seed: base seed of the scenes.
        n: number of scenes.
        split: scene split to draw from.
        overwrite: replace an existing non-empty ``out``.

    Returns:
        the panel paths, one per scene.
    """
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    panels = []
    records = []
    with atomic_directory(out, overwrite) as staging:
        for index in range(n):
            scene = split_scene(split, index, seed)
            stem = f"scene_{index}"
            Image.fromarray(scene.image).save(staging / f"{stem}.png")
            class_png = palette_image(scene.class_map)
            instance_png = palette_image(scene.instance_map)
            class_png.save(staging / f"{stem}_class.png")
            instance_png.save(staging / f"{stem}_instance.png")
            background = colorize_background(scene.background_map)
            Image.fromarray(background).save(staging / f"{stem}_background.png")
            panel = np.concatenate([scene.image, np.asarray(class_png.convert("RGB")),
                                    np.asarray(instance_png.convert("RGB")), background], axis=1)
            Image.fromarray(panel).save(staging / f"{stem}_panel.png")
            panels.append(Path(out) / f"{stem}_panel.png")
            records.append(scene_record(scene, stem))
        (staging / "scenes.json").write_text(json.dumps({"class_names": ["background", *CLASS_NAMES],
                                                         "scenes": records}, indent=1) + "\n")
    return panels


def export_voc(
    out: str | os.PathLike,
    *,
    split: str = "test",
    n: int = 200,
    seed: int = 0,
    overwrite: bool = False,
    on_scene: Optional[Callable[[int], None]] = None,
) -> Path:
    """Export scenes in the PASCAL VOC 2012 segmentation layout.

    Writes ``JPEGImages/<id>.jpg`` (quality 95), ``SegmentationClass/<id>.png``
    (palette PNG, 0 background, 1..K = ``class_names.txt`` lines 2..K+1),
    ``SegmentationObject/<id>.png`` (instance ids), ``ImageSets/Segmentation/val.txt``
    and ``<split>.txt`` (the ids), ``class_names.txt`` (background first) and
    ``annotations.json`` (captions, objects, referring expressions).

    Arguments:
        out: the dataset folder (written atomically).
        split: scene split (``"test"`` for evaluation; never overlaps ``"train"``).
        n: number of scenes.
        seed: base seed.
        overwrite: replace an existing non-empty ``out``.
        on_scene: called with each scene index after it is written (progress, tests).

    Returns:
        the dataset folder.
    """
    if split not in SPLIT_KEYS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_KEYS)}")
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    ids = [f"{split}_{seed}_{index:05d}" for index in range(n)]
    records = []
    with atomic_directory(out, overwrite) as staging:
        for folder in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
            (staging / folder).mkdir(parents=True)
        for index, scene_id in enumerate(ids):
            scene = split_scene(split, index, seed)
            Image.fromarray(scene.image).save(staging / "JPEGImages" / f"{scene_id}.jpg", quality=JPEG_QUALITY)
            palette_image(scene.class_map).save(staging / "SegmentationClass" / f"{scene_id}.png")
            palette_image(scene.instance_map).save(staging / "SegmentationObject" / f"{scene_id}.png")
            records.append(scene_record(scene, scene_id))
            if on_scene is not None:
                on_scene(index)
        listing = "".join(f"{scene_id}\n" for scene_id in ids)
        (staging / "ImageSets/Segmentation/val.txt").write_text(listing)
        (staging / f"ImageSets/Segmentation/{split}.txt").write_text(listing)
        (staging / "class_names.txt").write_text("\n".join(["background", *CLASS_NAMES]) + "\n")
        (staging / "annotations.json").write_text(json.dumps({"split": split, "seed": seed, "scenes": records}) + "\n")
    return Path(out)
