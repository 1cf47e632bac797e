"""Background words: queries that compete with the user's in the softmax and absorb false positives.

The default 23 words are the reference code's; the three groups are the
supplementary's (section 4) ablation of them.
"""

from __future__ import annotations

DEFAULT_BACKGROUND_WORDS: tuple[str, ...] = (
    "ground", "land", "grass", "tree", "building", "wall", "sky", "lake", "water",
    "river", "sea", "railway", "railroad", "helmet", "cloud", "house", "mountain",
    "ocean", "road", "rock", "street", "valley", "bridge",
)

TERRESTRIAL: tuple[str, ...] = (
    "ground", "land", "grass", "tree", "mountain", "rock", "valley", "earth", "terrain",
    "forest", "bush", "hill", "field", "pasture", "meadow", "plateau", "cliff", "canyon",
    "ridge", "peak", "plain", "prairie", "tundra", "savanna", "steppe", "crag", "knoll",
    "dune", "glen", "dale", "copse", "thicket",
)

AQUATIC_ATMOSPHERIC: tuple[str, ...] = (
    "sea", "ocean", "lake", "water", "river", "sky", "cloud", "pond", "stream", "lagoon",
    "bay", "gulf", "fjord", "estuary", "creek", "brook", "reservoir", "pool", "spring",
    "marsh", "swamp", "wetland", "glacier", "iceberg", "atmosphere", "stratosphere", "mist",
    "fog", "rain", "drizzle", "hail", "sleet", "snow", "thunderstorm", "breeze", "wind",
    "gust", "hurricane", "tornado", "monsoon", "cumulus", "cirrus", "stratus", "nimbus",
)

MAN_MADE: tuple[str, ...] = (
    "building", "house", "wall", "road", "street", "railway", "railroad", "bridge",
    "edifice", "structure", "apartment", "condominium", "skyscraper", "highway",
    "boulevard", "lane", "alley", "byway", "avenue", "expressway", "freeway", "path",
    "overpass", "underpass", "viaduct", "tunnel", "footbridge", "crosswalk", "culvert",
    "dam", "archway", "causeway", "plaza", "square", "station", "terminal",
)


def _union(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(word for group in groups for word in group))


BACKGROUND_SETS: dict[str, tuple[str, ...]] = {
    "default": DEFAULT_BACKGROUND_WORDS,
    "terrestrial": TERRESTRIAL,
    "aquatic_atmospheric": AQUATIC_ATMOSPHERIC,
    "man_made": MAN_MADE,
    "all_groups": _union(TERRESTRIAL, AQUATIC_ATMOSPHERIC, MAN_MADE),
    "none": (),
}


def background_words(name: str) -> tuple[str, ...]:
    """The background word set called ``name`` (one of :data:`BACKGROUND_SETS`)."""
    if name not in BACKGROUND_SETS:
        raise ValueError(f"unknown background set {name!r}; choose one of {sorted(BACKGROUND_SETS)}")
    return BACKGROUND_SETS[name]
