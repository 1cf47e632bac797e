"""Ctrl-C and SIGTERM: one line saying how far the command got, exit status 130, no traceback, only whole files;
the same command then resumes to what an uninterrupted run writes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from carlib import progress
from carlib.apps import cli
from carlib.apps.cli import main
from carlib.apps.interrupts import interrupted_message, stop_signals_interrupt
from carlib.world.export import export_voc
from carlib.world.scene import split_scene

ROOT = Path(__file__).resolve().parent.parent
QUERIES = "orange, starfish, kite, balloon"
N_SCENES = 4
N_EVAL_IMAGES = 3


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    for index in range(N_SCENES):
        Image.fromarray(split_scene("test", index, seed=5).image).save(folder / f"scene_{index}.png")
    return folder


def _segment(source: Path, out: Path, *extra: str) -> list[str]:
    return ["segment", str(source), "--queries", QUERIES, "--preset", "shapes", "--model", "shapes",
            "--out", str(out), *extra]


@pytest.fixture(scope="module")
def reference(scenes, tmp_path_factory) -> Path:
    """An uninterrupted run over the scenes."""
    out = tmp_path_factory.mktemp("reference") / "out"
    assert main(_segment(scenes, out, "--no-progress")) == 0
    return out


def _files(out: Path) -> dict[str, bytes]:
    """Every file a run wrote, timings removed from the result records (they differ between runs)."""
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.name != "errors.json":
            data = path.read_bytes()
            if path.name == "result.json":
                record = json.loads(data)
                record.pop("seconds")
                data = json.dumps(record).encode()
            files[path.relative_to(out).as_posix()] = data
    return files


def _start(arguments: list[str], *, launcher: tuple[str, ...] = (sys.executable, "-m", "carlib")) -> subprocess.Popen:
    """Start a command in its own process group, as a shell starts a foreground job, Ctrl-C not ignored."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([*launcher, *arguments], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _interrupt_when(process: subprocess.Popen, ready, signal_number: int, *, group: bool) -> str:
    """Send the signal once ``ready()`` holds (to the whole group, as Ctrl-C in a terminal does); return stderr."""
    deadline = time.time() + 180
    while not ready() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # not the very moment a file appears: between two items, as a person's Ctrl-C would be
    assert process.poll() is None, f"the command ended before it could be interrupted:\n{process.stderr.read()}"
    if group:
        os.killpg(process.pid, signal_number)
    else:
        process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=120)
    return stderr


def _last_line(stderr: str) -> str:
    return stderr.replace("\r", "\n").strip().splitlines()[-1]


def test_ctrl_c_during_a_folder_run_says_how_far_it_got_and_the_rerun_resumes(scenes, reference, tmp_path):
    out = tmp_path / "interrupted"
    process = _start(_segment(scenes, out))  # with its progress bar: the message must still be a line of its own
    stderr = _interrupt_when(process, lambda: any(out.glob("scene_*")), signal.SIGINT, group=True)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    finished = sorted(path.name for path in out.glob("scene_*"))
    assert 1 <= len(finished) < N_SCENES, "the run should have been interrupted midway"
    assert _last_line(stderr) == (f"carlib segment: interrupted after {len(finished)} of {N_SCENES} images; "
                                  "rerun the same command to resume")
    assert not list(out.glob(".*")), "an interrupted run leaves no partial file behind"
    for name in finished:  # every folder there is whole
        assert sorted(p.name for p in (out / name).iterdir()) == ["labels.png", "overlay.png", "result.json"]
    assert main(_segment(scenes, out, "--no-progress")) == 0
    assert json.loads((out / "errors.json").read_text())["skipped"] == len(finished)
    assert _files(out) == _files(reference)


@pytest.fixture(scope="module")
def shapes_voc(tmp_path_factory) -> Path:
    return export_voc(tmp_path_factory.mktemp("export") / "shapes_voc", split="test", n=N_EVAL_IMAGES, seed=3)


def test_sigterm_during_eval_says_how_far_it_got_and_the_rerun_ends_with_the_same_metrics(shapes_voc, tmp_path):
    def command(out: Path) -> list[str]:
        return ["eval", "--preset", "shapes", "--data-root", str(shapes_voc), "--out", str(out), "--model", "shapes",
                "--no-progress"]

    reference = tmp_path / "uninterrupted"
    assert main(command(reference)) == 0
    out = tmp_path / "interrupted"
    process = _start(command(out))
    records = out / "predictions"
    stderr = _interrupt_when(process, lambda: any(records.glob("*.json")), signal.SIGTERM, group=False)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    finished = len(list(records.glob("*.json")))
    assert 1 <= finished < N_EVAL_IMAGES
    assert stderr.strip().splitlines()[-1] == (f"carlib eval: interrupted after {finished} of {N_EVAL_IMAGES} images; "
                                               "rerun the same command to resume")
    assert len(list(records.glob("*.png"))) == finished and not list(records.glob(".*"))
    assert not (out / "metrics.json").exists()
    assert main(command(out)) == 0
    first, second = (json.loads((run / "metrics.json").read_text()) for run in (reference, out))
    assert second["confusion_matrix"] == first["confusion_matrix"] and second["mIoU"] == first["mIoU"]


