"""``carlib documented``: the held-out figures the tutorial notebooks print beside their live samples."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``carlib documented refresh|show``."""
    parser = commands.add_parser(
        "documented",
        help="refresh or show the notebooks' documented figures "
        "(data/documented_figures/, 200 held-out ShapesWorld scenes)",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    refresh = actions.add_parser("refresh", help="measure and store the figures (after changing the model or library)")
    refresh.add_argument("notebooks", nargs="*", help="notebook stems, e.g. 04_recurrence (default: all)")
    refresh.add_argument("--n", type=int, default=None, help="test scenes (default 200)")
    refresh.add_argument("--seed", type=int, default=None, help="base seed of the scenes (default 0)")
    refresh.add_argument(
        "--directory", type=Path, default=None, help="where to write the files (default data/documented_figures)"
    )
    refresh.set_defaults(handler=_refresh)
    show = actions.add_parser("show", help="print the stored figures")
    show.add_argument("notebooks", nargs="*", help="notebook stems (default: all)")
    show.add_argument(
        "--directory", type=Path, default=None, help="where the files are (default data/documented_figures)"
    )
    show.set_defaults(handler=_show)


def _chosen(names: list[str]) -> list[str]:
    from carlib.tutorial.documented import modules

    known = list(modules())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"no documented figures are defined for {unknown}; known: {known}")
    return names or known


def _refresh(args: argparse.Namespace) -> int:
    from carlib.progress import counted
    from carlib.tutorial.documented import DOCUMENTED_SCENES, DOCUMENTED_SEED, refresh

    n = DOCUMENTED_SCENES if args.n is None else args.n
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    notebooks = _chosen(args.notebooks)
    import torch

    # As in the notebooks (tutorial.setup): one thread is faster for the small CLIP's tiny matrices on a
    # shared machine, and the figures of a notebook's live sample then match the first scenes measured here.
    torch.set_num_threads(1)
    for notebook in counted(notebooks, "notebooks", resumable=False):
        path = refresh(notebook, n=n, seed=DOCUMENTED_SEED if args.seed is None else args.seed, out_dir=args.directory)
        print(f"wrote {path}", flush=True)
    return 0


def _show(args: argparse.Namespace) -> int:
    from carlib.tutorial.documented import documented, model_folders, shapes_model_digest

    for notebook in _chosen(args.notebooks):
        shipped = shapes_model_digest(model_folders(notebook))
        stored = documented(notebook, check_model=False, directory=args.directory)
        print(f"{notebook}: {stored.source}")
        if stored.model_digest != shipped:
            print(
                f"  STALE: measured with other ShapesWorld weights (digest {stored.model_digest}, shipped "
                f"{shipped}); run `carlib documented refresh {notebook}`"
            )
        for name, figure in stored.figures.items():
            print(f"  {name:<36} {figure.value:8.4f}  {figure.what}")
    return 0
