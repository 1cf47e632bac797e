"""The tutorial notebooks: committed clean, parameterised, and runnable with other parameters.

nbval (in `make test`) checks that the stored outputs reproduce; these tests
check the files themselves, two notebooks run through papermill with
non-default parameters, and the HTML gallery of `make demo`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from carlib.apps.gallery import build_gallery
from carlib.tutorial.notebook_files import MAX_TOTAL_BYTES, clean, problems

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = ["00_quickstart", "01_gradcam_on_clip", "02_clip_es_affinity", "03_visual_prompts", "04_recurrence",
            "05_background_words", "06_post_processing", "07_reproduce_tables", "08_explorer", "09_other_vlms"]


def _notebooks():
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_the_series_is_complete():
    assert [path.stem for path in _notebooks()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_notebook_is_clean(name):
    assert problems(NOTEBOOKS / f"{name}.ipynb") == []


@pytest.mark.parametrize("name", EXPECTED)
def test_stored_figures_fit_a_notebook_column(name):
    """Every stored figure is at most 1100 px wide, so a notebook column (about 900 px) shows it at 80 % or more."""
    import base64
    from io import BytesIO

    from PIL import Image

    from carlib.tutorial.figures import MAX_WIDTH, NOTEBOOK_DPI

    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    widths = [Image.open(BytesIO(base64.b64decode(output["data"]["image/png"]))).size[0]
              for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
              if "image/png" in output.get("data", {})]
    too_wide = [width for width in widths if width > MAX_WIDTH * NOTEBOOK_DPI]
    assert not too_wide, f"{name}: figures {too_wide} px wide, more than {MAX_WIDTH * NOTEBOOK_DPI:.0f}"


def test_notebooks_together_are_small():
    assert sum(path.stat().st_size for path in _notebooks()) <= MAX_TOTAL_BYTES


def test_the_check_catches_an_unclean_notebook(tmp_path):
    notebook = nbformat.read(NOTEBOOKS / "00_quickstart.ipynb", as_version=4)
    notebook.metadata["papermill"] = {"duration": 1.5}
    notebook.cells[1].metadata["tags"] = []
    notebook.cells[2].execution_count = 17
    dirty = tmp_path / "dirty.ipynb"
    nbformat.write(notebook, dirty)
    found = "\n".join(problems(dirty))
    assert "papermill" in found and "parameters" in found and "execution count 17" in found
    explorer = nbformat.read(NOTEBOOKS / "08_explorer.ipynb", as_version=4)
    view = "application/vnd.jupyter.widget-view+json"
    widget_cell = next(c for c in explorer.cells if c.cell_type == "code" and any(view in o.get("data", {})
                                                                                  for o in c.outputs))
    for output in widget_cell.outputs:
        if view in output.get("data", {}):
            output["data"][view]["model_id"] = "650a76adedf440a0bd1ba91ef263e6c1"  # what a fresh run stores
    notebook.cells.append(widget_cell)
    nbformat.write(notebook, dirty)
    assert "widget model id" in "\n".join(problems(dirty))
    nbformat.write(clean(notebook), dirty)
    cleaned = "\n".join(problems(dirty))
    assert "papermill" not in cleaned and "widget model id" not in cleaned


def _run(name: str, tmp_path: Path, parameters: dict) -> str:
    import papermill

    source = tmp_path / f"{name}.ipynb"
    shutil.copy(NOTEBOOKS / f"{name}.ipynb", source)
    executed = tmp_path / f"{name}.out.ipynb"
    papermill.execute_notebook(str(source), str(executed), parameters=parameters, kernel_name="python3",
                               progress_bar=False, cwd=str(NOTEBOOKS))
    notebook = json.loads(executed.read_text())
    return "".join("".join(o.get("text", "")) for c in notebook["cells"] if c["cell_type"] == "code"
                   for o in c["outputs"] if o.get("output_type") == "stream")


def test_gradcam_notebook_runs_with_other_words_and_picture(tmp_path):
    text = _run("01_gradcam_on_clip", tmp_path, {"model": "shapes", "queries": "lemon, tent, dice",
                                                 "image": "shapes_2_lemon_starfish_tent.png"})
    named = re.findall(r"^(\w+): raw CAM max \d+\.\d\d$", text, flags=re.M)
    assert named[:3] == ["lemon", "tent", "dice"]
    assert "orange: raw CAM max" not in text


@pytest.mark.slow
def test_recurrence_notebook_runs_with_another_threshold(tmp_path):
    text = _run("04_recurrence", tmp_path, {"model": "shapes", "confidence_threshold": 0.9})
    assert "θ = 0.90" in text
    verdicts = re.findall(r"^(\w+): (kept|dropped) at score (\d\.\d\d)$", text, flags=re.M)
    assert verdicts, text
    kept = [float(score) for _, verdict, score in verdicts if verdict == "kept"]
    assert kept and (all(score >= 0.9 for score in kept) or len(kept) == 1)


def test_gallery_executes_and_links_notebooks(tmp_path):
    index, runs = build_gallery(tmp_path / "out", model="shapes", notebooks=[NOTEBOOKS / "00_quickstart.ipynb"],
                                progress=False)
    assert [run.error for run in runs] == [""]
    page = index.read_text()
    assert 'href="00_quickstart.html"' in page and "Quick start" in page
    assert (tmp_path / "out" / "00_quickstart.html").stat().st_size > 10_000
    executed = nbformat.read(tmp_path / "out" / "00_quickstart.ipynb", as_version=4)
    assert any("image/png" in o.get("data", {}) for c in executed.cells if c.cell_type == "code" for o in c.outputs)


def test_gallery_reports_a_failing_notebook_and_still_writes_the_index(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_markdown_cell("# 99 · Broken on purpose"),
                      nbformat.v4.new_code_cell("model = 'auto'", metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell("raise RuntimeError('this cell fails')")]
    source = tmp_path / "99_broken.ipynb"
    nbformat.write(notebook, source)
    index, runs = build_gallery(tmp_path / "out", notebooks=[source], progress=False)
    assert "this cell fails" in runs[0].error
    page = index.read_text()
    assert "failed" in page and 'href="99_broken.html"' in page
    assert (tmp_path / "out" / "99_broken.html").exists(), "the partial notebook is still published"
