"""The CaR pipeline diagram of notebook 00: every stage drawn, in order, legibly."""

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.text import Text

from carlib.tutorial.diagram import PIPELINE_STAGES, pipeline_diagram


def rendered(figure):
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def texts(figure):
    return [t for t in figure.findobj(Text) if t.get_text()]


def test_pipeline_names_the_papers_stages_in_order():
    names = [name for name, _ in PIPELINE_STAGES]
    # The order: image + words -> Grad-CAM -> CLIP-ES -> prompts -> classifier -> keep rule -> CRF/SAM.
    expected = ["image", "Grad-CAM", "CLIP-ES", "prompt", "classifier", "θ", "CRF"]
    assert len(names) == len(expected)
    for name, word in zip(names, expected):
        assert word in name


def test_diagram_draws_every_stage_once_with_a_loop_arrow():
    figure = pipeline_diagram()
    shown = [t.get_text() for t in texts(figure)]
    for name, explanation in PIPELINE_STAGES:
        assert shown.count(name) == 1
        assert shown.count(explanation) == 1
    assert any("repeat" in text and "stable" in text for text in shown)
    boxes = [p for p in figure.axes[0].patches if isinstance(p, FancyBboxPatch)]
    arrows = [p for p in figure.axes[0].patches if isinstance(p, FancyArrowPatch)]
    assert len(boxes) == len(PIPELINE_STAGES)
    assert len(arrows) == len(PIPELINE_STAGES)  # one between each pair of stages, plus the recurrence


def test_diagram_reads_as_a_path_left_to_right_then_back():
    figure = pipeline_diagram()
    position = {t.get_text(): t.get_position() for t in texts(figure)}
    centres = [position[name] for name, _ in PIPELINE_STAGES]
    top = [c for c in centres if c[1] > centres[-1][1]]
    bottom = centres[len(top):]
    assert [x for x, _ in top] == sorted(x for x, _ in top)
    assert [x for x, _ in bottom] == sorted((x for x, _ in bottom), reverse=True)


def test_diagram_is_legible():
    figure = pipeline_diagram()
    assert figure.dpi >= 110
    renderer = rendered(figure)
    page = figure.bbox
    extents = []
    for text in texts(figure):
        assert text.get_fontsize() >= 9, text.get_text()
        box = text.get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, text.get_text()
        extents.append((text.get_text(), box))
    for i, (first, a) in enumerate(extents):
        for second, b in extents[i + 1:]:
            assert not a.overlaps(b), f"{first!r} overlaps {second!r}"


def test_diagram_refuses_unreadable_settings():
    with pytest.raises(ValueError, match="dpi"):
        pipeline_diagram(dpi=60)
    with pytest.raises(ValueError, match="at least 4 stages"):
        pipeline_diagram(PIPELINE_STAGES[:3])
