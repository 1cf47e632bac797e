"""An ipywidgets explorer of CaR: pick a picture, type words, move the thresholds, scrub the steps.

``Explorer(session).widget`` is what notebook 08 displays. Every control is a
plain attribute (``explorer.theta``, ``explorer.step``...), so a test can set
values and read :attr:`Explorer.figure` without a browser.
"""

from __future__ import annotations

import base64
from io import BytesIO

import numpy as np

from carlib.car import CarResult
from carlib.images import load_image
from carlib.pipeline import parse_queries
from carlib.postprocess.mask_sources import MaskSource
from carlib.prompts import PROMPT_KINDS
from carlib.text import validate_queries
from carlib.tutorial import Tutorial
from carlib.tutorial.figures import figure_png, step_figure

UPLOADED = "(uploaded picture)"

CSS_CLASSES = {
    "widget": "carlib-explorer",
    "image": "carlib-picture",
    "upload": "carlib-upload",
    "queries": "carlib-words",
    "eta": "carlib-eta",
    "theta": "carlib-theta",
    "lam": "carlib-lambda",
    "prompts": "carlib-prompts",
    "centred_cam": "carlib-centred-cam",
    "post": "carlib-post",
    "auto_run": "carlib-auto-run",
    "run_button": "carlib-run",
    "step": "carlib-step",
    "status": "carlib-status",
    "output": "carlib-figure",
}
"""The CSS class of each control, keyed by its attribute: stable names for selecting them in a page."""


class Explorer:
    """Widgets around one :class:`carlib.tutorial.Tutorial` session.

    Changing the picture, the words, η, θ, λ, the prompt kinds, the
    post-processing or Grad-CAM centring re-runs CaR (a fraction of a second
    with the ShapesWorld CLIP; uncheck ``auto_run`` and press *Run* for slow
    models); the step slider only redraws, from the stored trace.

    Attributes:
        result: the latest :class:`carlib.CarResult` (None before the first run).
        figure: the latest figure (matplotlib ``Figure``).
        picture: the picture being segmented (H x W x 3 uint8).
    """

    def __init__(
        self,
        session: Tutorial,
        image: str | None = None,
        queries: str | None = None,
        sam_source: MaskSource | None = None,
    ) -> None:
        import ipywidgets as widgets

        self.session = session
        self.sam_source: MaskSource | None = sam_source
        settings = session.settings
        self.result: CarResult | None = None
        self._segmented: np.ndarray | None = None  # the picture self.result belongs to
        self.figure = None
        self._uploaded: np.ndarray | None = None
        self.image = widgets.Dropdown(
            options=list(session.images), value=image or session.images[0], description="picture"
        )
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload")
        self.queries = widgets.Text(
            value=queries or ", ".join(session.queries_for(image)),
            description="words",
            continuous_update=False,
            layout=widgets.Layout(width="420px"),
        )
        slider = {"min": 0.0, "max": 1.0, "step": 0.05, "continuous_update": False, "readout_format": ".2f"}
        self.eta = widgets.FloatSlider(value=settings.mask_threshold, description="η (mask)", **slider)
        self.theta = widgets.FloatSlider(value=settings.confidence_threshold, description="θ (keep)", **slider)
        self.lam = widgets.FloatSlider(
            value=settings.clipes_threshold, description="λ (box)", **{**slider, "min": 0.1, "max": 0.9}
        )
        self.prompts = widgets.SelectMultiple(
            options=list(PROMPT_KINDS),
            value=tuple(settings.prompt_kinds),
            description="prompts",
            rows=len(PROMPT_KINDS),
        )
        self.centred_cam = widgets.Checkbox(value=settings.center_cam_features, description="centred CAM")
        posts = ["crf", "none"] + (["sam"] if self._sam() is not None else [])
        self.post = widgets.Dropdown(
            options=posts, value=settings.post if settings.post in posts else "crf", description="post"
        )
        self.auto_run = widgets.Checkbox(value=True, description="re-run on change")
        self.run_button = widgets.Button(description="Run", button_style="primary")
        self.step = widgets.IntSlider(value=1, min=1, max=1, description="step", continuous_update=True)
        self.status = widgets.HTML()
        self.output = widgets.Output()

        for control in (
            self.image,
            self.queries,
            self.eta,
            self.theta,
            self.lam,
            self.prompts,
            self.post,
            self.centred_cam,
        ):
            control.observe(self._setting_changed, names="value")
        self.upload.observe(self._uploaded_changed, names="value")
        self.run_button.on_click(lambda _: self.run())
        self._quiet = False  # set while run() moves the step slider, so the figure is drawn once
        self.step.observe(lambda _: None if self._quiet else self.draw(), names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.image, self.upload]),
                self.queries,
                widgets.HBox(
                    [
                        widgets.VBox([self.eta, self.theta, self.lam]),
                        self.prompts,
                        widgets.VBox([self.post, self.centred_cam, self.auto_run, self.run_button]),
                    ]
                ),
                self.step,
                self.status,
                self.output,
            ]
        )
        self._name_controls()

    def _name_controls(self) -> None:
        """Give every control a stable CSS class (``carlib-words``...), which browser tests select by."""
        for name, control in CSS_CLASSES.items():
            getattr(self, name).add_class(control)

    def _sam(self) -> MaskSource | None:
        if self.sam_source is not None:
            return self.sam_source
        if self.session.uses_shapes:
            from carlib.postprocess import ColourRegionMaskSource

            self.sam_source = ColourRegionMaskSource()
        return self.sam_source

    @property
    def picture(self) -> np.ndarray:
        if self.image.value == UPLOADED and self._uploaded is not None:
            return self._uploaded
        return self.session.load(self.image.value)

    def _setting_changed(self, _change=None) -> None:
        if self.auto_run.value:
            self.run()

    def _uploaded_changed(self, change) -> None:
        files = change["new"]
        if not files:
            return
        content = files[0]["content"] if isinstance(files, (list, tuple)) else next(iter(files.values()))["content"]
        self.load_upload(bytes(content))

    def load_upload(self, data: bytes) -> None:
        """Use an uploaded image file's bytes as the picture."""
        from PIL import Image, UnidentifiedImageError

        try:
            self._uploaded = load_image(Image.open(BytesIO(data)))
        except (UnidentifiedImageError, OSError, ValueError) as error:
            self.status.value = f"<b>could not read the uploaded file:</b> {error}"
            return
        if UPLOADED not in self.image.options:
            self.image.options = list(self.image.options) + [UPLOADED]
        self.image.value = UPLOADED  # triggers a run when auto_run is on
        if not self.auto_run.value:
            self.run()

    def run(self) -> CarResult | None:
        """Segment the picture with the current settings and draw the last step."""
        try:
            words = validate_queries(parse_queries(self.queries.value))
        except ValueError as error:
            self.status.value = f"<b>{error}</b>"
            return None
        if not self.prompts.value:
            self.status.value = "<b>choose at least one prompt kind</b>"
            return None
        options = {
            "mask_threshold": self.eta.value,
            "confidence_threshold": self.theta.value,
            "clipes_threshold": self.lam.value,
            "prompt_kinds": tuple(self.prompts.value),
            "post": self.post.value,
            "center_cam_features": self.centred_cam.value,
        }
        if self.post.value == "sam":
            options["sam_source"] = self._sam()
        car = self.session.car(**options)
        self._segmented = self.picture
        self.result = car.segment(self._segmented, words)
        steps = self.result.num_steps
        kept = ", ".join(self.result.kept_queries) or "nothing"
        self.status.value = f"{steps} step{'s' if steps > 1 else ''}; kept: {kept}"
        self._quiet = True
        try:
            self.step.max = steps
            self.step.value = steps
        finally:
            self._quiet = False
        self.draw()
        return self.result

    def draw(self) -> None:
        """Redraw the figure for the step slider's step."""
        if self.result is None:
            return
        assert self._segmented is not None  # set with self.result
        self.figure = figure = explorer_figure(self._segmented, self.result, self.step.value, self.theta.value)
        # Set the Output widget's content directly rather than display() inside it: the
        # picture then lands in the widget only, whether or not a front end is listening.
        png = base64.b64encode(figure_png(figure)).decode("ascii")
        self.output.outputs = (
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"image/png": png, "text/plain": repr(self.figure)},
            },
        )


