"""Result pictures: the VOC palette, palette PNGs, overlays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from carlib.labels import overlay, save_palette_png, voc_palette
from carlib.tutorial.figures import save_overlay_figure


def test_voc_palette_matches_the_devkit_colours():
    palette = voc_palette()
    # Colours from the VOC devkit's labelcolormap: background, aeroplane, bicycle, bird, person.
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0]
    assert palette[3].tolist() == [128, 128, 0]
    assert palette[15].tolist() == [192, 128, 128]
    assert palette[255].tolist() == [224, 224, 192]


def test_palette_png_round_trips_labels(tmp_path):
    labels = np.array([[0, 1, 2], [15, 20, 255]], dtype=np.int32)
    path = save_palette_png(labels, tmp_path / "labels.png")
    with Image.open(path) as image:
        assert image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image), labels)
    assert list(tmp_path.iterdir()) == [path]
    with pytest.raises(ValueError, match="0..255"):
        save_palette_png(np.array([[256]]), tmp_path / "bad.png")


def test_overlay_leaves_background_untouched():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    labels = np.array([[0, 1], [0, 0]])
    blended = overlay(image, labels, alpha=0.5)
    np.testing.assert_array_equal(blended[0, 0], [100, 100, 100])
    np.testing.assert_array_equal(blended[0, 1], [114, 50, 50])  # halfway to (128, 0, 0)


def test_overlay_figure_is_written(tmp_path):
    image = np.zeros((30, 40, 3), dtype=np.uint8)
    labels = np.zeros((30, 40), dtype=np.int32)
    labels[5:10, 5:10] = 2
    path = save_overlay_figure(image, labels, ["cat", "dog"], tmp_path / "overlay.png", scores=[0.0, 0.8])
    with Image.open(path) as written:
        assert written.size[0] > 40
