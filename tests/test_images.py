"""Images people actually pass: paths, PIL modes, arrays, tiny images, broken files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import carlib
from carlib.images import patch_aligned_size, proposal_input

RGB = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1", "RGB"])
def test_pil_modes_become_rgb_uint8(mode):
    image = Image.fromarray(RGB).convert(mode)
    rgb = carlib.load_image(image)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, np.asarray(image.convert("RGB")))


def test_rgb_pixels_are_preserved():
    np.testing.assert_array_equal(carlib.load_image(Image.fromarray(RGB)), RGB)
    np.testing.assert_array_equal(carlib.load_image(Image.fromarray(RGB).convert("RGBA")), RGB)


def test_sixteen_bit_images_are_rescaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100], [65535, 257 * 7]], dtype=np.uint16)
    path = tmp_path / "depth.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as opened:
        assert opened.mode.startswith("I")
    rgb = carlib.load_image(path)
    np.testing.assert_array_equal(rgb[:, :, 0], [[0, 100], [255, 7]])
    assert (rgb[:, :, 0] == rgb[:, :, 2]).all()
    in_memory = Image.fromarray(values)
    assert in_memory.mode == "I;16"
    np.testing.assert_array_equal(carlib.load_image(in_memory)[:, :, 1], [[0, 100], [255, 7]])


def test_arrays_of_every_layout():
    gray = np.array([[0, 128], [255, 3]], dtype=np.uint8)
    np.testing.assert_array_equal(carlib.load_image(gray)[:, :, 2], gray)
    np.testing.assert_array_equal(carlib.load_image(gray[:, :, None])[:, :, 0], gray)
    rgba = np.concatenate([RGB, np.full((2, 2, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(carlib.load_image(rgba), RGB)
    np.testing.assert_array_equal(carlib.load_image(RGB / 255.0), RGB)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((4,), np.uint8), "shape"),
        (np.full((2, 2, 3), 2.0), r"\[0, 1\]"),
        (np.zeros((2, 2, 3), np.complex64), "dtype"),
    ],
)
def test_bad_arrays_are_explained(array, message):
    with pytest.raises(ValueError, match=message):
        carlib.load_image(array)


def test_missing_directory_and_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        carlib.load_image(tmp_path / "nope.jpg")
    with pytest.raises(ValueError, match="directory"):
        carlib.load_image(tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match="broken.png"):
        carlib.load_image(broken)
    with pytest.raises(ValueError, match="unsupported image type"):
        carlib.load_image(42)  # type: ignore[arg-type]


def test_paths_are_read(tmp_path):
    path = tmp_path / "tiny.png"
    Image.fromarray(RGB).save(path)
    np.testing.assert_array_equal(carlib.load_image(str(path)), RGB)


def test_proposal_input_rounds_up_to_patches_without_cropping():
    assert patch_aligned_size(224, 320, 16) == (224, 320)
    assert patch_aligned_size(225, 17, 16) == (240, 32)
    assert patch_aligned_size(3, 5, 16) == (16, 16)  # smaller than one patch: upsampled
    tensor = proposal_input(np.full((3, 5, 3), 255, np.uint8), 16)
    assert tensor.shape == (1, 3, 16, 16)
    # White normalised by CLIP's mean/std: (1 - mean) / std per channel.
    np.testing.assert_allclose(tensor[0, :, 0, 0].numpy(), [1.9303, 2.0749, 2.1459], atol=1e-3)


def test_proposal_resize_is_bicubic_like_the_reference():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(image).resize((32, 32), Image.Resampling.BICUBIC), np.float32) / 255
    tensor = proposal_input(image, 16, mean=(0, 0, 0), std=(1, 1, 1))
    np.testing.assert_allclose(tensor[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)


# --- photos: EXIF orientation, decompression bombs, bounded sizes ----------------------------------------------

def _pattern(height: int = 30, width: int = 50) -> np.ndarray:
    """A picture whose every pixel differs, so any flip or turn shows."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows * 8 % 256, cols * 5 % 256, (rows * cols) % 256], axis=-1).astype(np.uint8)


# EXIF orientation -> how the stored pixels must be turned to be upright (the EXIF 2.3 definitions).
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.transpose(a, (1, 0, 2)),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: np.transpose(a[::-1, ::-1], (1, 0, 2)),
    8: lambda a: np.rot90(a, k=1),
}


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_exif_orientation_turns_photos_upright(tmp_path, orientation):
    stored = _pattern()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(stored).save(path, exif=exif)
    expected = UPRIGHT[orientation](stored)
    np.testing.assert_array_equal(carlib.load_image(path), expected)
    with Image.open(path) as opened:
        np.testing.assert_array_equal(carlib.load_image(opened), expected)


def test_a_portrait_jpeg_from_a_phone_comes_out_portrait(tmp_path):
    rows, cols = np.mgrid[0:60, 0:80]
    stored = np.stack([rows * 4, cols * 3, np.full_like(rows, 90)], axis=-1).astype(np.uint8)  # smooth: JPEG-safe
    exif = Image.Exif()
    exif[0x0112] = 6  # the usual tag of a phone held upright
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    loaded = carlib.load_image(path)
    assert loaded.shape == (80, 60, 3)
    assert np.abs(loaded.astype(int) - np.rot90(stored, k=-1)).mean() < 3


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch, png_claiming):
    bomb = tmp_path / "bomb.png"
    png_claiming(bomb, 40_000, 40_000)
    assert bomb.stat().st_size < 200
    with pytest.raises(ValueError, match=r"40000 x 40000 = 1600 MP, over the limit of 250 MP"):
        carlib.load_image(bomb)
    small = tmp_path / "small.png"
    Image.fromarray(_pattern()).save(small)
    with pytest.raises(ValueError, match="over the limit"):
        carlib.load_image(small, max_pixels=1000)
    monkeypatch.setenv("CARLIB_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ValueError, match="CARLIB_MAX_IMAGE_PIXELS"):
        carlib.load_image(small)
    monkeypatch.setenv("CARLIB_MAX_IMAGE_PIXELS", "2000")
    assert carlib.load_image(small).shape == (30, 50, 3)


def test_pil_limits_are_left_as_they_were(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    path = tmp_path / "p.png"
    Image.fromarray(_pattern()).save(path)
    carlib.load_image(path)
    assert Image.MAX_IMAGE_PIXELS == before


def test_fit_within_bounds_the_longer_side_only_when_needed():
    from carlib.images import bounded_size, fit_within

    image = _pattern(300, 400)
    assert fit_within(image, None) is image and fit_within(image, 400) is image
    small = fit_within(image, 100)
    assert small.shape == (75, 100, 3)
    # INTER_AREA at an integer factor is the mean of each 4 x 4 block.
    block = image[:4, :4].reshape(-1, 3).astype(float).mean(axis=0)
    np.testing.assert_allclose(small[0, 0], block, atol=0.5)
    assert bounded_size(3000, 4000, 500) == (375, 500) and bounded_size(4000, 30, 500) == (500, 4)
    assert bounded_size(2000, 1, 500) == (500, 1)
    with pytest.raises(ValueError, match="max_side"):
        fit_within(image, 0)
