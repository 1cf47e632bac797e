"""Class vocabularies of the benchmarks: the exact strings CaR feeds to CLIP, one per class id.

Entry ``i`` of every list is dataset class id ``i + 1`` (0 is background),
which is also how CaR paints label maps (query index + 1).

Comma-separated entries (``"person with clothes,people,human"``, ADE's
``"door, double, door"``) are **one query each**. The reference code never
splits them: the whole string is formatted into every template and embedded
once (``zeroshot_classifier`` in ``clip_as_rnn/modeling/model/clipcam.py``,
``forward_clip`` in ``clip_wrapper.py``), as CLIP-ES does. Splitting would
also be ill-defined: ADE's strings are word-split WordNet synonym sets
(``"door, double, door"``) and share words across classes (``"screen"``
occurs in four classes). So a class maps to exactly one query and the
query-to-class map is the identity; :meth:`ClassVocabulary.synonyms` splits
an entry only for display.

Sources (the ``google-research/google-research`` repository, folder
``clip_as_rnn/``), reproduced as data:

- VOC: ``data/voc.py`` ``VOC_CLASSES`` (CLIP-ES-style synonyms).
- COCO-Object: ``data/coco.py`` ``COCO_OBJECT_CLASSES``, including its typo
  ``"sknowboard"`` (kept: it is what produced the published numbers).
- Pascal Context-59: ``data/context.py`` ``PASCAL_CONTEXT_CLASSES`` and the
  thing/stuff split ``PASCAL_CONTEXT_{THING,STUFF}_CLASS_ID``.
- ADE20K-150: ``data/ade.py`` ``ADE_CLASSES`` and ``ADE_{THING,STUFF}_CLASS_ID``.
- Display names: the datasets' official short names (VOC devkit, COCO
  2017 ``instances`` categories; Context and ADE use the first synonym).
"""

from __future__ import annotations

from dataclasses import dataclass

# --- Pascal VOC 2012 (20 classes) -------------------------------------------

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird avian",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair seat",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person with clothes,people,human",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor screen",
)
"""Queries for VOC class ids 1..20 (reference ``clip_as_rnn/data/voc.py``)."""

VOC_DISPLAY_NAMES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
"""The official VOC devkit class names, for legends and per-class tables."""

# --- COCO-Object (80 classes) ------------------------------------------------

COCO_OBJECT_CLASSES: tuple[str, ...] = (
    "person with clothes,people,human",
    "bicycle",
    "car",
    "motorbike",
    "aeroplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird avian",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack,bag",
    "umbrella,parasol",
    "handbag,purse",
    "necktie",
    "suitcase",
    "frisbee",
    "skis",
    "sknowboard",  # sic: the reference's spelling of "snowboard"
    "sports ball",
    "kite",
    "baseball bat",
    "glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "dessertspoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair seat",
    "sofa",
    "pottedplant",
    "bed",
    "diningtable",
    "toilet",
    "tvmonitor screen",
    "laptop",
    "mouse",
    "remote control",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hairdrier,blowdrier",
    "toothbrush",
)
"""Queries for COCO-Object class ids 1..80 (reference ``clip_as_rnn/data/coco.py``)."""

COCO_OBJECT_DISPLAY_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)
"""The official COCO 2017 category names, in category order (ids 1..80 contiguous)."""

# --- Pascal Context-59 -------------------------------------------------------

CONTEXT_59_CLASSES: tuple[str, ...] = (
    "airplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat",
    "book", "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling",
    "chair", "cloth", "computer", "cow", "cup", "curtain", "dog", "door",
    "fence", "floor", "flower", "food", "grass", "ground", "horse", "keyboard",
    "light", "motorbike", "mountain", "mouse", "person", "plate", "platform",
    "plant", "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky",
    "snow", "sofa", "table", "track", "train", "tree", "truck", "monitor",
    "wall", "water", "window", "wood",
)
"""Queries for Context-59 class ids 1..59 (reference ``clip_as_rnn/data/context.py``)."""

# Indices into CONTEXT_59_CLASSES, in the reference's order (that order sets the
# query order of each pass). The reference calls the two groups "thing" and
# "stuff"; note it files door, fence and rock under stuff, and building, tree
# and track under things.
CONTEXT_59_THING_IDS: tuple[int, ...] = (
    0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 18, 19, 20, 22, 26, 27,
    30, 31, 33, 35, 36, 37, 39, 42, 43, 45, 48, 49, 50, 51, 52, 53, 54,
)
CONTEXT_59_STUFF_IDS: tuple[int, ...] = (
    3, 15, 17, 21, 25, 28, 29, 32, 34, 38, 40, 44, 46, 47, 55, 56, 57, 58, 23,
    24, 41,
)

