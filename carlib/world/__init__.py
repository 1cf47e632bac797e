"""ShapesWorld: a generated world with exact ground truth, and the small CLIP trained on it.

No CLIP weights can be downloaded in offline setups, so carlib ships a small
``open_clip.CLIP`` trained on these scenes (``data/shapes_clip``). CaR then
runs, teaches and is measured without any download.

- :func:`generate_scene` / :func:`split_scene` — seeded scenes with per-pixel
  class, instance and background ids (:class:`Scene`).
- :data:`CLASS_NAMES`, :data:`BACKGROUND_NAMES` — the vocabulary.
- :func:`scene_caption`, :func:`referring_expressions` — text about a scene.
- :func:`export_voc`, :func:`write_samples` — files on disk.
- :mod:`carlib.world.train`, :mod:`carlib.evaluation.shapesworld_report` — the model's recipe and report.
"""

from carlib.world.captions import referring_expressions, scene_caption
from carlib.world.classes import BACKGROUND_NAMES, CLASS_NAMES, SIZE_NAMES
from carlib.world.export import export_voc, write_samples
from carlib.world.scene import SPLIT_KEYS, Scene, SceneObject, generate_scene, scene_rng, split_scene

__all__ = [
    "BACKGROUND_NAMES",
    "CLASS_NAMES",
    "SIZE_NAMES",
    "SPLIT_KEYS",
    "Scene",
    "SceneObject",
    "export_voc",
    "generate_scene",
    "referring_expressions",
    "scene_caption",
    "scene_rng",
    "split_scene",
    "write_samples",
]
