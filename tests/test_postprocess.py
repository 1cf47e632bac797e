"""Post-processing: dense CRF on synthetic images, IoM/IoU matching on hand-made masks, mask sources."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from carlib.postprocess import (
    ColourRegionMaskSource,
    CrfSettings,
    MaskSource,
    SamMaskSource,
    SamSettings,
    dense_crf,
    dense_crf_per_mask,
    intersection_over_mask,
    match_masks_to_regions,
    match_regions,
    reference_bilateral_image,
    sam_refine,
)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# --------------------------------------------------------------------------- CRF


@pytest.fixture()
def two_regions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """48 x 80 image: red left / blue right (rows 0..35, split at col 40) over a green strip (rows 36..47).

    Returns (image, soft masks 2 x H x W float32, true left region, true right region).
    The masks bleed 6 px across the colour boundary (mask 0 = 0.8 up to col 45,
    mask 1 = 0.8 from col 46), blurred, and are at most 0.15 over the green strip.
    """
    height, width = 48, 80
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, :40] = (200, 60, 40)
    image[:, 40:] = (40, 90, 200)
    image[36:, :] = (90, 200, 90)
    jitter = np.random.default_rng(0).integers(-3, 4, size=image.shape)
    image = np.clip(image.astype(np.int64) + jitter, 0, 255).astype(np.uint8)
    left = np.zeros((height, width), dtype=bool)
    left[:36, :40] = True
    right = np.zeros((height, width), dtype=bool)
    right[:36, 40:] = True
    soft_left = np.zeros((height, width), dtype=np.float32)
    soft_left[:36, :46] = 0.8
    soft_right = np.zeros((height, width), dtype=np.float32)
    soft_right[:36, 46:] = 0.8
    masks = np.stack([cv2.GaussianBlur(m, (0, 0), 2) for m in (soft_left, soft_right)])
    masks[:, 36:] = np.minimum(masks[:, 36:], 0.15)
    return image, masks, left, right


def _best_threshold_iou(soft: np.ndarray, truth: np.ndarray) -> float:
    return max(_iou(soft > t, truth) for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7))


def test_crf_snaps_masks_to_colour_boundary(two_regions) -> None:
    image, masks, left, right = two_regions
    refined = dense_crf(image, masks)
    assert refined.shape == masks.shape and refined.dtype == bool
    for index, truth in enumerate((left, right)):
        before = _best_threshold_iou(masks[index], truth)  # ~0.87 whatever the threshold
        after = _iou(refined[index], truth)
        assert before < 0.9
        assert after > 0.93 and after > before + 0.05
    # Semantic mode: one label per pixel, so the masks never overlap.
    assert not (refined[0] & refined[1]).any()


def test_crf_gives_background_where_all_masks_are_weak(two_regions) -> None:
    image, masks, _, _ = two_regions
    refined = dense_crf(image, masks)
    # Over the green strip both masks are <= 0.15, so the background (>= 0.85) wins.
    assert not refined[:, 36:].any()
    assert refined[:, :36].any(axis=0).mean() > 0.95


def test_crf_zero_iterations_is_argmax_of_unaries(two_regions) -> None:
    image, masks, _, _ = two_regions
    refined = dense_crf(image, masks, CrfSettings(iterations=0))
    background = 1.0 - masks.max(axis=0)
    expected = np.argmax(np.concatenate([background[None], masks]), axis=0)
    np.testing.assert_array_equal(refined, expected[None] == np.array([1, 2])[:, None, None])


def test_crf_per_mask_refines_each_mask_and_allows_overlap(two_regions) -> None:
    image, masks, left, right = two_regions
    refined = dense_crf_per_mask(image, masks)
    assert refined.shape == masks.shape and refined.dtype == bool
    assert _iou(refined[0], left) > _best_threshold_iou(masks[0], left) + 0.05
    assert _iou(refined[1], right) > _best_threshold_iou(masks[1], right) + 0.04
    assert not refined[:, 36:].any()
    # Two masks that both claim the left region: per-mask CRFs keep both,
    # the joint CRF must give each pixel to one of them.
    both = np.stack([masks[0], masks[0] * 0.95])
    per_mask = dense_crf_per_mask(image, both)
    assert (per_mask[0] & per_mask[1]).sum() > 0.9 * left.sum()
    joint = dense_crf(image, both)
    assert not (joint[0] & joint[1]).any()
    # Each mask's background is 1 - that mask, not 1 - max over all masks: a weak
    # mask (0.3 < background 0.7) vanishes even beside a strong one.
    weak = np.stack([masks[0], masks[0] * 0.375])
    per_weak = dense_crf_per_mask(image, weak)
    for index in range(2):
        np.testing.assert_array_equal(per_weak[index], dense_crf(image, weak[index : index + 1])[0])
    assert per_weak[0].any() and not per_weak[1].any()


def test_crf_is_deterministic(two_regions) -> None:
    image, masks, _, _ = two_regions
    np.testing.assert_array_equal(dense_crf(image, masks), dense_crf(image, masks))
    np.testing.assert_array_equal(dense_crf_per_mask(image, masks), dense_crf_per_mask(image, masks))


def test_crf_keeps_a_mask_that_wins_no_pixel(two_regions) -> None:
    image, masks, left, _ = two_regions
    # The reference's one_hot would have only 2 channels here and drop mask 1.
    refined = dense_crf(image, np.stack([masks[0], np.zeros_like(masks[0])]))
    assert refined.shape == (2, *left.shape)
    assert refined[0].any() and not refined[1].any()
    per_mask = dense_crf_per_mask(image, np.stack([np.zeros_like(masks[0]), masks[0]]))
    assert not per_mask[0].any() and per_mask[1].any()


def test_crf_with_no_masks_returns_empty() -> None:
    image = np.zeros((12, 20, 3), dtype=np.uint8)
    for refine in (dense_crf, dense_crf_per_mask):
        out = refine(image, np.zeros((0, 12, 20), dtype=np.float32))
        assert out.shape == (0, 12, 20) and out.dtype == bool


def test_crf_normalize_changes_nothing_without_clipping() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    # Away from 0 and 1 nothing is clipped, and per-pixel normalisation only
    # shifts every label's energy at a pixel by the same constant.
    soft = rng.uniform(0.05, 0.95, size=(3, 20, 30)).astype(np.float32)
    for iterations in (0, 10):
        plain = dense_crf(image, soft, CrfSettings(iterations=iterations))
        # Every label, the background included, wins somewhere.
        assert plain.any(axis=(1, 2)).all() and not plain.any(axis=0).all()
        np.testing.assert_array_equal(dense_crf(image, soft, CrfSettings(normalize=True, iterations=iterations)), plain)


def test_crf_accepts_bool_masks(two_regions) -> None:
    image, _, left, _ = two_regions
    out = dense_crf(image, left[None])
    assert out.shape == (1, *left.shape)
    assert _iou(out[0], left) > 0.95


def test_reference_bilateral_image_is_wrapped_bgr_minus_mean() -> None:
    pixels = np.array([[[0, 0, 0], [123, 117, 104], [122, 116, 103], [255, 255, 255]]], dtype=np.uint8)
    # BGR - (104.008, 116.669, 122.675), truncated towards zero, wrapped mod 256:
    #   (0, 0, 0)       -> (-104.008, -116.669, -122.675) -> (-104, -116, -122) -> (152, 140, 134)
    #   (123, 117, 104) -> (-0.008, 0.331, 0.325)         -> (0, 0, 0)
    #   (122, 116, 103) -> (-1.008, -0.669, -0.675)       -> (-1, 0, 0)         -> (255, 0, 0)
    #   (255, 255, 255) -> (150.992, 138.331, 132.325)    -> (150, 138, 132)
    expected = np.array([[[152, 140, 134], [0, 0, 0], [255, 0, 0], [150, 138, 132]]], dtype=np.uint8)
    out = reference_bilateral_image(pixels)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8 and out.flags.c_contiguous


def test_reference_image_sees_an_edge_where_blue_crosses_its_mean() -> None:
    # Blue 103 vs 104 is invisible to the bilateral kernel on the RGB image, but
    # the reference's wrapped image turns it into 255 vs 0: a strong edge.
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[:] = (50, 50, 104)
    image[:, :30] = (50, 50, 103)
    soft = np.full((1, 40, 60), 0.45, dtype=np.float32)
    soft[0, :, :30] = 0.7
    reference = dense_crf(image, soft, CrfSettings(bilateral_image="reference"))[0]
    rgb = dense_crf(image, soft, CrfSettings(bilateral_image="rgb"))[0]
    assert reference[:, :30].all() and not reference[:, 30:].any()
    assert rgb.mean() > 0.9  # one colour: the mask spreads over the whole image
    # The reference's image is the default, in both modes.
    np.testing.assert_array_equal(dense_crf(image, soft)[0], reference)
    np.testing.assert_array_equal(dense_crf_per_mask(image, soft)[0], reference)


@pytest.mark.parametrize(
    ("image", "masks", "message"),
    [
        (np.zeros((8, 8, 3), dtype=np.float32), np.zeros((1, 8, 8), np.float32), "uint8"),
        (np.zeros((8, 8), dtype=np.uint8), np.zeros((1, 8, 8), np.float32), "H x W x 3"),
        (np.zeros((8, 8, 4), dtype=np.uint8), np.zeros((1, 8, 8), np.float32), "H x W x 3"),
        (np.zeros((8, 8, 3), dtype=np.uint8), np.zeros((8, 8), np.float32), "N x H x W"),
        (np.zeros((8, 8, 3), dtype=np.uint8), np.zeros((1, 8, 9), np.float32), "image is 8 x 8"),
        (np.zeros((8, 8, 3), dtype=np.uint8), np.full((1, 8, 8), 1.5, np.float32), r"\[0, 1\]"),
        (np.zeros((8, 8, 3), dtype=np.uint8), np.full((1, 8, 8), -0.1, np.float32), r"\[0, 1\]"),
        (np.zeros((8, 8, 3), dtype=np.uint8), np.full((1, 8, 8), np.nan, np.float32), "NaN"),
        (np.zeros((8, 8, 3), dtype=np.uint8), np.ones((1, 8, 8), np.int64), "float"),
    ],
)
def test_crf_rejects_bad_inputs(image: np.ndarray, masks: np.ndarray, message: str) -> None:
    for refine in (dense_crf, dense_crf_per_mask):
        with pytest.raises(ValueError, match=message):
            refine(image, masks)


def test_crf_rejects_bad_parameters() -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    masks = np.zeros((1, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="iterations"):
        dense_crf(image, masks, CrfSettings(iterations=-1))
    with pytest.raises(ValueError, match="bg_factor"):
        dense_crf(image, masks, CrfSettings(bg_factor=-1.0))
    with pytest.raises(ValueError, match="bilateral_image"):
        dense_crf(image, masks, CrfSettings(bilateral_image="bgr"))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- matching


def _block(rows: slice, cols: slice, size: tuple[int, int] = (10, 10)) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[rows, cols] = True
    return mask


# Two regions splitting a 10 x 10 image: R0 = cols 0..4, R1 = cols 5..9 (50 px each).
R0 = _block(slice(0, 10), slice(0, 5))
R1 = _block(slice(0, 10), slice(5, 10))
HALVES = np.stack([R0, R1])


def test_car_blob_covering_most_of_a_region_is_replaced_by_it() -> None:
    car = _block(slice(0, 10), slice(0, 4))  # cols 0..3: 40 px inside R0
    car[0:2, 5] = True  # plus 2 px bleeding into R1; |car| = 42
    # R0: I = 40, I/|car| = 40/42 = 0.952, I/|R0| = 40/50 = 0.8 -> IoM 0.952 > 0.7, kept.
    # R1: I = 2,  I/|car| = 2/42 = 0.048 < 0.2 so I/|R1| is zeroed -> IoM 0.048, dropped.
    np.testing.assert_allclose(intersection_over_mask(car, HALVES), [40 / 42, 2 / 42])
    # IoU(R0, car) = 40 / (50 + 42 - 40) = 40/52 = 0.769 > 0.7 -> replaced by R0, exactly.
    out = match_masks_to_regions(car[None], HALVES, iom_threshold=0.7, iou_threshold=0.7)
    assert out.shape == (1, 10, 10) and out.dtype == bool
    np.testing.assert_array_equal(out[0], R0)
    match = match_regions(car, HALVES, iom_threshold=0.7, iou_threshold=0.7)
    assert list(match.kept) == [0] and match.replaced
    assert match.iou == pytest.approx(40 / 52)
    # Raising φ_iou above 0.769 keeps the CaR mask instead.
    kept = match_masks_to_regions(car[None], HALVES, iom_threshold=0.7, iou_threshold=0.8)
    np.testing.assert_array_equal(kept[0], car)


def test_car_blob_overlapping_nothing_well_is_kept() -> None:
    car = _block(slice(0, 10), slice(3, 7))  # cols 3..6: 40 px, half in each region
    # R0 and R1: I = 20, I/|car| = 0.5, I/|R| = 0.4 -> IoM 0.5 each, none > 0.7.
    # Fallback: argmax IoM, first on the tie -> R0. IoU(R0, car) = 20 / (50 + 40 - 20) = 0.286 < 0.7.
    match = match_regions(car, HALVES, iom_threshold=0.7, iou_threshold=0.7)
    np.testing.assert_allclose(match.iom, [0.5, 0.5])
    assert list(match.kept) == [0]
    assert match.iou == pytest.approx(20 / 70)
    assert not match.replaced
    out = match_masks_to_regions(car[None], HALVES, iom_threshold=0.7, iou_threshold=0.7)
    np.testing.assert_array_equal(out[0], car)


def test_argmax_region_is_used_when_no_region_passes_iom() -> None:
    car = _block(slice(0, 10), slice(2, 6))  # cols 2..5: 40 px
    # R0: I = 30 -> I/|car| = 0.75, I/|R0| = 0.6 -> IoM 0.75
    # R1: I = 10 -> I/|car| = 0.25, I/|R1| = 0.2 -> IoM 0.25
    # φ_iom = 0.8: none passes, so the argmax (R0) alone is kept.
    # IoU(R0, car) = 30 / (50 + 40 - 30) = 0.5 > φ_iou = 0.4 -> replaced by R0.
    match = match_regions(car, HALVES, iom_threshold=0.8, iou_threshold=0.4)
    np.testing.assert_allclose(match.iom, [0.75, 0.25])
    assert list(match.kept) == [0] and match.replaced
    np.testing.assert_array_equal(match.mask, R0)
    # With φ_iom = 0.2 both pass; their union (the whole image) has IoU 40/100 = 0.4, not > 0.4.
    both = match_regions(car, HALVES, iom_threshold=0.2, iou_threshold=0.4)
    assert list(both.kept) == [0, 1] and not both.replaced
    np.testing.assert_array_equal(both.mask, car)


def test_min_pred_threshold_zeroes_coverage_of_regions_touching_little_of_the_mask() -> None:
    car = _block(slice(0, 6), slice(0, 10))  # rows 0..5: 60 px
    top = _block(slice(0, 5), slice(0, 10))  # rows 0..4: 50 px inside the mask
    speck = _block(slice(5, 6), slice(0, 3))  # 3 px, all inside the mask
    regions = np.stack([top, speck])
    # top:   I = 50, I/|car| = 0.833, I/|top| = 1.0 -> IoM 1.0 (kept).
    # speck: I = 3,  I/|car| = 3/60 = 0.05, I/|speck| = 1.0.
    #   min_pred 0.2:  0.05 < 0.2 -> I/|speck| zeroed -> IoM 0.05, dropped;
    #                  union = top, IoU = 50/60 = 0.833 > 0.7 -> replaced by top.
    #   min_pred 0.05: 0.05 is not < 0.05 -> IoM 1.0, kept;
    #                  union = top + speck (53 px), IoU = 53/60 = 0.883 -> replaced by both.
    np.testing.assert_allclose(intersection_over_mask(car, regions), [1.0, 0.05])
    np.testing.assert_allclose(intersection_over_mask(car, regions, min_pred_threshold=0.05), [1.0, 1.0])
    strict = match_masks_to_regions(car[None], regions, iom_threshold=0.7, iou_threshold=0.7)
    np.testing.assert_array_equal(strict[0], top)
    loose = match_masks_to_regions(car[None], regions, iom_threshold=0.7, iou_threshold=0.7, min_pred_threshold=0.05)
    np.testing.assert_array_equal(loose[0], top | speck)


def test_iom_threshold_is_strict() -> None:
    car = _block(slice(0, 10), slice(0, 7))  # cols 0..6: 70 px
    wide = _block(slice(0, 10), slice(0, 10))  # whole image: I = 70, I/|car| = 1.0 -> IoM 1.0
    part = _block(slice(0, 10), slice(3, 10))  # cols 3..9: I = 40, I/|car| = 4/7, I/|part| = 40/70 -> IoM 4/7
    exact = _block(slice(0, 7), slice(0, 10))  # rows 0..6: I = 49, I/|car| = 0.7, I/|exact| = 0.7 -> IoM 0.7
    match = match_regions(car, np.stack([exact, part, wide]), iom_threshold=0.7, iou_threshold=None)
    np.testing.assert_allclose(match.iom, [0.7, 4 / 7, 1.0])
    assert list(match.kept) == [2]  # 0.7 is not > 0.7


def test_empty_car_masks_stay_empty_and_masks_are_matched_independently() -> None:
    good = _block(slice(0, 10), slice(0, 4))
    good[0:2, 5] = True
    straddling = _block(slice(0, 10), slice(3, 7))
    empty = np.zeros((10, 10), dtype=bool)
    cars = np.stack([good, empty, straddling])
    # iou_threshold=None replaces every non-empty mask (demo.py behaviour), but not the empty one.
    out = match_masks_to_regions(cars, HALVES, iom_threshold=0.7, iou_threshold=None)
    np.testing.assert_array_equal(out[0], R0)
    assert not out[1].any()
    np.testing.assert_array_equal(out[2], R0)  # the argmax region, unconditionally
    gated = match_masks_to_regions(cars, HALVES, iom_threshold=0.7, iou_threshold=0.7)
    np.testing.assert_array_equal(gated, np.stack([R0, empty, straddling]))
    with pytest.raises(ValueError, match="empty"):
        intersection_over_mask(empty, HALVES)


def test_matching_without_regions_keeps_masks_and_checks_shapes() -> None:
    car = _block(slice(2, 5), slice(2, 5))
    out = match_masks_to_regions(car[None], np.zeros((0, 10, 10), dtype=bool), iom_threshold=0.7, iou_threshold=0.7)
    np.testing.assert_array_equal(out[0], car)
    with pytest.raises(ValueError, match="region_masks"):
        match_masks_to_regions(car[None], np.zeros((2, 10, 11), dtype=bool), iom_threshold=0.7, iou_threshold=0.7)
    with pytest.raises(ValueError, match="N x H x W"):
        match_masks_to_regions(car, HALVES, iom_threshold=0.7, iou_threshold=0.7)


# --------------------------------------------------------------------------- mask sources


@pytest.fixture()
def shapes_scene() -> tuple[np.ndarray, list[np.ndarray]]:
    """96 x 96: three flat-coloured shapes on a noisy, textured (striped) background."""
    rng = np.random.default_rng(3)
    size = 96
    base = np.array([120, 140, 100], dtype=np.float64)
    noise = rng.normal(0.0, 8.0, size=(size, size, 1))
    image = np.clip(base + noise, 0, 255)
    for row in range(4, size, 9):  # darker texture strokes
        cv2.line(image, (0, row), (size - 1, row + 3), (95, 115, 80), 1)
    image = image.astype(np.uint8)
    shapes = []
    for draw, colour in (
        (lambda m, v: cv2.circle(m, (24, 26), 14, v, -1), (220, 40, 40)),
        (lambda m, v: cv2.rectangle(m, (54, 10), (84, 34), v, -1), (30, 60, 210)),
        (lambda m, v: cv2.fillPoly(m, [np.array([[20, 88], [48, 56], [76, 88]], np.int32)], v), (240, 220, 30)),
    ):
        mask = np.zeros((size, size), dtype=np.uint8)
        draw(mask, 1)
        mask = mask.astype(bool)
        jitter = rng.integers(-3, 4, size=(int(mask.sum()), 3))
        image[mask] = np.clip(np.asarray(colour) + jitter, 0, 255).astype(np.uint8)
        shapes.append(mask)
    return image, shapes


def test_colour_regions_find_each_shape(shapes_scene) -> None:
    image, shapes = shapes_scene
    source = ColourRegionMaskSource()
    assert isinstance(source, MaskSource)
    regions = source.generate(image)
    assert regions.ndim == 3 and regions.shape[1:] == image.shape[:2] and regions.dtype == bool
    assert not (regions.sum(axis=0) > 1).any()  # disjoint
    areas = regions.sum(axis=(1, 2))
    assert (areas >= source.min_area).all() and (np.diff(areas) <= 0).all()  # largest first
    for shape in shapes:
        assert max(_iou(region, shape) for region in regions) > 0.9


def test_colour_regions_are_deterministic_and_respect_min_area(shapes_scene) -> None:
    image, shapes = shapes_scene
    first = ColourRegionMaskSource().generate(image)
    np.testing.assert_array_equal(first, ColourRegionMaskSource().generate(image))
    # A min_area above every shape's area drops the shapes (the largest is the 31 x 25 rectangle).
    large = ColourRegionMaskSource(min_area=int(max(s.sum() for s in shapes)) + 1).generate(image)
    for shape in shapes:
        assert all(_iou(region, shape) < 0.5 for region in large)
    with pytest.raises(ValueError, match="min_area"):
        ColourRegionMaskSource(min_area=0)
    with pytest.raises(ValueError, match="uint8"):
        ColourRegionMaskSource().generate(image.astype(np.float32))


def test_sam_refine_with_colour_regions_snaps_rough_masks_to_shapes(shapes_scene) -> None:
    image, shapes = shapes_scene
    kernel = np.ones((3, 3), np.uint8)
    rough = [
        cv2.dilate(shapes[0].astype(np.uint8), kernel).astype(bool),  # 1 px too big all round
        np.roll(shapes[1], 3, axis=1),  # shifted 3 px right
        cv2.erode(shapes[2].astype(np.uint8), kernel).astype(bool),  # 1 px too small all round
    ]
    cars = np.stack(rough + [np.zeros_like(shapes[0])])
    refined = sam_refine(image, cars, ColourRegionMaskSource(), SamSettings(iom_threshold=0.7, iou_threshold=0.7))
    assert refined.shape == cars.shape and refined.dtype == bool
    for shape, before, after in zip(shapes, rough, refined):
        # Each rough mask overlaps its shape with IoU 0.75..0.9 (> φ_iou = 0.7), so the region replaces it.
        assert 0.7 < _iou(before, shape) < 0.9
        assert _iou(after, shape) > 0.95
    assert not refined[3].any()


def test_sam_refine_checks_the_source_output(shapes_scene) -> None:
    image, shapes = shapes_scene

    class WrongSize:
        def generate(self, image: np.ndarray) -> np.ndarray:
            return np.zeros((1, 5, 5), dtype=bool)

    with pytest.raises(ValueError, match="WrongSize"):
        sam_refine(image, shapes[0][None], WrongSize(), SamSettings(iom_threshold=0.7, iou_threshold=0.7))


def test_sam_source_without_segment_anything_says_how_to_install(monkeypatch, tmp_path) -> None:
    import torch

    # The checkpoint is read first (its keys say SAM or HQ-SAM): here a plain SAM ViT-B's encoder entry.
    checkpoint = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16)}, checkpoint)
    # A None entry in sys.modules makes `import segment_anything` raise ImportError,
    # whether or not the package is installed.
    monkeypatch.setitem(sys.modules, "segment_anything", None)
    with pytest.raises(ImportError, match=r"pip install 'carlib\[sam\]'.*segment-anything"):
        SamMaskSource(checkpoint)
    garbage = tmp_path / "sam_vit_h_4b8939.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(RuntimeError, match=r"cannot read .* as a SAM checkpoint"):
        SamMaskSource(garbage)


def test_sam_source_with_missing_checkpoint_names_it(tmp_path) -> None:
    missing = tmp_path / "weights" / "sam.pth"
    with pytest.raises(FileNotFoundError) as error:
        SamMaskSource(missing)
    text = str(error.value)
    assert str(missing) in text
    assert "sam_vit_h_4b8939.pth" in text and "https://dl.fbaipublicfiles.com/segment_anything/" in text
    with pytest.raises(FileNotFoundError, match="sam_vit_b_01ec64.pth"):
        SamMaskSource(missing, model_type="vit_b")
    with pytest.raises(ValueError, match="model_type"):
        SamMaskSource(missing, model_type="vit_x")


@pytest.mark.slow
def test_sam_source_runs_with_segment_anything(tmp_path) -> None:
    """segment_anything is in the locked environment: a random-weight ViT-B, saved and reloaded, yields bool masks."""
    import segment_anything
    import torch

    torch.manual_seed(0)
    model = segment_anything.sam_model_registry["vit_b"](checkpoint=None)
    checkpoint = tmp_path / "sam_vit_b_random.pth"
    torch.save(model.state_dict(), checkpoint)
    source = SamMaskSource(checkpoint, model_type="vit_b", device="cpu",
                           settings=SamSettings(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0))
    image = np.random.default_rng(0).integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    masks = source.generate(image)
    assert masks.ndim == 3 and masks.shape[1:] == (32, 48) and masks.dtype == bool

    # The model type is read from the checkpoint; a file that is no SAM checkpoint is named.
    assert SamMaskSource(checkpoint, device="cpu", settings=SamSettings(points_per_side=2)).model_type == "vit_b"
    not_sam = tmp_path / "not_sam.pth"
    torch.save({"weight": torch.zeros(2)}, not_sam)
    with pytest.raises(RuntimeError, match="not a SAM checkpoint"):
        SamMaskSource(not_sam)


# --------------------------------------------------------------------------- HQ-SAM


def _seeded_hq_sam_checkpoint(path, model_type: str = "vit_tiny"):
    """A seeded HQ-SAM checkpoint in the official file format: the model's state dict, torch.save'd."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # segment_anything_hq's TinyViT re-registers timm names on import
        import segment_anything_hq
    torch.manual_seed(0)
    state_dict = segment_anything_hq.sam_model_registry[model_type](checkpoint=None).state_dict()
    torch.save(state_dict, path)
    return state_dict


