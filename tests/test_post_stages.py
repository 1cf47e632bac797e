"""The post-processing stage (carlib.post_stages): each stage on hand-made cases, CaR's use of it, the pool's."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from carlib.car import CaR, PostJob, post_process
from carlib.evaluation.overlap import PostProcessPool
from carlib.pipeline import LoadedModels, car_from_preset
from carlib.post_stages import (
    CrfPostProcessing,
    NoPostProcessing,
    PostStage,
    SamPostProcessing,
    build_post_stage,
)
from carlib.postprocess import ColourRegionMaskSource
from carlib.presets import get_preset
from carlib.proposals import ProposalMaps
from carlib.settings import CarSettings

H, W = 24, 32
LEFT = np.zeros((H, W), dtype=bool)
LEFT[:, : W // 2] = True
TWO_HALVES = np.where(LEFT[..., None], np.uint8([200, 40, 40]), np.uint8([40, 40, 200])).astype(np.uint8)


class QuadrantRegions:
    """A region source (carlib.postprocess.MaskSource) that cuts every image into its four quadrants.

    Order: top-left, top-right, bottom-left, bottom-right. It counts its calls, in the process that holds it.
    """

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, image: np.ndarray) -> np.ndarray:
        self.calls += 1
        height, width = image.shape[:2]
        regions = np.zeros((4, height, width), dtype=bool)
        regions[0, : height // 2, : width // 2] = True
        regions[1, : height // 2, width // 2 :] = True
        regions[2, height // 2 :, : width // 2] = True
        regions[3, height // 2 :, width // 2 :] = True
        return regions


class ComplementMasks:
    """A post-processing stage no built-in one matches: each mask is the pixels at or below η."""

    runs_in_workers = True

    def __init__(self) -> None:
        self.calls: list[tuple[int, CarSettings]] = []

    def refine(self, image: np.ndarray, soft_masks: np.ndarray, settings: CarSettings) -> np.ndarray:
        self.calls.append((len(soft_masks), settings))
        return soft_masks <= settings.mask_threshold


class FixedProposals:
    """A proposal stage that proposes the same map for a text at every step (no model)."""

    def __init__(self, maps: dict[str, np.ndarray]) -> None:
        self.maps = maps

    def propose(self, image, texts, settings) -> ProposalMaps:
        proposals = np.stack([self.maps[text] for text in texts]).astype(np.float32)
        return ProposalMaps(cams=proposals, proposals=proposals)


class FixedScores:
    """A classifier stage that scores each prompted image by its own text's fixed number."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def classify(self, images, queries, settings) -> np.ndarray:
        matrix = np.full((len(images), len(queries)), 0.01, dtype=np.float32)
        for k, query in enumerate(queries):
            matrix[k, k] = self.scores[query]
        return matrix


def _scripted_car(settings: CarSettings, **stages) -> CaR:
    """CaR over fixed stages: "kept" passes θ = 0.5 with a map rising left to right, "dropped" fails it."""
    ramp = np.tile(np.linspace(0.0, 1.0, W, dtype=np.float32), (H, 1))
    return CaR(
        None,
        None,
        settings,
        proposals=FixedProposals({"kept": ramp, "dropped": ramp[::-1].copy()}),
        classifier=FixedScores({"kept": 0.9, "dropped": 0.2}),
        **stages,
    )


SCRIPTED = CarSettings(post="none", confidence_threshold=0.5, templated_cams_after_first_step=False)


def test_none_binarises_the_kept_queries_at_eta_and_leaves_dropped_ones_empty():
    soft = np.array([[[0.2, 0.5, 0.51, 0.9]], [[0.6, 0.6, 0.6, 0.6]], [[0.9, 0.9, 0.9, 0.9]]], dtype=np.float32)
    settings = CarSettings(post="none", mask_threshold=0.5)
    masks = NoPostProcessing().refine(np.zeros((1, 4, 3), np.uint8), soft, settings)
    np.testing.assert_array_equal(masks, [[[0, 0, 1, 1]], [[1, 1, 1, 1]], [[1, 1, 1, 1]]])
    job = PostJob(np.zeros((1, 4, 3), np.uint8), soft, np.array([0.7, 0.0, 0.6], np.float32), settings, (1, 4))
    np.testing.assert_array_equal(post_process(job), [[[0, 0, 1, 1]], [[0, 0, 0, 0]], [[1, 1, 1, 1]]])


