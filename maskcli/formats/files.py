"""Opening inputs and writing outputs safely.

Inputs: a path or ``-`` for standard input, read as bytes.
Outputs: written to a temporary file in the destination folder and renamed
into place only on success, so an error or Ctrl-C never leaves half a file,
and never written over the command's own input.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from maskcli.core.errors import InputError, UsageError

STDIN = "-"


@dataclass
class Source:
    """An opened input: ``name`` is what messages call it."""

    name: str
    stream: BinaryIO  # its read errors are InputErrors naming the input
    path: Path | None  # None for standard input
    size: int | None  # bytes, when known (regular files only)


@contextlib.contextmanager
def open_source(path: str | os.PathLike = STDIN) -> Iterator[Source]:
    """Open ``path`` (or standard input for ``-``) for binary reading.

    Raises InputError for a missing file, a directory or an unreadable file.
    """
    path = os.fspath(path)
    if path == STDIN:
        yield Source("<stdin>", _Reader(sys.stdin.buffer, "<stdin>"), None, None)
        return
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{path} is a directory: give a file, or '-' to read standard input")
    try:
        stream = open(p, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file: check the path") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied: make the file readable (chmod +r)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror}): give a regular file, "
                         "or '-' to read standard input") from None
    with stream:
        size = os.fstat(stream.fileno()).st_size if p.is_file() else None
        yield Source(path, _Reader(stream, path), p, size)


class _Reader:
    """An input stream whose read errors (EIO from a failing disk, a special
    file that opens but cannot be read) become an InputError naming the input."""

    def __init__(self, stream: BinaryIO, name: str):
        self._stream, self._name = stream, name

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except OSError as exc:
            raise InputError(f"{self._name}: reading failed ({exc.strerror or exc}): "
                             "check the file and the disk it is on") from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def refuse_overwrite(output: str | os.PathLike, *inputs: str | os.PathLike | None,
                     option: str = "-o") -> None:
    """Raise UsageError if ``output`` (given as ``option``) is the same file as one of ``inputs``."""
    out = Path(output)
    if not out.exists():
        return
    for inp in inputs:
        if inp is None or os.fspath(inp) == STDIN:
            continue
        with contextlib.suppress(OSError):
            if out.samefile(inp):
                raise UsageError(
                    f"{option} {output} is the input file itself: write to another path")


def check_destination(path: str | os.PathLike, option: str = "-o") -> Path:
    """Refuse, before any work, a ``path`` (given as ``option``) that cannot be
    written: a directory, or a file in a folder that does not exist. Return its folder."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"{option} {path} is a directory: give a file name")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist: create it first")
    return folder


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, option: str = "-o") -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` only if the block succeeds.

    The temporary file lives in the same folder (so the rename is atomic) and
    is removed on any exception, KeyboardInterrupt included. ``option`` names
    the path in messages.
    """
    target = Path(path)
    folder = check_destination(path, option)
    tmp = None
    try:
        with _interrupts_held():
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part",
                                           dir=folder)
            except PermissionError:
                raise UsageError(f"{option} {path}: cannot write in {folder}: permission "
                                 "denied") from None
            handle = os.fdopen(fd, "wb")
        with handle:
            yield handle
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; match a normal file
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        # Reads raise InputError (see _Reader), so an OSError here is a failed
        # write: a full disk, a quota, a file size limit, a failing device.
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            raise UsageError(f"{option} {path}: writing failed ({exc.strerror or exc}): "
                             "free some space, or write elsewhere") from None
        raise


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT), SIGTERM or SIGHUP that arrives during the block
    until its end.

    Python raises KeyboardInterrupt (and the CLI its SIGTERM/SIGHUP exception)
    between any two statements: one raised after the temporary file is created
    but before its name is known here would leave the file behind.
    """
    held = []
    previous = {}
    try:
        for signum in _HELD:
            previous[signum] = signal.signal(signum, lambda signum, frame: held.append(signum))
    except ValueError:  # not the main thread, which alone receives signals
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)  # now, to the usual handler


_HELD = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
         if hasattr(signal, name)]


def current_umask() -> int:
    """The process's umask (os.umask can only read it by setting it: set back at once)."""
    current = os.umask(0)
    os.umask(current)
    return current
