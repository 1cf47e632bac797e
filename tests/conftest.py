"""Shared fixtures: real CLIP architectures with seeded random weights, and helpers for the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture()
def png_claiming():
    """Writes a tiny PNG whose header claims width x height pixels (a decompression bomb's header)."""
    import struct
    import zlib

    from PIL import Image

    def write(path, width: int, height: int) -> None:
        Image.new("RGB", (1, 1)).save(path)
        data = bytearray(path.read_bytes())
        ihdr = data.index(b"IHDR")
        data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
        data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])) & 0xFFFFFFFF)
        path.write_bytes(bytes(data))

    return write


@pytest.fixture()
def torchrun_carlib():
    """Runs ``torchrun --standalone --nproc-per-node N -m carlib ARGS`` (one thread each); returns the process."""
    root = Path(__file__).resolve().parent.parent
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}

    def run(arguments: list[str], processes: int = 2) -> subprocess.CompletedProcess:
        torchrun = Path(sys.executable).parent / "torchrun"
        command = [str(torchrun), "--standalone", "--nproc-per-node", str(processes), "-m", "carlib", *arguments]
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)

    return run
