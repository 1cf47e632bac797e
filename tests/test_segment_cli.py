"""`carlib segment`: bad input gives one clear line and writes nothing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import carlib
from carlib.apps.cli import main


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
        (["{image}", "--queries", "cat", "--max-side", "0"], "--max-side must be positive"),
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


# --- folders, globs, pseudo-labels, resume, torchrun ---------------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from carlib.world.scene import split_scene  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUERIES = "orange, starfish, kite, balloon"
N_SCENES = 8


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    """A folder of ShapesWorld scenes saved as photos, plus a file that is not an image."""
    folder = tmp_path_factory.mktemp("scenes")
    for index in range(N_SCENES):
        Image.fromarray(split_scene("test", index, seed=5).image).save(folder / f"scene_{index}.png")
    (folder / "notes.txt").write_text("not a picture")
    return folder


def _segment(source, out, *extra) -> list[str]:
    return ["segment", str(source), "--queries", QUERIES, "--preset", "shapes", "--model", "shapes",
            "--no-progress", "--out", str(out), *extra]


def _environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _outputs(out: Path) -> dict[str, bytes]:
    """Every file a run wrote, timings removed from result records (they differ between runs)."""
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.name not in ("errors.json",):
            data = path.read_bytes()
            if path.name == "result.json":
                record = json.loads(data)
                record.pop("seconds")
                data = json.dumps(record).encode()
            files[path.relative_to(out).as_posix()] = data
    return files


def test_a_folder_is_segmented_per_image_and_unreadable_files_are_listed(scenes, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("scene_0.png", "scene_1.png", "notes.txt"):
        (folder / name).write_bytes((scenes / name).read_bytes())
    (folder / "broken.JPG").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert main(_segment(folder, out)) == 0
    for name in ("scene_0", "scene_1"):
        assert sorted(p.name for p in (out / name).iterdir()) == ["labels.png", "overlay.png", "result.json"]
    assert not (out / "notes").exists() and not (out / "broken").exists()
    errors = json.loads((out / "errors.json").read_text())
    assert errors["done"] == 2 and [e["path"] for e in errors["errors"]] == [str(folder / "broken.JPG")]
    assert "broken.JPG" in capsys.readouterr().err
    # Each image's files are what segmenting it alone writes.
    alone = tmp_path / "alone"
    assert main(_segment(folder / "scene_1.png", alone)) == 0
    assert (alone / "labels.png").read_bytes() == (out / "scene_1" / "labels.png").read_bytes()


def test_labels_only_writes_a_voc_style_folder_from_a_glob(scenes, tmp_path):
    out = tmp_path / "labels"
    assert main(_segment(f"{scenes}/scene_[0-2].png", out, "--labels-only")) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["scene_0.png", "scene_1.png", "scene_2.png"]
    assert (out / "classes.txt").read_text().splitlines() == [
        "0 background", "1 orange", "2 starfish", "3 kite", "4 balloon"]
    for path in out.glob("*.png"):
        with Image.open(path) as label:
            assert label.mode == "P" and label.size == (96, 96)
            assert set(np.unique(np.asarray(label))) <= {0, 1, 2, 3, 4}
    single = tmp_path / "single"
    assert main(_segment(scenes / "scene_2.png", single)) == 0
    assert (single / "labels.png").read_bytes() == (out / "scene_2.png").read_bytes()


def test_a_killed_run_resumes_to_the_same_files(scenes, tmp_path):
    reference = tmp_path / "uninterrupted"
    assert main(_segment(scenes, reference, "--labels-only")) == 0
    resumed = tmp_path / "resumed"
    command = [sys.executable, "-m", "carlib", *_segment(scenes, resumed, "--labels-only")]
    process = subprocess.Popen(command, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(resumed.glob("scene_*.png"))) < 2:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(list(resumed.glob("scene_*.png")))
    assert 2 <= finished < N_SCENES, "the run should have been killed midway"
    assert not list(resumed.glob(".*")), "a killed run leaves no partial file behind"
    assert main(_segment(scenes, resumed, "--labels-only")) == 0
    assert json.loads((resumed / "errors.json").read_text())["skipped"] == finished
    assert _outputs(resumed) == _outputs(reference)


def test_torchrun_with_two_processes_writes_the_same_files_as_one(scenes, tmp_path, torchrun_carlib):
    single = tmp_path / "single"
    assert main(_segment(scenes, single)) == 0
    sharded = tmp_path / "sharded"
    completed = torchrun_carlib(_segment(scenes, sharded))
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert _outputs(sharded) == _outputs(single)
    assert len([p for p in sharded.iterdir() if p.is_dir()]) == N_SCENES
    assert json.loads((sharded / "errors.json").read_text())["done"] == N_SCENES


def test_resuming_with_other_settings_is_refused(scenes, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_segment(f"{scenes}/scene_0.png", out, "--labels-only")) == 0
    before = _outputs(out)
    capsys.readouterr()
    code = main(["segment", f"{scenes}/scene_[01].png", "--queries", "orange, lemon", "--preset", "shapes",
                 "--model", "shapes", "--labels-only", "--no-progress", "--out", str(out)])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "other settings" in error[0] and "queries" in error[0]
    assert _outputs(out) == before


@pytest.mark.parametrize(
    "source, message",
    [("{empty}", "no images in folder"), ("{empty}/*.jpg", "no files match"), ("{bomb}", "over the limit")],
)
def test_bad_collections_and_bombs_are_one_line(tmp_path, capsys, png_claiming, source, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no pictures here")
    bomb = tmp_path / "bomb.png"
    png_claiming(bomb, 30_000, 30_000)
    out = tmp_path / "out"
    assert main(["segment", source.format(empty=empty, bomb=bomb), "--queries", "cat", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]
    assert not out.exists()


def test_a_bomb_inside_a_folder_is_skipped_and_listed(scenes, tmp_path, png_claiming):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "scene_0.png").write_bytes((scenes / "scene_0.png").read_bytes())
    png_claiming(folder / "huge.png", 30_000, 30_000)
    out = tmp_path / "out"
    assert main(_segment(folder, out, "--labels-only")) == 0
    errors = json.loads((out / "errors.json").read_text())["errors"]
    assert [Path(e["path"]).name for e in errors] == ["huge.png"] and "over the limit" in errors[0]["error"]
    assert (out / "scene_0.png").is_file()


@pytest.mark.parametrize("kind", ["torchscript", "wrong_architecture"])
def test_bad_weight_files_are_one_line_and_write_nothing(tmp_path, image_path, capsys, kind):
    weights = tmp_path / ("ViT-B-16.pt" if kind == "torchscript" else "other.safetensors")
    if kind == "torchscript":
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(weights))
    else:
        from safetensors.torch import save_file

        other = carlib.load_clip("ViT-S-32", device="cpu")
        save_file({k: v.clone() for k, v in other.model.state_dict().items()}, str(weights))
    out = tmp_path / "out"
    code = main(["segment", str(image_path), "--queries", "cat", "--proposal-weights", str(weights), "--out", str(out)])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    expected = "TorchScript archive" if kind == "torchscript" else "does not fit model 'ViT-B-16'"
    assert len(lines) == 1 and expected in lines[0]
    assert not out.exists()


def test_a_rotated_phone_photo_is_segmented_upright(tmp_path):
    upright = split_scene("test", 3, seed=5).image[:, :72]  # 96 x 72: portrait
    stored = np.rot90(upright, k=1)  # what the camera wrote; EXIF 6 says turn it clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = tmp_path / "phone.png"
    Image.fromarray(np.ascontiguousarray(stored)).save(photo, exif=exif)
    plain = tmp_path / "upright.png"
    Image.fromarray(upright).save(plain)
    rotated_out, upright_out = tmp_path / "rotated", tmp_path / "plain"
    assert main(_segment(photo, rotated_out)) == 0 and main(_segment(plain, upright_out)) == 0
    with Image.open(rotated_out / "labels.png") as labels:
        assert labels.size == (72, 96)  # width x height of the upright picture
    assert (rotated_out / "labels.png").read_bytes() == (upright_out / "labels.png").read_bytes()
    assert json.loads((rotated_out / "result.json").read_text())["image_size"] == [96, 72]


def test_the_proposal_method_flag_reaches_the_recurrence(scenes, tmp_path):
    outputs = {}
    for method in ("gradcam", "maskclip"):
        out = tmp_path / method
        assert main(_segment(scenes / "scene_1.png", out, "--proposal-method", method)) == 0
        record = json.loads((out / "result.json").read_text())
        assert record["preset"]["settings"]["proposal_method"] == method
        outputs[method] = record["steps"][0]["scores"]
    assert outputs["gradcam"] != outputs["maskclip"]  # other proposals, other prompted images, other scores


def test_demo_draws_the_first_step_and_writes_a_segmentation(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--model", "shapes", "--out", str(out)]) == 0
    with Image.open(out / "cam.png") as cams:
        assert cams.size[0] > 400  # image + 4 queries per row
    record = json.loads((out / "segment" / "result.json").read_text())
    assert record["queries"] == ["orange", "starfish", "balloon", "kite"] and record["preset"]["name"] == "shapes"
    assert (out / "segment" / "overlay.png").is_file() and (out / "segment" / "labels.png").is_file()


# --- label maps beyond 255 labels ------------------------------------------------------------------------------------


def test_three_hundred_queries_write_a_16_bit_label_png_and_a_readable_overlay(tmp_path):
    import json

    from carlib.labels import read_label_png
    from carlib.world.classes import CLASS_NAMES

    scene = carlib.__file__.rsplit("/carlib/", 1)[0] + "/data/images/shapes_0_orange_starfish_balloon.png"
    # 292 words the model was never taught, then its 8 names: whatever survives is a label above 255.
    queries = [f"thing number {index}" for index in range(300 - len(CLASS_NAMES))] + list(CLASS_NAMES)
    listing = tmp_path / "queries.txt"
    listing.write_text("\n".join(queries))
    out = tmp_path / "out"
    assert main(["segment", scene, "--queries-file", str(listing), "--preset", "shapes", "--model", "shapes",
                 "--no-progress", "--out", str(out)]) == 0
    record = json.loads((out / "result.json").read_text())
    labels = read_label_png(out / "labels.png")
    kept = [index + 1 for index, keep in enumerate(record["kept"]) if keep]
    assert labels.max() > 255 and set(np.unique(labels)) <= {0, *kept}
    assert record["labels_png"] == "gray-16bit"
    with Image.open(out / "labels.png") as png:
        assert png.mode.startswith("I")
    with Image.open(out / "overlay.png") as overlay:
        assert overlay.size[0] >= 600


def test_label_pngs_hold_any_label_up_to_16_bits(tmp_path):
    from carlib.labels import label_colours, read_label_png, save_label_png, voc_palette

    small = np.array([[0, 1], [255, 7]])
    large = np.array([[0, 847], [300, 1]])
    assert save_label_png(small, tmp_path / "small.png") == "palette-8bit"
    assert save_label_png(large, tmp_path / "large.png") == "gray-16bit"
    with Image.open(tmp_path / "small.png") as png:
        assert png.mode == "P"
    np.testing.assert_array_equal(read_label_png(tmp_path / "small.png"), small)
    np.testing.assert_array_equal(read_label_png(tmp_path / "large.png"), large)
    for bad in (np.array([[70000]]), np.array([[-1]])):
        with pytest.raises(ValueError, match="0..65535"):
            save_label_png(bad, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
    # VOC's own colours (person is 15), then the same bit rule: 256 = bit 8 lands in blue's bit 5.
    assert label_colours(np.array([1, 15, 256])).tolist() == [[128, 0, 0], [192, 128, 128], [0, 0, 32]]
    assert len({tuple(colour) for colour in voc_palette(1024)}) == 1024


def test_a_legend_of_many_labels_shows_the_best_scored_and_counts_the_rest():
    from carlib.tutorial.figures import LEGEND_ENTRIES, segmentation_figure

    labels = np.arange(1, 41).repeat(10).reshape(20, 20)
    names = [f"word {index}" for index in range(300)]
    scores = np.zeros(300)
    scores[:40] = np.linspace(0.1, 0.9, 40)
    figure = segmentation_figure(np.zeros((20, 20, 3), np.uint8), labels, names, scores=scores)
    texts = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert len(texts) == LEGEND_ENTRIES + 1 and texts[-1] == f"+ {40 - LEGEND_ENTRIES} more labels"
    assert texts[0].startswith(f"word {40 - LEGEND_ENTRIES} ") and texts[-2].startswith("word 39 ")


def test_post_sam_runs_end_to_end_with_a_checkpoint_in_the_official_format(tmp_path):
    import json

    import segment_anything
    import torch

    torch.manual_seed(0)
    checkpoint = tmp_path / "sam_vit_b_01ec64.pth"  # the official file is a plain state dict, as this one
    torch.save(segment_anything.sam_model_registry["vit_b"](checkpoint=None).state_dict(), checkpoint)
    scene = carlib.__file__.rsplit("/carlib/", 1)[0] + "/data/images/shapes_0_orange_starfish_balloon.png"
    out = tmp_path / "out"
    assert main(["segment", scene, "--queries", "orange, starfish, kite", "--preset", "shapes", "--model", "shapes",
                 "--post", "sam", "--sam-checkpoint", str(checkpoint), "--sam-points-per-side", "2",
                 "--no-progress", "--out", str(out)]) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["post"] == "sam" and any(record["kept"])
    with Image.open(out / "labels.png") as labels:
        assert labels.size == Image.open(scene).size
    assert main(["segment", scene, "--queries", "orange", "--post", "sam", "--sam-checkpoint", str(checkpoint),
                 "--sam-points-per-side", "0", "--preset", "shapes", "--model", "shapes",
                 "--out", str(tmp_path / "bad")]) == 2


def test_post_sam_runs_hq_sam_from_a_checkpoint_named_as_the_official_one(tmp_path, caplog):
    import json
    import logging
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # segment_anything_hq's TinyViT re-registers timm names on import
        import segment_anything_hq

    torch.manual_seed(0)
    checkpoint = tmp_path / "sam_hq_vit_tiny.pth"  # HQ-SAM's official file: a plain state dict, as this one
    torch.save(segment_anything_hq.sam_model_registry["vit_tiny"](checkpoint=None).state_dict(), checkpoint)
    scene = carlib.__file__.rsplit("/carlib/", 1)[0] + "/data/images/shapes_0_orange_starfish_balloon.png"
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="carlib"):
        assert main(["segment", scene, "--queries", "orange, starfish", "--preset", "shapes", "--model", "shapes",
                     "--post", "sam", "--sam-checkpoint", str(checkpoint), "--sam-points-per-side", "2",
                     "--no-progress", "--out", str(out)]) == 0
    assert "SAM post-processing: HQ-SAM vit_tiny (segment_anything_hq) from sam_hq_vit_tiny.pth" in caplog.text
    record = json.loads((out / "result.json").read_text())
    assert record["post"] == "sam" and any(record["kept"])
    with Image.open(out / "labels.png") as labels:
        assert labels.size == Image.open(scene).size

    # The HQ name on plain SAM weights: one line, exit code 2, nothing written.
    import segment_anything

    misnamed = tmp_path / "sam_hq_vit_b.pth"
    torch.save(segment_anything.sam_model_registry["vit_b"](checkpoint=None).state_dict(), misnamed)
    assert main(["segment", scene, "--queries", "orange", "--preset", "shapes", "--model", "shapes",
                 "--post", "sam", "--sam-checkpoint", str(misnamed), "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
