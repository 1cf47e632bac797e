"""Visual prompts, checked pixel by pixel on hand-made masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import correlate1d

from carlib.prompts import PROMPT_KINDS, apply_visual_prompts, mask_center_and_extent

RED = np.array([255, 0, 0], dtype=np.uint8)


@pytest.fixture()
def image() -> np.ndarray:
    """A seeded 64x64 RGB noise image, uint8, with no pure-red pixel."""
    noise = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    noise[..., 1] = np.maximum(noise[..., 1], 1)  # so any exact red pixel is a drawn one
    return noise


@pytest.fixture()
def box_mask() -> np.ndarray:
    """Rows 20..39, cols 10..49: centroid (29, 29), height 20, width 40."""
    mask = np.zeros((64, 64), dtype=bool)
    mask[20:40, 10:50] = True
    return mask


def _changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.any(before != after, axis=-1)


def _ellipse_radius(shape: tuple, row: int, col: int, semi_rows: int, semi_cols: int) -> np.ndarray:
    """Normalised elliptic radius of each pixel: 1 on the ellipse, <1 inside."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return np.sqrt(((rows - row) / semi_rows) ** 2 + ((cols - col) / semi_cols) ** 2)


def test_prompt_kinds_in_application_order() -> None:
    assert PROMPT_KINDS == ("blur", "gray", "black", "circle", "rectangle", "contour")


def test_center_is_centroid_and_extent_counts_pixels() -> None:
    mask = np.zeros((16, 32), dtype=np.uint8)
    mask[0:3, 0:3] = 1
    mask[10, 20] = 7
    # rows mean (9*1 + 10)/10 = 1.9, cols mean (9*1 + 20)/10 = 2.9, truncated;
    # the bounding-box centre would be (5, 10) instead.
    assert mask_center_and_extent(mask) == (1, 2, 11, 21)
    single = np.zeros((5, 5), dtype=bool)
    single[3, 4] = True
    assert mask_center_and_extent(single) == (3, 4, 1, 1)
    with pytest.raises(ValueError, match="no pixel"):
        mask_center_and_extent(np.zeros((5, 5), dtype=bool))


def test_circle_is_red_ellipse_around_mask(image: np.ndarray, box_mask: np.ndarray) -> None:
    out = apply_visual_prompts(image, box_mask, "circle")
    changed = _changed(image, out)
    assert changed.sum() > 80  # perimeter of a 20x10 semi-axes ellipse is ~97 px
    assert np.all(out[changed] == RED)

    rows, cols = np.nonzero(changed)
    center_row, center_col, semi_rows, semi_cols = 29, 29, 10, 20
    assert abs(cols.min() - (center_col - semi_cols)) <= 1
    assert abs(cols.max() - (center_col + semi_cols)) <= 1
    assert abs(rows.min() - (center_row - semi_rows)) <= 1
    assert abs(rows.max() - (center_row + semi_rows)) <= 1

    radius = _ellipse_radius(image.shape[:2], center_row, center_col, semi_rows, semi_cols)
    assert np.all(np.abs(radius[changed] - 1) < 0.2)
    far = (radius < 0.75) | (radius > 1.25)
    np.testing.assert_array_equal(out[far], image[far])


def test_circle_color_and_thickness(image: np.ndarray, box_mask: np.ndarray) -> None:
    thin = _changed(image, apply_visual_prompts(image, box_mask, "circle"))
    out = apply_visual_prompts(image, box_mask, "circle", color=(0, 255, 0), thickness=3)
    thick = _changed(image, out)
    assert np.all(out[thick] == np.array([0, 255, 0], dtype=np.uint8))
    assert thick.sum() > 2 * thin.sum()


