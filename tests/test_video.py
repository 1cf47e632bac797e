"""Referring video segmentation: moving ShapesWorld clips, the Ref-DAVIS17 reader, and `carlib eval --preset refdavis17`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carlib.apps.cli import main
from carlib.datasets import EXPRESSION_SETS, SampleReadError, check_dataset, open_dataset
from carlib.datasets.refdavis import read_expression_file
from carlib.evaluation.davis_metrics import contour_accuracy, region_similarity
from carlib.world.export import export_refdavis
from carlib.world.video import MIN_FRAME_AREA, clip_expressions, split_clip

ROOT = Path(__file__).resolve().parent.parent
N_CLIPS, N_FRAMES = 2, 3


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return export_refdavis(tmp_path_factory.mktemp("video") / "clips", n=N_CLIPS, seed=5, frames=N_FRAMES)


def _copy(clips: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(clips, data)
    return data


# --- the moving world --------------------------------------------------------------------------------------


def test_clips_are_seeded_and_their_masks_are_the_painting():
    clip = split_clip("test", 3, seed=1, num_frames=5)
    again = split_clip("test", 3, seed=1, num_frames=5)
    assert all((a == b).all() for a, b in zip(clip.frames, again.frames))
    assert not all((a == b).all() for a, b in zip(clip.frames, split_clip("test", 4, seed=1, num_frames=5).frames))
    assert clip.num_frames == 5 and 1 <= len(clip.objects) <= 3
    for frame, instances in enumerate(clip.instance_maps):
        # Object k is what its silhouette leaves visible under the objects painted after it.
        covered = np.zeros(instances.shape, dtype=bool)
        for obj in reversed(clip.objects):
            silhouette = obj.draw(frame, instances.shape[0])[1]
            assert ((instances == obj.instance_id) == (silhouette & ~covered)).all()
            assert (instances == obj.instance_id).sum() >= max(MIN_FRAME_AREA, silhouette.sum() / 2)
            covered |= silhouette


def test_objects_move_and_keep_their_size_and_class():
    moved = 0
    for index in range(6):
        clip = split_clip("test", index, seed=0, num_frames=8)
        for obj in clip.objects:
            first, last = np.array(obj.center_at(0, 96)), np.array(obj.center_at(7, 96))
            moved += np.linalg.norm(last - first) > 2
            margin = obj.radius * 0.9
            assert all(margin - 1e-9 <= v <= 96 - margin + 1e-9 for t in range(8) for v in obj.center_at(t, 96))
        classes = [(obj.class_name, obj.size) for obj in clip.objects]
        assert len(classes) == len(set(classes))  # one class twice always comes in two sizes
    assert moved >= 5


def _fits(expression: str, obj, surfaces: list[str]) -> bool:
    words = expression.removeprefix("the ").split(" on ")
    name, surface = words[0].split(), words[1] if len(words) > 1 else None
    size, class_name = (name[0], name[1]) if len(name) == 2 else (None, name[0])
    return (class_name == obj.class_name and size in (None, obj.size)
            and (surface is None or surface in surfaces))


def test_every_expression_names_exactly_its_object():
    for index in range(12):
        clip = split_clip("test", index, seed=2, num_frames=6)
        expressions = clip_expressions(clip)
        assert set(expressions) == set(EXPRESSION_SETS)
        for set_name, named in expressions.items():
            whole_clip = set_name.endswith("full-video")
            for obj in clip.objects:
                fitting = [other for other in clip.objects
                           if _fits(named[obj.instance_id], other,
                                    other.backgrounds if whole_clip else other.backgrounds[:1])]
                assert fitting == [obj], (index, set_name, named[obj.instance_id])
                if whole_clip and " on " in named[obj.instance_id]:
                    assert len(set(obj.backgrounds)) == 1  # a full-video surface holds in every frame
        # Annotator 1 says the shortest unambiguous thing, annotator 2 the longest.
        for obj in clip.objects:
            assert len(expressions["annot1-first-frame"][obj.instance_id]) <= len(
                expressions["annot2-first-frame"][obj.instance_id])


def test_export_writes_the_ref_davis_layout_and_reads_back_exactly(clips):
    dataset = open_dataset("refdavis17", clips)
    assert dataset.layout == "davis" and dataset.annotations == "Annotations/480p"
    assert dataset.ids() == ["test-5-0000", "test-5-0001"]
    for index, video in enumerate(dataset.videos()):
        clip = split_clip("test", index, seed=5, num_frames=N_FRAMES)
        assert video.frames == ("00000", "00001", "00002") and video.size == (96, 96)
        assert video.object_ids == tuple(obj.instance_id for obj in clip.objects)
        for frame, name in enumerate(video.frames):
            image, labels = dataset.load_frame((video.name, name))
            assert (labels == clip.instance_maps[frame]).all()  # masks are exact, PNG is lossless
            assert np.abs(image.astype(int) - clip.frames[frame]).mean() < 6  # JPEG quality 95
            assert Image.open(video.annotation_path(name)).mode == "P"
        for set_name, named in clip_expressions(clip).items():
            for object_id, text in named.items():
                assert dataset.sentences(set_name, video.name, object_id) == (text,)
    record = json.loads((clips / "clips.json").read_text())
    assert [c["video"] for c in record["clips"]] == dataset.ids()


def test_world_export_video_command(tmp_path, capsys):
    assert main(["world", "export", "--video", "--n", "1", "--frames", "2", "--out", str(tmp_path / "v")]) == 0
    assert "refdavis17" in capsys.readouterr().out
    assert check_dataset("refdavis17", tmp_path / "v") == []
    assert main(["world", "export", "--frames", "2", "--n", "1", "--out", str(tmp_path / "s")]) == 2
    assert "--frames applies to --video" in capsys.readouterr().err
    assert main(["world", "export", "--video", "--format", "voc", "--n", "1", "--out", str(tmp_path / "w")]) == 2
    assert main(["world", "export", "--video", "--frames", "1", "--n", "1", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "s").exists() and not (tmp_path / "w").exists() and not (tmp_path / "x").exists()


# --- the reader ----------------------------------------------------------------------------------------------


def test_khoreva_expression_files_latin_1_quotes_and_misspelt_names(tmp_path):
    path = tmp_path / "Davis17_annot2.txt"
    path.write_bytes('clasic-car 1 "a car driving on the road"\n\nbike-packing 2 "a man in a caf\u00e9 shirt"\n'
                     .encode("latin-1"))
    assert read_expression_file(path) == {"classic-car": {1: "a car driving on the road"},
                                          "bike-packing": {2: "a man in a caf\u00e9 shirt"}}
    path.write_text('blackswan 1 "a black swan"\nblackswan "no object id"\n')
    with pytest.raises(ValueError, match=r"Davis17_annot2.txt:2: expected"):
        read_expression_file(path)
    path.write_text('blackswan 1 "a black swan"\nblackswan 1 "again"\n')
    with pytest.raises(ValueError, match=r":2: a second expression for object 1"):
        read_expression_file(path)


def _referformer_layout(clips: Path, out: Path) -> Path:
    """What ReferFormer's convert_davis_to_ytvos.py makes of the same data: valid/ and meta_expressions.json."""
    dataset = open_dataset("refdavis17", clips)
    videos = {}
    for video in dataset.videos():
        shutil.copytree(video.image_dir, out / "valid" / "JPEGImages" / video.name)
        shutil.copytree(video.annotation_dir, out / "valid" / "Annotations" / video.name)
        expressions, number = {}, 0
        for object_id in video.object_ids:
            for set_name in EXPRESSION_SETS:  # a1 first-frame, a1 full-video, a2 first-frame, a2 full-video
                expressions[str(number)] = {"exp": dataset.sentences(set_name, video.name, object_id)[0],
                                            "obj_id": str(object_id)}
                number += 1
        videos[video.name] = {"expressions": expressions, "frames": list(video.frames)}
    (out / "meta_expressions" / "valid").mkdir(parents=True)
    (out / "meta_expressions" / "valid" / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    return out


def test_referformer_conversion_reads_the_same_videos_and_expressions(clips, tmp_path):
    davis = open_dataset("refdavis17", clips)
    converted = open_dataset("refdavis17", _referformer_layout(clips, tmp_path / "ref-davis"))
    assert converted.layout == "referformer" and converted.annotations == "valid/Annotations"
    assert [(v.name, v.frames, v.object_ids) for v in converted.videos()] == \
        [(v.name, v.frames, v.object_ids) for v in davis.videos()]
    assert {name: dict(converted.expressions[name]) for name in EXPRESSION_SETS} == \
        {name: dict(davis.expressions[name]) for name in EXPRESSION_SETS}
    meta = tmp_path / "ref-davis" / "meta_expressions" / "valid" / "meta_expressions.json"
    broken = json.loads(meta.read_text())
    first = next(iter(broken["videos"].values()))
    first["expressions"]["1"]["obj_id"] = "7"
    meta.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="not four per object in ReferFormer's order"):
        open_dataset("refdavis17", tmp_path / "ref-davis")


