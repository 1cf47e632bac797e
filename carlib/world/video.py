"""Moving ShapesWorld: short clips whose objects move, with exact masks per frame and referring expressions.

A clip is a fixed backdrop (one or two surfaces, as in a scene) with one to
three objects that glide in straight lines, bounce off the borders and
turn a little each frame. Every frame is drawn from the same object
parameters (the same appearance seed draws the same texture wherever the
object is), later objects occlude earlier ones, and the instance map comes
from the painting, so the masks are exact. Each object stays at least half
visible in every frame.

Expressions follow Ref-DAVIS17's four sets (:func:`clip_expressions`): an
object is named from the first frame only (its class, size, and the surface
under it then) and from the whole clip (only what holds in every frame);
"annotator 1" says the shortest unambiguous thing, "annotator 2" the
longest. Two objects of one class always differ in size, so every object
has an unambiguous name.

Clips never share random streams with scenes: clip ``(split, index)`` draws
from ``SeedSequence(seed, spawn_key=(SPLIT_KEYS[split], index, 1))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from carlib.datasets.refdavis import EXPRESSION_SETS
from carlib.world.classes import BACKGROUND_NAMES, CLASS_NAMES, SIZE_NAMES, SIZE_RADII
from carlib.world.render import draw_object, remove_prompt_red
from carlib.world.scene import DEFAULT_IMAGE_SIZE, MIN_VISIBLE_FRACTION, SPLIT_KEYS, draw_backdrop

DEFAULT_FRAMES = 8
MAX_CLIP_OBJECTS = 3
MAX_SPEED = 2.5
"""Largest speed along each axis, in pixels per frame at 96 px (scaled with the image)."""
MAX_SPIN = 0.15
"""Largest turn per frame, in radians."""
MIN_FRAME_AREA = 8
"""An object never shrinks below this many visible pixels in any frame."""
CLIP_STREAM_TAG = 1


@dataclass
class ClipObject:
    """One moving object of a clip.

    Attributes:
        class_name: one of :data:`CLASS_NAMES`; ``class_id`` is its index + 1.
        class_id: 1..K.
        instance_id: 1..N, its value in every frame's instance map.
        size: the size word (constant over the clip).
        radius: nominal radius in pixels.
        start: (x, y) centre in frame 0.
        velocity: (vx, vy) in pixels per frame (reflected at the borders).
        angle: rotation in frame 0, radians; ``spin`` is added each frame.
        spin: radians per frame.
        appearance_seed: seeds the colour jitter and texture, the same in every frame.
        backgrounds: per frame, the surface under most of its visible pixels.
        areas: per frame, its visible pixels.
    """

    class_name: str
    class_id: int
    instance_id: int
    size: str
    radius: float
    start: tuple[float, float]
    velocity: tuple[float, float]
    angle: float
    spin: float
    appearance_seed: int
    backgrounds: list[str] = field(default_factory=list)
    areas: list[int] = field(default_factory=list)

    def center_at(self, frame: int, image_size: int) -> tuple[float, float]:
        """The centre in ``frame``: straight-line motion, reflected to stay ``0.9 r`` inside the borders."""
        margin = self.radius * 0.9
        return (
            _bounce(self.start[0], self.velocity[0], frame, margin, image_size - margin),
            _bounce(self.start[1], self.velocity[1], frame, margin, image_size - margin),
        )

    def draw(self, frame: int, image_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(appearance, silhouette) of the object in ``frame`` (see :func:`carlib.world.render.draw_object`)."""
        return draw_object(
            self.class_id - 1,
            self.center_at(frame, image_size),
            self.radius,
            self.angle + frame * self.spin,
            image_size,
            np.random.default_rng(self.appearance_seed),
        )


