"""``carlib gallery``: execute every tutorial notebook and publish them as HTML (the main job).

``make demo`` runs ``carlib gallery --out outputs``: each notebook in
``notebooks/`` is executed with papermill (with ``model`` set as asked) into
``outputs/NAME.ipynb``, rendered to ``outputs/NAME.html`` with nbconvert, and
``outputs/index.html`` links them with their titles, timings and status.
A notebook that fails is reported (its partial HTML still shows where) and
the command exits non-zero after the others have run.

The pages typeset their LaTeX with MathJax 2.7 from ``outputs/mathjax/``, a
small copy of what they use from the ``jupyter-server-mathjax`` package, so
the gallery shows its maths offline (nbconvert would load MathJax from a CDN).

Kernels talk to papermill over IPC (Unix sockets in a private temporary folder),
not TCP: ipykernel warns about unencrypted TCP on every start, which a newcomer
would read once per notebook, and a socket in a 0700 folder is not reachable
from the network anyway.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from carlib.files import atomic_directory, atomic_write, atomic_write_text
from carlib.models import data_dir
from carlib.pipeline import MODEL_CHOICES
from carlib.progress import counted


def notebooks_dir() -> Path:
    """The tutorial's ``notebooks/`` folder (beside ``data/``)."""
    return data_dir().parent / "notebooks"


@dataclass
class NotebookRun:
    """How one notebook's execution went."""

    name: str
    title: str
    seconds: float
    error: str = ""


def _title(path: Path) -> str:
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem


MATHJAX_FOLDER = "mathjax"
#: The files of jupyter-server-mathjax's MathJax 2.7 that the pages load (found by listing
#: ``MathJax.Ajax.loaded`` and ``document.fonts`` in Chromium): 170 files, 1.8 MB of its 596 files, 9.5 MB. The combined
#: config bundles the TeX and MathML input, HTML-CSS output and most extensions; what it fetches on demand
#: is the rest: TeX extensions that macros such as ``\boldsymbol`` autoload, operator tables, HTML-CSS
#: table/menclose code, and the STIX-Web fonts (all of them, as which ones a page needs depends on its glyphs).
MATHJAX_FILES = (
    "LICENSE",
    "MathJax.js",
    "config/TeX-AMS-MML_HTMLorMML-full.js",
    "config/Safe.js",
    "extensions/Safe.js",
    "extensions/MathMenu.js",
    "extensions/MathZoom.js",
    "extensions/a11y/accessibility-menu.js",
    "extensions/TeX/*.js",
    "jax/element/mml/optable/*.js",
    "jax/output/HTML-CSS/autoload/*.js",
    "jax/output/HTML-CSS/fonts/STIX-Web/**/*.js",
    "fonts/HTML-CSS/STIX-Web/woff/*.woff",
)
#: The package ships STIX-Web as its only web font, so HTML-CSS must not look for the default TeX fonts.
MATHJAX_LOCAL_CONFIG = (
    'MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", '
    "imageFont: null}});\n"
    'MathJax.Ajax.loadComplete("[MathJax]/config/local/carlib.js");\n'
)
#: Relative to a page in the gallery folder. ``Safe`` as in nbconvert's default URL: no scripts from markdown maths.
MATHJAX_URL = f"{MATHJAX_FOLDER}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,local/carlib"

#: nbconvert's lab template, less the require.js it loads from a CDN in <head>: only saved widget
#: state and ``application/javascript`` outputs use it, and behind a firewall that drops packets a
#: blocking <script> from the internet holds the page blank until it times out.
_TEMPLATE_WITHOUT_REQUIREJS = (
    "{%- extends 'index.html.j2' -%}\n{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}\n"
)


def mathjax_source() -> Path:
    """The MathJax 2.7 folder that the ``jupyter-server-mathjax`` package ships."""
    try:
        import jupyter_server_mathjax
    except ImportError as missing:
        raise ImportError(
            "the gallery needs the jupyter-server-mathjax package for its maths: "
            "run `make install` or `pip install -e '.[tutorial]'`"
        ) from missing
    return Path(jupyter_server_mathjax.__file__).resolve().parent / "static"