def explorer_figure(picture: np.ndarray, result: CarResult, step: int, theta: float):
    """What the explorer draws for ``step`` of ``result``: the final segmentation and that step's proposals.

    Arguments:
        picture: the segmented picture (H x W x 3 uint8).
        result: CaR's result on it.
        step: 1-based step of the recurrence.
        theta: θ, written in the caption.
    """
    return step_figure(picture, result, step, threshold=theta, panel=3.0)


def answer_table(result: CarResult, scene) -> str:
    """Markdown: each word of ``result`` against the ground truth of ``scene``, the answer the explorer shows.

    One row per query: whether its class is in the picture, CaR's verdict (and whether it is right), and the
    IoU of the pixels the label map gives the word with the word's true pixels (a wrongly kept word scores
    0 wherever it is painted; a word neither kept nor present has nothing to measure).

    Arguments:
        result: CaR's result on the scene's picture.
        scene: the :class:`carlib.world.scene.Scene` behind the picture (its ground truth).
    """
    from carlib.evaluation.metrics import iou

    present = set(scene.class_names_present)
    rows = ["| word | in the picture | CaR | IoU of its pixels with the truth |", "|---|---|---|---|"]
    for label, (word, kept) in enumerate(zip(result.queries, result.kept, strict=True), start=1):
        there = word in present
        verdict = ("kept" if kept else "dropped") + ("" if bool(kept) == there else " (wrong)")
        painted = result.label_map == label
        truth = scene.class_mask(word) if there else np.zeros_like(painted)
        measured = f"{iou(painted, truth):.2f}" if (kept or there) else "–"
        if kept and not there:
            measured += f" ({painted.mean():.0%} of the picture painted)"
        rows.append(f"| {word} | {'yes' if there else 'no'} | {verdict} | {measured} |")
    return "\n".join(rows)