def test_crf_keeps_masks_apart_in_semantic_mode_and_lets_them_overlap_in_referring_mode():
    # Query 0 is sure of the red left half; query 1 of the blue right half, and half-sure of the left.
    soft = np.zeros((2, H, W), dtype=np.float32)
    soft[0][LEFT], soft[0][~LEFT] = 0.9, 0.1
    soft[1][LEFT], soft[1][~LEFT] = 0.6, 0.9
    semantic = CrfPostProcessing().refine(TWO_HALVES, soft, CarSettings(post="crf"))
    np.testing.assert_array_equal(semantic, [LEFT, ~LEFT])  # one CRF: each pixel to its likeliest query
    referring = CrfPostProcessing().refine(TWO_HALVES, soft, CarSettings(post="crf", mode="referring"))
    np.testing.assert_array_equal(referring[0], LEFT)
    assert referring[1].all()  # its own two-label CRF: 0.6 beats the background's 0.4 on the left too


def test_sam_snaps_a_mask_to_the_region_it_matches_and_keeps_one_that_matches_none():
    soft = np.zeros((3, H, W), dtype=np.float32)
    soft[0, 1:12, 1:16] = 0.8  # 165 of the top-left quadrant's 192 pixels: IoM 1, IoU 0.86 > 0.7, snapped
    soft[1, :, 30:] = 0.8  # a strip over two right quadrants: IoM 0.5 each, the first kept, IoU 0.11: stays
    soft[2, :12, :16] = 0.4  # below η: an empty mask stays empty
    source = QuadrantRegions()
    settings = CarSettings(post="sam", mask_threshold=0.5)
    masks = SamPostProcessing(source).refine(TWO_HALVES, soft, settings)
    top_left = np.zeros((H, W), dtype=bool)
    top_left[:12, :16] = True
    np.testing.assert_array_equal(masks[0], top_left)
    np.testing.assert_array_equal(masks[1], soft[1] > 0.5)
    assert not masks[2].any()
    assert source.calls == 1


def test_car_builds_the_stage_its_settings_name_and_the_sam_stage_owns_the_region_source():
    source = QuadrantRegions()
    for post, kind in (("none", NoPostProcessing), ("crf", CrfPostProcessing), ("sam", SamPostProcessing)):
        car = _scripted_car(SCRIPTED.replace(post=post), sam_source=source)
        assert type(car.post_stage()) is kind and isinstance(car.post_stage(), PostStage)
        assert car.post_stage() is car.post_stage()  # built once
    assert car.post_stage().region_source is source and car.sam_source is source
    # Settings of one call name their own stage.
    assert type(car.post_stage(SCRIPTED.replace(post="crf"))) is CrfPostProcessing
    given = _scripted_car(SCRIPTED.replace(post="sam"), post_processing=SamPostProcessing(source))
    assert given.sam_source is source
    assert _scripted_car(SCRIPTED).sam_source is None


def test_a_stage_given_to_car_post_processes_its_kept_queries():
    stage = ComplementMasks()
    car = _scripted_car(SCRIPTED, post_processing=stage)
    assert car.post_stage() is stage and car.post_stage(SCRIPTED.replace(post="crf")) is stage
    result = car.segment(TWO_HALVES, ["dropped", "kept"])
    assert result.kept_queries == ["kept"]
    np.testing.assert_array_equal(result.masks[1], result.soft_masks[1] <= SCRIPTED.mask_threshold)
    assert result.masks[1].any() and not result.masks[0].any()
    assert stage.calls == [(1, SCRIPTED)]  # only the kept query, with the run's settings
    scripted = LoadedModels(None, None, "scripted")
    built = car_from_preset(
        get_preset("shapes"), scripted, proposals=car.proposal_stage(), classifier=car.classifier, post_processing=stage
    )
    assert built.post_stage() is stage


