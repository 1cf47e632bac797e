"""Result pictures: the VOC palette, palette PNGs, overlays; the tutorial's figures, readable at their size."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import QuadMesh
from matplotlib.text import Text
from PIL import Image

from carlib import apply_visual_prompts
from carlib.labels import label_colours, overlay, save_palette_png, voc_palette
from carlib.tutorial import figures
from carlib.tutorial.figures import save_overlay_figure


def test_voc_palette_matches_the_devkit_colours():
    palette = voc_palette()
    # Colours from the VOC devkit's labelcolormap: background, aeroplane, bicycle, bird, person.
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0]
    assert palette[3].tolist() == [128, 128, 0]
    assert palette[15].tolist() == [192, 128, 128]
    assert palette[255].tolist() == [224, 224, 192]


def test_palette_png_round_trips_labels(tmp_path):
    labels = np.array([[0, 1, 2], [15, 20, 255]], dtype=np.int32)
    path = save_palette_png(labels, tmp_path / "labels.png")
    with Image.open(path) as image:
        assert image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image), labels)
    assert list(tmp_path.iterdir()) == [path]
    with pytest.raises(ValueError, match="0..255"):
        save_palette_png(np.array([[256]]), tmp_path / "bad.png")


def test_overlay_leaves_background_untouched():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    labels = np.array([[0, 1], [0, 0]])
    blended = overlay(image, labels, alpha=0.5)
    np.testing.assert_array_equal(blended[0, 0], [100, 100, 100])
    np.testing.assert_array_equal(blended[0, 1], [114, 50, 50])  # halfway to (128, 0, 0)


def test_overlay_figure_is_written(tmp_path):
    image = np.zeros((30, 40, 3), dtype=np.uint8)
    labels = np.zeros((30, 40), dtype=np.int32)
    labels[5:10, 5:10] = 2
    path = save_overlay_figure(image, labels, ["cat", "dog"], tmp_path / "overlay.png", scores=[0.0, 0.8])
    with Image.open(path) as written:
        assert written.size[0] > 40


class _Trace:
    """The fields of a :class:`carlib.StepTrace` the figures read."""

    def __init__(self, step, alive, kept, proposals, scores):
        self.step, self.alive, self.kept, self.proposals, self.scores = step, alive, kept, proposals, scores


class _Result:
    """The fields of a :class:`carlib.CarResult` the figures read: two steps, the third query dropped at step 1."""

    def __init__(self, side=48):
        ramp = np.linspace(0, 1, side * side).reshape(side, side)
        self.queries = ["orange", "lemon", "kite"]
        self.steps = [_Trace(1, [0, 1, 2], [0, 1], np.stack([ramp, ramp.T, 1 - ramp]), np.array([0.9, 0.6, 0.1])),
                      _Trace(2, [0, 1], [0, 1], np.stack([ramp, ramp.T]), np.array([0.9, 0.7]))]
        self.label_map = np.zeros((side, side), dtype=np.int32)
        self.label_map[5:20, 5:20] = 1
        self.label_map[25:40, 25:40] = 2


def _scene(side=48):
    """A picture in ShapesWorld's colours: an orange square and a lemon-yellow square on sand."""
    image = np.empty((side, side, 3), dtype=np.uint8)
    image[:] = (220, 195, 140)
    image[5:20, 5:20] = (250, 140, 20)
    image[25:40, 25:40] = (245, 225, 40)
    return image


def _drawn(figure):
    FigureCanvasAgg(figure).draw()
    return figure


