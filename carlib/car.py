"""The CaR recurrence: propose, prompt, verify, drop, repeat until the query set is stable.

Spec section 2. ``CaR(...).segment(image, queries)`` returns a :class:`CarResult`
with the final masks and scores for every input query and a :class:`StepTrace`
per step, which the notebooks draw from.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Literal, Optional, Sequence, Union

import numpy as np
import torch

from carlib.cam import CLIP_ES_ATTENTION_LAYERS, compute_cams, resize_maps
from carlib.classifier import Aggregation, ImageFeature, MaskClassifier
from carlib.clip_es import clip_es_refine
from carlib.images import ImageInput, fit_within, load_image
from carlib.labels import paint_label_map, resize_masks
from carlib.models import SHAPES_MODEL_NAME, ClipBundle
from carlib.prompts import REFERENCE_BLUR_KERNEL, apply_visual_prompts, check_blur_kernel
from carlib.text import BACKGROUND_TEMPLATE, encode_texts, validate_queries

Mode = Literal["semantic", "referring"]
PostProcessing = Literal["crf", "sam", "none"]
MaxSide = Union[int, None, Literal["auto"]]

REAL_CLIP_MAX_SIDE = 640
"""The proposal-stage bound for real CLIP (``max_side="auto"``): every benchmark image but ADE's
fits (VOC and Pascal Context are at most 500 px, COCO and RefCOCO 640 px), so benchmarks run at
their native size as in the paper, while a 12 MP photo's proposals run on 640 x 480 instead of
~47,000 ViT-B/16 patch tokens."""
SHAPES_CLIP_MAX_SIDE = 96
"""The bound for the ShapesWorld CLIP (``max_side="auto"``): the size of the scenes it was trained on."""


def resolve_max_side(max_side: MaxSide, proposal_model: ClipBundle) -> Optional[int]:
    """The bound in pixels: ``"auto"`` follows the proposal model's family, None means none.

    Raises:
        ValueError: anything but ``"auto"``, None or a positive int.
    """
    if max_side == "auto":
        return SHAPES_CLIP_MAX_SIDE if proposal_model.name == SHAPES_MODEL_NAME else REAL_CLIP_MAX_SIDE
    if max_side is None:
        return None
    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, 'auto' or None; got {max_side!r}")
    return int(max_side)


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
        return [query for query, keep in zip(self.queries, self.kept) if keep]

    @property
    def num_steps(self) -> int:
        return len(self.steps)


class CaR:
    """CLIP as RNN: training-free open-vocabulary segmentation.

    Arguments:
        proposal_model: CLIP for Grad-CAM proposals (ViT-B/16 in the paper).
        classifier_model: CLIP that verifies prompted images (ViT-L/14 semantic,
            ViT-B/16 referring); may be the same bundle.
        mask_threshold: η, proposals are binarised at ``mask > η`` for prompting.
        confidence_threshold: θ, a query survives if its score is above it.
        clipes_threshold: λ for the CLIP-ES box mask.
        prompt_kinds: visual prompts drawn for the classifier.
        blur_kernel: side of the Gaussian kernel of the ``blur`` prompt (odd);
            the reference's 15 by default. It is in pixels, so the same kernel
            blurs a small image more (:data:`carlib.presets.SHAPES_BLUR_KERNEL`).
        background: background words competing in the Grad-CAM softmax.
        templates: the classifier's text templates.
        mode: ``"semantic"`` (queries compete in one softmax) or ``"referring"``
            (each query's CAM is computed on its own against the background,
            as the reference does, and CRF runs per mask).
        post: ``"crf"``, ``"sam"`` or ``"none"`` (binarise at η).
        use_clip_es: refine CAMs with CLIP-ES (False: plain Grad-CAM proposals,
            the paper's Table 2 middle row).
        center_cam_features: Grad-CAM weighs each feature's deviation from its
            mean over the patches, so the ReLU cuts at the image's average
            evidence instead of at zero (see :func:`carlib.cam.compute_cams`).
            Not in the reference; False by default.
        recurrent: False runs one step and keeps every query (the "no
            recurrence" baseline of Table 2).
        max_steps: safety cap; the reference has none.
        max_side: the recurrence and post-processing run on the image shrunk
            (area interpolation) so its longer side is at most this many
            pixels; masks and the label map are resized back to the input's
            size. Proposal memory grows with the square of the pixel count
            (CLIP-ES attention is n x n for n patches), so a 12 MP photo at its
            own size would need over 100 GB. ``"auto"`` (default):
            :data:`REAL_CLIP_MAX_SIDE` for real CLIP, which every benchmark image
            but ADE's fits, :data:`SHAPES_CLIP_MAX_SIDE` for the ShapesWorld
            CLIP. None: always the input's own size, as the reference.
        templated_cams_after_first_step: the reference's quirk: from step 2 on,
            Grad-CAM is asked about ``"a clean origami {name}."`` instead of the
            raw name. True (faithful) by default.
        keep_previous_if_all_zero: the reference's quirk: if every proposal of a
            step is all zero, the previous step's proposals are used. True by default.
        inclusive_threshold: keep queries with score >= θ (the paper) instead
            of > θ (the code, default).
        classifier_feature, classifier_aggregation: see
            :class:`carlib.classifier.MaskClassifier`.
        crf_options: keyword arguments for :func:`carlib.postprocess.dense_crf`.
        sam_source: a mask source for ``post="sam"`` (see :mod:`carlib.postprocess`).
        sam_options: keyword arguments for :func:`carlib.postprocess.sam_refine`.
    """

    def __init__(
        self,
        proposal_model: ClipBundle,
        classifier_model: ClipBundle,
        *,
        mask_threshold: float = 0.4,
        confidence_threshold: float = 0.6,
        clipes_threshold: float = 0.4,
        prompt_kinds: Sequence[str] = ("circle", "blur"),
        blur_kernel: int = REFERENCE_BLUR_KERNEL,
        background: Sequence[str] = (),
        templates: Sequence[str] = ("a photo of a {}.",),
        mode: Mode = "semantic",
        post: PostProcessing = "crf",
        use_clip_es: bool = True,
        center_cam_features: bool = False,
        recurrent: bool = True,
        max_steps: int = 10,
        max_side: MaxSide = "auto",
        templated_cams_after_first_step: bool = True,
        keep_previous_if_all_zero: bool = True,
        inclusive_threshold: bool = False,
        classifier_feature: ImageFeature = "penultimate_class_token",
        classifier_aggregation: Aggregation = "sum_softmax",
        crf_options: Optional[dict] = None,
        sam_source=None,
        sam_options: Optional[dict] = None,
    ) -> None:
        if mode not in ("semantic", "referring"):
            raise ValueError(f"unknown mode {mode!r}; choose 'semantic' or 'referring'")
        if post not in ("crf", "sam", "none"):
            raise ValueError(f"unknown post-processing {post!r}; choose 'crf', 'sam' or 'none'")
        if post == "sam" and sam_source is None:
            raise ValueError("post='sam' needs a sam_source (e.g. carlib.postprocess.SamMaskSource(checkpoint))")
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        check_blur_kernel(blur_kernel)
        self.proposal_model = proposal_model
        self.classifier = MaskClassifier(
            classifier_model, templates, image_feature=classifier_feature, aggregation=classifier_aggregation
        )
        self.mask_threshold = mask_threshold
        self.confidence_threshold = confidence_threshold
        self.clipes_threshold = clipes_threshold
        self.prompt_kinds = tuple(prompt_kinds)
        self.blur_kernel = int(blur_kernel)
        self.background = tuple(background)
        self.mode = mode
        self.post = post
        self.use_clip_es = use_clip_es
        self.center_cam_features = bool(center_cam_features)
        self.recurrent = recurrent
        self.max_steps = max_steps
        self.max_side = resolve_max_side(max_side, proposal_model)
        self.templated_cams_after_first_step = templated_cams_after_first_step
        self.keep_previous_if_all_zero = keep_previous_if_all_zero
        self.inclusive_threshold = inclusive_threshold
        self.crf_options = dict(crf_options or {})
        self.sam_source = sam_source
        self.sam_options = dict(sam_options or {})
        self._background_cache: dict[tuple[str, ...], torch.Tensor] = {}

    def background_embeddings(self, words: Sequence[str]) -> torch.Tensor:
        """Unit embeddings of background words (``"a clean origami {}."``), cached per word set."""
        key = tuple(words)
        if key not in self._background_cache:
            self._background_cache[key] = encode_texts(self.proposal_model, key, (BACKGROUND_TEMPLATE,))
        return self._background_cache[key]

    def segment(
        self,
        image: ImageInput,
        queries: Sequence[str],
        *,
        background: Optional[Sequence[str]] = None,
        prompt_kinds: Optional[Sequence[str]] = None,
        crf_options: Optional[dict] = None,
    ) -> CarResult:
        """Segment ``image`` with the given text queries.

        Arguments:
            image: path, PIL image or HxWx3 uint8 RGB array.
            queries: N distinct, non-blank words or phrases.
            background, prompt_kinds, crf_options: override the instance's
                settings for this call (Pascal Context's two passes differ in them).

        Returns:
            a :class:`CarResult` covering every input query, its masks at the image's size.
        """
        queries = validate_queries(queries)
        original = load_image(image)
        rgb = fit_within(original, self.max_side)
        run = _Run(
            background=self.background_embeddings(self.background if background is None else background),
            prompt_kinds=self.prompt_kinds if prompt_kinds is None else tuple(prompt_kinds),
            crf_options={**self.crf_options, **(crf_options or {})},
        )
        seconds = {"proposals": 0.0, "prompts": 0.0, "classify": 0.0, "post": 0.0}
        alive = list(range(len(queries)))
        steps: list[StepTrace] = []
        previous_count = 0
        previous_proposals: dict[int, np.ndarray] = {}
        scores = np.zeros(len(queries), dtype=np.float32)
        final_proposals: dict[int, np.ndarray] = {}
        for step in range(1, (self.max_steps if self.recurrent else 1) + 1):
            trace = self._step(rgb, queries, alive, step, previous_proposals, run)
            steps.append(trace)
            for stage, value in trace.seconds.items():
                seconds[stage] += value
            previous_proposals = {index: trace.proposals[k] for k, index in enumerate(alive)}
            survivors = trace.kept if self.recurrent else list(alive)
            scores[:] = 0
            for k, index in enumerate(alive):
                if index in survivors:
                    scores[index] = max(float(trace.scores[k]), np.finfo(np.float32).tiny)
            final_proposals = {index: previous_proposals[index] for index in survivors}
            if len(survivors) == previous_count:
                break
            previous_count = len(survivors)
            alive = survivors

        with _timed(seconds, "post"):
            soft_masks = np.zeros((len(queries), *rgb.shape[:2]), dtype=np.float32)
            for index, proposal in final_proposals.items():
                soft_masks[index] = proposal
            masks = self._post_process(rgb, soft_masks, scores, run.crf_options)
            if rgb.shape != original.shape:
                soft_masks = _resize_kept(soft_masks, scores, original.shape[:2], resize_maps)
                masks = _resize_kept(masks, scores, original.shape[:2], resize_masks)
            label_map = paint_label_map(masks, scores)
        return CarResult(
            queries=queries,
            soft_masks=soft_masks,
            masks=masks,
            scores=scores,
            label_map=label_map,
            steps=steps,
            seconds=seconds,
            working_size=tuple(rgb.shape[:2]),  # type: ignore[arg-type]
        )

    def _step(
        self,
        image: np.ndarray,
        queries: list[str],
        alive: list[int],
        step: int,
        previous_proposals: dict[int, np.ndarray],
        run: "_Run",
    ) -> StepTrace:
        seconds: dict[str, float] = {}
        texts = [queries[index] for index in alive]
        cam_texts = texts
        if step > 1 and self.templated_cams_after_first_step:
            cam_texts = [BACKGROUND_TEMPLATE.format(text) for text in texts]
        with _timed(seconds, "proposals"):
            cams, proposals = self._proposals(image, cam_texts, run.background)
            if (
                self.keep_previous_if_all_zero
                and proposals.max(initial=0) == 0
                and all(index in previous_proposals for index in alive)
            ):
                proposals = np.stack([previous_proposals[index] for index in alive])
        with _timed(seconds, "prompts"):
            prompted = [
                apply_visual_prompts(image, proposal > self.mask_threshold, run.prompt_kinds,
                                     blur_kernel=self.blur_kernel)
                for proposal in proposals
            ]
        with _timed(seconds, "classify"):
            matrix = self.classifier.classify(prompted, texts)
        diagonal = np.diagonal(matrix).astype(np.float32).copy()
        passed = diagonal >= self.confidence_threshold if self.inclusive_threshold else diagonal > self.confidence_threshold
        kept = [index for index, keep in zip(alive, passed) if keep]
        fell_back = not kept
        if fell_back:
            kept = [alive[int(np.argmax(diagonal))]]
        return StepTrace(
            step=step,
            alive=list(alive),
            cam_texts=list(cam_texts),
            cams=cams,
            proposals=proposals,
            classifier=matrix,
            scores=diagonal,
            kept=kept,
            fell_back_to_argmax=fell_back,
            seconds=seconds,
        )

    def _proposals(
        self, image: np.ndarray, cam_texts: list[str], background: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        """Grad-CAMs and (CLIP-ES refined) proposals at the image size, K x H x W each."""
        groups = [cam_texts] if self.mode == "semantic" else [[text] for text in cam_texts]
        cams, proposals = [], []
        for group in groups:
            result = compute_cams(
                self.proposal_model,
                image,
                group,
                attention_layers=CLIP_ES_ATTENTION_LAYERS if self.use_clip_es else 0,
                background_embeddings=background,
                center_features=self.center_cam_features,
            )
            cams.append(result.upsampled())
            if self.use_clip_es:
                proposals.append(
                    clip_es_refine(
                        result.cams, result.attention, threshold=self.clipes_threshold, output_size=result.image_size
                    )
                )
            else:
                proposals.append(cams[-1])
        return np.concatenate(cams), np.concatenate(proposals)

    def _post_process(
        self, image: np.ndarray, soft_masks: np.ndarray, scores: np.ndarray, crf_options: dict
    ) -> np.ndarray:
        kept = np.flatnonzero(scores > 0)
        masks = np.zeros(soft_masks.shape, dtype=bool)
        if kept.size == 0:
            return masks
        if self.post == "none":
            masks[kept] = soft_masks[kept] > self.mask_threshold
            return masks
        from carlib import postprocess

        if self.post == "crf":
            crf = postprocess.dense_crf_per_mask if self.mode == "referring" else postprocess.dense_crf
            masks[kept] = crf(image, soft_masks[kept], **crf_options).astype(bool)
            return masks
        binary = soft_masks[kept] > self.mask_threshold
        masks[kept] = postprocess.sam_refine(image, binary, self.sam_source, **self.sam_options).astype(bool)
        return masks


def _resize_kept(maps: np.ndarray, scores: np.ndarray, size: tuple[int, int], resize) -> np.ndarray:
    """N maps resized to ``size``; dropped queries' maps stay zero, and np.zeros leaves them unallocated."""
    resized = np.zeros((maps.shape[0], *size), dtype=maps.dtype)
    for index in np.flatnonzero(scores > 0):
        resized[index] = resize(maps[index : index + 1], size)[0]
    return resized


@dataclass(frozen=True)
class _Run:
    """Settings of one ``segment`` call."""

    background: torch.Tensor
    prompt_kinds: tuple[str, ...]
    crf_options: dict


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start

