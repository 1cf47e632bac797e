"""The notebooks' shared set-up: model choice, bundled pictures and their ground truth."""

from __future__ import annotations

import time

import numpy as np
import pytest

from carlib import WeightsNotFoundError, tutorial
from carlib.images import load_image


@pytest.fixture(scope="module")
def session():
    return tutorial.setup("shapes", verbose=False)


def test_auto_falls_back_to_shapes_and_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    auto = tutorial.setup("auto")
    assert auto.uses_shapes and auto.preset.name == "shapes"
    assert "ShapesWorld CLIP" in capsys.readouterr().out


def test_openai_without_weights_fails_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("CARLIB_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    started = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match="open_clip_model.safetensors"):
        tutorial.setup("openai", verbose=False)
    assert time.perf_counter() - started < 10


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model"):
        tutorial.setup("clip-9000", verbose=False)


def test_bundled_scenes_match_their_ground_truth(session):
    for name in tutorial.SHAPES_IMAGES:
        scene = tutorial.shapes_scene(name)
        assert np.array_equal(session.load(name), scene.image)
        # the file name lists the classes in the picture
        assert sorted(name.split(".")[0].split("_")[2:]) == sorted(scene.class_names_present)


def test_queries_and_pictures(session, tmp_path):
    assert session.queries_for(None, "kite,  tent ,") == ["kite", "tent"]
    assert session.queries_for(None, None) == session.default_queries
    assert session.queries_for("chelsea", None) == list(tutorial.PHOTO_QUERIES["chelsea"])
    assert tutorial.photo("chelsea").shape == (300, 451, 3)
    with pytest.raises(ValueError, match="unknown photo"):
        tutorial.photo("moon")
    path = tmp_path / "scene.png"
    from PIL import Image

    Image.fromarray(session.load(None)).save(path)
    assert np.array_equal(session.load(str(path)), load_image(path))


def test_car_accepts_preset_fields_and_car_options(session):
    car = session.car(confidence_threshold=0.42, post="none", use_clip_es=False)
    assert car.settings.confidence_threshold == 0.42 and car.settings.post == "none" and car.settings.use_clip_es is False


def test_prompted_images_are_what_the_step_classified(session):
    from carlib.tutorial.session import prompted_images

    car = session.car()
    picture = session.load(session.images[0])
    words = list(tutorial.CLASS_NAMES)
    result = car.segment(picture, words)
    for trace in result.steps:
        pictures = prompted_images(car, picture, trace)
        assert len(pictures) == len(trace.alive)
        rescored = car.classifier.classify(pictures, [words[i] for i in trace.alive], car.settings)
        np.testing.assert_allclose(rescored, trace.classifier, atol=1e-6)