def test_post_sam_without_a_region_source_is_refused_in_one_line_naming_the_fix():
    job = PostJob(
        TWO_HALVES, np.full((1, H, W), 0.9, np.float32), np.ones(1, np.float32), CarSettings(post="sam"), (H, W)
    )
    for refuse in (
        lambda: _scripted_car(SCRIPTED.replace(post="sam")),
        lambda: _scripted_car(SCRIPTED).segment(TWO_HALVES, ["kept"], settings=SCRIPTED.replace(post="sam")),
        lambda: build_post_stage("sam"),
        lambda: SamPostProcessing(None),
        lambda: post_process(job),
    ):
        with pytest.raises(ValueError, match=r"post='sam' needs a region source: pass sam_source=") as refused:
            refuse()
        assert "\n" not in str(refused.value)
    with pytest.raises(ValueError, match="generate"):
        SamPostProcessing("regions")
    with pytest.raises(ValueError, match="not both"):
        _scripted_car(SCRIPTED, post_processing=NoPostProcessing(), sam_source=QuadrantRegions())
    with pytest.raises(ValueError, match="unknown post 'blur'"):
        build_post_stage("blur")


def test_a_stage_returning_the_wrong_shape_is_named():
    class OneMaskOnly:
        runs_in_workers = True

        def refine(self, image, soft_masks, settings):
            return soft_masks[:1] > 0.5

    job = PostJob(TWO_HALVES, np.full((2, H, W), 0.9, np.float32), np.ones(2, np.float32), SCRIPTED, (H, W))
    with pytest.raises(ValueError, match=r"OneMaskOnly.refine returned masks of shape \(1, 24, 32\), expected"):
        post_process(job, OneMaskOnly())


def test_the_stages_survive_pickling():
    soft = np.random.default_rng(1).random((2, H, W), dtype=np.float32)
    for stage, settings in (
        (NoPostProcessing(), CarSettings(post="none")),
        (CrfPostProcessing(), CarSettings(post="crf")),
        (SamPostProcessing(ColourRegionMaskSource()), CarSettings(post="sam")),
    ):
        copy = pickle.loads(pickle.dumps(stage))
        assert copy == stage
        np.testing.assert_array_equal(copy.refine(TWO_HALVES, soft, settings), stage.refine(TWO_HALVES, soft, settings))


def _random_job(settings: CarSettings, seed: int = 0) -> PostJob:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    soft = rng.random((3, H, W), dtype=np.float32)
    return PostJob(image, soft, np.array([0.5, 0.0, 0.3], np.float32), settings, (H, W))


def test_the_pool_runs_a_given_stage_in_a_worker_process_and_sam_in_this_one():
    crf_job = _random_job(CarSettings(post="crf"))
    received = []
    with PostProcessPool(1, NoPostProcessing()) as pool:
        pool.submit([crf_job], lambda results: received.append(results[0][0]))
        workers = {process.pid for process in pool._executor._processes.values()}
    assert workers and os.getpid() not in workers
    expected = crf_job.soft_masks > crf_job.settings.mask_threshold
    expected[1] = False  # dropped
    np.testing.assert_array_equal(received[0], expected)
    assert not np.array_equal(received[0], post_process(crf_job))  # the stage given, not the settings' CRF

    source = QuadrantRegions()
    with PostProcessPool(1, SamPostProcessing(source)) as pool:
        pool.submit([_random_job(CarSettings(post="sam"))], lambda results: received.append(results[0][0]))
        assert not pool._executor._processes  # never sent to a worker
    assert source.calls == 1  # generated here: a worker's copy would have counted in its own process
