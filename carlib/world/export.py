"""Writing ShapesWorld to disk: colourised samples, scenes in PASCAL VOC 2012 layout, clips in Ref-DAVIS17's.

Both writers build the whole output in a temporary sibling folder and rename
it into place at the end, so an error (or Ctrl-C) never leaves a half-written
dataset under the requested name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from carlib.files import atomic_directory
from carlib.labels import palette_image
from carlib.world.captions import referring_expressions, scene_caption
from carlib.world.classes import BACKGROUND_KINDS, CLASS_NAMES
from carlib.world.scene import SPLIT_KEYS, Scene, split_scene

EXPORT_FORMATS = ("voc",)
VIDEO_FORMAT = "refdavis"
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
            {
                "instance_id": o.instance_id,
                "class": o.class_name,
                "class_id": o.class_id,
                "size": o.size,
                "background": o.background,
                "bbox_xyxy": list(o.bbox),
                "area": o.area,
            }
            for o in scene.objects
        ],
        "referring_expressions": [{"text": text, "instance_id": k} for text, k in referring_expressions(scene)],
    }


def write_samples(
    out: str | os.PathLike, *, seed: int = 0, n: int = 4, split: str = "test", overwrite: bool = False
) -> list[Path]:
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
            panel = np.concatenate(
                [
                    scene.image,
                    np.asarray(class_png.convert("RGB")),
                    np.asarray(instance_png.convert("RGB")),
                    background,
                ],
                axis=1,
            )
            Image.fromarray(panel).save(staging / f"{stem}_panel.png")
            panels.append(Path(out) / f"{stem}_panel.png")
            records.append(scene_record(scene, stem))
        (staging / "scenes.json").write_text(
            json.dumps({"class_names": ["background", *CLASS_NAMES], "scenes": records}, indent=1) + "\n"
        )
    return panels


def export_voc(
    out: str | os.PathLike,
    *,
    split: str = "test",
    n: int = 200,
    seed: int = 0,
    overwrite: bool = False,
    on_scene: Callable[[int], None] | None = None,
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


def clip_name(split: str, seed: int, index: int) -> str:
    """A clip's video name: ``<split>-<seed>-<index>`` (hyphens, as DAVIS names its videos)."""
    return f"{split}-{seed}-{index:04d}"


def export_refdavis(
    out: str | os.PathLike,
    *,
    split: str = "test",
    n: int = 20,
    seed: int = 0,
    frames: int | None = None,
    overwrite: bool = False,
    on_clip: Callable[[int], None] | None = None,
) -> Path:
    """Export moving-ShapesWorld clips in the Ref-DAVIS17 layout (:mod:`carlib.world.video`).

    Writes ``DAVIS/JPEGImages/480p/<clip>/<frame>.jpg`` (quality 95),
    ``DAVIS/Annotations/480p/<clip>/<frame>.png`` (palette PNG of instance
    ids, exact), ``DAVIS/ImageSets/2017/val.txt`` (the clips),
    ``davis_text_annotations/Davis17_annot1.txt``, ``..._annot1_full_video.txt``,
    ``Davis17_annot2.txt``, ``..._annot2_full_video.txt`` (``<clip> <id> "<expression>"``
    lines, as Khoreva et al.'s) and ``clips.json`` (every object's class, size,
    motion, per-frame surface and area, and expressions).

    Arguments:
        out: the dataset folder (written atomically).
        split: clip split (``"test"`` for evaluation; never overlaps ``"train"``).
        n: number of clips.
        seed: base seed.
        frames: frames per clip (default :data:`carlib.world.video.DEFAULT_FRAMES`).
        overwrite: replace an existing non-empty ``out``.
        on_clip: called with each clip index after it is written.

    Returns:
        the dataset folder.
    """
    from carlib.datasets.refdavis import EXPRESSION_FILES, TEXT_FOLDER
    from carlib.world.video import DEFAULT_FRAMES, clip_expressions, split_clip

    if split not in SPLIT_KEYS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_KEYS)}")
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    frames = DEFAULT_FRAMES if frames is None else frames
    if frames < 2:
        raise ValueError(f"--frames must be at least 2, got {frames}")
    names = [clip_name(split, seed, index) for index in range(n)]
    lines: dict[str, list[str]] = {name: [] for name in EXPRESSION_FILES}
    records = []
    with atomic_directory(out, overwrite) as staging:
        davis = staging / "DAVIS"
        for index, name in enumerate(names):
            clip = split_clip(split, index, seed, num_frames=frames)
            images, annotations = davis / "JPEGImages/480p" / name, davis / "Annotations/480p" / name
            images.mkdir(parents=True)
            annotations.mkdir(parents=True)
            for frame, (picture, instances) in enumerate(zip(clip.frames, clip.instance_maps, strict=True)):
                Image.fromarray(picture).save(images / f"{frame:05d}.jpg", quality=JPEG_QUALITY)
                palette_image(instances).save(annotations / f"{frame:05d}.png")
            expressions = clip_expressions(clip)
            for set_name, by_object in expressions.items():
                lines[set_name] += [f'{name} {object_id} "{text}"' for object_id, text in sorted(by_object.items())]
            records.append(
                {
                    "video": name,
                    "seed": clip.seed,
                    "frames": frames,
                    "backgrounds": [BACKGROUND_KINDS[k].name for k in np.unique(clip.background_map)],
                    "objects": [
                        {
                            "instance_id": o.instance_id,
                            "class": o.class_name,
                            "class_id": o.class_id,
                            "size": o.size,
                            "radius": round(o.radius, 3),
                            "start_xy": [round(v, 3) for v in o.start],
                            "velocity_xy_per_frame": [round(v, 3) for v in o.velocity],
                            "backgrounds": o.backgrounds,
                            "areas": o.areas,
                            "expressions": {set_name: expressions[set_name][o.instance_id] for set_name in expressions},
                        }
                        for o in clip.objects
                    ],
                }
            )
            if on_clip is not None:
                on_clip(index)
        (davis / "ImageSets/2017").mkdir(parents=True)
        (davis / "ImageSets/2017/val.txt").write_text("".join(f"{name}\n" for name in names))
        (staging / TEXT_FOLDER).mkdir()
        for set_name, file_name in EXPRESSION_FILES.items():
            (staging / TEXT_FOLDER / file_name).write_text("\n".join(lines[set_name]) + "\n")
        (staging / "clips.json").write_text(
            json.dumps({"split": split, "seed": seed, "frames": frames, "clips": records}, indent=1) + "\n"
        )
    return Path(out)
