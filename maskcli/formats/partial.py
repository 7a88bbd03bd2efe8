"""Reading some rows of an npy, or of the arrays in an npz, without the rest.

- An npy file is memory-mapped (``np.load(mmap_mode="r")`` after the header
  is checked), and only the chosen rows are copied out.
- An npz is a zip of npy members, each readable on its own. A member stored
  without compression is memory-mapped at its offset in the file; a
  compressed one streams through ``zipfile``, a chunk of rows at a time,
  keeping only the chosen rows.
- An npy on standard input streams the same way, up to the last row wanted.

Nothing is ever unpickled: an array of Python objects is refused from its
header, before any data is read. A Fortran-ordered member cannot be cut into
rows as it streams, so it is read whole (within this machine's memory).
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from maskcli.core.errors import InputError, MaskcliError
from maskcli.core.limits import too_big
from maskcli.formats.zips import member_data_offset

CHUNK_BYTES = 1 << 20  # rows streamed at a time: about this many bytes (zipfile copies reads)
NPZ_FIX = "np.savez or 'maskcli pad -o FILE.npz'"


@dataclass(frozen=True)
class Header:
    """An npy header: ``offset`` is where the array's bytes start."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int

    @property
    def rows(self) -> int | None:
        return self.shape[0] if self.shape else None

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize * math.prod(self.shape[1:])


def read_header(stream, name: str, kind: str = "npy", fix: str = "np.save") -> Header:
    """Read and check the npy header at the start of ``stream``."""
    counting = _Counting(stream)
    try:
        version = np.lib.format.read_magic(counting)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(counting)
        else:  # 2.0 and 3.0 share a layout; 3.0 only allows UTF-8 field names
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(counting)
    except MaskcliError:
        raise
    except Exception as exc:  # numpy raises ValueError, or EOFError when cut short
        raise InputError(f"{name} is not a valid {kind} file ({_reason(exc)}): "
                         f"re-save it with {fix}") from None
    if dtype.hasobject:
        raise InputError(f"{name} holds pickled Python objects, which maskcli never loads: "
                         "save numeric or string arrays instead")
    return Header(tuple(int(n) for n in shape), bool(fortran), dtype, counting.count)


def memmap_rows(path: str, header: Header, rows: np.ndarray, name: str, kind: str = "npy",
                fix: str = "np.save", offset: int = 0) -> np.ndarray:
    """The chosen ``rows`` of the array (of at least one axis) at ``offset +
    header.offset`` in ``path``, memory-mapped: only the pages of those rows
    are read."""
    start = offset + header.offset
    nbytes = header.dtype.itemsize * math.prod(header.shape)
    if os.path.getsize(path) < start + nbytes:
        raise InputError(f"{name} is not a valid {kind} file, it is truncated (its header "
                         f"declares {header.shape} {header.dtype}): re-save it with {fix}")
    if nbytes == 0:
        return np.empty((len(rows),) + header.shape[1:], header.dtype)
    mapped = np.memmap(path, dtype=header.dtype, mode="r", offset=start, shape=header.shape,
                       order="F" if header.fortran else "C")
    try:
        return np.array(mapped[rows])
    finally:
        del mapped


