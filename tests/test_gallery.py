"""The gallery's pages load MathJax from the gallery's own copy, not from a CDN (no browser, no kernel).

``test_browser.py`` checks in Chromium that the maths is actually typeset; these tests check the
files and URLs that makes it possible, quickly.
"""

from __future__ import annotations

import filecmp
import html
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest

from carlib.apps import gallery

MATHS = r"A step keeps word $i$ when $$P_t[i, i] > \theta.$$"


class _Scripts(HTMLParser):
    """The ``src`` of every ``<script>`` in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script" and dict(attrs).get("src") is not None:
            self.sources.append(dict(attrs)["src"])


def _script_sources(page: Path) -> list[str]:
    parser = _Scripts()
    parser.feed(page.read_text())
    return parser.sources


def _notebook(path: Path, **metadata) -> Path:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Maths\n\n{MATHS}")])
    notebook.metadata.update(metadata)
    nbformat.write(notebook, path)
    return path


def test_pages_load_mathjax_and_its_configs_from_the_copy_beside_them(tmp_path):
    copy = gallery.copy_mathjax(tmp_path)
    page = tmp_path / "maths.html"
    gallery.render_html(_notebook(tmp_path / "maths.ipynb"), page)

    sources = _script_sources(page)
    remote = [source for source in sources if urlsplit(source).scheme or source.startswith("//")]
    assert not remote, f"a page without widgets loads scripts from the internet: {remote}"
    loaders = [urlsplit(source) for source in sources if urlsplit(source).path.endswith("MathJax.js")]
    assert len(loaders) == 1, sources
    assert (page.parent / loaders[0].path).resolve() == (copy / "MathJax.js").resolve()
    # MathJax 2 loads each name in ?config= from [MathJax]/config/NAME.js
    configs = parse_qs(loaders[0].query)["config"][0].split(",")
    assert configs and all((copy / "config" / f"{name}.js").is_file() for name in configs), configs
    display_maths = html.escape(f"$${MATHS.split('$$')[1]}$$", quote=False)
    assert display_maths in page.read_text(), "the maths must reach the page as TeX for MathJax"


def test_the_copy_is_a_small_exact_subset_with_a_web_font_for_every_font_table(tmp_path):
    source = gallery.mathjax_source()
    copy = gallery.copy_mathjax(tmp_path)
    copied = [path for path in copy.rglob("*") if path.is_file()]
    ours = copy / "config" / "local" / "carlib.js"
    assert ours in copied
    for path in copied:
        if path != ours:
            assert filecmp.cmp(path, source / path.relative_to(copy), shallow=False), path
    whole = sum(path.stat().st_size for path in source.rglob("*") if path.is_file())
    assert sum(path.stat().st_size for path in copied) < whole / 4
    # HTML-CSS draws a glyph of STIX-Web/FAMILY/STYLE/*.js with the web font STIXMathJax_FAMILY-STYLE
    tables = sorted(folder.relative_to(copy / "jax/output/HTML-CSS/fonts/STIX-Web")
                    for folder in (copy / "jax/output/HTML-CSS/fonts/STIX-Web").glob("*/*") if folder.is_dir())
    assert tables
    missing = [table for table in tables
               if not (copy / "fonts/HTML-CSS/STIX-Web/woff" / f"STIXMathJax_{table.parts[0]}-{table.parts[1]}.woff")
               .is_file()]
    assert not missing, missing


def test_a_new_copy_replaces_the_old_one_and_a_failed_copy_leaves_the_old_one(tmp_path, monkeypatch):
    stale = tmp_path / "mathjax" / "stale.js"
    stale.parent.mkdir()
    stale.write_text("old")
    gallery.copy_mathjax(tmp_path)
    assert not stale.exists() and (tmp_path / "mathjax" / "MathJax.js").is_file()

    calls, real_copy = [], shutil.copyfile

    def copy_then_fail(source, target):
        calls.append(source)
        if len(calls) > 3:
            raise OSError("disk full")
        return real_copy(source, target)

    monkeypatch.setattr(gallery.shutil, "copyfile", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        gallery.copy_mathjax(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mathjax"], "staging folder left behind"
    assert (tmp_path / "mathjax" / "jax").is_dir(), "the finished copy was removed by a failed one"


def test_require_js_is_kept_only_for_saved_widgets(tmp_path):
    gallery.render_html(_notebook(tmp_path / "widgets.ipynb", widgets={"application/vnd.jupyter.widget-state+json": {
        "state": {}, "version_major": 2, "version_minor": 0}}), tmp_path / "widgets.html")
    assert any("require" in source for source in _script_sources(tmp_path / "widgets.html"))
    gallery.render_html(_notebook(tmp_path / "plain.ipynb"), tmp_path / "plain.html")
    assert not any("require" in source for source in _script_sources(tmp_path / "plain.html"))


def test_without_the_mathjax_package_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jupyter_server_mathjax", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"jupyter-server-mathjax.*make install"):
        gallery.copy_mathjax(tmp_path)
    assert not list(tmp_path.iterdir())


def test_kernels_run_over_ipc_so_no_tcp_warning_is_printed(tmp_path, capfd, monkeypatch):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_markdown_cell("# 97 · Quiet"),
                      nbformat.v4.new_code_cell("model = 'auto'", metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell("print('ran with', model)")]
    source = tmp_path / "97_quiet.ipynb"
    nbformat.write(notebook, source)

    def build(out):
        _, runs = gallery.build_gallery(out, model="shapes", notebooks=[source], progress=False)
        assert [run.error for run in runs] == [""]
        executed = nbformat.read(out / source.name, as_version=4)
        printed = [output.get("text", "") for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs]
        assert "ran with shapes\n" in printed
        captured = capfd.readouterr()
        return captured.out + captured.err

    assert "without encryption" not in build(tmp_path / "ipc")
    # the check can fail: the same run over TCP (jupyter's default) prints ipykernel's warning
    from traitlets.config import Config

    monkeypatch.setattr(gallery, "ipc_kernel_config", lambda directory: Config())
    assert "without encryption" in build(tmp_path / "tcp")
