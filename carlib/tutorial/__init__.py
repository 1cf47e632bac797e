"""Tutorial support: what the notebooks in ``notebooks/`` call, and nothing the algorithm needs.

- :mod:`carlib.tutorial.session` — :func:`setup` (which model, which pictures, which words).
- :mod:`carlib.tutorial.figures` — matplotlib figures of every stage (returned, never shown twice).
- :mod:`carlib.tutorial.explorer` — the ipywidgets explorer of notebook 08.
- :mod:`carlib.tutorial.notebook_files` — keeping the stored notebooks clean and current.

``from carlib import tutorial; session = tutorial.setup(model)`` is how every notebook starts.
"""

from carlib.tutorial.session import (
    PHOTO_QUERIES,
    SHAPES_IMAGES,
    Tutorial,
    bundled_image_dir,
    photo,
    setup,
    shapes_scene,
)
from carlib.world.classes import BACKGROUND_NAMES, CLASS_NAMES

__all__ = [
    "BACKGROUND_NAMES",
    "CLASS_NAMES",
    "PHOTO_QUERIES",
    "SHAPES_IMAGES",
    "Tutorial",
    "bundled_image_dir",
    "photo",
    "setup",
    "shapes_scene",
]
