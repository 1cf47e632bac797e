"""The CaR recurrence: propose, prompt, verify, drop, repeat until the query set is stable.

Spec section 2. ``CaR(...).segment(image, queries)`` returns a :class:`CarResult`
with the final masks and scores for every input query and a :class:`StepTrace`
per step, which the notebooks draw from.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from carlib.cam import resize_maps
from carlib.classifier import ClassifierStage, MaskClassifier
from carlib.images import ImageInput, fit_within, load_image
from carlib.labels import paint_label_map, resize_masks
from carlib.models import REAL_CLIP_MAX_SIDE, ClipBundle
from carlib.post_stages import PostStage, SamPostProcessing, build_post_stage
from carlib.postprocess.mask_sources import MaskSource
from carlib.prompts import PromptedImages
from carlib.proposals import PROPOSAL_STAGES, ProposalStage
from carlib.settings import CarSettings, MaxSide
from carlib.text import BACKGROUND_TEMPLATE, validate_queries

SHAPES_CLIP_MAX_SIDE = 96
"""The bound for the ShapesWorld models (``max_side="auto"``): the size of the scenes they were trained on
(each bundle says it: :attr:`carlib.models.ClipBundle.default_max_side`)."""


def resolve_max_side(max_side: MaxSide, proposal_model: ClipBundle | None) -> int | None:
    """The bound in pixels: ``"auto"`` is the proposal model's own default (real CLIP's 640 without one); None: none."""
    if max_side != "auto":
        return max_side
    return REAL_CLIP_MAX_SIDE if proposal_model is None else proposal_model.default_max_side


@dataclass
class StepTrace:
    """Everything one step of the recurrence saw and decided, at the working size.

    The maps are at :attr:`CarResult.working_size`, the image as the
    recurrence saw it (the input itself unless it was larger than ``max_side``).

    Attributes:
        step: 1-based step number.
        alive: indices (into the input queries) of the queries entering the step.
        cam_texts: the texts Grad-CAM was asked about (templated from step 2 on
            in the faithful setting).
        cams: K x h x w Grad-CAMs (before CLIP-ES) at the working size.
        proposals: K x h x w mask proposals (CLIP-ES refined unless disabled).
        classifier: K x K matrix; row k = prompted image of proposal k, column j
            = probability of query alive[j].
        scores: the diagonal, each proposal's score for its own query.
        kept: indices (into the input queries) that passed θ (or the argmax).
        fell_back_to_argmax: True if none passed and the best one was kept.
        seconds: wall time per stage: ``proposals``, ``prompts``, ``classify``.
    """

    step: int
    alive: list[int]
    cam_texts: list[str]
    cams: np.ndarray
    proposals: np.ndarray
    classifier: np.ndarray
    scores: np.ndarray
    kept: list[int]
    fell_back_to_argmax: bool
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def dropped(self) -> list[int]:
        """Indices (into the input queries) that died at this step."""
        return [index for index in self.alive if index not in self.kept]


@dataclass
class CarResult:
    """The outcome of CaR on one image.

    Every mask is at the input image's size H x W, whatever size the
    recurrence ran at.

    Attributes:
        queries: the N input queries.
        soft_masks: float32 N x H x W final proposals (zeros for dropped queries).
        masks: bool N x H x W after post-processing (all False for dropped ones).
        scores: float32 N classifier scores of the final step (0 for dropped).
        label_map: int32 H x W; 0 = background, i + 1 = query i (semantic mode).
        steps: one :class:`StepTrace` per step.
        seconds: total wall time per stage, including ``post``.
        working_size: (h, w) the recurrence and post-processing ran at
            (the input's size unless its longer side exceeded ``max_side``).
    """

    queries: list[str]
    soft_masks: np.ndarray
    masks: np.ndarray
    scores: np.ndarray
    label_map: np.ndarray
    steps: list[StepTrace]
    seconds: dict[str, float]
    working_size: tuple[int, int]

    @property
    def kept(self) -> np.ndarray:
        """bool N: which queries survived."""
        return self.scores > 0

    @property
    def kept_queries(self) -> list[str]:
        return [query for query, keep in zip(self.queries, self.kept, strict=True) if keep]

    @property
    def num_steps(self) -> int:
        return len(self.steps)


@dataclass
class Recurrence:
    """The recurrence's outcome before post-processing (:meth:`CaR.recur`); :meth:`CaR.finish` completes it.

    Attributes:
        queries: the N input queries.
        working_image: the picture the recurrence ran on (the input unless larger than ``max_side``).
        image_size: (H, W) of the input.
        soft_masks: float32 N x h x w final proposals at the working size (zeros for dropped queries).
        scores: float32 N final scores (0 for dropped queries).
        steps: one :class:`StepTrace` per step.
        seconds: wall time of ``proposals``, ``prompts`` and ``classify``.
        settings: the settings it ran with.
    """

    queries: list[str]
    working_image: np.ndarray
    image_size: tuple[int, int]
    soft_masks: np.ndarray
    scores: np.ndarray
    steps: list[StepTrace]
    seconds: dict[str, float]
    settings: CarSettings

    def post_job(self) -> PostJob:
        """The post-processing of this recurrence, as a job :func:`post_process` runs anywhere."""
        return PostJob(self.working_image, self.soft_masks, self.scores, self.settings, self.image_size)


class CaR:
    """CLIP as RNN: training-free open-vocabulary segmentation.

    ``CaR`` composes a proposal stage, a classifier stage and a post-processing
    stage, and runs the recurrence over them (spec section 2). Every knob is a field
    of one :class:`carlib.settings.CarSettings`, received whole and read where
    it matters; a preset's settings are :attr:`carlib.presets.Preset.settings`.

    Arguments:
        proposal_model: CLIP for the proposals (ViT-B/16 in the paper); builds
            the stage ``settings.proposal_method`` names
            (:data:`carlib.proposals.PROPOSAL_STAGES`) unless ``proposals`` is given.
        classifier_model: CLIP that verifies prompted images (ViT-L/14 semantic,
            ViT-B/16 referring), may be the same bundle; builds a
            :class:`carlib.classifier.MaskClassifier` unless ``classifier`` is given.
        settings: the run's settings (the defaults are the reference's VOC η, θ, λ and prompts).
        proposals: a :class:`carlib.proposals.ProposalStage` to use instead of the built one.
        classifier: a :class:`carlib.classifier.ClassifierStage` to use instead of the built one.
        post_processing: a :class:`carlib.post_stages.PostStage` to use instead of the one
            ``settings.post`` names (:func:`carlib.post_stages.build_post_stage`).
        sam_source: the region source of the SAM stage CaR builds for ``post="sam"``
            (:class:`carlib.postprocess.SamMaskSource`, or :class:`carlib.postprocess.ColourRegionMaskSource`
            on ShapesWorld); ignored by the other stages.

    Raises:
        ValueError: ``post="sam"`` without a ``sam_source``, both ``post_processing`` and ``sam_source``,
            or a stage with no model to build it from.
    """

    def __init__(
        self,
        proposal_model: ClipBundle | None,
        classifier_model: ClipBundle | None,
        settings: CarSettings | None = None,
        *,
        proposals: ProposalStage | None = None,
        classifier: ClassifierStage | None = None,
        post_processing: PostStage | None = None,
        sam_source: MaskSource | None = None,
    ) -> None:
        self.settings = settings or CarSettings()
        if not isinstance(self.settings, CarSettings):
            raise ValueError(f"settings must be a carlib.settings.CarSettings, got {type(self.settings).__name__}")
        if (proposals is None and proposal_model is None) or (classifier is None and classifier_model is None):
            raise ValueError(
                "CaR needs a proposal_model (or a proposals stage) and a classifier_model (or a classifier)"
            )
        if post_processing is not None and sam_source is not None:
            raise ValueError(
                "give CaR either a post_processing stage or a sam_source (the region source of the SAM stage it "
                "builds), not both: pass carlib.post_stages.SamPostProcessing(sam_source) as post_processing"
            )
        self.proposal_model = proposal_model
        self._given_post = post_processing
        self._sam_source = sam_source
        self._built_post: dict[str, PostStage] = {}
        self.post_stage(self.settings)  # refuses post="sam" without regions before any work
        self._check_proposal_tower(self.settings, proposals)
        self._given_proposals = proposals
        self._built_proposals: dict[str, ProposalStage] = {}
        if not classifier:
            assert classifier_model is not None  # checked above
            classifier = MaskClassifier(classifier_model)
        self.classifier: ClassifierStage = classifier

    def proposal_stage(self, settings: CarSettings | None = None) -> ProposalStage:
        """The stage that proposes masks under ``settings``: the one given, else the method's, built once."""
        if self._given_proposals is not None:
            return self._given_proposals
        method = (settings or self.settings).proposal_method
        if method not in self._built_proposals:
            self._built_proposals[method] = PROPOSAL_STAGES[method](self.proposal_model)
        return self._built_proposals[method]

    def post_stage(self, settings: CarSettings | None = None) -> PostStage:
        """The stage that post-processes under ``settings``: the one given, else the one ``post`` names, built once.

        Raises:
            ValueError: ``post="sam"`` and CaR was given no ``sam_source``.
        """
        if self._given_post is not None:
            return self._given_post
        post = (settings or self.settings).post
        if post not in self._built_post:
            self._built_post[post] = build_post_stage(post, self._sam_source)
        return self._built_post[post]

    @property
    def sam_source(self) -> MaskSource | None:
        """The SAM stage's region source: ``sam_source``'s, or a given :class:`SamPostProcessing`'s; else None."""
        if isinstance(self._given_post, SamPostProcessing):
            return self._given_post.region_source
        return self._sam_source

    @property
    def max_side(self) -> int | None:
        """The bound this CaR's settings give, in pixels (``"auto"`` resolved), or None."""
        return resolve_max_side(self.settings.max_side, self.proposal_model)

    def segment(self, image: ImageInput, queries: Sequence[str], *, settings: CarSettings | None = None) -> CarResult:
        """Segment ``image`` with the given text queries.

        Arguments:
            image: path, PIL image or HxWx3 uint8 RGB array.
            queries: N distinct, non-blank words or phrases.
            settings: settings for this call instead of the instance's (Pascal
                Context's two passes differ in background words and prompts).

        Returns:
            a :class:`CarResult` covering every input query, its masks at the image's size.
        """
        return self.finish(self.recur(image, queries, settings=settings))

    def recur(self, image: ImageInput, queries: Sequence[str], *, settings: CarSettings | None = None) -> Recurrence:
        """The model work of :meth:`segment`: the recurrence, without post-processing.

        :meth:`finish` completes it; ``carlib eval`` runs the CRF of
        :meth:`Recurrence.post_job` in worker processes meanwhile.
        """
        settings = settings or self.settings
        self.post_stage(settings)  # refuses post="sam" without regions before any work
        self._check_proposal_tower(settings, self._given_proposals)
        queries = validate_queries(queries)
        original = load_image(image)
        rgb = fit_within(original, resolve_max_side(settings.max_side, self.proposal_model))
        seconds = {"proposals": 0.0, "prompts": 0.0, "classify": 0.0}
        alive = list(range(len(queries)))
        steps: list[StepTrace] = []
        previous_count = 0
        previous_proposals: dict[int, np.ndarray] = {}
        scores = np.zeros(len(queries), dtype=np.float32)
        final_proposals: dict[int, np.ndarray] = {}
        for step in range(1, (settings.max_steps if settings.recurrent else 1) + 1):
            trace = self._step(rgb, queries, alive, step, previous_proposals, settings)
            steps.append(trace)
            for stage, value in trace.seconds.items():
                seconds[stage] += value
            previous_proposals = {index: trace.proposals[k] for k, index in enumerate(alive)}
            survivors = trace.kept if settings.recurrent else list(alive)
            scores[:] = 0
            for k, index in enumerate(alive):
                if index in survivors:
                    scores[index] = max(float(trace.scores[k]), np.finfo(np.float32).tiny)
            final_proposals = {index: previous_proposals[index] for index in survivors}
            if len(survivors) == previous_count:
                break
            previous_count = len(survivors)
            alive = survivors
        soft_masks = np.zeros((len(queries), *rgb.shape[:2]), dtype=np.float32)
        for index, proposal in final_proposals.items():
            soft_masks[index] = proposal
        return Recurrence(queries, rgb, tuple(original.shape[:2]), soft_masks, scores, steps, seconds, settings)

    def finish(self, recurrence: Recurrence, masks: np.ndarray | None = None, post_seconds: float = 0.0) -> CarResult:
        """A :class:`CarResult` from a recurrence: post-processed here, or with ``masks`` from :func:`post_process`."""
        seconds = dict(recurrence.seconds)
        if masks is None:
            start = time.perf_counter()
            masks = post_process(recurrence.post_job(), self.post_stage(recurrence.settings))
            post_seconds = time.perf_counter() - start
        seconds["post"] = post_seconds
        soft_masks = recurrence.soft_masks
        if recurrence.working_image.shape[:2] != recurrence.image_size:
            soft_masks = _resize_kept(soft_masks, recurrence.scores, recurrence.image_size, resize_maps)
        return CarResult(
            queries=recurrence.queries,
            soft_masks=soft_masks,
            masks=masks,
            scores=recurrence.scores,
            label_map=paint_label_map(masks, recurrence.scores),
            steps=recurrence.steps,
            seconds=seconds,
            working_size=tuple(recurrence.working_image.shape[:2]),
        )

    def _check_proposal_tower(self, settings: CarSettings, proposals: ProposalStage | None) -> None:
        """Refuse, before any work, what the proposal tower cannot do (CLIP-ES or dense maps on a CNN)."""
        if proposals is not None or self.proposal_model is None:
            return
        tower = self.proposal_model.tower
        if settings.use_clip_es:
            tower.require_attention("CLIP-ES")
        if settings.proposal_method != "gradcam":
            tower.require_attention(f"the {settings.proposal_method} proposal method")

    def _step(
        self,
        image: np.ndarray,
        queries: list[str],
        alive: list[int],
        step: int,
        previous_proposals: dict[int, np.ndarray],
        settings: CarSettings,
    ) -> StepTrace:
        seconds: dict[str, float] = {}
        texts = [queries[index] for index in alive]
        cam_texts = texts
        if step > 1 and settings.templated_cams_after_first_step:
            cam_texts = [BACKGROUND_TEMPLATE.format(text) for text in texts]
        with _timed(seconds, "proposals"):
            maps = self.proposal_stage(settings).propose(image, cam_texts, settings)
            proposals = maps.proposals
            if (
                settings.keep_previous_if_all_zero
                and proposals.max(initial=0) == 0
                and all(index in previous_proposals for index in alive)
            ):
                proposals = np.stack([previous_proposals[index] for index in alive])
        # Drawn as the classifier reads them, so the step never holds all K prompted images at once;
        # the drawing time is reported as its own stage.
        prompted = PromptedImages(
            image, proposals, settings.mask_threshold, settings.prompt_kinds, blur_kernel=settings.blur_kernel
        )
        with _timed(seconds, "classify"):
            matrix = self.classifier.classify(prompted, texts, settings)
        seconds["prompts"] = prompted.seconds
        seconds["classify"] -= prompted.seconds
        diagonal = np.diagonal(matrix).astype(np.float32).copy()
        threshold = settings.confidence_threshold
        passed = diagonal >= threshold if settings.inclusive_threshold else diagonal > threshold
        kept = [index for index, keep in zip(alive, passed, strict=True) if keep]
        fell_back = not kept
        if fell_back:
            kept = [alive[int(np.argmax(diagonal))]]
        return StepTrace(
            step=step,
            alive=list(alive),
            cam_texts=list(cam_texts),
            cams=maps.cams,
            proposals=proposals,
            classifier=matrix,
            scores=diagonal,
            kept=kept,
            fell_back_to_argmax=fell_back,
            seconds=seconds,
        )


