"""From a preset name to a ready CaR: models chosen, settings applied, passes run.

``car_from_preset`` is what the command line, the evaluation harness and the
notebooks use, so a preset means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from carlib.car import CaR, CarResult, Recurrence
from carlib.classifier import ClassifierStage
from carlib.images import ImageInput, load_image
from carlib.labels import paint_label_map
from carlib.models import (
    SHAPES_MODEL_NAME,
    SHAPES_MODELS,
    ClipBundle,
    WeightsNotFoundError,
    default_tag,
    load_clip,
    needs_hf_tokenizer,
)
from carlib.post_stages import PostStage
from carlib.postprocess.mask_sources import MaskSource
from carlib.presets import Preset, SemanticPass, get_preset
from carlib.proposals import ProposalStage

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


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """``NAME[:TAG|PATH]`` as (name, tag or path or None), e.g. ``"EVA02-B-16:merged2b_s8b_b131k"``.

    The name is an open_clip model name or a ShapesWorld model (``shapes``, ``shapes-siglip``); after the
    first ``:`` comes a pretrained tag or a checkpoint file (a ShapesWorld model: its folder).

    Raises:
        ValueError: an empty name, or an unknown one (the message points to ``carlib models``).
    """
    import open_clip

    name, _, pretrained = spec.partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"model {spec!r} has no name; write NAME[:TAG|PATH], e.g. ViT-B-16:openai")
    if name not in SHAPES_MODELS and name not in open_clip.list_models():
        raise ValueError(
            f"unknown model {name!r}; `carlib models` lists the families, open_clip.list_models() "
            f"every name, and {', '.join(SHAPES_MODELS)} are the ShapesWorld models"
        )
    return name, (pretrained.strip() or None)


def load_models(
    preset: Preset,
    model: str = "auto",
    device: str | None = None,
    quick_gelu: bool | None = None,
    *,
    proposal: str | None = None,
    classifier: str | None = None,
    tokenizer: str | None = None,
) -> LoadedModels:
    """Load the proposal and classifier CLIPs for a preset.

    Arguments:
        preset: the preset naming the models (e.g. ViT-B-16 + ViT-L-14 for ``voc``).
        model: one of :data:`MODEL_CHOICES` (checked here: callers pass command-line strings).
            ``"openai"`` loads the preset's OpenAI weights (error with
            instructions if they are not on disk); ``"shapes"`` uses the
            ShapesWorld CLIP for both roles; ``"auto"`` tries OpenAI weights
            and falls back to ShapesWorld, saying which it used.
        device: ``None`` picks CUDA when present.
        quick_gelu: the activation of real CLIP models; None infers it from
            the tag or checkpoint file (:func:`carlib.models.infer_activation`).
        proposal, classifier: a model for that role instead, ``NAME[:TAG|PATH]``
            (:func:`parse_model_spec`): any supported family or a ShapesWorld
            model. It must load (no fallback); the other role follows ``model``.
            Without a tag, the model's default tag (``openai`` where it has one).
        tokenizer: a Hugging Face tokenizer folder for a model that needs one (SigLIP).

    Returns:
        :class:`LoadedModels`; :attr:`LoadedModels.weights_notes` says which
        activation each model got and why.
    """
    if model not in MODEL_CHOICES:
        raise ValueError(f"unknown model choice {model!r}; choose one of {MODEL_CHOICES}")
    explicit = {
        role: parse_model_spec(spec)
        for role, spec in (("proposal", proposal), ("classifier", classifier))
        if spec is not None
    }
    preset_roles = {
        "proposal": (preset.proposal_model, preset.proposal_pretrained),
        "classifier": (preset.classifier_model, preset.classifier_pretrained),
    }
    chosen: dict[str, tuple[str, str | None]] = dict(explicit)
    description = ""
    cache: dict[tuple[str, str | None], ClipBundle] = {}  # the availability check's models are the ones returned
    others = [role for role in ("proposal", "classifier") if role not in explicit]
    if others:
        uses_shapes = model == "shapes" or any(preset_roles[role][0] in SHAPES_MODELS for role in others)
        real = {role: preset_roles[role] for role in others}
        if not uses_shapes:
            try:
                _load_roles(real, device, quick_gelu, tokenizer, cache)
                chosen.update(real)
                description = "OpenAI CLIP"
            except WeightsNotFoundError:
                if model == "openai":
                    raise
                uses_shapes = True
        if uses_shapes:
            for role in others:
                name = preset_roles[role][0]
                chosen[role] = (name, preset_roles[role][1]) if name in SHAPES_MODELS else (SHAPES_MODEL_NAME, None)
            fallback = model != "shapes" and not any(preset_roles[role][0] in SHAPES_MODELS for role in others)
            description = "the ShapesWorld CLIP trained by this project" + " (OpenAI weights not found)" * fallback
    bundles = _load_roles(chosen, device, quick_gelu, tokenizer, cache)
    proposal_bundle, classifier_bundle = bundles["proposal"], bundles["classifier"]
    if explicit or not description:
        description = f"{_describe(proposal_bundle)} proposals, {_describe(classifier_bundle)} classifier"
    elif description == "OpenAI CLIP":
        description = f"OpenAI CLIP: {proposal_bundle.name} proposals, {classifier_bundle.name} classifier"
    if proposal_bundle.seeded_random or classifier_bundle.seeded_random:
        description += " (SEEDED RANDOM weights: the results mean nothing)"
    return LoadedModels(proposal_bundle, classifier_bundle, description)


def _load_roles(
    roles: dict[str, tuple[str, str | None]],
    device: str | None,
    quick_gelu: bool | None,
    tokenizer: str | None,
    loaded: dict[tuple[str, str | None], ClipBundle] | None = None,
) -> dict[str, ClipBundle]:
    """Each role's bundle; roles naming the same model and weights share one (also with ``loaded``, which keeps
    every model loaded here)."""
    loaded = {} if loaded is None else loaded
    bundles = {}
    for role, (name, asked_tag) in roles.items():
        pretrained = default_tag(name) if name not in SHAPES_MODELS and asked_tag is None else asked_tag
        key = (name, pretrained)
        if key not in loaded:
            options: dict[str, Any] = {} if name in SHAPES_MODELS else {"quick_gelu": quick_gelu}
            if tokenizer is not None and name not in SHAPES_MODELS and needs_hf_tokenizer(name):
                options["tokenizer"] = tokenizer  # --tokenizer serves the role that needs it, whichever that is
            loaded[key] = load_clip(name, pretrained, device=device, **options)
        bundles[role] = loaded[key]
    return bundles


def _describe(bundle: ClipBundle) -> str:
    if bundle.name in SHAPES_MODELS:
        return f"ShapesWorld {bundle.name}"
    return f"{bundle.name} ({bundle.pretrained}, {bundle.family})"


def car_from_preset(
    preset: Preset | str,
    models: LoadedModels,
    *,
    sam_source: MaskSource | None = None,
    proposals: ProposalStage | None = None,
    classifier: ClassifierStage | None = None,
    post_processing: PostStage | None = None,
    **changes,
) -> CaR:
    """A :class:`CaR` with a preset's settings and models.

    Arguments:
        preset: a :class:`Preset` or its name.
        models: from :func:`load_models`.
        sam_source: the region source of ``post="sam"`` (:class:`carlib.postprocess.SamMaskSource`, or
            :class:`carlib.postprocess.ColourRegionMaskSource` on ShapesWorld).
        proposals, classifier, post_processing: stages to use instead of the ones CaR builds.
        **changes: :class:`carlib.settings.CarSettings` fields to change for
            this CaR (``post="none"``, ``recurrent=False``...), for ablations.

    Returns:
        a :class:`CaR`.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    settings = preset.settings.replace(**changes) if changes else preset.settings
    return CaR(
        models.proposal,
        models.classifier,
        settings,
        proposals=proposals,
        classifier=classifier,
        post_processing=post_processing,
        sam_source=sam_source,
    )


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
    return [
        (semantic_pass, car.recur(rgb, list(semantic_pass.queries), settings=semantic_pass.settings))
        for semantic_pass in preset.semantic_passes(car.settings)
    ]