def _every_figure():
    image, result = _scene(), _Result()
    heat = result.steps[0].proposals
    return {
        "show_images": figures.show_images([image, image], ["a", "b"], panel=1.3),
        "show_heatmaps": figures.show_heatmaps(image, heat, result.queries),
        "segmentation_figure": figures.segmentation_figure(image, result.label_map, result.queries, title="CaR"),
        "compare_segmentations": figures.compare_segmentations(image, [result.label_map] * 2, ["one", "two"],
                                                               result.queries),
        "trace_figure": figures.trace_figure(image, result, threshold=0.5, panel=1.3),
        "step_figure": figures.step_figure(image, result, 1, threshold=0.5),
        "scores_figure": figures.scores_figure(result, 0.5),
        "bar_figure": figures.bar_figure({"CaR": 0.62, "single pass": 0.5}, reference={"CaR": 0.7}, title="t"),
        "matrix_figure": figures.matrix_figure(np.eye(3), result.queries, result.queries, title="P"),
        "line_figure": figures.line_figure({"rows": [1, 0.1], "columns": [0.5, 0.05]}, xlabel="rounds"),
        "histogram_figure": figures.histogram_figure([0.4, 0.7, 0.75, 0.9], {"this run": 0.78, "all": 0.62},
                                                     xlabel="mIoU", title="samples"),
        "tradeoff_figure": figures.tradeoff_figure({"blur": (0.04, 0.93), "gray": (0.12, 0.91)}, xlabel="absent kept",
                                                   ylabel="present kept", highlight="blur"),
    }


def test_every_figure_is_drawn_at_the_notebook_dpi_with_text_of_at_least_13_pixels():
    assert figures.NOTEBOOK_DPI >= 110
    for name, figure in _every_figure().items():
        _drawn(figure)
        assert figure.dpi == figures.NOTEBOOK_DPI, name
        texts = [text for text in figure.findobj(Text) if text.get_text().strip() and text.get_visible()]
        assert texts, name
        smallest = min(text.get_fontsize() for text in texts) * figure.dpi / 72
        assert smallest >= 13, f"{name}: smallest text {smallest:.1f} px"


def test_picture_panels_are_at_least_200_pixels_even_when_asked_smaller():
    image = _scene(96)
    for figure in (figures.show_images([image] * 4, ["a"] * 4, panel=1.3),
                   figures.trace_figure(image[:48, :48], _Result(), panel=1.0)):
        _drawn(figure)
        sides = [min(axis.get_window_extent().size) for axis in figure.axes if axis.get_label() != "colourbar"]
        assert sides and min(sides) >= 200, sides


def _colourbars(figure):
    """Axes drawing a continuous colour scale: a colourbar's mesh (not an imshow panel)."""
    return [axis for axis in figure.axes if axis.collections and not axis.images]


def test_heat_maps_carry_a_colourbar_of_their_scale_and_plain_pictures_none():
    image = _scene()
    ramp = np.linspace(0, 1, 48 * 48).reshape(48, 48)
    for figure in (figures.show_heatmaps(image, ramp[None], ["map"]),
                   figures.show_images([image, figures.heat_overlay(image, ramp)], ["image", "map"]),
                   figures.trace_figure(image, _Result()), figures.step_figure(image, _Result(), 2)):
        bars = _colourbars(_drawn(figure))
        assert len(bars) == 1
        mesh = next(found for found in bars[0].collections if isinstance(found, QuadMesh))
        assert mesh.get_cmap().name == figures.HEATMAP and mesh.norm.vmin == 0 and mesh.norm.vmax == 1
    assert _colourbars(_drawn(figures.show_images([image, image]))) == []
    assert _colourbars(_drawn(figures.show_images([figures.heat_overlay(image, ramp)], colourbar=False))) == []
    assert len(_colourbars(_drawn(figures.matrix_figure(np.eye(2), ["a", "b"], ["a", "b"])))) == 1


def test_heat_overlay_is_the_same_pixels_as_a_plain_array():
    image = _scene()
    heat = np.zeros((48, 48))
    heat[0, 0] = 1.0
    drawn = figures.heat_overlay(image, heat, alpha=0.55)
    assert isinstance(drawn, figures.HeatOverlay) and drawn.dtype == np.uint8
    # Sand (220, 195, 140) in grey is 0.299*220 + 0.587*195 + 0.114*140 = 196.2 -> 196; 45% of it is 88.2.
    # inferno(1.0) = (0.98836, 0.99836, 0.64492) * 255 = (252.0, 254.6, 164.5); 55% of it added: (226.8, 228.2, 178.7).
    np.testing.assert_array_equal(np.asarray(drawn)[0, 0], [227, 228, 179])
    # inferno(0) = (0.00146, 0.00047, 0.01387) * 255 = (0.37, 0.12, 3.54): nearly black, 88.2 + (0.2, 0.07, 1.9).
    np.testing.assert_array_equal(np.asarray(drawn)[1, 1], [88, 88, 90])
    assert figures.HEATMAP in ("inferno", "magma", "viridis", "cividis", "plasma")  # perceptually uniform