def test_hq_sam_checkpoint_builds_hq_sam_with_the_reference_generator_settings(tmp_path) -> None:
    """An official-format HQ-SAM checkpoint (here the small vit_tiny, seeded) is read with weights_only and
    built with segment_anything_hq; the masks come from its HQ decoder."""
    import torch

    checkpoint = tmp_path / "sam_hq_vit_tiny.pth"
    saved = _seeded_hq_sam_checkpoint(checkpoint)  # imports segment_anything_hq quietly first
    import segment_anything_hq
    from segment_anything_hq.modeling import MaskDecoderHQ

    source = SamMaskSource(checkpoint, device="cpu",
                           settings=SamSettings(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0))
    assert source.hq and source.model_type == "vit_tiny"
    assert isinstance(source.model.mask_decoder, MaskDecoderHQ)
    assert isinstance(source.generator, segment_anything_hq.SamAutomaticMaskGenerator)
    assert source.generator.predictor.model is source.model
    loaded = source.model.state_dict()
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[key], saved[key]) for key in saved)
    assert "HQ-SAM vit_tiny (segment_anything_hq)" in source.description

    image = np.random.default_rng(0).integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    masks = source.generate(image)
    assert masks.ndim == 3 and masks.shape[1:] == (32, 48) and masks.dtype == bool and len(masks) >= 1

    # The reference's settings (configs/voc.yaml sam section) by default.
    default = SamMaskSource(checkpoint, device="cpu").generator
    assert len(default.point_grids[0]) == 64 * 64
    assert (default.pred_iou_thresh, default.stability_score_thresh, default.box_nms_thresh) == (0.88, 0.95, 0.7)
    assert (default.crop_n_layers, default.crop_n_points_downscale_factor, default.min_mask_region_area) == (0, 1, 0)


