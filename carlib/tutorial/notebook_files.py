"""Keep the tutorial notebooks clean: stripped metadata, small outputs, a parameters cell.

``python -m carlib.tutorial.notebook_files refresh notebooks/*.ipynb`` re-executes
notebooks in place (after a change to the library or the shipped model) and
cleans them; ``clean`` strips what
executing a notebook adds (papermill and widget metadata, timing metadata,
output metadata) and renumbers execution counts 1..n; ``check`` lists what is wrong and exits non-zero, and the
test suite runs the same check on every committed notebook.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

from carlib.files import atomic_write, atomic_write_text

MAX_NOTEBOOK_BYTES = 2_000_000
MAX_TOTAL_BYTES = 10_000_000
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info")
KEPT_CELL_METADATA = ("tags",)
KEPT_LANGUAGE_INFO = ("name",)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STRIPPED_WIDGET_ID = "widget-state-not-stored"


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip volatile metadata in place (outputs are kept: nbval compares them) and return the notebook."""
    notebook.metadata = nbformat.NotebookNode(
        {key: notebook.metadata[key] for key in KEPT_NOTEBOOK_METADATA if key in notebook.metadata}
    )
    if "language_info" in notebook.metadata:
        info = notebook.metadata["language_info"]
        notebook.metadata["language_info"] = nbformat.NotebookNode(
            {key: info[key] for key in KEPT_LANGUAGE_INFO if key in info}
        )
    count = 0
    for cell in notebook.cells:
        cell.metadata = nbformat.NotebookNode(
            {key: cell.metadata[key] for key in KEPT_CELL_METADATA if key in cell.metadata}
        )
        if cell.cell_type == "code":
            # nbval treats a cell without a count as never run, so counts are
            # normalised to 1..n (what a top-to-bottom run gives) instead of removed.
            count += 1
            cell.execution_count = count
            for output in cell.get("outputs", []):
                if "execution_count" in output:
                    output["execution_count"] = count
                if output.get("output_type") in ("display_data", "execute_result"):
                    output["metadata"] = nbformat.NotebookNode()  # widget state and image sizes
                view = output.get("data", {}).get(WIDGET_VIEW)
                if view is not None:
                    view["model_id"] = STRIPPED_WIDGET_ID  # random per run; its state is not stored anyway
    return notebook


def problems(path: str | os.PathLike) -> list[str]:
    """What is wrong with one committed notebook (empty when it is clean)."""
    path = Path(path)
    found: list[str] = []
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        found.append(
            f"{path.name}: {size / 1e6:.1f} MB, more than {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB "
            "(draw figures at carlib.tutorial.figures.NOTEBOOK_DPI)"
        )
    notebook = nbformat.read(path, as_version=4)
    extra = set(notebook.metadata) - set(KEPT_NOTEBOOK_METADATA)
    if extra:
        found.append(f"{path.name}: notebook metadata {sorted(extra)} should be stripped")
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    if len(tagged) != 1 or tagged[0].cell_type != "code":
        found.append(f"{path.name}: needs exactly one code cell tagged 'parameters' (found {len(tagged)})")
    count = 0
    for number, cell in enumerate(notebook.cells):
        extra = set(cell.metadata) - set(KEPT_CELL_METADATA)
        if extra:
            found.append(f"{path.name} cell {number}: metadata {sorted(extra)} should be stripped")
        if cell.cell_type != "code":
            continue
        count += 1
        if cell.execution_count != count:
            found.append(
                f"{path.name} cell {number}: execution count {cell.execution_count} should be {count} "
                "(run it top to bottom, or `python -m carlib.tutorial.notebook_files clean`)"
            )
        for output in cell.outputs:
            if output.get("output_type") == "error":
                found.append(f"{path.name} cell {number}: stored output is an error")
            if WIDGET_VIEW in output.get("data", {}) and output.get("metadata"):
                found.append(f"{path.name} cell {number}: widget output metadata should be stripped")
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is not None and view.get("model_id") != STRIPPED_WIDGET_ID:
                found.append(f"{path.name} cell {number}: widget model id should be stripped")
    if not any(cell.cell_type == "code" and cell.outputs for cell in notebook.cells):
        found.append(f"{path.name}: no stored outputs; execute it (nbval compares against them)")
    return found


def clean_file(path: str | os.PathLike) -> bool:
    """Clean one notebook file atomically; True when it changed."""
    path = Path(path)
    before = path.read_text()
    notebook = clean(nbformat.reads(before, as_version=4))
    after = json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if after == before:
        return False
    atomic_write_text(after, path)
    return True


def refresh(path: str | os.PathLike, kernel_name: str = "python3") -> None:
    """Execute a notebook in place with its default parameters (papermill), then :func:`clean` it."""
    import tempfile

    import papermill

    from carlib.apps.gallery import ipc_kernel_config

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="carlib-kernel-") as sockets:  # IPC, as the gallery runs kernels
        atomic_write(
            lambda target: papermill.execute_notebook(
                str(path),
                target,
                kernel_name=kernel_name,
                progress_bar=False,
                cwd=str(path.parent),
                config=ipc_kernel_config(Path(sockets)),
            ),
            path,
        )
    clean_file(path)


def main(argv: Sequence[str] | None = None) -> int:
    """``clean`` or ``check`` the given notebooks."""
    parser = argparse.ArgumentParser(
        prog="python -m carlib.tutorial.notebook_files", description=__doc__.splitlines()[0]
    )
    parser.add_argument("action", choices=("refresh", "clean", "check"))
    parser.add_argument("notebooks", nargs="+")
    args = parser.parse_args(argv)
    if args.action == "refresh":
        for path in args.notebooks:
            print(f"executing {path}", flush=True)
            refresh(path)
        return 0
    if args.action == "clean":
        for path in args.notebooks:
            if clean_file(path):
                print(f"cleaned {path}")
        return 0
    found = [problem for path in args.notebooks for problem in problems(path)]
    total = sum(Path(path).stat().st_size for path in args.notebooks)
    if total > MAX_TOTAL_BYTES:
        found.append(f"the notebooks total {total / 1e6:.1f} MB, more than {MAX_TOTAL_BYTES / 1e6:.0f} MB")
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