def test_difference_overlay_is_white_at_zero_red_above_blue_below():
    image = np.full((1, 3, 3), 100, dtype=np.uint8)  # grey 100
    drawn = figures.difference_overlay(image, np.array([[0.0, 1.0, -1.0]]), alpha=0.5).astype(int)
    # RdBu_r: about (247, 247, 247) at 0, (103, 0, 31) at +1, (5, 48, 97) at -1; half of each over grey 100.
    np.testing.assert_allclose(drawn[0, 0], [174, 174, 174], atol=1)
    assert drawn[0, 1, 0] > drawn[0, 1, 2] and drawn[0, 2, 2] > drawn[0, 2, 0]
    with pytest.raises(ValueError, match="differ in size"):
        figures.difference_overlay(image, np.zeros((2, 2)))


def _shows_exactly(figure, picture):
    return any(np.array_equal(np.asarray(shown.get_array()), picture) for axis in figure.axes for shown in axis.images)


def test_every_label_map_figure_shows_the_input_picture_beside_it():
    image, result = _scene(), _Result()
    for figure in (figures.segmentation_figure(image, result.label_map, result.queries),
                   figures.compare_segmentations(image, [result.label_map], ["CaR"], result.queries),
                   figures.step_figure(image, result, 1)):
        assert _shows_exactly(figure, image)
        # and the label map beside it, drawn by label_picture (2 screen pixels of outline), coloured by class name
        assert _shows_exactly(figure, figures.label_picture(image, result.label_map, names=result.queries,
                                                            thickness=1))
    # The CLI keeps its one-panel overlay (VOC colours, as in labels.png): no input picture there.
    cli = figures.segmentation_figure(image, result.label_map, result.queries, with_image=False, palette="voc")
    assert not _shows_exactly(cli, image) and _shows_exactly(cli, overlay(image, result.label_map))
    with pytest.raises(ValueError, match="palette"):
        figures.segmentation_figure(image, result.label_map, result.queries, palette="jet")


def test_label_picture_paints_labels_over_a_grey_picture_with_outlines():
    image = np.full((3, 3, 3), 100, dtype=np.uint8)
    image[1:, 1:] = (250, 140, 20)  # an orange object, labelled 1
    labels = np.zeros((3, 3), dtype=np.int32)
    labels[1:, 1:] = 1
    drawn = figures.label_picture(image, labels)
    # Background: grey 100 pulled 35% towards white = 154.25.
    np.testing.assert_array_equal(drawn[0, 0], [154, 154, 154])
    # Where the label starts (left or top neighbour differs): black outline.
    for row, col in ((1, 1), (1, 2), (2, 1)):
        np.testing.assert_array_equal(drawn[row, col], [0, 0, 0])
    # Inside: the orange's grey (0.299*250 + 0.587*140 + 0.114*20 = 159.2 -> 159), lightened to 192.6,
    # then 65% of the first palette colour (31, 119, 180): no trace of the object's own orange.
    np.testing.assert_array_equal(drawn[2, 2], [88, 145, 184])
    np.testing.assert_array_equal(figures.LABEL_PALETTE[0], [31, 119, 180])


def test_the_label_palette_keeps_clear_of_the_objects_and_the_prompt_colour():
    from carlib.world.classes import OBJECT_CLASSES, PROMPT_RED

    palette = figures.LABEL_PALETTE.astype(int)
    assert len({tuple(colour) for colour in palette}) == len(palette)
    assert min(np.abs(palette - np.array(PROMPT_RED)).sum(axis=1)) > 120
    # The first three labels (most scenes' queries) sit far from every object's colour.
    objects = np.array([spec.color for spec in OBJECT_CLASSES])
    for colour in palette[:3]:
        assert np.abs(objects - colour).sum(axis=1).min() > 100, colour
    # Past the palette, the VOC rule: still one colour per label.
    many = figures.tutorial_label_colours(np.arange(1, 301))
    assert len({tuple(colour) for colour in many}) == 300
    np.testing.assert_array_equal(figures.tutorial_label_colours(np.array([0, 17])), label_colours(np.array([0, 17])))