def test_root_levels_and_the_unsupervised_annotations(clips, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(clips, data / "ref-davis")
    for root in (data, data / "ref-davis", data / "ref-davis" / "DAVIS"):
        assert open_dataset("refdavis17", root).ids() == ["test-5-0000", "test-5-0001"]
    davis = data / "ref-davis" / "DAVIS"
    (davis / "Annotations").rename(davis / "Annotations_unsupervised")
    assert open_dataset("refdavis17", data).annotations == "Annotations_unsupervised/480p"
    from carlib.datasets.refdavis import open_refdavis

    with pytest.raises(FileNotFoundError, match=r"missing annotation folder .*Annotations/480p"):
        open_refdavis(data, annotations="semi-supervised")
    with pytest.raises(FileNotFoundError, match="DAVIS/JPEGImages/480p"):  # no layout at all: the expected tree
        open_dataset("refdavis17", tmp_path / "nothing")
    with pytest.raises(ValueError, match="unknown split"):
        open_dataset("refdavis17", data, "test")


def test_an_unreadable_frame_is_a_sample_error(clips, tmp_path):
    data = _copy(clips, tmp_path)
    dataset = open_dataset("refdavis17", data)
    video = dataset.videos()[0]
    video.image_path("00001").write_bytes(video.image_path("00001").read_bytes()[:3000])
    with pytest.raises(SampleReadError, match="00001.jpg"):
        dataset.load_frame((video.name, "00001"))
    video.image_path("00002").write_bytes(b"not a picture at all")  # not even a header: the layout check names it
    with pytest.raises(ValueError, match="00002.jpg"):
        open_dataset("refdavis17", data)


def _break(data: Path, how: str) -> str:
    """Damages a copy of the clips; returns the file the error must name."""
    video = data / "DAVIS" / "JPEGImages" / "480p" / "test-5-0001"
    labels = data / "DAVIS" / "Annotations" / "480p" / "test-5-0001"
    if how == "missing frame":
        (video / "00001.jpg").unlink()
        return str(video / "00001.jpg")
    if how == "missing annotation":
        (labels / "00002.png").unlink()
        return str(labels / "00002.png")
    if how == "gap":
        (video / "00001.jpg").unlink()
        (labels / "00001.png").unlink()
        return str(video / "00001.jpg")
    if how == "unknown object":
        texts = data / "davis_text_annotations" / "Davis17_annot1_full_video.txt"
        texts.write_text(texts.read_text() + 'test-5-0001 9 "the purple elephant"\n')
        return str(texts)
    if how == "frame size":
        Image.new("RGB", (80, 96)).save(video / "00002.jpg")
        return str(video / "00002.jpg")
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["missing frame", "missing annotation", "gap", "unknown object", "frame size"])
def test_bad_videos_are_one_line_exit_2_and_nothing_written(clips, tmp_path, capsys, how):
    data = _copy(clips, tmp_path)
    named = _break(data, how)
    out = tmp_path / "run"
    assert main(["eval", "--preset", "refdavis17", "--data-root", str(data), "--out", str(out), "--model", "shapes",
                 "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and named in error and error.startswith("carlib eval: error: Ref-DAVIS17")
    assert not out.exists()
    problems = check_dataset("refdavis17", data)
    assert len(problems) == 1 and named in problems[0]
    assert main(["data", "check", "--preset", "refdavis17", "--data-root", str(data)]) == 1
    assert named in capsys.readouterr().out


def test_data_check_names_each_missing_part(clips, tmp_path):
    data = _copy(clips, tmp_path)
    assert check_dataset("refdavis17", data) == []
    (data / "davis_text_annotations" / "Davis17_annot2_full_video.txt").unlink()
    problems = check_dataset("refdavis17", data)
    assert problems == [f"missing expression file {data / 'davis_text_annotations' / 'Davis17_annot2_full_video.txt'}"]
    (data / "DAVIS" / "ImageSets" / "2017" / "val.txt").unlink()
    shutil.rmtree(data / "davis_text_annotations")
    assert "no DAVIS folder" in check_dataset("refdavis17", data)[0]
    assert check_dataset("refdavis17", data, split_by="unc")[0].startswith("split_by applies")


# --- carlib eval --preset refdavis17 -----------------------------------------------------------------------------


def _eval_command(data: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--preset", "refdavis17", "--data-root", str(data), "--out", str(out), "--model", "shapes",
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def evaluated(clips, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    assert main(_eval_command(clips, out)) == 0
    return out


def test_eval_writes_davis_result_folders_and_j_f_from_them(clips, evaluated):
    metrics = json.loads((evaluated / "metrics.json").read_text())
    dataset = open_dataset("refdavis17", clips)
    assert metrics["images"] == N_CLIPS * N_FRAMES and metrics["errors"] == []
    assert metrics["expression_sets"] == list(EXPRESSION_SETS) and metrics["headline"] == "J&F"
    assert metrics["paper"] == {"J&F": 30.34, "J": 28.15, "F": 32.53} and metrics["paper_mIoU"] == 30.34
    # Recompute every figure from the written PNGs, independently of the run's bookkeeping.
    per_set = {}
    for set_name in EXPRESSION_SETS:
        objects = []
        for video in dataset.videos():
            folder = evaluated / "predictions" / set_name / video.name
            assert sorted(path.stem for path in folder.glob("*.png")) == list(video.frames)  # the toolkit's layout
            j = {object_id: [] for object_id in video.object_ids}
            f = {object_id: [] for object_id in video.object_ids}
            for frame in video.frames:
                with Image.open(folder / f"{frame}.png") as png:
                    assert png.mode == "P"
                    predicted = np.asarray(png)
                _, truth = dataset.load_frame((video.name, frame))
                assert set(np.unique(predicted)) <= {0, *video.object_ids}
                for object_id in video.object_ids:
                    j[object_id].append(region_similarity(predicted == object_id, truth == object_id))
                    f[object_id].append(contour_accuracy(predicted == object_id, truth == object_id))
            objects += [(np.mean(j[k]), np.mean(f[k])) for k in video.object_ids]
        per_set[set_name] = (np.mean([o[0] for o in objects]), np.mean([o[1] for o in objects]))
        assert metrics["per_set"][set_name]["J"] == pytest.approx(per_set[set_name][0])
        assert metrics["per_set"][set_name]["F"] == pytest.approx(per_set[set_name][1])
    assert metrics["J"] == pytest.approx(np.mean([value[0] for value in per_set.values()]))
    assert metrics["F"] == pytest.approx(np.mean([value[1] for value in per_set.values()]))
    assert metrics["J&F"] == pytest.approx((metrics["J"] + metrics["F"]) / 2)
    assert 0.3 < metrics["J&F"] <= 1.0  # the trained ShapesWorld CLIP finds the objects, not noise
    assert set(metrics["per_object"]["annot1-first-frame"]) == {
        f"{video.name}_{k}" for video in dataset.videos() for k in video.object_ids}
    report = (evaluated / "report.md").read_text()
    assert "J&F" in report and "annot2-full-video" in report and "paper: 30.34%" in report
    record = json.loads((evaluated / "predictions" / "records" / "test-5-0000" / "00000.json").read_text())
    assert record["sets"] == list(EXPRESSION_SETS)


def test_one_expression_set_or_all_at_once(clips, evaluated, tmp_path, capsys):
    out = tmp_path / "one"
    assert main(_eval_command(clips, out, "--expression-sets", "annot2-first-frame")) == 0
    assert "J&F" in capsys.readouterr().out
    one = json.loads((out / "metrics.json").read_text())
    four = json.loads((evaluated / "metrics.json").read_text())
    assert one["per_set"]["annot2-first-frame"] == four["per_set"]["annot2-first-frame"]  # sets are independent
    assert one["J&F"] == pytest.approx(four["per_set"]["annot2-first-frame"]["J&F"])
    everything = tmp_path / "all"
    assert main(_eval_command(clips, everything, "--expression-sets", "all", "--limit", "1")) == 0
    merged = json.loads((everything / "metrics.json").read_text())
    assert merged["videos"] == 1 and merged["images"] == N_FRAMES  # --limit counts videos
    record = json.loads((everything / "predictions" / "records" / "test-5-0000" / "00000.json").read_text())
    assert all(len(entry["queries"]) >= 1 for entry in record["objects"]["all"].values())
    assert main(_eval_command(clips, tmp_path / "bad", "--expression-sets", "annot3-first-frame")) == 2
    assert "expression sets must be" in capsys.readouterr().err
    assert main(["eval", "--preset", "shapes", "--data-root", str(clips), "--out", str(tmp_path / "x"),
                 "--expression-sets", "all"]) == 2


def test_an_unreadable_frame_is_counted_and_the_rest_scored(clips, tmp_path):
    data = _copy(clips, tmp_path)
    frame = data / "DAVIS" / "JPEGImages" / "480p" / "test-5-0000" / "00001.jpg"
    frame.write_bytes(frame.read_bytes()[:3000])  # the header (and size) survive, the picture does not
    out = tmp_path / "run"
    assert main(_eval_command(data, out, "--expression-sets", "annot1-first-frame")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [error["id"] for error in metrics["errors"]] == ["test-5-0000/00001"]
    assert metrics["per_set"]["annot1-first-frame"]["frames"] == N_CLIPS * N_FRAMES - 1


def _environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


ONE_SET = ("--expression-sets", "annot2-full-video")


def _same_figures(run: dict, reference: dict, expression_set: str = "annot2-full-video") -> None:
    """A one-set run gives that set's figures of the four-set run: the sets are independent."""
    assert run["per_set"][expression_set] == reference["per_set"][expression_set]
    assert run["per_object"][expression_set] == reference["per_object"][expression_set]
    assert run["unsupervised_task"]["per_set"][expression_set] == reference["unsupervised_task"]["per_set"][expression_set]
    assert run["J&F"] == reference["per_set"][expression_set]["J&F"]


def test_a_killed_run_resumes_frame_by_frame_to_identical_metrics(clips, evaluated, tmp_path):
    resumed = tmp_path / "resumed"
    command = [sys.executable, "-m", "carlib", *_eval_command(clips, resumed, *ONE_SET)]
    process = subprocess.Popen(command, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = resumed / "predictions" / "records"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(records.glob("*/*.json"))) < 2:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = sorted(records.glob("*/*.json"))
    assert 2 <= len(finished) < N_CLIPS * N_FRAMES, "the run should have been killed midway"
    assert not (resumed / "metrics.json").exists()
    stamps = {path: path.stat().st_mtime_ns for path in finished}
    assert main(_eval_command(clips, resumed, *ONE_SET)) == 0
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items())  # finished frames were kept
    assert len(list(records.glob("*/*.json"))) == N_CLIPS * N_FRAMES
    _same_figures(json.loads((resumed / "metrics.json").read_text()),
                  json.loads((evaluated / "metrics.json").read_text()))


def test_torchrun_shards_videos_and_gives_the_metrics_of_one_process(clips, evaluated, tmp_path, torchrun_carlib):
    sharded = tmp_path / "sharded"
    completed = torchrun_carlib(_eval_command(clips, sharded, *ONE_SET))
    assert completed.returncode == 0, completed.stderr[-2000:]
    two = json.loads((sharded / "metrics.json").read_text())
    assert two["images"] == N_CLIPS * N_FRAMES
    _same_figures(two, json.loads((evaluated / "metrics.json").read_text()))
