"""The explorer driven headless: set widget values, check the result and the figure's pixels."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from carlib import tutorial
from carlib.tutorial.explorer import CSS_CLASSES, UPLOADED, Explorer, answer_table
from carlib.tutorial.figures import heat_overlay


@pytest.fixture(scope="module")
def session():
    return tutorial.setup("shapes", verbose=False)


@pytest.fixture()
def explorer(session):
    explorer = Explorer(session, queries="orange, starfish, balloon, kite, dice")
    explorer.run()
    return explorer


def _panels(figure, role):
    """The figure's axes of one role (step_figure labels them): "image", "labels", "heat" (one per proposal)."""
    return [axis for axis in figure.axes if axis.get_label() == role]


def _panel_pixels(axis):
    return np.asarray(axis.images[0].get_array())


def test_the_figure_shows_the_last_steps_proposals(explorer):
    result = explorer.result
    last = result.steps[-1]
    assert explorer.step.max == result.num_steps == explorer.step.value
    heat = _panels(explorer.figure, "heat")
    assert len(heat) == len(last.alive)
    for k, axis in enumerate(heat):
        assert np.array_equal(_panel_pixels(axis), heat_overlay(explorer.picture, last.proposals[k]))
    # the input picture beside the final segmentation
    inputs = _panels(explorer.figure, "image")
    assert len(inputs) == 1 and np.array_equal(_panel_pixels(inputs[0]), explorer.picture)
    assert len(_panels(explorer.figure, "labels")) == 1
    assert explorer.output.outputs and "image/png" in explorer.output.outputs[0]["data"]


def test_step_slider_scrubs_back_to_the_first_step(explorer):
    explorer.step.value = 1
    first = explorer.result.steps[0]
    assert len(_panels(explorer.figure, "heat")) == len(first.alive) == 5
    assert explorer.figure._suptitle.get_text().startswith("step 1 of")
    titles = [axis.get_title() for axis in _panels(explorer.figure, "heat")]
    assert titles == [f"{explorer.result.queries[i]}: {s:.2f}" for i, s in zip(first.alive, first.scores)]


def test_sliders_rerun_car_with_the_same_result_as_calling_it_directly(explorer, session):
    explorer.theta.value = 0.3
    explorer.eta.value = 0.6
    explorer.prompts.value = ("circle", "gray")
    direct = session.car(mask_threshold=0.6, confidence_threshold=0.3, prompt_kinds=("circle", "gray"),
                         clipes_threshold=explorer.lam.value, post=explorer.post.value)
    expected = direct.segment(explorer.picture, explorer.result.queries)
    assert np.array_equal(explorer.result.scores, expected.scores)
    assert np.array_equal(explorer.result.label_map, expected.label_map)


def test_the_centring_checkbox_reruns_with_plain_grad_cam(explorer, session):
    assert explorer.centred_cam.value is session.settings.center_cam_features
    centred_cams = explorer.result.steps[0].cams
    explorer.centred_cam.value = not explorer.centred_cam.value
    direct = session.car(mask_threshold=explorer.eta.value, confidence_threshold=explorer.theta.value,
                         clipes_threshold=explorer.lam.value, prompt_kinds=tuple(explorer.prompts.value),
                         post=explorer.post.value, center_cam_features=explorer.centred_cam.value)
    expected = direct.segment(explorer.picture, explorer.result.queries)
    np.testing.assert_array_equal(explorer.result.steps[0].cams, expected.steps[0].cams)
    assert np.abs(explorer.result.steps[0].cams - centred_cams).max() > 1e-3


def test_a_high_theta_keeps_only_what_clears_it(explorer):
    explorer.theta.value = 0.95
    kept_scores = explorer.result.scores[explorer.result.kept]
    assert len(kept_scores) >= 1
    # above θ, or the single argmax the recurrence falls back to when nothing clears it
    assert np.all(kept_scores > 0.95) or len(kept_scores) == 1


def test_new_words_and_bad_words(explorer):
    explorer.queries.value = "lemon, dice"
    assert explorer.result.queries == ["lemon", "dice"]
    before = explorer.result
    explorer.queries.value = " , "
    assert "empty" in explorer.status.value and explorer.result is before


def test_uploading_a_picture_segments_it(explorer, session):
    scene = tutorial.shapes_scene(session.images[2])
    buffer = BytesIO()
    Image.fromarray(scene.image).save(buffer, format="PNG")
    explorer.load_upload(buffer.getvalue())
    assert explorer.image.value == UPLOADED
    assert np.array_equal(explorer.picture, scene.image)
    assert explorer.result is not None
    explorer.load_upload(b"not an image")
    assert "could not read" in explorer.status.value


def test_every_control_has_its_stable_css_class(explorer):
    for attribute, css_class in CSS_CLASSES.items():
        assert css_class in getattr(explorer, attribute)._dom_classes, attribute
    assert len(set(CSS_CLASSES.values())) == len(CSS_CLASSES)


def test_the_answer_table_checks_each_word_against_the_truth(session):
    scene = tutorial.shapes_scene(session.images[0])  # orange, starfish, balloon
    orange, starfish = scene.class_mask("orange"), scene.class_mask("starfish")

    class Answer:  # the fields of a CarResult the table reads: orange found, kite wrongly kept, starfish dropped
        queries = ["orange", "kite", "starfish", "dice"]
        kept = [True, True, False, False]
        label_map = np.zeros(orange.shape, dtype=np.int32)

    Answer.label_map[orange] = 1
    Answer.label_map[:10, :10] = 2  # kite painted on 100 pixels (none of them orange in this scene)
    assert not (orange[:10, :10]).any()
    rows = answer_table(Answer, scene).splitlines()[2:]
    assert rows[0] == "| orange | yes | kept | 1.00 |"
    share = 100 / orange.size
    assert rows[1] == f"| kite | no | kept (wrong) | 0.00 ({share:.0%} of the picture painted) |"
    assert rows[2] == "| starfish | yes | dropped (wrong) | 0.00 |" and starfish.any()
    assert rows[3] == "| dice | no | dropped | – |"