def _labelled(queries, side=48):
    """A fake result over :func:`_scene` whose label map paints the orange square "orange" and the lemon one "lemon"
    (at their positions in ``queries``), with one step where every query is alive."""
    ramp = np.linspace(0, 1, side * side).reshape(side, side)
    result = _Result(side)
    result.queries = list(queries)
    alive = list(range(len(queries)))
    result.steps = [_Trace(1, alive, alive, np.stack([ramp] * len(queries)), np.full(len(queries), 0.5))]
    result.label_map = np.zeros((side, side), dtype=np.int32)
    result.label_map[5:20, 5:20] = result.queries.index("orange") + 1
    result.label_map[25:40, 25:40] = result.queries.index("lemon") + 1
    return result


def _label_panels(figure):
    return [np.asarray(axis.images[0].get_array()) for axis in figure.axes if axis.get_label() == "labels"]


def _legend_colours(figure):
    colours = {}
    for legend in _legends(figure):
        for patch, text in zip(legend.get_patches(), legend.get_texts()):
            colours[text.get_text().split(" (")[0]] = tuple(np.round(np.asarray(patch.get_facecolor()[:3]) * 255))
    return colours


def test_every_figure_paints_a_class_in_its_one_colour_whatever_the_query_order():
    # By hand, label_picture's blend: grey (cv2's 0.299 R + 0.587 G + 0.114 B) lightened 35% towards white, then
    # 65% of the class colour. Orange (250, 140, 20): grey 159 -> 192.6; lemon (245, 225, 40): grey 210 -> 225.75.
    orange, lemon = figures.CLASS_COLOURS["orange"], figures.CLASS_COLOURS["lemon"]
    expected = {"orange": np.round(0.35 * 192.6 + 0.65 * np.array(orange)),
                "lemon": np.round(0.35 * 225.75 + 0.65 * np.array(lemon))}
    image = _scene()
    for queries in (["orange", "lemon", "kite"], ["kite", "dice", "lemon", "wheel", "orange"], ["lemon", "orange"]):
        result = _labelled(queries)
        drawn = {
            "segmentation_figure": figures.segmentation_figure(image, result.label_map, queries),
            "compare_segmentations": figures.compare_segmentations(image, [result.label_map] * 2, ["a", "b"], queries),
            "step_figure (the explorer's)": figures.step_figure(image, result, 1),
        }
        for name, figure in drawn.items():
            panels = _label_panels(_drawn(figure))
            assert panels, name
            for panel in panels:
                np.testing.assert_array_equal(panel[12, 12], expected["orange"], err_msg=f"{name} {queries}")
                np.testing.assert_array_equal(panel[32, 32], expected["lemon"], err_msg=f"{name} {queries}")
            legend = _legend_colours(figure)
            assert legend["orange"] == tuple(orange) and legend["lemon"] == tuple(lemon), (name, queries)
        picture = figures.label_picture(image, result.label_map, names=queries)
        np.testing.assert_array_equal(picture[12, 12], expected["orange"])
        assert [tuple(c) for c in figures.class_colours(queries)] == [figures.CLASS_COLOURS[q] for q in queries]


def test_class_colours_are_distinct_stable_and_keep_clear_of_red():
    from carlib.world.classes import CLASS_NAMES, OBJECT_CLASSES, PROMPT_RED

    assert set(figures.CLASS_COLOURS) == set(CLASS_NAMES)
    fixed = np.array(list(figures.CLASS_COLOURS.values()), dtype=int)
    assert len({tuple(c) for c in fixed}) == len(fixed)
    assert np.abs(fixed - np.array(PROMPT_RED)).sum(axis=1).min() > 120
    for spec in OBJECT_CLASSES:  # a labelled object never looks like the unlabelled object
        assert np.abs(np.array(figures.CLASS_COLOURS[spec.name]) - np.array(spec.color)).sum() > 150, spec.name
    # Real words: one colour each within a list, and the same colour in another list that does not claim it first.
    words = ["cat", "dog", "sofa", "table", "person", "flag", "rocket", "cup", "plate", "spoon", "sky", "tree", "car"]
    colours = figures.class_colours(words)
    assert len({tuple(c) for c in colours}) == len(words)
    alone = {word: tuple(figures.class_colours([word])[0]) for word in words}
    for word in words:  # a word that comes first keeps its own colour, whatever follows it
        assert tuple(figures.class_colours([word, "orange", "wheel", "dog"])[0]) == alone[word]
    assert tuple(figures.class_colours(["orange", "cat"])[1]) == alone["cat"]  # ShapesWorld's colours are not taken
    assert alone["cat"] not in set(figures.CLASS_COLOURS.values())
    assert len({tuple(c) for c in figures.class_colours([f"word{i}" for i in range(300)])}) == 300


