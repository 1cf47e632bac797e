"""From a preset name to a ready CaR: models chosen, settings applied, passes run.

``car_from_preset`` is what the command line, the evaluation harness and the
notebooks use, so a preset means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence, get_args

import numpy as np

from carlib.car import CaR, CarResult, Recurrence
from carlib.classifier import ClassifierStage
from carlib.proposals import ProposalStage
from carlib.images import ImageInput, load_image
from carlib.labels import paint_label_map
from carlib.models import SHAPES_MODEL_NAME, ClipBundle, WeightsNotFoundError, load_clip
from carlib.presets import Preset, SemanticPass, get_preset

ModelChoice = Literal["auto", "shapes", "openai"]
MODEL_CHOICES: tuple[str, ...] = get_args(ModelChoice)


@dataclass
class LoadedModels:
    """The two CLIPs of a CaR run and a sentence saying what they are."""

    proposal: ClipBundle
    classifier: ClipBundle
    description: str

    @property
    def weights_notes(self) -> list[str]:
        """One line per distinct model: where its weights came from and which activation it runs."""
        bundles = [self.proposal] if self.classifier is self.proposal else [self.proposal, self.classifier]
        return [bundle.weights_note for bundle in bundles if bundle.weights_note]


def load_models(preset: Preset, model: ModelChoice = "auto", device: Optional[str] = None,
                quick_gelu: Optional[bool] = None) -> LoadedModels:
    """Load the proposal and classifier CLIPs for a preset.

    Arguments:
        preset: the preset naming the models (e.g. ViT-B-16 + ViT-L-14 for ``voc``).
        model: ``"openai"`` loads the preset's OpenAI weights (error with
            instructions if they are not on disk); ``"shapes"`` uses the
            ShapesWorld CLIP for both roles; ``"auto"`` tries OpenAI weights
            and falls back to ShapesWorld, saying which it used.
        device: ``None`` picks CUDA when present.
        quick_gelu: the activation of real CLIP models; None infers it from
            the tag or checkpoint file (:func:`carlib.models.infer_activation`).

    Returns:
        :class:`LoadedModels`; :attr:`LoadedModels.weights_notes` says which
        activation each model got and why.
    """
    if model not in MODEL_CHOICES:
        raise ValueError(f"unknown model choice {model!r}; choose one of {MODEL_CHOICES}")
    uses_shapes = preset.proposal_model == SHAPES_MODEL_NAME or model == "shapes"
    if not uses_shapes:
        try:
            proposal = load_clip(preset.proposal_model, preset.proposal_pretrained or "openai", device=device,
                                 quick_gelu=quick_gelu)
            if (preset.classifier_model, preset.classifier_pretrained) == (preset.proposal_model, preset.proposal_pretrained):
                classifier = proposal
            else:
                classifier = load_clip(preset.classifier_model, preset.classifier_pretrained or "openai", device=device,
                                       quick_gelu=quick_gelu)
            seeded = " (SEEDED RANDOM weights: the results mean nothing)" * (proposal.seeded_random or
                                                                             classifier.seeded_random)
            return LoadedModels(
                proposal,
                classifier,
                f"OpenAI CLIP: {preset.proposal_model} proposals, {preset.classifier_model} classifier{seeded}",
            )
        except WeightsNotFoundError:
            if model == "openai":
                raise
    shapes = load_clip(SHAPES_MODEL_NAME, device=device)
    note = "" if model == "shapes" or preset.proposal_model == SHAPES_MODEL_NAME else " (OpenAI weights not found)"
    return LoadedModels(shapes, shapes, f"the ShapesWorld CLIP trained by this project{note}")


def car_from_preset(
    preset: Preset | str,
    models: LoadedModels,
    *,
    sam_source=None,
    proposals: Optional[ProposalStage] = None,
    classifier: Optional[ClassifierStage] = None,
    **changes,
) -> CaR:
    """A :class:`CaR` with a preset's settings and models.

    Arguments:
        preset: a :class:`Preset` or its name.
        models: from :func:`load_models`.
        sam_source: a mask source, needed for ``post="sam"``.
        proposals, classifier: stages to use instead of the ones CaR builds.
        **changes: :class:`carlib.settings.CarSettings` fields to change for
            this CaR (``post="none"``, ``recurrent=False``...), for ablations.

    Returns:
        a :class:`CaR`.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    settings = preset.settings.replace(**changes) if changes else preset.settings
    return CaR(models.proposal, models.classifier, settings, proposals=proposals, classifier=classifier,
               sam_source=sam_source)


