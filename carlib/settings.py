"""Every knob of the CaR recurrence in one frozen object, handed whole to :class:`carlib.car.CaR`.

As nanoGPT passes one ``GPTConfig`` to every module, a :class:`CarSettings`
travels whole from a preset (:attr:`carlib.presets.Preset.settings`) into
``CaR``, and from there to each stage, which reads the fields it needs. A new
knob is one field here and the line that reads it. Values are checked when
the object is made, so a ``CaR`` built by hand is checked as a preset's is.

The post-processing knobs are their own frozen objects beside their code:
:class:`carlib.postprocess.CrfSettings` and :class:`carlib.postprocess.SamSettings`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from carlib.postprocess.crf import CrfSettings
from carlib.postprocess.sam import SamSettings
from carlib.prompts import REFERENCE_BLUR_KERNEL, check_blur_kernel, prompt_kind_names
from carlib.scores import SCORE_RULES, ScoreRule

Mode = Literal["semantic", "referring"]
PostProcessing = Literal["crf", "sam", "none"]
ProposalMethod = Literal["gradcam", "maskclip", "sclip", "clearclip", "naclip"]
ImageFeature = Literal["auto", "penultimate_class_token", "final"]
CamTargetChoice = Literal["auto", "patch_mean", "class_token", "pooled"]
Aggregation = Literal["sum_softmax", "softmax"]
MaxSide = int | Literal["auto"] | None

MODES: tuple[str, ...] = get_args(Mode)
POST_PROCESSING: tuple[str, ...] = get_args(PostProcessing)
PROPOSAL_METHODS: tuple[str, ...] = get_args(ProposalMethod)
IMAGE_FEATURES: tuple[str, ...] = get_args(ImageFeature)
CAM_TARGET_CHOICES: tuple[str, ...] = get_args(CamTargetChoice)
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)


@dataclass(frozen=True)
class CarSettings:
    """The settings of one CaR run (spec sections 2-6); the defaults are the reference's VOC values.

    Attributes:
        mode: ``"semantic"`` (queries compete in one softmax, one joint CRF)
            or ``"referring"`` (each query's CAM on its own against the
            background words, as the reference does, and one CRF per mask).
        mask_threshold: η, proposals are binarised at ``mask > η`` for prompting.
        confidence_threshold: θ, a query survives a step if its score is above it.
        clipes_threshold: λ, the CLIP-ES box-mask threshold (a fraction of the CAM's maximum).
        prompt_kinds: visual prompts drawn for the classifier (:data:`carlib.prompts.PROMPT_KINDS`
            names; applied in that module's fixed order whatever the order here).
        blur_kernel: side in pixels of the ``blur`` prompt's Gaussian kernel (odd);
            the reference's 15, made for ~500 px images.
        background: background words competing in the Grad-CAM softmax
            (embedded as ``"a clean origami {}."``).
        templates: the classifier's text templates, each with one ``{}``.
        proposal_method: which proposal stage :class:`carlib.car.CaR` builds:
            ``"gradcam"`` (the paper's, :class:`carlib.proposals.GradCamProposals`)
            or a dense method's maps, no gradients (:mod:`carlib.dense_methods`):
            ``"maskclip"`` (MaskCLIP, the paper's Table B baseline,
            :class:`carlib.proposals.MaskClipProposals`), ``"sclip"``,
            ``"clearclip"`` or ``"naclip"`` (the last block's attention changed
            as each method's official code does).
        neighbourhood_std: NACLIP's Gaussian σ, in patches (5, its default), for
            ``proposal_method="naclip"``.
        use_clip_es: refine the proposals with CLIP-ES attention affinity
            (False: plain Grad-CAM, the paper's Table 2 middle row; the only
            choice for a convolutional proposal tower, which has no attention).
        cam_target: the image embedding Grad-CAM explains: ``"patch_mean"``
            (CaR's: the patch tokens' mean after the final norm, through the
            projection), ``"class_token"``, ``"pooled"`` (the tower's own
            pooling, e.g. SigLIP's attention pool, a CNN's average), or
            ``"auto"``: the tower's default (``"patch_mean"`` for every tower
            with a class token, ``"pooled"`` otherwise).
        score_rule: how similarities become scores, in Grad-CAM's target, the
            classifier's keep rule and MaskCLIP's maps: ``"softmax"`` (CLIP's
            contrastive softmax at the model's logit scale, the reference's,
            for every model) or ``"as_trained"`` (each model as it was
            trained: a sigmoid-trained model, SigLIP, scores each text with
            its own sigmoid and logit bias; contrastive models keep the
            softmax). See :mod:`carlib.scores`.
        center_cam_features: Grad-CAM weighs each feature's deviation from
            its mean over the patches, so the ReLU cuts at the image's average
            evidence (:func:`carlib.cam.compute_cams`). Not in the reference.
        recurrent: False runs one step and keeps every query (Table 2's "no
            recurrence" baseline).
        max_steps: safety cap on the steps; the reference has none.
        max_side: the recurrence and post-processing run on the image shrunk
            (area interpolation) so its longer side is at most this many pixels;
            masks and the label map come back at the input's size. ``"auto"``:
            640 px for real CLIP, which every VOC, Context, COCO and RefCOCO
            image fits, 96 px for the ShapesWorld CLIP. None: always the
            input's own size, as the reference (a 12 MP photo would need over
            100 GB for CLIP-ES attention).
        templated_cams_after_first_step: the reference's quirk: from step 2 on,
            Grad-CAM is asked about ``"a clean origami {name}."``.
        keep_previous_if_all_zero: the reference's quirk: if every proposal
            of a step is all zero, the previous step's proposals are used.
        inclusive_threshold: keep queries with score >= θ (the paper) instead
            of > θ (the code, the default).
        official_numerics: reproduce the official code's numerics, for its
            label maps bit for bit: CLIP-ES (Sinkhorn, A², the box-masked
            product with each CAM, the min-max) in float32 torch, in the
            official ``clipcam.py``'s order of operations, instead of float64
            numpy; and the proposal ViT's resized positional embedding rounded
            to fp16 on every forward pass (the official models were written
            for fp16 GPUs; the rounding also happens at the training grid).
            Identical with it: the CLIP-ES attention and, given the same CAM and
            attention, the refined maps, bit for bit (tested against a
            transcription of the official order). Not identical either way:
            Grad-CAM (carlib's batched backward against the official per-query
            numpy, 2e-5 apart) and the classifier's scores (2e-7), so a pixel
            can still flip where a map sits exactly at a threshold. Compared
            end to end with the official code rebuilt from its public files
            (224 x 320, 3 queries, VOC settings, CRF, seeded weights), float32
            CLIP-ES in the official order gave its label map pixel for pixel,
            where float64 moved 1 pixel and float32 numpy 3. Bit identity needs
            the same torch build and thread count. Off by default: both choices
            only lose precision.
        classifier_feature: the classifier's image embedding:
            ``"penultimate_class_token"`` (the reference's quirk for OpenAI
            models: the class token after L-1 blocks, then ``ln_post`` and the
            projection), ``"final"`` (``encode_image``), or ``"auto"``: the
            quirk for real CLIP, ``"final"`` for the ShapesWorld CLIP, which
            is trained on its final embedding.
        classifier_aggregation: ``"sum_softmax"`` (the reference's semantic
            path: softmax per template, summed, softmaxed again) or
            ``"softmax"`` (its referring path: one softmax over the single
            template's texts).
        post: ``"crf"``, ``"sam"`` or ``"none"`` (proposals binarised at η).
        crf: dense-CRF settings (used when ``post == "crf"``).
        sam: SAM matching and generator settings (used when ``post == "sam"``).
    """

    mode: Mode = "semantic"
    mask_threshold: float = 0.4
    confidence_threshold: float = 0.6
    clipes_threshold: float = 0.4
    prompt_kinds: tuple[str, ...] = ("circle", "blur")
    blur_kernel: int = REFERENCE_BLUR_KERNEL
    background: tuple[str, ...] = ()
    templates: tuple[str, ...] = ("a photo of a {}.",)
    proposal_method: ProposalMethod = "gradcam"
    neighbourhood_std: float = 5.0
    use_clip_es: bool = True
    cam_target: CamTargetChoice = "auto"
    score_rule: ScoreRule = "softmax"
    center_cam_features: bool = False
    recurrent: bool = True
    max_steps: int = 10
    max_side: MaxSide = "auto"
    templated_cams_after_first_step: bool = True
    keep_previous_if_all_zero: bool = True
    inclusive_threshold: bool = False
    official_numerics: bool = False
    classifier_feature: ImageFeature = "auto"
    classifier_aggregation: Aggregation = "sum_softmax"
    post: PostProcessing = "crf"
    crf: CrfSettings = field(default_factory=CrfSettings)
    sam: SamSettings = field(default_factory=SamSettings)

    def __post_init__(self) -> None:
        # Lists given by a caller become tuples, so settings stay immutable and hashable.
        for name in ("prompt_kinds", "background", "templates"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(f"{name} must be a sequence of strings, not one string: wrap it: ({value!r},)")
            object.__setattr__(self, name, tuple(value))
        _choose("mode", self.mode, MODES)
        _choose("post", self.post, POST_PROCESSING)
        _choose("proposal_method", self.proposal_method, PROPOSAL_METHODS)
        _choose("classifier_feature", self.classifier_feature, IMAGE_FEATURES)
        _choose("cam_target", self.cam_target, CAM_TARGET_CHOICES)
        _choose("score_rule", self.score_rule, SCORE_RULES)
        _choose("classifier_aggregation", self.classifier_aggregation, AGGREGATIONS)
        for name in ("mask_threshold", "confidence_threshold", "clipes_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
        if (
            isinstance(self.neighbourhood_std, bool)
            or not isinstance(self.neighbourhood_std, (int, float))
            or not self.neighbourhood_std > 0
        ):
            raise ValueError(
                f"neighbourhood_std (NACLIP's Gaussian, in patches) must be positive, got {self.neighbourhood_std!r}"
            )
        check_blur_kernel(self.blur_kernel)
        if not self.prompt_kinds:
            raise ValueError("give at least one visual prompt kind, e.g. ('circle', 'blur')")
        prompt_kind_names(self.prompt_kinds)
        if not self.templates or any("{}" not in template for template in self.templates):
            raise ValueError(f"each template needs one '{{}}' placeholder; got {list(self.templates)}")
        if self.classifier_aggregation == "softmax" and len(self.templates) != 1:
            raise ValueError("classifier_aggregation 'softmax' needs exactly one template")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a whole number of at least 1, got {self.max_steps!r}")
        if self.max_side not in ("auto", None) and (
            isinstance(self.max_side, bool) or not isinstance(self.max_side, int) or self.max_side < 1
        ):
            raise ValueError(f"max_side must be a positive number of pixels, 'auto' or None; got {self.max_side!r}")
        if not isinstance(self.crf, CrfSettings) or not isinstance(self.sam, SamSettings):
            raise ValueError("crf and sam must be CrfSettings and SamSettings (carlib.postprocess)")

    def replace(self, **changes: Any) -> CarSettings:
        """A validated copy with some fields changed; unknown names are an error that lists the fields."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown CarSettings field(s) {unknown}; fields are {sorted(known)}")
        return dataclasses.replace(self, **changes)


def field_names() -> tuple[str, ...]:
    """The names of :class:`CarSettings`' fields, in order."""
    return tuple(f.name for f in dataclasses.fields(CarSettings))


def _choose(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
