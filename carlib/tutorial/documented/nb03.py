"""Documented figures of ``03_visual_prompts``: how each visual prompt changes the classifier's answer.

Every scene is asked about all eight class names (as CaR's ShapesWorld
evaluation does). For each present object, its ground-truth mask and CaR's own
first-step proposal (:class:`carlib.proposals.GradCamProposals`, cut at η) are
drawn with each prompt and classified; the figures are the mean probability
of the object's own word and how often it is the top word. A prompt must also
fail where it should: every *absent* word's own first-step proposal (which
lies on something else) is drawn with each prompt too, and the figures are the
mean probability the classifier gives that absent word, and how often it
clears θ (the word would survive the step). The first verification step
(every query's proposal, the preset's prompt, keep P[i, i] > θ) is measured
too. The notebook runs :func:`measure_prompts` on its bundled scenes and
prints the result beside these figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from carlib.classifier import MaskClassifier
from carlib.models import ClipBundle
from carlib.prompts import REFERENCE_BLUR_KERNEL, apply_visual_prompts
from carlib.proposals import GradCamProposals
from carlib.settings import CarSettings
from carlib.tutorial.documented import Figure
from carlib.world.classes import CLASS_NAMES
from carlib.world.scene import Scene, split_scene

NOTEBOOK = "03_visual_prompts"

PROMPTS: dict[str, tuple[str, ...]] = {
    "none": (),
    "blur": ("blur",),
    "gray": ("gray",),
    "black": ("black",),
    "circle": ("circle",),
    "rectangle": ("rectangle",),
    "contour": ("contour",),
    "circle+blur": ("circle", "blur"),
    "blur+gray": ("blur", "gray"),
}
"""The prompts measured: name -> kinds (``none`` is the unprompted image)."""

BLUR_KERNELS: tuple[int, ...] = (3, REFERENCE_BLUR_KERNEL, 27, 41)
"""Blur kernel sides compared on the ground-truth mask (15 is the reference's, 27 the ``shapes`` preset's)."""

MASKS = ("truth", "proposal")


@dataclass
class PromptMeasures:
    """What :func:`measure_prompts` saw.

    Attributes:
        target_probability: (mask, prompt) -> P(object's own word), one per (scene, present class).
        target_top: (mask, prompt) -> whether the own word was the most probable.
        blur_probability: kernel -> P(own word) with ``blur`` on the ground-truth mask.
        present_kept: prompt -> whether P(own word) > θ on the object's own first-step proposal.
        absent_probability: prompt -> P(absent word), one per (scene, absent class), on that word's own
            first-step proposal (it should be low).
        absent_kept: prompt -> whether that probability clears θ (the absent word would survive the step).
        step_kept_present, step_dropped_absent: first verification step, one bool per present / absent query.
        step_kept_not_top: one bool per kept query: was another word more probable on its prompt?
    """

    target_probability: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    target_top: dict[tuple[str, str], list[bool]] = field(default_factory=dict)
    blur_probability: dict[int, list[float]] = field(default_factory=dict)
    present_kept: dict[str, list[bool]] = field(default_factory=dict)
    absent_probability: dict[str, list[float]] = field(default_factory=dict)
    absent_kept: dict[str, list[bool]] = field(default_factory=dict)
    step_kept_present: list[bool] = field(default_factory=list)
    step_dropped_absent: list[bool] = field(default_factory=list)
    step_kept_not_top: list[bool] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Figures keyed ``p_<mask>_<prompt>``, ``top_<mask>_<prompt>``, ``p_blur_<kernel>``,
        ``kept_present_<prompt>``, ``p_absent_<prompt>``, ``kept_absent_<prompt>``, ``step_*``."""
        figures = {}
        values: Sequence[float]
        for (mask, prompt), values in self.target_probability.items():
            figures[f"p_{mask}_{prompt}"] = float(np.mean(values))
            figures[f"top_{mask}_{prompt}"] = float(np.mean(self.target_top[(mask, prompt)]))
        for kernel, values in self.blur_probability.items():
            figures[f"p_blur_{kernel}"] = float(np.mean(values))
        for prompt, values in self.present_kept.items():
            figures[f"kept_present_{prompt}"] = float(np.mean(values))
        for prompt, values in self.absent_probability.items():
            figures[f"p_absent_{prompt}"] = float(np.mean(values))
            figures[f"kept_absent_{prompt}"] = float(np.mean(self.absent_kept[prompt]))
        figures["step_present_kept"] = float(np.mean(self.step_kept_present))
        figures["step_absent_dropped"] = float(np.mean(self.step_dropped_absent))
        figures["step_kept_not_top"] = float(np.mean(self.step_kept_not_top)) if self.step_kept_not_top else 0.0
        return figures


def measure_prompts(
    proposal: ClipBundle, classifier: ClipBundle, scenes: Sequence[Scene], settings: CarSettings
) -> PromptMeasures:
    """Classify every present object under every prompt of :data:`PROMPTS`, and run one verification step.

    Arguments:
        proposal, classifier: the two CLIPs (the same model for ShapesWorld).
        scenes: ShapesWorld scenes with ground truth; each is asked about every class name.
        settings: η, θ, the preset's prompt kinds, blur kernel, templates and classifier feature.

    Returns:
        a :class:`PromptMeasures`.
    """
    names = list(CLASS_NAMES)
    stage = GradCamProposals(proposal)
    judge = MaskClassifier(classifier)
    measures = PromptMeasures()
    blur = settings.blur_kernel
    for scene in scenes:
        proposals = stage.propose(scene.image, names, settings).proposals > settings.mask_threshold
        present = scene.class_names_present
        for name in present:
            k = names.index(name)
            regions = {"truth": scene.class_mask(name), "proposal": proposals[k]}
            for mask, region in regions.items():
                images = [
                    apply_visual_prompts(scene.image, region, kinds, blur_kernel=blur) for kinds in PROMPTS.values()
                ]
                scores = judge.classify(images, names, settings)
                for prompt, row in zip(PROMPTS, scores, strict=True):
                    measures.target_probability.setdefault((mask, prompt), []).append(float(row[k]))
                    measures.target_top.setdefault((mask, prompt), []).append(bool(np.argmax(row) == k))
                    if mask == "proposal":
                        measures.present_kept.setdefault(prompt, []).append(
                            bool(row[k] > settings.confidence_threshold)
                        )
            blurred = [
                apply_visual_prompts(scene.image, regions["truth"], ("blur",), blur_kernel=kernel)
                for kernel in BLUR_KERNELS
            ]
            for kernel, row in zip(BLUR_KERNELS, judge.classify(blurred, names, settings), strict=True):
                measures.blur_probability.setdefault(kernel, []).append(float(row[k]))
        for k, name in enumerate(names):
            if name in present:
                continue
            images = [
                apply_visual_prompts(scene.image, proposals[k], kinds, blur_kernel=blur) for kinds in PROMPTS.values()
            ]
            for prompt, row in zip(PROMPTS, judge.classify(images, names, settings), strict=True):
                measures.absent_probability.setdefault(prompt, []).append(float(row[k]))
                measures.absent_kept.setdefault(prompt, []).append(bool(row[k] > settings.confidence_threshold))
        step = judge.classify(
            [
                apply_visual_prompts(scene.image, region, settings.prompt_kinds, blur_kernel=blur)
                for region in proposals
            ],
            names,
            settings,
        )
        for k, name in enumerate(names):
            kept = bool(step[k, k] > settings.confidence_threshold)
            (measures.step_kept_present if name in present else measures.step_dropped_absent).append(
                kept if name in present else not kept
            )
            if kept:
                measures.step_kept_not_top.append(bool(np.argmax(step[k]) != k))
    return measures


def compute(n: int, seed: int) -> dict[str, Figure]:
    from carlib.pipeline import load_models
    from carlib.presets import get_preset

    preset = get_preset("shapes")
    models = load_models(preset, "shapes", device="cpu")
    scenes = [split_scene("test", index, seed) for index in range(n)]
    values = measure_prompts(models.proposal, models.classifier, scenes, preset.settings).summary()
    mask_words = {"truth": "ground-truth mask", "proposal": "CaR's first-step proposal"}
    described = {}
    for mask, words in mask_words.items():
        for prompt in PROMPTS:
            described[f"p_{mask}_{prompt}"] = f"mean P(own word), prompt {prompt}, {words}"
            described[f"top_{mask}_{prompt}"] = f"share with the own word on top, prompt {prompt}, {words}"
    for kernel in BLUR_KERNELS:
        described[f"p_blur_{kernel}"] = f"mean P(own word), blur {kernel} x {kernel}, ground-truth mask"
    theta = preset.settings.confidence_threshold
    for prompt in PROMPTS:
        described[f"kept_present_{prompt}"] = (
            f"share of present words with P(own word) > θ = {theta}, prompt {prompt}, CaR's first-step proposal"
        )
        described[f"p_absent_{prompt}"] = f"mean P(absent word), prompt {prompt}, that word's first-step proposal"
        described[f"kept_absent_{prompt}"] = (
            f"share of absent words with P(word) > θ = {theta} (kept by mistake), "
            f"prompt {prompt}, that word's first-step proposal"
        )
    described["step_present_kept"] = f"first step: share of present queries with P[i, i] > θ = {theta}"
    described["step_absent_dropped"] = f"first step: share of absent queries with P[i, i] <= θ = {theta}"
    described["step_kept_not_top"] = "first step: share of kept queries whose prompt another word wins"
    return {key: Figure(value, described[key]) for key, value in values.items()}


PROMPT_TABLE_COLUMNS: dict[str, str] = {
    "p_truth": "P(own word), true mask",
    "p_proposal": "P(own word), own proposal",
    "kept_present": "present words kept",
    "p_absent": "P(absent word), its proposal",
    "kept_absent": "absent words kept",
}
"""The columns of :func:`prompt_table`: figure-name prefix -> header."""


def prompt_table(live: dict[str, float], stored, live_scenes: int) -> str:
    """Markdown: per prompt kind, what it does for present words and for absent ones, live / documented.

    Arguments:
        live: :meth:`PromptMeasures.summary` of the live scenes.
        stored: the documented figures of this notebook.
        live_scenes: how many scenes ``live`` measured.
    """
    theta = "θ"
    headers = " | ".join(PROMPT_TABLE_COLUMNS.values())
    lines = [
        f"Each cell: this run ({live_scenes} scenes) / documented ({stored.scenes} held-out scenes); "
        f"kept means P > {theta}, as in CaR's first step.",
        "",
        f"| prompt | {headers} |",
        "|---|" + "---|" * len(PROMPT_TABLE_COLUMNS),
    ]
    for prompt in PROMPTS:
        cells = [
            f"{live[f'{prefix}_{prompt}']:.2f} / {stored[f'{prefix}_{prompt}']:.2f}" for prefix in PROMPT_TABLE_COLUMNS
        ]
        lines.append(f"| {prompt} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
