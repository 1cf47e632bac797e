"""carlib: CLIP as RNN (CaR, CVPR 2024), training-free open-vocabulary segmentation.

The public names, in the order the algorithm uses them:

- :func:`load_clip` — a CLIP model by open_clip name/tag, checkpoint path, or ``"shapes"``.
- :func:`load_image` — any image (path, PIL, array) as RGB uint8.
- :func:`gradcam` / :func:`compute_cams` — Grad-CAM of text queries on CLIP.
- :func:`clip_es_refine` — CLIP-ES attention-affinity refinement of those CAMs.
- :func:`dense_similarity` — patch-text cosines of MaskCLIP, SCLIP, ClearCLIP or NACLIP on the patch grid.
- :func:`apply_visual_prompts` — draw a mask as a visual prompt (ellipse, blur...).
- :func:`image_embeddings` — unit image embeddings of any supported VLM (``carlib models`` lists the families).
- :class:`CarSettings` — every knob of the recurrence, one frozen object.
- :class:`CaR` — the recurrence; ``CaR(proposal, classifier, settings).segment(image, queries)`` → :class:`CarResult`.
- :func:`get_preset`, :func:`load_models`, :func:`car_from_preset` — dataset settings.
"""

from carlib.background import BACKGROUND_SETS, DEFAULT_BACKGROUND_WORDS, background_words
from carlib.cam import CamResult, compute_cams, gradcam
from carlib.car import CaR, CarResult, StepTrace
from carlib.clip_es import clip_es_refine
from carlib.dense_methods import DENSE_METHODS, dense_similarity
from carlib.embeddings import image_embeddings
from carlib.images import load_image
from carlib.models import CheckpointError, ClipBundle, WeightsNotFoundError, load_clip
from carlib.pipeline import car_from_preset, load_models, segment_vocabulary
from carlib.presets import PRESETS, Preset, get_preset
from carlib.prompts import PROMPT_KINDS, apply_visual_prompts
from carlib.settings import CarSettings
from carlib.text import encode_texts

__all__ = [
    "BACKGROUND_SETS",
    "CaR",
    "CarResult",
    "CarSettings",
    "PRESETS",
    "Preset",
    "StepTrace",
    "car_from_preset",
    "get_preset",
    "load_models",
    "segment_vocabulary",
    "DEFAULT_BACKGROUND_WORDS",
    "DENSE_METHODS",
    "PROMPT_KINDS",
    "CamResult",
    "CheckpointError",
    "ClipBundle",
    "WeightsNotFoundError",
    "apply_visual_prompts",
    "background_words",
    "clip_es_refine",
    "compute_cams",
    "dense_similarity",
    "encode_texts",
    "gradcam",
    "image_embeddings",
    "load_clip",
    "load_image",
]

__version__ = "0.1.0"
