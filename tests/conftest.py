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


BROWSER_NOT_RUN = "browser tests not run"
"""Starts the skip reason of every browser test on a machine without Chromium, so the summary can count them."""


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of a Chromium binary and its chromedriver (``$CARLIB_CHROMIUM``/``$CARLIB_CHROMEDRIVER`` or PATH).

    Missing, the browser tests fail under CI (``CI`` set, as ``.ci/run`` has them installed) and are
    skipped elsewhere, with a banner in the terminal summary saying they did not run.
    """
    import shutil

    browser = os.environ.get("CARLIB_CHROMIUM") or next(
        (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)
    driver = os.environ.get("CARLIB_CHROMEDRIVER") or shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    missing = " and ".join(name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path)
    message = (f"{BROWSER_NOT_RUN}: no {missing} on this machine. Install the Debian packages "
               f"(`apt-get install -y chromium chromium-driver`) or point $CARLIB_CHROMIUM and "
               f"$CARLIB_CHROMEDRIVER at them")
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(message + " (CI is set, where they must run)", pytrace=False)
    pytest.skip(message)


def pytest_terminal_summary(terminalreporter) -> None:
    """Say loudly when the browser tests were skipped for want of a browser: a skip is easy to miss."""
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if BROWSER_NOT_RUN in str(getattr(report, "longrepr", ""))]
    if skipped:
        terminalreporter.section("BROWSER TESTS NOT RUN", sep="!", red=True, bold=True)
        reason = str(skipped[0].longrepr[-1]) if isinstance(skipped[0].longrepr, tuple) else str(skipped[0].longrepr)
        terminalreporter.write_line(f"{len(skipped)} browser test(s) skipped -- {reason.removeprefix('Skipped: ')}",
                                    red=True, bold=True)
