"""Writing files so that readers never see half of one, and reading the text files users give.

Every output is written by :func:`atomic_write` (or :func:`atomic_directory`
for a folder): a failure, a full disk or an interrupt leaves the old file or
nothing, never half of one. An :class:`OSError` while writing comes out as a
:class:`WriteError` that names the file the user asked for (not the hidden
temporary) and the reason, which the command line prints as one line.
"""

from __future__ import annotations

import codecs
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class WriteError(OSError):
    """An output could not be written: ``str()`` is ``"cannot write PATH: REASON"``.

    An :class:`OSError` (``errno``, ``strerror`` and ``filename`` are the
    failure's, ``filename`` being the output's final path), so code that
    catches ``OSError`` still does.
    """

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


def write_error(path: str | os.PathLike, error: OSError) -> WriteError:
    """``error``, raised while writing ``path``, as a :class:`WriteError` naming ``path``."""
    reason = error.strerror or str(error) or type(error).__name__
    return WriteError(error.errno if error.errno is not None else errno.EIO, reason, str(path))


def _about_target(error: OSError, *temporaries: str | os.PathLike) -> bool:
    # A writer's OSError is about the output unless it names some other file (one it was reading).
    if error.filename is None:
        return True
    named = os.path.abspath(os.fsdecode(error.filename))
    return any(named == os.path.abspath(t) or named.startswith(os.path.abspath(t) + os.sep) for t in temporaries)


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
    is removed if ``write`` fails or is interrupted.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        WriteError: an :class:`OSError` while writing (no space, read-only file
            system, permission), naming ``path``. Writers that report a full
            disk otherwise (``torch.save`` raises RuntimeError) should
            serialise to bytes and use :func:`atomic_write_bytes`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".", suffix=path.suffix, dir=path.parent)
    except OSError as error:
        raise write_error(path, error) from error
    try:
        os.close(handle)
        write(temporary)
        os.chmod(temporary, _default_mode())
        os.replace(temporary, path)
    except OSError as error:
        if not _about_target(error, temporary, path):
            raise
        raise write_error(path, error) from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` atomically, as UTF-8 (see :func:`atomic_write`)."""
    return atomic_write(lambda target: Path(target).write_text(text, encoding="utf-8"), path)


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(lambda target: Path(target).write_bytes(data), path)


@contextmanager
def atomic_directory(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``out`` only if the block succeeds.

    Arguments:
        out: the final folder.
        overwrite: replace an existing non-empty ``out``; otherwise refuse.

    Raises:
        ValueError: ``out`` exists, is not empty, and ``overwrite`` is False.
        WriteError: an :class:`OSError` while writing into the folder or moving
            it into place, naming the file as it would have been under ``out``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ValueError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as error:
        raise write_error(out, error) from error
    try:
        with staged_writes(staging, out):
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


@contextmanager
def staged_writes(staging: str | os.PathLike, out: str | os.PathLike) -> Iterator[None]:
    """Report write failures in a staging folder under the names the files were going to have.

    Inside the block, an :class:`OSError` about a file under ``staging``
    (or about no file, as a full disk's) becomes a :class:`WriteError` naming
    that file under ``out`` instead; errors about other files pass unchanged.
    """
    try:
        yield
    except OSError as error:
        if not _about_target(error, staging, out):
            raise
        raise write_error(_final_name(error.filename, Path(staging), Path(out)), error) from error


def _final_name(filename: str | bytes | os.PathLike | None, staging: Path, out: Path) -> Path:
    # A file written inside the staging folder is reported where it was going to be.
    if filename is None:
        return out
    named = Path(os.path.abspath(os.fsdecode(filename)))
    try:
        return out / named.relative_to(os.path.abspath(staging))
    except ValueError:
        return out


# --- reading the text files users give (queries, class names) ---------------------------------------------------

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip file"),
    (b"\x80\x02", "a pickle"),
    (b"\x7fELF", "a program"),
)


def read_text_file(path: str | os.PathLike, what: str = "text file") -> str:
    """The text of a file a user gives (queries, class names), with its line ends as written.

    UTF-8 with or without a byte-order mark (Windows editors write one) and
    UTF-16 with its byte-order mark (Windows PowerShell's ``>``) are read; the
    mark is dropped. ``str.splitlines`` then splits CRLF, CR and LF alike.

    Arguments:
        path: the file (the caller checks that it exists, with its own message).
        what: how the error messages call it, e.g. ``"--queries-file"``.

    Raises:
        ValueError: a binary file (a NUL byte, or a known signature such as
            PNG's) or text in another encoding; one line naming the file and
            what to give instead.
    """
    with open(path, "rb") as stream:
        raw = stream.read(1 << 13)
        kind = next((name for signature, name in _SIGNATURES if raw.startswith(signature)), None)
        if kind is None:  # a photo given by mistake is refused before all of it is read
            raw += stream.read()
    if kind is None and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass  # a binary file that happens to start like UTF-16: reported below
    if kind is not None or b"\x00" in raw:
        raise ValueError(f"{what} {path} is {kind or 'a binary file'}, not text; give a UTF-8 text file")
    mark = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[mark:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = mark + error.start
        raise ValueError(
            f"{what} {path} is not UTF-8 text (byte 0x{raw[offset]:02x} at offset {offset}); save it as UTF-8"
        ) from None


def read_text_lines(path: str | os.PathLike, what: str = "text file") -> list[str]:
    """The lines of :func:`read_text_file`, without their line ends (CRLF, CR or LF)."""
    return read_text_file(path, what).splitlines()