@dataclass
class Clip:
    """A rendered clip and its ground truth.

    Attributes:
        frames: T pictures, each H x W x 3 uint8 RGB.
        instance_maps: T maps, each H x W uint8 (0 background, k = ``objects[k - 1]``).
        background_map: H x W uint8 background ids (the backdrop does not move).
        objects: the objects, in painting order.
        seed: description of the random stream the clip came from.
    """

    frames: list[np.ndarray]
    instance_maps: list[np.ndarray]
    background_map: np.ndarray
    objects: list[ClipObject]
    seed: str = ""

    @property
    def num_frames(self) -> int:
        return len(self.frames)


def _bounce(start: float, velocity: float, frame: int, low: float, high: float) -> float:
    position = start + velocity * frame
    span = high - low
    if span <= 0:
        return (low + high) / 2
    phase = (position - low) % (2 * span)
    return low + (phase if phase <= span else 2 * span - phase)


def clip_rng(split: str, index: int, seed: int = 0) -> np.random.Generator:
    """The random stream of clip ``index`` of ``split`` (independent of every scene's and every other clip's)."""
    if split not in SPLIT_KEYS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_KEYS)}")
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be non-negative, got index={index}, seed={seed}")
    sequence = np.random.SeedSequence(seed, spawn_key=(SPLIT_KEYS[split], index, CLIP_STREAM_TAG))
    return np.random.Generator(np.random.PCG64(sequence))


def split_clip(split: str, index: int, seed: int = 0, **options) -> Clip:
    """Clip ``index`` of ``split`` (see :func:`clip_rng`); options go to :func:`generate_clip`."""
    clip = generate_clip(clip_rng(split, index, seed), **options)
    clip.seed = f"{split}/{index}/seed={seed}"
    return clip


def _silhouettes(objects: list[ClipObject], frame: int, size: int) -> list[np.ndarray]:
    return [obj.draw(frame, size)[1] for obj in objects]


def _stays_visible(objects: list[ClipObject], num_frames: int, size: int) -> bool:
    """Every object keeps at least half of itself (and MIN_FRAME_AREA pixels) visible in every frame."""
    for frame in range(num_frames):
        silhouettes = _silhouettes(objects, frame, size)
        instances = np.zeros((size, size), dtype=np.uint8)
        for k, silhouette in enumerate(silhouettes):
            instances[silhouette] = k + 1
        for k, silhouette in enumerate(silhouettes):
            visible = int((instances == k + 1).sum())
            if visible < max(MIN_FRAME_AREA, MIN_VISIBLE_FRACTION * silhouette.sum()):
                return False
    return True


def generate_clip(
    rng: int | np.random.Generator,
    *,
    num_frames: int = DEFAULT_FRAMES,
    image_size: int = DEFAULT_IMAGE_SIZE,
    num_objects: int | None = None,
    max_objects: int = MAX_CLIP_OBJECTS,
    duplicate_probability: float = 0.25,
    two_backgrounds_probability: float = 0.5,
) -> Clip:
    """Render one random clip with exact ground truth in every frame.

    Arguments:
        rng: an int seed or a numpy Generator (consumed).
        num_frames: frames in the clip (at least 2).
        image_size: square side in pixels (sizes and speeds scale with it).
        num_objects: objects to try to place (1..``max_objects``); None draws it.
            An object that cannot be placed visibly in 12 tries is left out, but
            the first always finds a place.
        max_objects: the largest count drawn when ``num_objects`` is None.
        duplicate_probability: chance that a drawn class repeats an earlier one
            (in another size, so its size word tells them apart).
        two_backgrounds_probability: chance of two surfaces split by a horizon.

    Returns:
        a :class:`Clip`.
    """
    if isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(int(rng))
    size = int(image_size)
    if size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {size}")
    if num_frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, got {num_frames}")
    scale = size / DEFAULT_IMAGE_SIZE
    backdrop, background_map = draw_backdrop(rng, size, two_backgrounds_probability)
    if num_objects is None:
        num_objects = int(rng.integers(1, max_objects + 1))
    objects: list[ClipObject] = []
    for _ in range(num_objects):
        class_index = int(rng.integers(len(CLASS_NAMES)))
        if objects and rng.uniform() < duplicate_probability:
            class_index = objects[int(rng.integers(len(objects)))].class_id - 1
        taken = {obj.size for obj in objects if obj.class_id == class_index + 1}
        sizes = [word for word in SIZE_NAMES if word not in taken]
        if not sizes:
            continue
        for _attempt in range(12 if objects else 100):
            size_word = sizes[int(rng.integers(len(sizes)))]
            low, high = SIZE_RADII[size_word]
            radius = float(rng.uniform(low, high) * scale)
            margin = radius * 0.9
            candidate = ClipObject(
                class_name=CLASS_NAMES[class_index],
                class_id=class_index + 1,
                instance_id=len(objects) + 1,
                size=size_word,
                radius=radius,
                start=(float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin))),
                velocity=(
                    float(rng.uniform(-MAX_SPEED, MAX_SPEED) * scale),
                    float(rng.uniform(-MAX_SPEED, MAX_SPEED) * scale),
                ),
                angle=float(rng.uniform(-math.pi, math.pi)),
                spin=float(rng.uniform(-MAX_SPIN, MAX_SPIN)),
                appearance_seed=int(rng.integers(2**31)),
            )
            if _stays_visible(objects + [candidate], num_frames, size):
                objects.append(candidate)
                break
    return _render(backdrop, background_map, objects, num_frames, size)


