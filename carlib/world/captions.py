"""Text about ShapesWorld scenes: training captions and referring expressions.

Captions name every visible class (optionally with a size word and the
background surfaces); referring expressions name one object by its class
plus a size or background attribute, and are only produced when exactly one
object in the scene fits them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from carlib.world.scene import Scene, SceneObject

# Templates CaR itself uses for classes (spec section 4), so the model knows them.
SINGLE_TEMPLATES: tuple[str, ...] = (
    "{}",
    "{}",
    "a {}",
    "a photo of a {}.",
    "a clean origami {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
)
BACKGROUND_TEMPLATES: tuple[str, ...] = ("{}", "a photo of {}.", "a clean origami {}.", "only {}")


@dataclass(frozen=True)
class Caption:
    """A caption and what it says.

    Attributes:
        text: the caption string.
        key: a canonical description of its content; two captions with the
            same key say the same thing (used to mark in-batch positives).
    """

    text: str
    key: tuple


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def scene_caption(scene: Scene) -> str:
    """The plain caption of a scene, e.g. ``"a photo of a lemon and a kite on grass"``.

    Arguments:
        scene: a :class:`Scene`.

    Returns:
        the caption: every visible class once, in first-appearance order, then
        the background surfaces.
    """
    names = list(dict.fromkeys(obj.class_name for obj in scene.objects))
    surfaces = " and ".join(scene.background_names_present)
    if not names:
        return f"a photo of {surfaces}"
    return f"a photo of {_join([f'{_article(n)} {n}' for n in names])} on {surfaces}"


def random_caption(scene: Scene, rng: np.random.Generator) -> Caption:
    """A varied training caption naming every visible class of the scene.

    Arguments:
        scene: the scene the caption describes.
        rng: randomness for order, templates and optional words.

    Returns:
        a :class:`Caption`.
    """
    surfaces = scene.background_names_present
    names = list(dict.fromkeys(obj.class_name for obj in scene.objects))
    if not names:
        surface = surfaces[int(rng.integers(len(surfaces)))] if len(surfaces) > 1 else surfaces[0]
        template = BACKGROUND_TEMPLATES[int(rng.integers(len(BACKGROUND_TEMPLATES)))]
        return Caption(template.format(surface), ("background", surface))
    order = [names[i] for i in rng.permutation(len(names))]
    mentions = []
    key_mentions: list[tuple[str, str | None]] = []
    for name in order:
        instances = [obj for obj in scene.objects if obj.class_name == name]
        if len(instances) == 1 and rng.uniform() < 0.3:
            mentions.append(f"{instances[0].size} {name}")
            key_mentions.append((name, instances[0].size))
        else:
            mentions.append(name)
            key_mentions.append((name, None))
    with_background = rng.uniform() < 0.5
    if len(order) == 1 and not with_background:
        template = SINGLE_TEMPLATES[int(rng.integers(len(SINGLE_TEMPLATES)))]
        return Caption(template.format(mentions[0]), (tuple(key_mentions), None))
    phrase = _join([f"{_article(m)} {m}" for m in mentions])
    text = f"a photo of {phrase}" if rng.uniform() < 0.7 else phrase
    background_key: tuple | None = None
    if with_background:
        text += " on " + " and ".join(surfaces)
        background_key = tuple(surfaces)
    return Caption(text, (tuple(sorted(key_mentions, key=str)), background_key))


def object_caption(obj: SceneObject, rng: np.random.Generator) -> Caption:
    """A caption naming one object only (used with a visual prompt around it).

    Arguments:
        obj: the prompted object.
        rng: randomness for the template and the optional size word.

    Returns:
        a :class:`Caption` whose key matches a one-class scene caption.
    """
    key: tuple[str, str | None]
    if rng.uniform() < 0.3:
        mention, key = f"{obj.size} {obj.class_name}", (obj.class_name, obj.size)
    else:
        mention, key = obj.class_name, (obj.class_name, None)
    template = SINGLE_TEMPLATES[int(rng.integers(len(SINGLE_TEMPLATES)))]
    return Caption(template.format(mention), ((key,), None))


def referring_expressions(scene: Scene, *, attributes_only_when_needed: bool = False) -> list[tuple[str, int]]:
    """Unambiguous referring expressions for the scene's objects.

    Three forms are tried for each object: ``"the {class}"``, ``"the {size}
    {class}"`` and ``"the {class} on {background}"``; each is kept only if
    exactly one visible object fits it.

    Arguments:
        scene: a :class:`Scene`.
        attributes_only_when_needed: keep the attribute forms only for objects
            whose class appears more than once (where the attribute is what
            picks the object out).

    Returns:
        list of (expression, instance_id) pairs; ``scene.instance_map ==
        instance_id`` is the referred object's mask.
    """
    results = []
    for obj in scene.objects:
        same_class = [other for other in scene.objects if other.class_name == obj.class_name]
        candidates = [
            (f"the {obj.class_name}", same_class),
            (f"the {obj.size} {obj.class_name}", [o for o in same_class if o.size == obj.size]),
            (f"the {obj.class_name} on {obj.background}", [o for o in same_class if o.background == obj.background]),
        ]
        if attributes_only_when_needed and len(same_class) == 1:
            candidates = candidates[:1]
        for text, fitting in candidates:
            if len(fitting) == 1:
                results.append((text, obj.instance_id))
    return results