def stream_rows(stream, header: Header, rows: np.ndarray, name: str, kind: str = "npy",
                fix: str = "np.save") -> np.ndarray:
    """The chosen ``rows`` (sorted) of the array whose bytes follow in ``stream``:
    read a chunk of rows at a time, up to the last row wanted."""
    if not header.shape:
        return _whole(stream, header, name, kind, fix)
    if header.fortran:  # a column-major array's rows are not contiguous: read it whole
        return _whole(stream, header, name, kind, fix)[rows]
    tail = header.shape[1:]
    out = np.empty((len(rows),) + tail, header.dtype)
    row_bytes = header.row_bytes
    if row_bytes == 0 or not len(rows):
        return out
    chunk = max(1, CHUNK_BYTES // row_bytes)
    last, start, done = int(rows[-1]) + 1, 0, 0
    while start < last:
        count = min(chunk, last - start)
        data = _read_exact(stream, count * row_bytes, name, kind, fix)
        block = np.frombuffer(data, header.dtype).reshape((count,) + tail)
        upto = int(np.searchsorted(rows, start + count))
        out[done:upto] = block[rows[done:upto] - start]
        done, start = upto, start + count
    return out


def _whole(stream, header: Header, name: str, kind: str, fix: str) -> np.ndarray:
    nbytes = header.dtype.itemsize * math.prod(header.shape)
    over = too_big(nbytes)
    if over:
        raise InputError(f"{name}: its array would take {over}: give a smaller file")
    data = _read_exact(stream, nbytes, name, kind, fix)
    return np.frombuffer(data, header.dtype).reshape(
        header.shape, order="F" if header.fortran else "C").copy()


def _read_exact(stream, nbytes: int, name: str, kind: str, fix: str) -> bytes:
    data = stream.read(nbytes)
    if len(data) < nbytes:
        raise InputError(f"{name} is not a valid {kind} file, it is truncated (its data ends "
                         f"{nbytes - len(data)} bytes early): re-save it with {fix}")
    return data


class NpzMembers:
    """The npy members of an npz file, each read on its own."""

    def __init__(self, path: str, name: str):
        self.path, self.name = path, name
        try:
            self.zip = zipfile.ZipFile(path)
            self.infos = {info.filename[:-4] if info.filename.endswith(".npy")
                          else info.filename: info for info in self.zip.infolist()}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise InputError(f"{name} is not a valid npz file, it may be truncated "
                             f"({_reason(exc)}): re-save it with {NPZ_FIX}") from None

    def __enter__(self) -> NpzMembers:
        return self

    def __exit__(self, *exc) -> None:
        self.zip.close()

    def keys(self) -> list[str]:
        return list(self.infos)

    def header(self, key: str) -> Header:
        with self._open(key) as member:
            return read_header(member, f"{self.name} ('{key}')", "npz", NPZ_FIX)

    def read(self, key: str, rows: np.ndarray | None) -> np.ndarray:
        """Array ``key``: the chosen ``rows`` of it, or all of it for None."""
        info, label = self.infos[key], f"{self.name} ('{key}')"
        try:
            with self._open(key) as member:
                header = read_header(member, label, "npz", NPZ_FIX)
                if rows is None or not header.shape:
                    return _whole(member, header, label, "npz", NPZ_FIX)
                if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1:
                    return memmap_rows(self.path, header, rows, label, "npz", NPZ_FIX,
                                       offset=self._data_offset(info))
                return stream_rows(member, header, rows, label, "npz", NPZ_FIX)
        except MaskcliError:
            raise
        except Exception as exc:  # a damaged member raises zlib, zipfile or OS errors
            raise InputError(f"{label} is not a valid npz member, it may be truncated "
                             f"({_reason(exc)}): re-save it with {NPZ_FIX}") from None

    def _open(self, key: str):
        try:
            return self.zip.open(self.infos[key])
        except Exception as exc:  # encrypted, unsupported compression, damaged
            raise InputError(f"{self.name} ('{key}') cannot be read from the zip "
                             f"({_reason(exc)}): re-save it with {NPZ_FIX}") from None

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        """Where a stored member's bytes start: after its local file header."""
        with open(self.path, "rb") as handle:
            start = member_data_offset(handle, info)
        if start is None:
            raise InputError(f"{self.name} is not a valid npz file (a damaged zip entry for "
                             f"'{info.filename}'): re-save it with {NPZ_FIX}")
        return start


class _Counting:
    """A stream that counts the bytes read from it (the npy header's length)."""

    def __init__(self, stream):
        self.stream, self.count = stream, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        return data


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__
