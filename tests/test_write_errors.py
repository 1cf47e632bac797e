"""Outputs that cannot be written (full disk, read-only file system): one line naming the file and the reason,
exit status 2, and nothing half-written left behind."""

from __future__ import annotations

import errno
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from carlib.apps.cli import main
from carlib.files import WriteError, atomic_directory, atomic_write, atomic_write_text
from carlib.world.export import export_voc
from carlib.world.scene import split_scene

NO_SPACE = "No space left on device"


def _full_disk(target) -> None:
    """A writer whose disk fills up half-way through the file."""
    if hasattr(target, "write"):
        target.write(b"half a file")
    else:
        with open(target, "wb") as stream:
            stream.write(b"half a file")
    raise OSError(errno.ENOSPC, NO_SPACE)


def test_a_failed_write_names_the_output_not_its_temporary_and_leaves_the_old_file(tmp_path):
    path = atomic_write_text("old", tmp_path / "labels.png")
    with pytest.raises(WriteError) as raised:
        atomic_write(_full_disk, path)
    assert str(raised.value) == f"cannot write {path}: {NO_SPACE}"
    assert raised.value.errno == errno.ENOSPC and isinstance(raised.value, OSError)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["labels.png"]


def test_a_failed_write_inside_a_staged_folder_is_named_where_it_was_going(tmp_path):
    out = tmp_path / "runs" / "scene_0"
    with pytest.raises(WriteError) as raised:
        with atomic_directory(out) as staging:
            atomic_write_text("{}", staging / "result.json")
            atomic_write(_full_disk, staging / "masks" / "labels.png")
    assert str(raised.value) == f"cannot write {out / 'masks' / 'labels.png'}: {NO_SPACE}"
    assert list((tmp_path / "runs").iterdir()) == [], "the staging folder is removed"


def test_an_error_about_another_file_is_not_called_a_write_error(tmp_path):
    def read_something_else(target: str) -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "input.txt"))

    with pytest.raises(FileNotFoundError) as raised:
        atomic_write(read_something_else, tmp_path / "out.txt")
    assert not isinstance(raised.value, WriteError) and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    Image.fromarray(split_scene("test", 0, seed=5).image).save(path)
    return path


def _segment(source: Path, out: Path) -> list[str]:
    return ["segment", str(source), "--queries", "orange, starfish", "--preset", "shapes", "--model", "shapes",
            "--no-progress", "--out", str(out)]


def test_segment_on_a_disk_that_fills_up_says_which_file_in_one_line_and_writes_nothing(
        scene_png, tmp_path, monkeypatch, capsys):
    saved = []

    def save_to_a_full_disk(image, target, *args, **kwargs):  # every PNG writer (PIL, matplotlib) ends here
        saved.append(target)
        _full_disk(target)

    monkeypatch.setattr(Image.Image, "save", save_to_a_full_disk)
    out = tmp_path / "result"
    assert main(_segment(scene_png, out)) == 2
    assert saved, "the injected writer was not reached"
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1] == f"carlib segment: error: cannot write {out / 'overlay.png'}: {NO_SPACE}"
    assert not any(line.startswith(("Traceback", "OSError")) for line in error)
    assert sorted(path.name for path in tmp_path.iterdir()) == [], "neither the outputs nor the scratch folder"


@contextmanager
def _tmpfs(path: Path, options: str):
    """A tiny tmpfs at ``path`` (needs root and CAP_SYS_ADMIN), unmounted afterwards."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount failed'}); the injected "
                    "failing writers above cover the same code")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _leftovers(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


def test_a_full_tmpfs_stops_a_folder_run_with_one_line(scene_png, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(scene_png.read_bytes())
    with _tmpfs(tmp_path / "small", "size=16k") as disk:
        out = disk / "out"
        assert main(_segment(folder, out)) == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error in {f"carlib segment: error: cannot write {out / 'a' / name}: {NO_SPACE}"
                         for name in ("overlay.png", "labels.png", "result.json")}, error
        assert _leftovers(disk) == ["out", "out/run.json"], "no partial image folder or temporary file"


def test_a_full_tmpfs_stops_training_with_one_line_naming_the_snapshot(tmp_path, capsys):
    with _tmpfs(tmp_path / "small", "size=64k") as disk:  # the first resume.pt is a few MB
        out = disk / "model"
        assert main(["world", "train", "--out", str(out), "--steps", "2", "--batch-size", "2", "--save-every", "1",
                     "--threads", "1", "--no-progress"]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"carlib world train: error: cannot write {out / 'resume.pt'}: {NO_SPACE}")
        assert _leftovers(disk) == ["model"]


def test_a_read_only_file_system_is_one_line(tmp_path, capsys):
    data = export_voc(tmp_path / "voc", split="test", n=1, seed=3)
    with _tmpfs(tmp_path / "readonly", "ro,size=16k") as disk:
        assert main(["eval", "--preset", "shapes", "--data-root", str(data), "--out", str(disk / "run"),
                     "--model", "shapes", "--no-progress"]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"carlib eval: error: cannot write {disk / 'run'}: Read-only file system")


def test_a_full_tmpfs_stops_writing_weights_with_one_line(tmp_path, monkeypatch, capsys):
    """safetensors reports a full disk as a SafetensorError, not an OSError: it still gets the one line."""
    with _tmpfs(tmp_path / "small", "size=64k") as disk:
        monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(disk))
        assert main(["weights", "--model", "RN50", "--random-seed", "0"]) == 2
        target = disk / "RN50-openai" / "open_clip_model.safetensors"
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"carlib weights: error: cannot write {target}: {NO_SPACE}")
        assert _leftovers(disk) == ["RN50-openai"]