# --- ADE20K-150 --------------------------------------------------------------

ADE_150_CLASSES: tuple[str, ...] = (
    "wall",
    "building, edifice",
    "sky",
    "floor, flooring",
    "tree",
    "ceiling",
    "road, route",
    "bed",
    "windowpane, window",
    "grass",
    "cabinet",
    "sidewalk, pavement",
    "person, individual, someone, somebody, mortal, soul",
    "earth, ground",
    "door, double, door",
    "table",
    "mountain, mount",
    "plant, flora, plant, life",
    "curtain, drape, drapery, mantle, pall",
    "chair",
    "car, auto, automobile, machine, motorcar",
    "water",
    "painting, picture",
    "sofa, couch, lounge",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug, carpet, carpeting",
    "field",
    "armchair",
    "seat",
    "fence, fencing",
    "desk",
    "rock, stone",
    "wardrobe, closet, press",
    "lamp",
    "bathtub, bathing, tub, bath, tub",
    "railing, rail",
    "cushion",
    "base, pedestal, stand",
    "box",
    "column, pillar",
    "signboard, sign",
    "chest, of, drawers, chest, bureau, dresser",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace, hearth, open, fireplace",
    "refrigerator, icebox",
    "grandstand, covered, stand",
    "path",
    "stairs, steps",
    "runway",
    "case, display, case, showcase, vitrine",
    "pool, table, billiard, table, snooker, table",
    "pillow",
    "screen, door, screen",
    "stairway, staircase",
    "river",
    "bridge, span",
    "bookcase",
    "blind, screen",
    "coffee, table, cocktail, table",
    "toilet, can, commode, crapper, pot, potty, stool, throne",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove, kitchen, stove, range, kitchen, range, cooking, stove",
    "palm, palm, tree",
    "kitchen, island",
    "computer, computing, machine, computing, device, data, processor,"
    " electronic, computer, information, processing, system",
    "swivel, chair",
    "boat",
    "bar",
    "arcade, machine",
    "hovel, hut, hutch, shack, shanty",
    "bus, autobus, coach, charabanc, double-decker, jitney, motorbus,"
    " motorcoach, omnibus, passenger, vehicle",
    "towel",
    "light, light, source",
    "truck, motortruck",
    "tower",
    "chandelier, pendant, pendent",
    "awning, sunshade, sunblind",
    "streetlight, street, lamp",
    "booth, cubicle, stall, kiosk",
    "television, television, receiver, television, set, tv, tv, set, idiot,"
    " box, boob, tube, telly, goggle, box",
    "airplane, aeroplane, plane",
    "dirt, track",
    "apparel, wearing, apparel, dress, clothes",
    "pole",
    "land, ground, soil",
    "bannister, banister, balustrade, balusters, handrail",
    "escalator, moving, staircase, moving, stairway",
    "ottoman, pouf, pouffe, puff, hassock",
    "bottle",
    "buffet, counter, sideboard",
    "poster, posting, placard, notice, bill, card",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer, belt, conveyor, belt, conveyer, conveyor, transporter",
    "canopy",
    "washer, automatic, washer, washing, machine",
    "plaything, toy",
    "swimming, pool, swimming, bath, natatorium",
    "stool",
    "barrel, cask",
    "basket, handbasket",
    "waterfall, falls",
    "tent, collapsible, shelter",
    "bag",
    "minibike, motorbike",
    "cradle",
    "oven",
    "ball",
    "food, solid, food",
    "step, stair",
    "tank, storage, tank",
    "trade, name, brand, name, brand, marque",
    "microwave, microwave, oven",
    "pot, flowerpot",
    "animal, animate, being, beast, brute, creature, fauna",
    "bicycle, bike, wheel, cycle",
    "lake",
    "dishwasher, dish, washer, dishwashing, machine",
    "screen, silver, screen, projection, screen",
    "blanket, cover",
    "sculpture",
    "hood, exhaust, hood",
    "sconce",
    "vase",
    "traffic, light, traffic, signal, stoplight",
    "tray",
    "ashcan, trash, can, garbage, can, wastebin, ash, bin, ash-bin, ashbin,"
    " dustbin, trash, barrel, trash, bin",
    "fan",
    "pier, wharf, wharfage, dock",
    "crt, screen",
    "plate",
    "monitor, monitoring, device",
    "bulletin, board, notice, board",
    "shower",
    "radiator",
    "glass, drinking, glass",
    "clock",
    "flag",
)
"""Queries for ADE20K-150 class ids 1..150 (reference ``clip_as_rnn/data/ade.py``)."""

