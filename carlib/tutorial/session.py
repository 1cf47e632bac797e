"""What the notebooks share: which model to use, which images, which words.

Every notebook starts with :func:`setup`, which resolves ``model="auto"`` the
way ``carlib segment`` does (real OpenAI CLIP when its weights are on disk,
else the ShapesWorld CLIP this project trains) and says what that means for
the results. The bundled pictures follow the model: ShapesWorld scenes (with
their exact ground truth) for the ShapesWorld CLIP, scikit-image's sample
photos for real CLIP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from carlib.car import CaR
from carlib.images import load_image
from carlib.models import SHAPES_MODEL_NAME, data_dir
from carlib.pipeline import MODEL_CHOICES, LoadedModels, car_from_preset, load_models, parse_queries
from carlib.postprocess.mask_sources import MaskSource
from carlib.precision import amp_name, set_global_autocast
from carlib.presets import Preset, get_preset
from carlib.settings import CarSettings

SHAPES_IMAGES: dict[str, tuple[str, int]] = {
    "shapes_0_orange_starfish_balloon.png": ("test", 2),
    "shapes_1_orange_tent_wheel.png": ("test", 3),
    "shapes_2_lemon_starfish_tent.png": ("test", 4),
}
"""Bundled ShapesWorld scenes: file name -> (split, index) of the scene; all use :data:`SHAPES_IMAGE_SEED`."""

SHAPES_IMAGE_SEED = 42

PHOTO_QUERIES: dict[str, tuple[str, ...]] = {
    "chelsea": ("cat", "dog", "sofa", "table"),
    "astronaut": ("person", "flag", "rocket", "dog"),
    "coffee": ("cup", "plate", "spoon", "cat"),
    "rocket": ("rocket", "sky", "tree", "car"),
}
"""scikit-image sample photos (they ship inside the wheel) and words to ask about each, absent ones included."""

MODEL_NOTES = {
    True: (
        "This notebook runs on the ShapesWorld CLIP: a small CLIP (a 1.2M-parameter ViT image tower) "
        "trained here, in under an hour on a CPU, on generated scenes of eight object classes (orange, lemon, starfish, kite, tent, wheel, "
        "balloon, dice) on four surfaces (grass, sky, water, sand). It knows only those words, so queries "
        "and pictures come from that world, where the exact ground truth is known. Every step of CaR runs "
        "through the same code as with real CLIP; the numbers describe this small model, not the paper's."
    ),
    False: (
        "This notebook runs on real OpenAI CLIP weights found on this machine (ViT-B/16 proposals; the "
        "preset's classifier). Queries can be any words, and the bundled pictures are scikit-image's "
        "sample photos."
    ),
}


SEEDED_NOTE = (
    "These are seeded RANDOM weights in the place of OpenAI's (written by `carlib weights --random-seed` to "
    "run the real-CLIP path offline): every step runs exactly as with real CLIP, ViT-B/16 proposals and the "
    "preset's classifier on scikit-image's sample photos, but no map, score or decision below means anything."
)


AMP_NOTE = (
    "Precision: every model pass below runs under {amp} autocast (amp={amp!r}), not the faithful float32: "
    "faster on CPUs with AMX or AVX512-BF16 and on GPUs, and a few decisions can differ (README, Performance)."
)


@dataclass
class Tutorial:
    """A notebook's models, preset, pictures and default words.

    Attributes:
        models: the proposal and classifier CLIPs.
        preset: ``shapes`` for the ShapesWorld CLIP, else the requested real preset.
        uses_shapes: True when running on the ShapesWorld CLIP.
        images: bundled picture names, in display order.
        default_queries: the words the notebooks ask about by default.
        amp: the autocast every model pass of the notebook runs under: ``"off"``
            (float32, the faithful default), ``"bf16"`` or ``"fp16"``.
        settings: the preset's :class:`carlib.settings.CarSettings`.
        background: the preset's background words.
    """

    models: LoadedModels
    preset: Preset
    uses_shapes: bool
    images: list[str] = field(default_factory=list)
    default_queries: list[str] = field(default_factory=list)
    amp: str = "off"

    @property
    def settings(self) -> CarSettings:
        return self.preset.settings

    @property
    def background(self) -> tuple[str, ...]:
        return tuple(self.settings.background)

    @property
    def note(self) -> str:
        """What the model choice means for the results (printed at the top of each notebook)."""
        seeded = self.models.proposal.seeded_random or self.models.classifier.seeded_random
        explanation = SEEDED_NOTE if seeded and not self.uses_shapes else MODEL_NOTES[self.uses_shapes]
        precision = "" if self.amp == "off" else f"\n{AMP_NOTE.format(amp=self.amp)}"
        return f"Model: {self.models.description}.\n{explanation}{precision}"

    @property
    def seeded_random(self) -> bool:
        """True when the "real" CLIP weights on disk are seeded random ones (nothing they show means anything)."""
        return not self.uses_shapes and (self.models.proposal.seeded_random or self.models.classifier.seeded_random)

    def narrate(self, shapes: str, real: str, seeded: str | None = None):
        """The notebook's narrative for the model that actually ran, as Markdown (a cell's last value renders it).

        Arguments:
            shapes: what this cell's outputs show with the ShapesWorld CLIP.
            real: what they show with real OpenAI CLIP (and how that differs).
            seeded: what to say when the real-CLIP weights are seeded random ones
                (default: ``real``, prefixed by a warning that nothing below means anything).
        """
        from IPython.display import Markdown

        if self.uses_shapes:
            return Markdown(shapes)
        if self.seeded_random:
            return Markdown(
                seeded or f"*(Seeded random weights: the outputs below mean nothing; with the real weights:)* {real}"
            )
        return Markdown(real)

    def load(self, image: str | Path | np.ndarray | None = None) -> np.ndarray:
        """A picture as H x W x 3 uint8 RGB: a bundled name, a file path, an array, or None (the first one)."""
        if image is None or (isinstance(image, str) and image == ""):
            image = self.images[0]
        if isinstance(image, str) and image in SHAPES_IMAGES:
            return load_image(bundled_image_dir() / image)
        if isinstance(image, str) and image in PHOTO_QUERIES:
            return photo(image)
        return load_image(image)

    def queries_for(
        self, image: str | Path | np.ndarray | None = None, queries: Sequence[str] | str | None = None
    ) -> list[str]:
        """The words to ask about ``image``: ``queries`` when given (a list or "a, b, c"), else defaults."""
        if queries:
            if isinstance(queries, str):
                return parse_queries(queries)
            return list(queries)
        if isinstance(image, str) and image in PHOTO_QUERIES:
            return list(PHOTO_QUERIES[image])
        return list(self.default_queries)

    def car(self, *, sam_source: MaskSource | None = None, **changes) -> CaR:
        """A :class:`CaR` with the preset's settings; keywords change any setting (``post="none"``...).

        ``sam_source`` is the region source of ``post="sam"`` (:class:`carlib.postprocess.SamMaskSource`, or
        :class:`carlib.postprocess.ColourRegionMaskSource` on ShapesWorld).
        """
        preset = self.preset.replace(**changes) if changes else self.preset
        return car_from_preset(preset, self.models, sam_source=sam_source)


def setup(
    model: str = "auto", preset: str = "voc", device: str | None = None, verbose: bool = True, amp: str = "off"
) -> Tutorial:
    """Resolve the model choice and return what a notebook needs.

    Arguments:
        model: ``"auto"`` (OpenAI weights if present, else ShapesWorld),
            ``"shapes"`` or ``"openai"`` (error with instructions if missing).
        preset: the real preset used with OpenAI weights (``voc`` by default);
            the ShapesWorld CLIP always uses ``shapes``.
        device: None picks CUDA when present.
        verbose: print :attr:`Tutorial.note`.
        amp: autocast for every model pass the notebook runs afterwards
            (:mod:`carlib.precision`): ``"off"`` (float32, the default),
            ``"bf16"``, ``"fp16"`` (CUDA) or ``"auto"`` (bf16/fp16 on a GPU,
            off on CPU). It is set for the notebook's thread, since its model
            calls are spread over many cells; ``setup`` with ``"off"`` turns it
            off again.

    With the ShapesWorld CLIP this sets ``torch.set_num_threads(1)`` for the
    process (faster for its tiny matrices, and the same numbers on any machine).

    Returns:
        a :class:`Tutorial`.

    Raises:
        ValueError: an unknown model or amp choice, or fp16 without CUDA.
    """
    if model not in MODEL_CHOICES:
        raise ValueError(f"unknown model {model!r}; choose one of {MODEL_CHOICES}")
    from carlib.precision import resolve_amp

    resolve_amp(device or ("cuda" if torch.cuda.is_available() else "cpu"), amp)  # a bad choice fails before loading
    from carlib.tutorial.figures import enable_notebook_display

    enable_notebook_display()
    real = get_preset(preset)
    models = load_models(real, model, device=device)
    uses_shapes = models.proposal.name == SHAPES_MODEL_NAME
    if uses_shapes:
        # The small CLIP's matrices are tiny: one thread is faster than several,
        # and it makes stored notebook outputs independent of the core count.
        torch.set_num_threads(1)
        tutorial = Tutorial(
            models, get_preset("shapes"), True, list(SHAPES_IMAGES), ["orange", "starfish", "balloon", "kite"]
        )
    else:
        tutorial = Tutorial(models, real, False, list(PHOTO_QUERIES), list(PHOTO_QUERIES["chelsea"]))
    tutorial.amp = amp_name(set_global_autocast(models.proposal.device, amp))
    if verbose:
        print(tutorial.note)
    return tutorial


def bundled_image_dir() -> Path:
    """Folder of the bundled pictures (``data/images``)."""
    return data_dir() / "images"


def photo(name: str) -> np.ndarray:
    """A scikit-image sample photo by name (``chelsea``, ``astronaut``, ``coffee``, ``rocket``)."""
    if name not in PHOTO_QUERIES:
        raise ValueError(f"unknown photo {name!r}; choose one of {sorted(PHOTO_QUERIES)}")
    try:
        import skimage.data
    except ImportError as error:  # pragma: no cover - scikit-image is in the tutorial extra
        raise ImportError("the sample photos come with scikit-image: pip install 'carlib[tutorial]'") from error
    return np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])


def shapes_scene(name: str):
    """The :class:`~carlib.world.scene.Scene` (with ground truth) behind a bundled ShapesWorld picture."""
    from carlib.world.scene import split_scene

    if name not in SHAPES_IMAGES:
        raise ValueError(f"{name!r} is not a bundled ShapesWorld scene; choose one of {sorted(SHAPES_IMAGES)}")
    split, index = SHAPES_IMAGES[name]
    return split_scene(split, index, SHAPES_IMAGE_SEED)


def prompted_images(car: CaR, image: np.ndarray, trace) -> list[np.ndarray]:
    """The prompted pictures one step of ``car`` classified: row ``k`` of ``trace.classifier`` scores picture ``k``.

    Each is the step's ``k``-th proposal cut at η and drawn with the settings' prompt kinds and blur kernel
    on the picture as the recurrence saw it (shrunk to ``car.max_side`` when larger), exactly as
    :class:`carlib.CaR` draws them.

    Arguments:
        car: the :class:`carlib.CaR` that produced the trace (its settings are used).
        image: the input picture, H x W x 3 uint8.
        trace: a :class:`carlib.car.StepTrace` of ``car.segment(image, ...)``.

    Returns:
        one h x w x 3 uint8 picture per alive query of the step.
    """
    from carlib.images import fit_within
    from carlib.prompts import apply_visual_prompts

    settings = car.settings
    working = fit_within(np.asarray(image), car.max_side)
    return [
        apply_visual_prompts(
            working, proposal > settings.mask_threshold, settings.prompt_kinds, blur_kernel=settings.blur_kernel
        )
        for proposal in trace.proposals
    ]