def copy_mathjax(out_dir: Path) -> Path:
    """Copy :data:`MATHJAX_FILES` into ``out_dir/mathjax`` (replacing an older copy); return that folder.

    Written to a temporary folder beside it and renamed, so an interrupted copy leaves no half folder.
    """
    source = mathjax_source()
    files = []
    for pattern in MATHJAX_FILES:
        found = sorted(path for path in source.glob(pattern) if path.is_file())
        if not found:
            raise FileNotFoundError(
                f"{source} has no {pattern}: jupyter-server-mathjax changed its layout; "
                "install the version in requirements.lock"
            )
        files += found
    target = out_dir / MATHJAX_FOLDER
    with atomic_directory(target, overwrite=True) as staging:
        for path in files:
            copy = staging / path.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        (staging / "config" / "local").mkdir(parents=True, exist_ok=True)
        (staging / "config" / "local" / "carlib.js").write_text(MATHJAX_LOCAL_CONFIG)
    return target


def _needs_requirejs(notebook) -> bool:
    return "widgets" in notebook.metadata or any(
        "application/javascript" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def render_html(executed: Path, target: Path, mathjax_url: str = MATHJAX_URL) -> None:
    """Render an executed notebook to a standalone HTML page, its maths typeset by MathJax from ``mathjax_url``.

    The default URL is the gallery's own copy (:func:`copy_mathjax` into the page's folder).
    """
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    notebook = nbformat.read(executed, as_version=4)
    options = (
        {}
        if _needs_requirejs(notebook)
        else {
            "extra_loaders": [DictLoader({"carlib_gallery.html.j2": _TEMPLATE_WITHOUT_REQUIREJS})],
            "template_file": "carlib_gallery.html.j2",
        }
    )
    body, _ = HTMLExporter(mathjax_url=mathjax_url, **options).from_notebook_node(
        notebook, resources={"metadata": {"name": executed.stem}}
    )
    atomic_write_text(body, target)


def ipc_kernel_config(socket_dir: Path):
    """Jupyter config that starts kernels on IPC sockets under ``socket_dir`` instead of TCP ports.

    ``socket_dir`` must be private (``tempfile.mkdtemp`` makes it 0700) and short enough for a Unix
    socket path (about 100 characters with the ``kernel-N`` suffix).
    """
    from traitlets.config import Config

    return Config({"KernelManager": {"transport": "ipc", "ip": str(Path(socket_dir) / "kernel")}})


class _NothingExecuted(Exception):
    """papermill failed before writing the executed notebook."""


def run_notebook(
    source: Path, out_dir: Path, parameters: dict, kernel_name: str = "python3", timeout: int = 600
) -> NotebookRun:
    """Execute one notebook with papermill and render it; never raises for a failing notebook.

    The kernel runs over IPC (:func:`ipc_kernel_config`), its sockets in a private temporary folder.
    """
    import papermill

    executed = out_dir.resolve() / source.name  # absolute: papermill runs the kernel in the notebook's folder
    started = time.perf_counter()
    error = ""

    def execute(target: str) -> None:
        nonlocal error
        try:
            # shutdown_kernel="immediate": the kernel is stopped, not asked to stop, once the notebook is done or
            # interrupted; asked, a kernel interrupted mid-cell prints a traceback of its closed sockets.
            papermill.execute_notebook(
                str(source),
                target,
                parameters=parameters,
                kernel_name=kernel_name,
                progress_bar=False,
                cwd=str(source.parent),
                execution_timeout=timeout,
                shutdown_kernel="immediate",
                config=ipc_kernel_config(Path(private)),
            )
        except Exception as failure:  # papermill raises PapermillExecutionError with the cell's traceback
            error = f"{type(failure).__name__}: {str(failure).strip().splitlines()[-1] if str(failure).strip() else ''}"
            if not os.path.getsize(target):
                raise _NothingExecuted from failure

    # A failed notebook is kept (its page shows where it failed); an interrupted one is not.
    with tempfile.TemporaryDirectory(prefix="carlib-kernel-") as private, contextlib.suppress(_NothingExecuted):
        atomic_write(execute, executed)
    seconds = time.perf_counter() - started
    if executed.exists():
        render_html(executed, executed.with_suffix(".html"))
    return NotebookRun(source.stem, _title(source), seconds, error)


def write_index(out_dir: Path, runs: Sequence[NotebookRun], model: str) -> Path:
    """``index.html`` linking each executed notebook's HTML page."""
    rows = []
    for run in runs:
        status = "ok" if not run.error else f"failed: {html.escape(run.error)}"
        rows.append(
            f'<tr><td><a href="{run.name}.html">{html.escape(run.title)}</a></td>'
            f'<td><a href="{run.name}.ipynb">{run.name}.ipynb</a></td>'
            f"<td>{run.seconds:.1f} s</td><td>{status}</td></tr>"
        )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>carlib tutorial</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td{padding:.3em 1em}</style></head>"
        "<body><h1>carlib: CLIP as RNN, step by step</h1>"
        f"<p>Every notebook executed headless with <code>model = {html.escape(repr(model))}</code>.</p>"
        "<table><tr><th>notebook</th><th>source</th><th>time</th><th>status</th></tr>"
        + "".join(rows)
        + "</table></body></html>\n"
    )
    index = out_dir / "index.html"
    atomic_write_text(page, index)
    return index