def test_rectangle_extent(image: np.ndarray, box_mask: np.ndarray) -> None:
    out = apply_visual_prompts(image, box_mask, "rectangle")
    changed = _changed(image, out)
    assert np.all(out[changed] == RED)
    # centre (29, 29) -/+ (height // 2, width // 2) = rows 19..39, cols 9..49
    expected = np.zeros_like(box_mask)
    expected[19:40, 9:50] = True
    expected[20:39, 10:49] = False
    np.testing.assert_array_equal(changed, expected)


@pytest.mark.parametrize("kernel", [15, 9])
def test_blur_changes_only_outside(image: np.ndarray, box_mask: np.ndarray, kernel: int) -> None:
    out = apply_visual_prompts(image, box_mask, "blur", blur_kernel=kernel)
    np.testing.assert_array_equal(out[box_mask], image[box_mask])
    outside = ~box_mask
    np.testing.assert_array_equal(out[outside], cv2.GaussianBlur(image, (kernel, kernel), 0)[outside])

    # The same blur built by hand: sigma from the kernel size as OpenCV
    # documents it (kernels above 7; smaller ones use a fixed table),
    # reflect-101 borders. OpenCV's 8-bit path rounds in fixed point, so
    # allow a little over one grey level.
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    offsets = np.arange(kernel) - kernel // 2
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    weights /= weights.sum()
    by_hand = correlate1d(image.astype(np.float64), weights, axis=0, mode="mirror")
    by_hand = correlate1d(by_hand, weights, axis=1, mode="mirror")
    diff = np.abs(out[outside].astype(np.float64) - by_hand[outside])
    assert diff.max() <= 1.5
    assert np.abs(out[outside].astype(int) - image[outside]).mean() > 10  # it did blur


def test_gray_changes_only_outside(image: np.ndarray, box_mask: np.ndarray) -> None:
    out = apply_visual_prompts(image, box_mask, "gray")
    np.testing.assert_array_equal(out[box_mask], image[box_mask])
    outside = ~box_mask
    expected = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    got = out[outside].astype(np.float64)
    assert np.all(got[:, 0] == got[:, 1]) and np.all(got[:, 1] == got[:, 2])
    assert np.abs(got[:, 0] - expected[outside]).max() <= 1.0


@pytest.mark.parametrize(("formula", "expected"), [("rgb", 0.299 * 255), ("bgr_reference", 0.114 * 255)])
def test_gray_formula_weights(formula: str, expected: float) -> None:
    red = np.zeros((8, 8, 3), dtype=np.uint8)
    red[..., 0] = 255
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:5, 2:5] = True
    out = apply_visual_prompts(red, mask, "gray", gray_formula=formula)
    assert np.all(np.abs(out[~mask].astype(float) - expected) <= 1.0)
    np.testing.assert_array_equal(out[mask], red[mask])


@pytest.mark.parametrize("kind", ["black", "mask"])
def test_black_zeroes_outside(image: np.ndarray, box_mask: np.ndarray, kind: str) -> None:
    out = apply_visual_prompts(image, box_mask, kind)
    np.testing.assert_array_equal(out[box_mask], image[box_mask])
    assert np.all(out[~box_mask] == 0)


def test_contour_follows_filled_mask(image: np.ndarray) -> None:
    rows, cols = np.mgrid[:64, :64]
    distance = np.hypot(rows - 32, cols - 32)
    ring = (distance <= 20) & (distance >= 8)
    out = apply_visual_prompts(image, ring, "contour")
    changed = _changed(image, out)
    assert np.all(out[changed] == RED)
    # The outer boundary is drawn all round, the hole's boundary not at all.
    assert changed.sum() > 80
    assert np.all(distance[changed] > 18)
    assert np.all(ring[changed])
    for angle in np.linspace(0, 2 * np.pi, 16, endpoint=False):
        near = np.abs(np.arctan2(rows - 32, cols - 32) - angle) % (2 * np.pi) < 0.2
        assert np.any(changed & near)


