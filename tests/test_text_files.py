"""Queries and class-name files: UTF-8 with or without a byte-order mark, any line ends; binary input refused."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from PIL import Image

from carlib.apps.cli import main
from carlib.datasets import open_dataset
from carlib.files import read_text_lines
from carlib.world.export import export_voc
from carlib.world.scene import split_scene

WORDS = ["orange", "starfish", "hot-air balloon", "café"]
ENCODINGS = {
    "utf-8, LF": "\n".join(WORDS).encode("utf-8"),
    "utf-8 with a byte-order mark, CRLF": codecs.BOM_UTF8 + "\r\n".join(WORDS).encode("utf-8") + b"\r\n",
    "old Mac CR": "\r".join(WORDS).encode("utf-8"),
    "utf-16 LE with its mark (PowerShell's >)": "\r\n".join(WORDS).encode("utf-16"),
    "utf-16 BE with its mark": codecs.BOM_UTF16_BE + "\n".join(WORDS).encode("utf-16-be"),
}


@pytest.mark.parametrize("kind", ENCODINGS)
def test_text_files_read_the_same_words_whatever_the_editor(tmp_path, kind):
    path = tmp_path / "words.txt"
    path.write_bytes(ENCODINGS[kind])
    assert read_text_lines(path) == WORDS


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is a PNG image, not text; give a UTF-8 text file"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "is a JPEG image, not text"),
    (b"cat\x00dog", "is a binary file, not text"),
    ("cat\ncaf\xe9\n".encode("latin-1"), "is not UTF-8 text (byte 0xe9 at offset 7); save it as UTF-8"),
    (codecs.BOM_UTF8 + "caf\xe9".encode("latin-1"), "is not UTF-8 text (byte 0xe9 at offset 6)"),
])
def test_binary_and_other_encodings_are_refused_by_name(tmp_path, content, message):
    path = tmp_path / "words.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError) as raised:
        read_text_lines(path, "--queries-file")
    assert str(raised.value).startswith(f"--queries-file {path} {message}")


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    Image.fromarray(split_scene("test", 0, seed=5).image).save(path)
    return path


def _segment(image: Path, out: Path, *queries: str) -> list[str]:
    return ["segment", str(image), *queries, "--preset", "shapes", "--model", "shapes", "--no-progress",
            "--out", str(out)]


def test_a_windows_queries_file_segments_the_same_words_as_the_command_line(scene_png, tmp_path):
    words = tmp_path / "words.txt"
    words.write_bytes(codecs.BOM_UTF8 + b"orange\r\n# a comment\r\n\r\nstarfish \r\nkite\r\n")
    from_file, typed = tmp_path / "from_file", tmp_path / "typed"
    assert main(_segment(scene_png, from_file, "--queries-file", str(words))) == 0
    assert main(_segment(scene_png, typed, "--queries", "orange, starfish, kite")) == 0
    assert json.loads((from_file / "result.json").read_text())["queries"] == ["orange", "starfish", "kite"]
    assert (from_file / "labels.png").read_bytes() == (typed / "labels.png").read_bytes()


def test_a_picture_given_as_the_queries_file_is_one_line_and_writes_nothing(scene_png, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_segment(scene_png, out, "--queries-file", str(scene_png))) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"carlib segment: error: --queries-file {scene_png} is a PNG image, not text; give a UTF-8 text file"]
    assert not out.exists()


def test_a_class_names_file_from_a_windows_editor_gives_the_same_names(tmp_path):
    root = export_voc(tmp_path / "voc", split="test", n=1, seed=3)
    names = open_dataset("shapes", root).class_names
    lines = (root / "class_names.txt").read_text(encoding="utf-8").splitlines()
    (root / "class_names.txt").write_bytes(codecs.BOM_UTF8 + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    split = root / "ImageSets" / "Segmentation" / "test.txt"
    split.write_bytes(codecs.BOM_UTF8 + split.read_bytes().replace(b"\n", b"\r\n"))
    dataset = open_dataset("shapes", root, "test")
    assert dataset.class_names == names and not dataset.class_names[0].startswith("\ufeff")
    assert [sample_id for sample_id in dataset.ids()] == [split.read_text(encoding="utf-8-sig").split()[0]]
    dataset.load(dataset.ids()[0])  # the id names a real file, not "\ufefftest_3_00000"
    (root / "class_names.txt").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match="class-name file .*class_names.txt is a PNG image"):
        open_dataset("shapes", root, "test")