def test_hq_sam_name_with_plain_sam_weights_and_other_mismatches_are_refused(tmp_path, monkeypatch) -> None:
    import segment_anything
    import torch

    plain = tmp_path / "sam_hq_vit_b.pth"
    torch.manual_seed(0)
    torch.save(segment_anything.sam_model_registry["vit_b"](checkpoint=None).state_dict(), plain)
    with pytest.raises(RuntimeError, match=r"named like an HQ-SAM checkpoint but holds plain SAM weights"):
        SamMaskSource(plain, device="cpu")

    tiny = tmp_path / "sam_hq_vit_tiny.pth"
    _seeded_hq_sam_checkpoint(tiny)
    with pytest.raises(RuntimeError, match=r"does not fit HQ-SAM 'vit_b'"):
        SamMaskSource(tiny, model_type="vit_b", device="cpu")

    with pytest.raises(FileNotFoundError, match=r"sam_hq_vit_h\.pth.*huggingface\.co/lkeab/hq-sam"):
        SamMaskSource(tmp_path / "sam_hq_vit_h.pth")

    monkeypatch.setitem(sys.modules, "segment_anything_hq", None)  # the package is missing
    with pytest.raises(ImportError, match=r"HQ-SAM checkpoint.*segment-anything-hq"):
        SamMaskSource(tiny, device="cpu")


def test_sam_settings_check_min_mask_region_area() -> None:
    assert SamSettings().min_mask_region_area == 0
    with pytest.raises(ValueError, match="min_mask_region_area"):
        SamSettings(min_mask_region_area=-1)
