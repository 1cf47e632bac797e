"""Seeded ShapesWorld scenes with exact per-pixel ground truth.

A scene is one or two textured background surfaces (split by a wavy horizon)
with 1..4 textured objects painted on top, later objects occluding earlier
ones. The ground truth is computed from the painting order, so it is exactly
what is visible.

Splits never share scenes: the scene at ``(split, index)`` is drawn from the
random stream ``SeedSequence(seed, spawn_key=(SPLIT_KEYS[split], index))``,
and different spawn keys give independent streams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from carlib.world.classes import BACKGROUND_NAMES, CLASS_NAMES, SIZE_NAMES, SIZE_RADII
from carlib.world.render import draw_background, draw_object, horizon_mask, remove_prompt_red

DEFAULT_IMAGE_SIZE = 96
MAX_OBJECTS = 4
"""The most objects a scene is drawn with."""
SPLIT_KEYS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
"""Each split's spawn key; train, val and test scenes come from disjoint random streams."""

MIN_VISIBLE_FRACTION = 0.5
"""An object stays in the scene only if at least this fraction of it is visible."""


@dataclass
class SceneObject:
    """One visible object of a scene.

    Attributes:
        class_name: one of :data:`CLASS_NAMES`.
        class_id: 1..K, the value of its pixels in ``Scene.class_map``.
        instance_id: 1..N, the value of its pixels in ``Scene.instance_map``.
        size: the size word (``"small"``, ``"medium"`` or ``"large"``).
        background: the background name under most of the object.
        bbox: (x0, y0, x1, y1) of the visible pixels, end-exclusive.
        area: number of visible pixels.
        center: (x, y) of the drawn shape, in pixels.
    """

    class_name: str
    class_id: int
    instance_id: int
    size: str
    background: str
    bbox: tuple[int, int, int, int]
    area: int
    center: tuple[float, float]


@dataclass
class Scene:
    """A rendered scene and its ground truth.

    Attributes:
        image: H x W x 3 uint8 RGB.
        class_map: H x W uint8, 0 = background, 1..K = ``CLASS_NAMES[id - 1]``.
        instance_map: H x W uint8, 0 = background, i = ``objects[i - 1]``.
        background_map: H x W uint8, ``BACKGROUND_NAMES[id]`` of the surface at
            every pixel (also under objects: the surface the object stands on).
        objects: the visible objects, in painting order.
        seed: description of the random stream the scene came from.
    """

    image: np.ndarray
    class_map: np.ndarray
    instance_map: np.ndarray
    background_map: np.ndarray
    objects: list[SceneObject] = field(default_factory=list)
    seed: str = ""

    @property
    def class_names_present(self) -> list[str]:
        """Names of the classes with at least one visible pixel, in class-id order."""
        ids = sorted({obj.class_id for obj in self.objects})
        return [CLASS_NAMES[i - 1] for i in ids]

    @property
    def background_names_present(self) -> list[str]:
        """Names of the background surfaces in the scene, in id order."""
        return [BACKGROUND_NAMES[i] for i in np.unique(self.background_map)]

    def instance_mask(self, instance_id: int) -> np.ndarray:
        """H x W bool mask of one object's visible pixels."""
        return self.instance_map == instance_id

    def class_mask(self, name: str) -> np.ndarray:
        """H x W bool mask of every visible pixel of class ``name``."""
        return self.class_map == CLASS_NAMES.index(name) + 1

    def label_map(self, words: Sequence[str]) -> np.ndarray:
        """The ground truth in the label space of a query list: H x W int32, 0 background, i + 1 = ``words[i]``.

        Words that are not ShapesWorld classes never appear (they have no ground truth).
        """
        labels = np.zeros(self.class_map.shape, dtype=np.int32)
        for position, word in enumerate(words):
            if word in CLASS_NAMES:
                labels[self.class_mask(word)] = position + 1
        return labels


def scene_rng(split: str, index: int, seed: int = 0) -> np.random.Generator:
    """The random stream of scene ``index`` of ``split``.

    Arguments:
        split: ``"train"``, ``"val"`` or ``"test"``.
        index: scene number within the split (>= 0).
        seed: base seed; the same (split, index, seed) always gives the same stream.

    Returns:
        a numpy Generator (PCG64) independent of every other (split, index).
    """
    if split not in SPLIT_KEYS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_KEYS)}")
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be non-negative, got index={index}, seed={seed}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(SPLIT_KEYS[split], index))))


def split_scene(split: str, index: int, seed: int = 0, **options) -> Scene:
    """Scene ``index`` of ``split`` (see :func:`scene_rng`); options go to :func:`generate_scene`."""
    scene = generate_scene(scene_rng(split, index, seed), **options)
    scene.seed = f"{split}/{index}/seed={seed}"
    return scene