def test_every_figure_fits_the_notebook_column():
    widest = figures.MAX_WIDTH * figures.NOTEBOOK_DPI
    assert widest <= 1100
    image = _scene()
    ramp = np.linspace(0, 1, 48 * 48).reshape(48, 48)
    eight = _labelled(["orange", "lemon", "starfish", "kite", "tent", "wheel", "balloon", "dice"])
    drawn = {}
    for count in range(1, 10):
        drawn[f"show_images x{count}"] = figures.show_images([image] * count)
        drawn[f"show_heatmaps x{count}"] = figures.show_heatmaps(image, np.stack([ramp] * count), ["m"] * count)
        drawn[f"compare_segmentations x{count}"] = figures.compare_segmentations(
            image, [eight.label_map] * count, ["s"] * count, eight.queries)
    drawn["trace_figure, 8 queries"] = figures.trace_figure(image, eight, threshold=0.5)
    drawn["step_figure, 8 queries"] = figures.step_figure(image, eight, 1, panel=3.0)
    drawn["matrix_figure with pictures"] = figures.matrix_figure(np.eye(8), eight.queries, eight.queries,
                                                                 row_images=[image] * 8)
    drawn["segmentation_figure"] = figures.segmentation_figure(image, eight.label_map, eight.queries)
    from carlib.tutorial.diagram import pipeline_diagram

    drawn["pipeline_diagram"] = pipeline_diagram()
    for name, figure in drawn.items():
        width = figure.get_size_inches()[0] * figure.dpi
        assert width <= widest + 0.5, f"{name}: {width:.0f} px wide"
    # and the pictures stay readable: at least 200 px a side in the widest wrapped grid
    figure = _drawn(drawn["show_heatmaps x9"])
    sides = [min(axis.get_window_extent().size) for axis in figure.axes if axis.get_label() == "heat"]
    assert min(sides) >= 200, sides


def test_matrix_row_pictures_sit_left_of_their_rows():
    from matplotlib.offsetbox import AnnotationBbox

    image = _scene()
    figure = _drawn(figures.matrix_figure(np.eye(3), ["a", "b", "c"], ["a", "b", "c"], row_images=[image] * 3))
    matrix = figure.axes[0]
    boxes = [artist for artist in matrix.get_children() if isinstance(artist, AnnotationBbox)]
    assert len(boxes) == 3
    renderer = figure.canvas.get_renderer()
    grid = matrix.get_window_extent(renderer)
    for row, box in enumerate(sorted(boxes, key=lambda b: b.xy[1])):
        extent = box.get_window_extent(renderer)
        assert extent.x1 <= grid.x0 and extent.x0 >= 0  # left of the matrix, inside the figure
        centre_y = matrix.transData.transform((0, row))[1]
        assert abs((extent.y0 + extent.y1) / 2 - centre_y) < 2  # on its row
    with pytest.raises(ValueError, match="row images"):
        figures.matrix_figure(np.eye(2), ["a", "b"], ["a", "b"], row_images=[image])


def _legends(figure):
    return [legend for legend in figure.legends] + [axis.get_legend() for axis in figure.axes if axis.get_legend()]