@pytest.mark.slow  # two ranks load the model: about 20 s on 2 busy cores
def test_ctrl_c_reaches_every_torchrun_rank_and_each_says_its_share(scenes, reference, tmp_path):
    torchrun = (str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node", "2", "-m", "carlib")
    out = tmp_path / "sharded"
    process = _start(_segment(scenes, out, "--labels-only", "--no-progress"), launcher=torchrun)
    started = time.time()
    stderr = _interrupt_when(process, lambda: any(out.glob("scene_*.png")), signal.SIGINT, group=True)
    assert time.time() - started < 120, "a rank hung after the interrupt"
    lines = {int(match[1]): match for match in re.finditer(
        r"carlib segment \(rank (\d)\): interrupted after (\d) of (\d) images; rerun the same command to resume$",
        stderr, flags=re.MULTILINE)}
    assert sorted(lines) == [0, 1], stderr  # torchrun itself reports the signal too; each rank says one line
    assert all(int(match[3]) == N_SCENES // 2 for match in lines.values())
    assert sum(int(match[2]) for match in lines.values()) == len(list(out.glob("scene_*.png")))
    assert "KeyboardInterrupt" not in stderr
    assert main(_segment(scenes, out, "--labels-only", "--no-progress")) == 0
    labels = {path.stem: path.read_bytes() for path in out.glob("scene_*.png")}
    assert labels == {path.parent.name: path.read_bytes() for path in reference.glob("scene_*/labels.png")}


@pytest.mark.slow  # two kernels start: about 17 s on 2 busy cores
def test_an_interrupted_gallery_keeps_the_finished_pages_and_no_half_notebook(tmp_path):
    started = tmp_path / "started"
    notebooks = []
    for index, source in enumerate(["print('done')", f"open({str(started)!r}, 'w').close()\nimport time\n"
                                                    "time.sleep(120)"]):
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Notebook {index}"),
                                                   nbformat.v4.new_code_cell(source)])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        notebooks.append(tmp_path / f"0{index}_test.ipynb")
        nbformat.write(notebook, notebooks[-1])
    out = tmp_path / "gallery"
    process = _start(["gallery", "--out", str(out), "--notebooks", *map(str, notebooks)])
    stderr = _interrupt_when(process, started.exists, signal.SIGINT, group=True)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr  # neither ours nor the interrupted kernel's
    assert _last_line(stderr) == ("carlib gallery: interrupted after 1 of 2 notebooks; "
                                  "rerun the same command to start again")
    assert sorted(path.name for path in out.iterdir()) == ["00_test.html", "00_test.ipynb", "mathjax"]


def test_nested_commands_leave_the_line_to_the_outer_one_and_list_every_count(monkeypatch, capsys):
    """``carlib reproduce`` runs ``carlib eval`` through the same ``main``: one line, from the outer command."""
    import argparse

    seen = {}

    def inner(args) -> int:
        with progress.counting(6, "images") as images:
            images.advance(4)
            os.kill(os.getpid(), signal.SIGTERM)  # raises KeyboardInterrupt here, in the handler
            time.sleep(5)
        return 0

    def outer(args) -> int:
        with progress.counting(3, "commands") as commands:
            commands.advance()
            seen["inner"] = main(["inner"])
        return 0

    def parser() -> argparse.ArgumentParser:
        built = argparse.ArgumentParser(prog="carlib")
        commands = built.add_subparsers(dest="command")
        commands.add_parser("outer").set_defaults(handler=outer)
        commands.add_parser("inner").set_defaults(handler=inner)
        return built

    monkeypatch.setattr(cli, "build_parser", parser)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["outer"]) == 130
    assert "inner" not in seen, "the inner command returned instead of letting the interrupt through"
    assert capsys.readouterr().err.splitlines() == [
        "carlib outer: interrupted after 1 of 3 commands, 4 of 6 images; rerun the same command to resume"]
    assert signal.getsignal(signal.SIGTERM) is before, "main puts the SIGTERM handler back"


def test_a_second_signal_while_cleaning_up_is_ignored_and_counts_say_what_does_not_resume():
    # A shell starts background jobs with SIGINT ignored, and stop_signals_interrupt rightly keeps an
    # ignored signal ignored; this test is about a process that takes Ctrl-C, so it gives itself one.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with stop_signals_interrupt() as outermost:
            assert outermost
            with stop_signals_interrupt() as nested:
                assert not nested
            with pytest.raises(KeyboardInterrupt):
                with progress.counting(10, "notebooks", resumable=False) as count:
                    count.advance(2)
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(5)
            os.kill(os.getpid(), signal.SIGTERM)  # ignored: the first one is being handled
            time.sleep(0.1)
            assert interrupted_message("carlib gallery") == (
                "carlib gallery: interrupted after 2 of 10 notebooks; rerun the same command to start again")
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_a_signal_the_process_was_started_to_ignore_stays_ignored():
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_signals_interrupt():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)  # nothing happens
            time.sleep(0.1)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_counts_nest_outermost_first_and_the_last_finished_loop_is_kept_until_a_new_command():
    progress.forget()
    seen = []
    with progress.counting(2, "tables") as tables:
        for command in progress.counted(["eval voc", "eval coco", "ablate"], "commands"):
            seen.append([count.describe() for count in progress.open_counts()])
        tables.advance()
    assert seen == [["0 of 2 tables", f"{done} of 3 commands"] for done in range(3)]
    # A command stopped while it writes its summary has done all of its loop:
    assert [count.describe() for count in progress.open_counts()] == ["1 of 2 tables"]
    with pytest.raises(KeyboardInterrupt):
        with progress.counting(5, "images"):
            raise KeyboardInterrupt
    assert [count.describe() for count in progress.open_counts()] == ["1 of 2 tables"], "only loops that ended"
    progress.forget()
    assert progress.open_counts() == ()