def generate_scene(
    rng: int | np.random.Generator,
    *,
    image_size: int = DEFAULT_IMAGE_SIZE,
    num_objects: int | None = None,
    classes: list[str] | None = None,
    max_objects: int = MAX_OBJECTS,
    duplicate_probability: float = 0.25,
    two_backgrounds_probability: float = 0.5,
) -> Scene:
    """Render one random scene with exact ground truth.

    Arguments:
        rng: an int seed or a numpy Generator (consumed).
        image_size: square side in pixels (object sizes scale with it).
        num_objects: how many objects to try to place (1..4); None draws it.
            Placement may give up on an object that would hide another, so
            the scene can hold fewer; it always holds at least one when
            ``num_objects >= 1``. 0 gives an empty scene.
        classes: class names to draw objects from, in order; None draws them.
        max_objects: the largest count drawn when ``num_objects`` is None.
        duplicate_probability: chance that a drawn class repeats an earlier one
            (so size and background words have something to disambiguate).
        two_backgrounds_probability: chance of two surfaces split by a horizon.

    Returns:
        a :class:`Scene`.
    """
    seed_text = f"seed={rng}" if isinstance(rng, (int, np.integer)) else "generator"
    if isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(int(rng))
    size = int(image_size)
    if size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {size}")
    scale = size / DEFAULT_IMAGE_SIZE

    image, background_map = draw_backdrop(rng, size, two_backgrounds_probability)

    if num_objects is None:
        num_objects = int(rng.choice(np.arange(1, max_objects + 1), p=_count_weights(max_objects)))
    if classes is not None:
        unknown = [name for name in classes if name not in CLASS_NAMES]
        if unknown:
            raise ValueError(f"unknown classes {unknown}; known: {', '.join(CLASS_NAMES)}")
        num_objects = len(classes)

    class_map = np.zeros((size, size), dtype=np.uint8)
    instance_map = np.zeros((size, size), dtype=np.uint8)
    full_areas: list[int] = []
    placed: list[tuple[int, str, tuple[float, float]]] = []  # (class index, size word, centre)
    for slot in range(num_objects):
        if classes is not None:
            class_index = CLASS_NAMES.index(classes[slot])
        elif placed and rng.uniform() < duplicate_probability:
            class_index = placed[int(rng.integers(len(placed)))][0]
        else:
            class_index = int(rng.integers(len(CLASS_NAMES)))
        for attempt in range(12):
            size_word = SIZE_NAMES[int(rng.integers(len(SIZE_NAMES)))]
            if attempt >= 6:  # crowded scene: try smaller objects
                size_word = "small"
            low, high = SIZE_RADII[size_word]
            radius = rng.uniform(low, high) * scale
            margin = radius * 0.9
            center = (float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin)))
            angle = float(rng.uniform(-math.pi, math.pi))
            paint, silhouette = draw_object(class_index, center, radius, angle, size, rng)
            if silhouette.sum() < 8:
                continue
            touching = cv2.dilate(silhouette.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if (class_map[touching] == class_index + 1).any():
                continue  # same-class objects never touch, so every instance stays visibly separate
            trial_instances = instance_map.copy()
            trial_instances[silhouette] = len(placed) + 1
            visible_ok = all(
                (trial_instances == k + 1).sum() >= MIN_VISIBLE_FRACTION * full_areas[k] for k in range(len(placed))
            )
            if visible_ok:
                image[silhouette] = paint[silhouette]
                instance_map = trial_instances
                class_map[silhouette] = class_index + 1
                full_areas.append(int(silhouette.sum()))
                placed.append((class_index, size_word, center))
                break

    objects = []
    for k, (class_index, size_word, center) in enumerate(placed):
        visible = instance_map == k + 1
        ys, xs = np.nonzero(visible)
        under = np.bincount(background_map[visible], minlength=len(BACKGROUND_NAMES))
        objects.append(
            SceneObject(
                class_name=CLASS_NAMES[class_index],
                class_id=class_index + 1,
                instance_id=k + 1,
                size=size_word,
                background=BACKGROUND_NAMES[int(under.argmax())],
                bbox=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
                area=int(visible.sum()),
                center=center,
            )
        )
    remove_prompt_red(image)
    return Scene(image, class_map, instance_map, background_map, objects, seed_text)


def draw_backdrop(
    rng: np.random.Generator, size: int, two_backgrounds_probability: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """The surfaces behind the objects: one, or two split by a wavy horizon.

    Arguments:
        rng: the scene's random stream (consumed in a fixed order, so a seed always gives the same scene).
        size: square side in pixels.
        two_backgrounds_probability: chance of two surfaces.

    Returns:
        (size x size x 3 uint8 RGB picture, size x size uint8 background ids).
    """
    kinds = list(rng.choice(len(BACKGROUND_NAMES), size=2, replace=False))
    background_map = np.full((size, size), kinds[0], dtype=np.uint8)
    image = draw_background(int(kinds[0]), size, rng)
    if rng.uniform() < two_backgrounds_probability:
        upper = horizon_mask(size, rng)
        lower_image = draw_background(int(kinds[1]), size, rng)
        image[~upper] = lower_image[~upper]
        background_map[~upper] = kinds[1]
    return image, background_map


def _count_weights(max_objects: int) -> np.ndarray:
    weights = np.array([0.4, 0.3, 0.2, 0.1][:max_objects] + [0.1] * max(0, max_objects - 4))
    return weights / weights.sum()