def build_gallery(
    out_dir: str | os.PathLike,
    *,
    model: str = "auto",
    notebooks: Sequence[Path] | None = None,
    progress: bool = True,
    kernel_name: str = "python3",
) -> tuple[Path, list[NotebookRun]]:
    """Execute the notebooks into ``out_dir`` and write ``index.html``.

    Arguments:
        out_dir: output folder (created).
        model: the ``model`` parameter passed to every notebook.
        notebooks: which notebooks (default: every ``notebooks/NN_*.ipynb``).
        progress: show a progress bar over notebooks.
        kernel_name: Jupyter kernel (``python3`` is this Python's ipykernel).

    Returns:
        (path of index.html, one :class:`NotebookRun` per notebook).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted(notebooks) if notebooks else sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no notebooks found in {notebooks_dir()}")
    copy_mathjax(out_dir)
    runs = []
    bar = tqdm(sources, desc="notebooks", unit="nb", disable=not progress)
    for source in counted(bar, "notebooks", resumable=False):
        bar.set_postfix_str(source.stem)
        runs.append(run_notebook(source, out_dir, {"model": model}, kernel_name=kernel_name))
        if runs[-1].error:
            tqdm.write(f"{source.name} failed: {runs[-1].error}")
    return write_index(out_dir, runs, model), runs


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``carlib gallery``."""
    parser = commands.add_parser("gallery", help="execute the tutorial notebooks and publish them as HTML")
    parser.add_argument("--out", default="outputs", help="output folder (default: outputs)")
    parser.add_argument(
        "--model",
        default="auto",
        choices=MODEL_CHOICES,
        help="auto: OpenAI CLIP if its weights are present, else the ShapesWorld CLIP",
    )
    parser.add_argument("--notebooks", nargs="*", default=None, help="only these notebook files")
    parser.set_defaults(handler=_gallery_command)


def _gallery_command(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    notebooks = [Path(p) for p in args.notebooks] if args.notebooks else None
    index, runs = build_gallery(args.out, model=args.model, notebooks=notebooks)
    failed = [run.name for run in runs if run.error]
    print(
        f"{len(runs) - len(failed)}/{len(runs)} notebooks ran in {time.perf_counter() - started:.0f} s; "
        f"open {index.resolve()}"
    )
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
