"""`carlib segment`: bad input gives one clear line and writes nothing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from carlib.cli import main


@pytest.fixture()
def image_path(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["missing.png", "--queries", "cat"], "image file not found: missing.png"),
        (["{image}", "--queries", " , "], "queries"),
        (["{image}", "--queries", "cat, cat"], "duplicate"),
        (["{image}", "--queries", "cat", "--preset", "pascal"], "unknown preset"),
        (["{image}", "--queries-file", "nope.txt"], "queries file not found"),
        (["{dir}", "--queries", "cat"], "directory"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, image_path, capsys, arguments, message):
    out = tmp_path / "out"
    arguments = [a.format(image=image_path, dir=tmp_path) for a in arguments]
    assert main(["segment", *arguments, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]
    assert not out.exists()


def test_unreadable_image_is_named(tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert main(["segment", str(broken), "--queries", "cat", "--out", str(tmp_path / "out")]) == 2
    assert "broken.jpg" in capsys.readouterr().err


def test_explicit_openai_without_weights_gives_instructions(tmp_path, image_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path / "weights"))
    out = tmp_path / "out"
    code = main(["segment", str(image_path), "--queries", "cat", "--model", "openai", "--out", str(out)])
    assert code == 2
    error = capsys.readouterr().err
    assert "open_clip_model.safetensors" in error and "Traceback" not in error
    assert not out.exists()
