"""The vocabulary of ShapesWorld: object classes, background kinds, size words.

Every object class has its own colour, its own surface texture and its own
silhouette, so a small ViT can tell classes apart from colour alone and still
learn shape as a second cue (the feasibility runs showed that shape alone is
not learnable by a tiny contrastive ViT in minutes). No class uses pure red
(255, 0, 0): that is the visual-prompt colour CaR draws ellipses with.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ObjectClass:
    """How one object class looks.

    Attributes:
        name: the single-word class name (also the CaR query).
        color: base RGB colour (uint8 values), jittered per object.
        accent: RGB colour of the texture marks drawn on the object.
        shape: silhouette name understood by :mod:`carlib.world.render`.
    """

    name: str
    color: RGB
    accent: RGB
    shape: str


@dataclass(frozen=True)
class BackgroundKind:
    """How one background surface looks (these names are CaR's background words here).

    Attributes:
        name: the surface name.
        color: base RGB colour.
        accent: RGB colour of its texture (blades, clouds, waves, grains).
    """

    name: str
    color: RGB
    accent: RGB


OBJECT_CLASSES: tuple[ObjectClass, ...] = (
    ObjectClass("orange", (250, 140, 20), (205, 95, 10), "circle"),
    ObjectClass("lemon", (245, 225, 40), (255, 250, 170), "lemon"),
    ObjectClass("starfish", (245, 120, 160), (255, 215, 230), "star"),
    ObjectClass("kite", (215, 40, 215), (60, 10, 60), "diamond"),
    ObjectClass("tent", (125, 70, 30), (60, 30, 10), "triangle"),
    ObjectClass("wheel", (35, 35, 35), (165, 165, 165), "wheel"),
    ObjectClass("balloon", (120, 50, 200), (225, 205, 255), "balloon"),
    ObjectClass("dice", (240, 240, 235), (15, 15, 15), "square"),
)

BACKGROUND_KINDS: tuple[BackgroundKind, ...] = (
    BackgroundKind("grass", (70, 150, 50), (40, 105, 30)),
    BackgroundKind("sky", (135, 195, 240), (248, 250, 252)),
    BackgroundKind("water", (30, 90, 170), (90, 150, 215)),
    BackgroundKind("sand", (220, 195, 140), (175, 150, 100)),
)

CLASS_NAMES: tuple[str, ...] = tuple(spec.name for spec in OBJECT_CLASSES)
"""Object class names; class id ``i + 1`` is ``CLASS_NAMES[i]`` (0 is background)."""

BACKGROUND_NAMES: tuple[str, ...] = tuple(kind.name for kind in BACKGROUND_KINDS)
"""Background kind names; background id ``j`` is ``BACKGROUND_NAMES[j]``."""

SIZE_NAMES: tuple[str, ...] = ("small", "medium", "large")
"""Size words; an object's size attribute is one of these."""

SIZE_RADII: dict[str, tuple[int, int]] = {"small": (7, 10), "medium": (13, 17), "large": (21, 26)}
"""Inclusive radius range (pixels, at the 96 px default) of each size word; the gaps keep them separable."""

PROMPT_RED: RGB = (255, 0, 0)
"""The visual-prompt colour; never produced by the scene renderer."""


def class_id(name: str) -> int:
    """The class id (1..K) of a class name; raises ValueError for unknown names."""
    if name not in CLASS_NAMES:
        raise ValueError(f"unknown ShapesWorld class {name!r}; known classes: {', '.join(CLASS_NAMES)}")
    return CLASS_NAMES.index(name) + 1