# Indices into ADE_150_CLASSES, in the reference's order. Its "stuff" group
# oddly includes "apparel" and "flower", and leaves "sidewalk" and "rock" to things.
ADE_150_STUFF_IDS: tuple[int, ...] = (
    0, 2, 3, 4, 5, 6, 9, 13, 16, 17, 21, 26, 29, 46, 48, 52, 60, 61, 66, 68, 94,
    91, 92, 128, 113,
)
ADE_150_THING_IDS: tuple[int, ...] = tuple(
    index for index in range(len(ADE_150_CLASSES)) if index not in set(ADE_150_STUFF_IDS)
)
"""Every ADE-150 index not in the stuff group, ascending (exactly the reference's list)."""


def _first_synonyms(queries: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(query.split(",")[0].strip() for query in queries)


@dataclass(frozen=True)
class ClassVocabulary:
    """One dataset's classes: the CLIP query and a short display name per class id.

    Attributes:
        name: the vocabulary's name (``"voc"``, ``"coco_object"``, ...).
        queries: the exact string fed to CLIP for each class; entry ``i`` is
            class id ``i + 1``. May hold comma-separated synonyms (one query).
        display_names: a short name per class for legends and tables.
        source: where the query strings come from.
    """

    name: str
    queries: tuple[str, ...]
    display_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.display_names):
            raise ValueError(
                f"vocabulary {self.name!r}: {len(self.queries)} queries but "
                f"{len(self.display_names)} display names; give one of each per class"
            )
        if len(set(self.queries)) != len(self.queries):
            raise ValueError(f"vocabulary {self.name!r} has duplicate queries")

    def __len__(self) -> int:
        return len(self.queries)

    def synonyms(self, index: int) -> tuple[str, ...]:
        """The comma-separated parts of query ``index`` (display only; CaR queries the whole string).

        Arguments:
            index: 0-based class index (class id - 1).

        Returns:
            the stripped, non-empty parts, in order, duplicates removed.
        """
        parts = (part.strip() for part in self.queries[index].split(","))
        return tuple(dict.fromkeys(part for part in parts if part))

    def to_dict(self) -> dict:
        """JSON-ready dict (lists instead of tuples); inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "queries": list(self.queries),
            "display_names": list(self.display_names),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ClassVocabulary":
        """Rebuild a vocabulary from :meth:`to_dict`'s output.

        Arguments:
            data: a dict with keys ``name``, ``queries``, ``display_names``, ``source``.

        Returns:
            the equal :class:`ClassVocabulary`.
        """
        return cls(
            name=data["name"],
            queries=tuple(data["queries"]),
            display_names=tuple(data["display_names"]),
            source=data["source"],
        )


_REFERENCE = "google-research/google-research clip_as_rnn/"

VOC = ClassVocabulary("voc", VOC_CLASSES, VOC_DISPLAY_NAMES, _REFERENCE + "data/voc.py VOC_CLASSES")
COCO_OBJECT = ClassVocabulary(
    "coco_object", COCO_OBJECT_CLASSES, COCO_OBJECT_DISPLAY_NAMES,
    _REFERENCE + "data/coco.py COCO_OBJECT_CLASSES",
)
CONTEXT_59 = ClassVocabulary(
    "context", CONTEXT_59_CLASSES, CONTEXT_59_CLASSES,
    _REFERENCE + "data/context.py PASCAL_CONTEXT_CLASSES",
)
ADE_150 = ClassVocabulary(
    "ade150", ADE_150_CLASSES, _first_synonyms(ADE_150_CLASSES),
    _REFERENCE + "data/ade.py ADE_CLASSES",
)

def shapes_vocabulary() -> ClassVocabulary:
    """ShapesWorld's object classes as a vocabulary (read from :mod:`carlib.world.classes`).

    Imported here, not at module load, so the benchmark vocabularies and
    presets stay usable even when :mod:`carlib.world` cannot be imported.

    Returns:
        a :class:`ClassVocabulary` whose queries and display names are the
        single-word class names; class id ``i + 1`` is ``queries[i]``.
    """
    from carlib.world.classes import CLASS_NAMES

    return ClassVocabulary("shapes", tuple(CLASS_NAMES), tuple(CLASS_NAMES), "carlib/world/classes.py CLASS_NAMES")


def shapes_background_words() -> tuple[str, ...]:
    """ShapesWorld's background surface names (grass, sky, ...), its CaR background words.

    Returns:
        the names from :data:`carlib.world.classes.BACKGROUND_NAMES`, in order.
    """
    from carlib.world.classes import BACKGROUND_NAMES

    return tuple(BACKGROUND_NAMES)