def test_kinds_apply_in_fixed_order(image: np.ndarray, box_mask: np.ndarray) -> None:
    combined = apply_visual_prompts(image, box_mask, ("circle", "blur"))
    blur_then_circle = apply_visual_prompts(apply_visual_prompts(image, box_mask, "blur"), box_mask, "circle")
    np.testing.assert_array_equal(combined, blur_then_circle)
    np.testing.assert_array_equal(apply_visual_prompts(image, box_mask, ("blur", "circle")), combined)
    # The other order would blur the red line and differ.
    circle_then_blur = apply_visual_prompts(apply_visual_prompts(image, box_mask, "circle"), box_mask, "blur")
    assert not np.array_equal(combined, circle_then_blur)


@pytest.mark.parametrize("pixels", [0, 1])
def test_tiny_mask_leaves_image_unchanged(image: np.ndarray, pixels: int) -> None:
    mask = np.zeros((64, 64), dtype=bool)
    mask[10, 10 : 10 + pixels] = True
    out = apply_visual_prompts(image, mask, PROMPT_KINDS)
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_min_pixels_threshold(image: np.ndarray) -> None:
    one = np.zeros((64, 64), dtype=bool)
    one[10, 10] = True
    out = apply_visual_prompts(image, one, "black", min_pixels=1)
    assert np.all(out[~one] == 0)
    two = one.copy()
    two[10, 11] = True
    assert np.all(apply_visual_prompts(image, two, "black")[~two] == 0)


def test_empty_kinds_returns_copy(image: np.ndarray, box_mask: np.ndarray) -> None:
    out = apply_visual_prompts(image, box_mask, ())
    np.testing.assert_array_equal(out, image)
    out[0, 0] = 0
    assert image[0, 0, 1] != 0


def test_input_not_modified(image: np.ndarray, box_mask: np.ndarray) -> None:
    image_before, mask_before = image.copy(), box_mask.copy()
    out = apply_visual_prompts(image, box_mask, PROMPT_KINDS)
    np.testing.assert_array_equal(image, image_before)
    np.testing.assert_array_equal(box_mask, mask_before)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert not np.shares_memory(out, image)


def test_pil_image_and_numeric_masks(image: np.ndarray, box_mask: np.ndarray) -> None:
    expected = apply_visual_prompts(image, box_mask, ("blur", "circle"))
    from_pil = apply_visual_prompts(Image.fromarray(image), box_mask.astype(np.uint8) * 255, ("blur", "circle"))
    np.testing.assert_array_equal(from_pil, expected)
    # Floats: only > 0 is inside, so negative logits stay outside.
    soft = np.where(box_mask, 0.7, -0.3)
    np.testing.assert_array_equal(apply_visual_prompts(image, soft, ("blur", "circle")), expected)


@pytest.mark.parametrize(
    ("bad_image", "message"),
    [
        (np.zeros((8, 8, 3), dtype=np.float32), "uint8"),
        (np.zeros((8, 8), dtype=np.uint8), r"HxWx3.*shape \(8, 8\)"),
        (np.zeros((8, 8, 4), dtype=np.uint8), "HxWx3"),
        ([[0]], "numpy array or a PIL image"),
    ],
)
def test_bad_image_raises(bad_image: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_visual_prompts(bad_image, np.ones((8, 8), dtype=bool))


def test_bad_arguments_raise(image: np.ndarray, box_mask: np.ndarray) -> None:
    with pytest.raises(ValueError, match="shape"):
        apply_visual_prompts(image, box_mask[:32])
    with pytest.raises(ValueError, match="unknown visual prompt kind 'ellipse'.*blur, gray"):
        apply_visual_prompts(image, box_mask, ("circle", "ellipse"))
    with pytest.raises(ValueError, match="gray_formula"):
        apply_visual_prompts(image, box_mask, "gray", gray_formula="bgr")
    with pytest.raises(ValueError, match="odd"):
        apply_visual_prompts(image, box_mask, "blur", blur_kernel=4)