@dataclass
class PostJob:
    """What post-processing needs, and nothing more: small enough to send to a worker process.

    Attributes:
        image: the working-size H x W x 3 uint8 picture the recurrence saw.
        soft_masks: float32 N x H x W final proposals (zeros for dropped queries).
        scores: float32 N (0 for dropped queries).
        settings: the run's settings (``post``, ``crf``, ``sam``, ``mode``, ``mask_threshold``).
        image_size: (H, W) of the input, which the masks are resized back to.
    """

    image: np.ndarray
    soft_masks: np.ndarray
    scores: np.ndarray
    settings: CarSettings
    image_size: tuple[int, int]


def post_process(job: PostJob, stage: PostStage | None = None) -> np.ndarray:
    """The kept queries' binary masks after post-processing, at the input's size.

    A pure function of the job and the stage, so ``carlib eval`` can run it in another process.

    Arguments:
        job: the recurrence's outcome (:meth:`Recurrence.post_job`).
        stage: the :class:`carlib.post_stages.PostStage` to run on the kept queries
            (:meth:`CaR.post_stage`); None builds the one ``job.settings.post`` names,
            which for ``"sam"`` needs a region source, so pass the stage.

    Returns:
        bool N x H x W at ``job.image_size``; all False for dropped queries.

    Raises:
        ValueError: no stage for ``post="sam"``, or a stage that returns masks of the wrong shape.
    """
    stage = stage if stage is not None else build_post_stage(job.settings.post)
    kept = np.flatnonzero(job.scores > 0)
    masks = np.zeros(job.soft_masks.shape, dtype=bool)
    if kept.size:
        refined = np.asarray(stage.refine(job.image, job.soft_masks[kept], job.settings))
        expected = (kept.size, *job.soft_masks.shape[1:])
        if refined.shape != expected:
            raise ValueError(
                f"{type(stage).__name__}.refine returned masks of shape {refined.shape}, expected {expected} "
                "(one H x W mask per kept query)"
            )
        masks[kept] = refined
    if job.image.shape[:2] != tuple(job.image_size):
        masks = _resize_kept(masks, job.scores, job.image_size, resize_masks)
    return masks


def _resize_kept(maps: np.ndarray, scores: np.ndarray, size: tuple[int, int], resize) -> np.ndarray:
    """N maps resized to ``size``; dropped queries' maps stay zero, and np.zeros leaves them unallocated."""
    resized = np.zeros((maps.shape[0], *size), dtype=maps.dtype)
    for index in np.flatnonzero(scores > 0):
        resized[index] = resize(maps[index : index + 1], size)[0]
    return resized


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