@dataclass
class SemanticSegmentation:
    """A preset's whole vocabulary run on one image.

    Attributes:
        label_map: H x W int32 in dataset class ids (0 = background).
        passes: one :class:`CarResult` per pass (``"all"``, or ``"stuff"`` then ``"things"``).
        class_indices: per pass, the 0-based class index of each query.
    """

    label_map: np.ndarray
    passes: dict[str, CarResult]
    class_indices: dict[str, tuple[int, ...]]


def segment_vocabulary(car: CaR, preset: Preset, image: ImageInput) -> SemanticSegmentation:
    """Run CaR with a semantic preset's class vocabulary, in the preset's passes.

    Pascal Context (and ADE) run stuff and things separately, each with the
    other's names as background words; stuff is painted first, things over it.

    Returns:
        :class:`SemanticSegmentation` with a label map in dataset class ids.
    """
    recurrences = vocabulary_recurrences(car, preset, image)
    return vocabulary_segmentation(car, recurrences, [car.finish(recurrence) for _, recurrence in recurrences])


def vocabulary_recurrences(car: CaR, preset: Preset, image: ImageInput) -> list[tuple[SemanticPass, Recurrence]]:
    """The model work of :func:`segment_vocabulary`: one recurrence per pass, not yet post-processed."""
    rgb = load_image(image)
    recurrences = []
    for semantic_pass in preset.semantic_passes():
        # The pass's own words, prompts and CRF background; the rest as this CaR was built (an ablation's changes).
        pass_settings = car.settings.replace(
            background=semantic_pass.settings.background,
            prompt_kinds=semantic_pass.settings.prompt_kinds,
            crf=car.settings.crf.replace(bg_factor=semantic_pass.settings.crf.bg_factor),
        )
        recurrences.append((semantic_pass, car.recur(rgb, list(semantic_pass.queries), settings=pass_settings)))
    return recurrences


def vocabulary_segmentation(car: CaR, recurrences: list[tuple[SemanticPass, Recurrence]],
                            results: list[CarResult]) -> SemanticSegmentation:
    """Paint the passes' results (``car.finish`` of each recurrence) into one label map of dataset class ids."""
    label_map = np.zeros(recurrences[0][1].image_size, dtype=np.int32)
    passes: dict[str, CarResult] = {}
    indices: dict[str, tuple[int, ...]] = {}
    for (semantic_pass, _), result in zip(recurrences, results):
        class_ids = np.asarray(semantic_pass.class_indices) + 1
        pass_labels = paint_label_map(result.masks, result.scores)
        painted = pass_labels > 0
        label_map[painted] = class_ids[pass_labels[painted] - 1]
        passes[semantic_pass.name] = result
        indices[semantic_pass.name] = tuple(semantic_pass.class_indices)
    return SemanticSegmentation(label_map=label_map, passes=passes, class_indices=indices)


def parse_queries(text: Optional[str] = None, lines: Optional[Sequence[str]] = None) -> list[str]:
    """Queries from a comma-separated string and/or lines of a file (blank lines and # comments skipped)."""
    queries = [query.strip() for query in (text or "").split(",") if query.strip()]
    for line in lines or ():
        line = line.strip()
        if line and not line.startswith("#"):
            queries.append(line)
    return queries
