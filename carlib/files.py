"""Writing files so that readers never see half of one."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def _default_mode() -> int:
    # What a plain open() would create under the current umask (mkstemp gives 0600).
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(write: Callable[[str], object], path: str | os.PathLike) -> Path:
    """Call ``write(temporary_path)`` then rename it onto ``path``: readers never see a partial file.

    The temporary file is hidden (``.`` prefix), sits in ``path``'s folder (so
    the rename is atomic) and keeps ``path``'s suffix (for writers that choose
    a format by it); it gets the permissions a plain ``open`` would give, and
    is removed if ``write`` fails.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, _default_mode())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(lambda target: Path(target).write_text(text), path)


@contextmanager
def atomic_directory(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``out`` only if the block succeeds.

    Arguments:
        out: the final folder.
        overwrite: replace an existing non-empty ``out``; otherwise refuse.

    Raises:
        ValueError: ``out`` exists, is not empty, and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ValueError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield staging
        os.chmod(staging, 0o755)
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / "old")
            os.replace(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
