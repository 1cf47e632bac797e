"""Shared fixtures: real CLIP architectures with seeded random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import carlib


@pytest.fixture(scope="session")
def vit_b16() -> carlib.ClipBundle:
    """ViT-B/16 with seeded random weights on CPU, as every test of the real path uses."""
    torch.set_num_threads(2)
    return carlib.load_clip("ViT-B-16", pretrained=None, device="cpu", seed=0)


@pytest.fixture()
def noise_image() -> np.ndarray:
    """A seeded non-square RGB image (224 x 320), uint8."""
    return np.random.default_rng(0).integers(0, 256, size=(224, 320, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Tests that set torch's thread count (tutorial.setup does, for the small CLIP) leave it as they found it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