def vocabulary_segmentation(
    car: CaR, recurrences: list[tuple[SemanticPass, Recurrence]], results: list[CarResult]
) -> SemanticSegmentation:
    """Paint the passes' results (``car.finish`` of each recurrence) into one label map of dataset class ids."""
    label_map = np.zeros(recurrences[0][1].image_size, dtype=np.int32)
    passes: dict[str, CarResult] = {}
    indices: dict[str, tuple[int, ...]] = {}
    for (semantic_pass, _), result in zip(recurrences, results, strict=True):
        class_ids = np.asarray(semantic_pass.class_indices) + 1
        pass_labels = paint_label_map(result.masks, result.scores)
        painted = pass_labels > 0
        label_map[painted] = class_ids[pass_labels[painted] - 1]
        passes[semantic_pass.name] = result
        indices[semantic_pass.name] = tuple(semantic_pass.class_indices)
    return SemanticSegmentation(label_map=label_map, passes=passes, class_indices=indices)


def parse_queries(text: str | None = None, lines: Sequence[str] | None = None) -> list[str]:
    """Queries from a comma-separated string and/or lines of a file (blank lines and # comments skipped)."""
    queries = [query.strip() for query in (text or "").split(",") if query.strip()]
    for raw_line in lines or ():
        line = raw_line.strip()
        if line and not line.startswith("#"):
            queries.append(line)
    return queries