def _render(
    backdrop: np.ndarray, background_map: np.ndarray, objects: list[ClipObject], num_frames: int, size: int
) -> Clip:
    frames, instance_maps = [], []
    for frame in range(num_frames):
        image = backdrop.copy()
        instances = np.zeros((size, size), dtype=np.uint8)
        for k, obj in enumerate(objects):
            paint, silhouette = obj.draw(frame, size)
            image[silhouette] = paint[silhouette]
            instances[silhouette] = k + 1
        remove_prompt_red(image)
        frames.append(image)
        instance_maps.append(instances)
        for k, obj in enumerate(objects):
            visible = instances == k + 1
            under = np.bincount(background_map[visible], minlength=len(BACKGROUND_NAMES))
            obj.backgrounds.append(BACKGROUND_NAMES[int(under.argmax())])
            obj.areas.append(int(visible.sum()))
    return Clip(frames, instance_maps, background_map, objects)


def _names(obj: ClipObject, objects: list[ClipObject], frames: slice | int) -> list[str]:
    """Unambiguous names of ``obj`` from what holds over ``frames``, shortest first."""
    same_class = [other for other in objects if other.class_id == obj.class_id]
    names = [f"the {obj.class_name}"] if len(same_class) == 1 else []
    names.append(f"the {obj.size} {obj.class_name}")
    window = [obj.backgrounds[frames]] if isinstance(frames, int) else obj.backgrounds[frames]
    if len(set(window)) == 1:
        surface = window[0]
        others = [other for other in same_class if other is not obj]
        clash = any(
            surface in ([o.backgrounds[frames]] if isinstance(frames, int) else o.backgrounds[frames]) for o in others
        )
        if not clash:
            names.append(f"the {obj.class_name} on {surface}")
    return names


def clip_expressions(clip: Clip) -> dict[str, dict[int, str]]:
    """Every object's four expressions, as Ref-DAVIS17's sets name them.

    Returns:
        expression set (``"annot1-first-frame"``, ``"annot1-full-video"``,
        ``"annot2-first-frame"``, ``"annot2-full-video"``) -> instance id -> expression.
    """
    expressions: dict[str, dict[int, str]] = {name: {} for name in EXPRESSION_SETS}
    for obj in clip.objects:
        first, full = _names(obj, clip.objects, 0), _names(obj, clip.objects, slice(None))
        expressions["annot1-first-frame"][obj.instance_id] = first[0]
        expressions["annot2-first-frame"][obj.instance_id] = first[-1]
        expressions["annot1-full-video"][obj.instance_id] = full[0]
        expressions["annot2-full-video"][obj.instance_id] = full[-1]
    return expressions