def test_legends_cover_no_axes_and_stay_inside_the_figure():
    with_legends = {"segmentation_figure", "compare_segmentations", "step_figure", "scores_figure", "bar_figure",
                    "line_figure", "histogram_figure", "tradeoff_figure"}
    for name, figure in _every_figure().items():
        legends = _legends(_drawn(figure))
        assert bool(legends) == (name in with_legends), name
        renderer = figure.canvas.get_renderer()
        whole = figure.bbox
        for legend in legends:
            box = legend.get_window_extent(renderer)
            inside = box.x0 >= whole.x0 - 1 and box.x1 <= whole.x1 + 1 and box.y0 >= whole.y0 - 1
            assert inside and box.y1 <= whole.y1 + 1, f"{name}: legend outside the figure"
            for axis in figure.axes:
                if axis.get_label() == "legend":  # a spare panel of the grid that holds only the legend
                    assert not axis.images, name
                    continue
                assert not box.overlaps(axis.get_window_extent(renderer)), f"{name}: legend over {axis.get_label()}"


def test_a_spare_panel_holds_the_legend_so_no_panel_is_left_blank():
    image, result = _scene(), _Result()
    # step 2: the image, the segmentation and two proposals = 4 panels, in one row; step 1: 5 panels, 3 + 2
    for step, spare in ((1, True), (2, False)):
        figure = _drawn(figures.step_figure(image, result, step))
        slots = [axis for axis in figure.axes if axis.get_label() == "legend"]
        assert len(slots) == int(spare)
        assert bool(figure.legends) != spare  # the legend is under the figure when no panel is spare
    figure = _drawn(figures.compare_segmentations(image, [result.label_map] * 4, list("abcd"), result.queries))
    assert [axis.get_label() for axis in figure.axes].count("legend") == 1


def _rectangle_prompt(side: int, thickness: int) -> np.ndarray:
    image = np.full((side, side, 3), 128, dtype=np.uint8)
    mask = np.zeros((side, side), dtype=bool)
    mask[side // 4: side // 2, side // 4: side // 2] = True
    return apply_visual_prompts(image, mask, ("rectangle",), thickness=thickness)


def _rectangle_run(side: int, thickness: int) -> int:
    """The thickness on screen of a rectangle prompt's vertical edge, measured as the red run across it."""
    figure = figures.show_images([_rectangle_prompt(side, thickness)], panel=figures.MIN_PANEL)
    pixels = np.asarray(Image.open(BytesIO(figures.figure_png(figure))).convert("RGB")).astype(int)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 110) & (pixels[..., 2] < 110)
    rows = np.flatnonzero(red.any(axis=1))
    middle = red[rows[len(rows) // 2]]  # a row through the rectangle's two vertical edges
    edges = np.flatnonzero(np.diff(np.concatenate([[0], middle.astype(int), [0]])))
    return int(min(np.diff(edges)[::2]))


def test_prompt_outlines_are_at_least_three_screen_pixels_at_every_picture_size():
    thicknesses = [figures.outline_thickness(np.zeros((side, side)), figures.MIN_PANEL) for side in (96, 480, 1200)]
    assert thicknesses == sorted(thicknesses) and thicknesses[0] < thicknesses[-1]  # bigger pictures, thicker lines
    assert figures.outline_thickness(np.zeros((480, 480)), 4.4) < thicknesses[1]  # a bigger panel needs thinner
    for side, thickness in zip((96, 480, 1200), thicknesses):
        assert _rectangle_run(side, thickness) >= figures.OUTLINE_PIXELS, side
    assert _rectangle_run(1200, 1) < figures.OUTLINE_PIXELS  # what a one-pixel line becomes without the rule
    with pytest.raises(ValueError, match="positive"):
        figures.outline_thickness(np.zeros((8, 8)), 0)


def test_figure_png_is_an_opaque_picture_of_the_figures_size():
    figure = figures.bar_figure({"a": 0.5})
    with Image.open(BytesIO(figures.figure_png(figure))) as png:
        assert png.mode == "RGB"
        width, height = figure.get_size_inches() * figures.NOTEBOOK_DPI
        assert png.size == (round(width), round(height))


def test_the_cli_overlay_keeps_the_voc_colours_of_labels_png(tmp_path):
    image = np.zeros((30, 40, 3), dtype=np.uint8)
    labels = np.zeros((30, 40), dtype=np.int32)
    labels[5:25, 5:25] = 2
    path = save_overlay_figure(image, labels, ["cat", "dog"], tmp_path / "overlay.png")
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    colours = {tuple(colour) for colour in pixels}
    assert (0, 70, 0) in colours  # VOC label 2 (0, 128, 0) at 55% over black
