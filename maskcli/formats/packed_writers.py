"""Writing packed rows: npz, one npy per array, jsonl or Parquet.

Each window of packed rows arrives as a dict of arrays (see
:mod:`maskcli.core.packed_layout`), the same names every time.

- ``jsonl``: one object per packed row, streamed as windows arrive.
- ``npz``: one array per name plus ``meta`` (a 0-d JSON string), kept until
  the end, then written in one pass (stored, not compressed).
- ``npy``: a folder holding ``NAME.npy`` per array and ``meta.json``, built
  in a temporary folder beside it and renamed into place at the end; each
  file is written as windows arrive (:mod:`maskcli.formats.npy_stream`).
- ``parquet``: one list column per array, a row group per window; pyarrow
  is imported only for it.

``cu_seqlens`` has a length per row: a list per row in jsonl and Parquet,
rows filled out with their last offset in npz and npy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from maskcli.core.errors import UsageError
from maskcli.core.limits import too_big
from maskcli.core.names import member_name
from maskcli.core.packed_cells import RunCells
from maskcli.core.packed_layout import rectangular
from maskcli.formats.fastformat import IntRows
from maskcli.formats.files import STDIN, atomic_output, current_umask
from maskcli.formats.writers import _write_npy

PACK_FORMATS = ("auto", "jsonl", "npz", "npy", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".npz": "npz", ".parquet": "parquet",
               ".pq": "parquet"}


def pack_format(path: str, fmt: str = "auto") -> str:
    """The output format: ``fmt``, else by the extension of ``path`` (a
    folder, or a name ending in ``/``, is npy); jsonl on standard output."""
    if fmt != "auto":
        if fmt not in PACK_FORMATS:
            raise UsageError(f"unknown output format {fmt!r}: use one of {', '.join(PACK_FORMATS)}")
        if fmt == "npy" and path == STDIN:
            raise UsageError("--to npy writes a folder of .npy files: give it with -o FOLDER")
        return fmt
    if path == STDIN:
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if path.endswith(("/", os.sep)) or Path(path).is_dir():
        return "npy"
    raise UsageError(f"-o {path}: cannot tell the format from the extension {suffix or '(none)'}: "
                     "name the file .jsonl, .npz or .parquet, end a folder for .npy files "
                     "with /, or give --to")


@contextlib.contextmanager
def open_packed_writer(output: str, fmt: str, stdout: BinaryIO) -> Iterator:
    """A writer with ``write(arrays)`` per window and ``close(meta)``; the
    output appears only if the block succeeds."""
    if fmt == "npy":
        from maskcli.formats.npy_stream import NpyFolderWriter

        with _atomic_folder(output) as folder:
            writer = NpyFolderWriter(folder, _KeptWriter(folder, "npy"))
            try:
                yield writer
            except BaseException:
                writer.discard()
                raise
        return
    if output == STDIN:
        writer = _writer(stdout, fmt)
        yield writer
        return
    with atomic_output(output) as stream:
        yield _writer(stream, fmt)


def _writer(stream: BinaryIO, fmt: str):
    if fmt == "jsonl":
        return _JsonlWriter(stream)
    if fmt == "parquet":
        return _ParquetWriter(stream)
    return _KeptWriter(stream, "npz")


class _JsonlWriter:
    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.ints = IntRows(", ", brackets=True)

    def write(self, arrays: dict) -> None:
        columns = []
        for array in arrays.values():
            if isinstance(array, tuple):  # cu_seqlens: a list per row
                offsets, sizes = array
                rows = np.split(offsets, np.cumsum(sizes)[:-1]) if len(sizes) else []
                columns.append([str(row.tolist()) for row in rows])
                continue
            text = self.ints.format(array)
            columns.append(text.decode().splitlines() if text is not None
                           else [json.dumps(row) for row in array.tolist()])
        keys = [json.dumps(name) + ": " for name in arrays]
        lines = ["{" + ", ".join(key + str(row) for key, row in zip(keys, record)) + "}\n"
                 for record in zip(*columns)]
        self.stream.write("".join(lines).encode())

    def close(self, meta: dict) -> None:
        """Rows carry no metadata."""


class _KeptWriter:
    """npz into a stream, or npy files into a folder: windows are kept, then
    written once their total row count is known; an npz's first array, into
    a file, is written as it comes (:mod:`maskcli.formats.npz_stream`)."""

    def __init__(self, target, fmt: str):
        if fmt == "npz":
            from maskcli.formats.npz_stream import in_order

            target = in_order(target)
        self.target, self.fmt = target, fmt
        self.parts: dict[str, list] = {}
        self.kept = 0
        self.stream = self.streamed = self.streamed_name = None

    def write(self, arrays: dict) -> None:
        if self.fmt == "npz" and not self.parts and self.streamed is None:
            self._stream_first(*next(iter(arrays.items())))
        for name, array in arrays.items():
            if name == self.streamed_name:
                self.streamed.write(array)
            else:
                self.parts.setdefault(name, []).append(array)
            self.kept += sum(part.nbytes for part in array) if isinstance(array, tuple) \
                else array.nbytes
        over = too_big(self.kept)
        if over:
            raise UsageError(f"the packed rows kept for the {self.fmt} output take {over}: "
                             "write jsonl or Parquet, which stream")

    def _stream_first(self, name: str, first) -> None:
        from maskcli.formats.npz_stream import StreamedMember

        if not isinstance(first, np.ndarray) or not StreamedMember.fits(self.target, first):
            return
        member_name(name, f"array {name}")
        self.stream = _WriteBehind(self.target)
        self.streamed, self.streamed_name = StreamedMember(self.stream, name, first), name

    def close(self, meta: dict) -> None:
        for name in self.parts:  # a field's name from data: never a path outside the output
            member_name(name, f"array {name}")
        arrays = {name: _stacked(parts) for name, parts in self.parts.items()}
        meta_text = json.dumps(meta)
        if self.fmt == "npy":
            for name, (parts, dtype) in arrays.items():
                with open(os.path.join(self.target, f"{name}.npy"), "wb") as stream:
                    _write_parts(stream, parts, dtype)
            Path(self.target, "meta.json").write_text(meta_text + "\n")
            return
        from maskcli.formats.npz_stream import open_after, placeable, write_placed

        stream = self.stream or _WriteBehind(self.target)
        written = [self.streamed.finish()] if self.streamed is not None else []
        with stream:
            if placeable(stream):  # each array at its place, at once
                written += write_placed(stream, [_member(name, parts, dtype)
                                                 for name, (parts, dtype) in arrays.items()],
                                        workers=min(2, os.cpu_count() or 1))
                arrays = {}
            meta_array = np.array(meta_text)
            arrays["meta"] = ([meta_array], meta_array.dtype)
            with open_after(stream, written) as archive:
                for name, (parts, dtype) in arrays.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                        _write_parts(member, parts, dtype)


class _WriteBehind:
    """A binary stream whose writes run in a thread, one write behind the caller.

    zipfile takes two passes over each part of an npz: its CRC, then the
    write. Both release the GIL, so while the thread writes one part,
    zipfile computes the CRC of the next, on the second core (600 MB of
    packed rows for a million documents). Written buffers must not change
    afterwards: ours are packed arrays, which nothing changes (the write in
    flight holds a reference to its buffer until it is done). Every other
    call waits for the write in flight first, so the stream sees the calls
    in order, from one thread at a time.
    """

    def __init__(self, stream: BinaryIO):
        from concurrent.futures import ThreadPoolExecutor

        self.stream, self.pending = stream, None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="maskcli-write")

    def write(self, data) -> int:
        self._wait()
        self.pending = self.pool.submit(self.stream.write, data)
        return memoryview(data).nbytes

    def _wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()  # a failed write raises here

    def __getattr__(self, name):  # tell, seek, flush: in order, after the write in flight
        self._wait()
        return getattr(self.stream, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        try:
            self._wait()
        finally:
            self.pool.shutdown()


def _write_parts(stream: BinaryIO, parts: list, dtype: np.dtype) -> None:
    """:func:`_write_npy`, which also takes :class:`RunCells` parts, built and
    written a block at a time (the same bytes as the whole array)."""
    if not any(isinstance(part, RunCells) for part in parts):
        _write_npy(stream, parts, dtype)
        return
    from maskcli.formats.npz_stream import npy_header

    stream.write(npy_header(dtype, _shape(parts)))
    for block in _blocks(parts, dtype):
        stream.write(block)


def _member(name: str, parts: list, dtype: np.dtype) -> tuple:
    """One array as :func:`maskcli.formats.npz_stream.write_placed` takes it."""
    shape = _shape(parts)
    return (name, dtype, shape, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize,
            lambda: _blocks(parts, dtype))


def _shape(parts: list) -> tuple:
    return (sum(len(part) for part in parts),) + tuple(parts[0].shape[1:])


def _blocks(parts: list, dtype: np.dtype):
    """The bytes of ``parts`` stacked, as buffers: a :class:`RunCells` part a
    block of rows at a time, an array whole."""
    for part in parts:
        for block in part.blocks() if isinstance(part, RunCells) else [part]:
            yield np.ascontiguousarray(block, dtype=dtype).reshape(-1).view(np.uint8).data


def _stacked(parts: list) -> tuple[list[np.ndarray], np.dtype]:
    """The parts of one array, ready to be written as one: ``cu_seqlens``
    pairs become rows as wide as the widest."""
    if isinstance(parts[0], tuple):
        width = max((int(sizes.max()) for _, sizes in parts if len(sizes)), default=1)
        parts = [rectangular(offsets, sizes, width) for offsets, sizes in parts]
    return parts, np.result_type(*(part.dtype for part in parts))


class _ParquetWriter:
    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.writer = None

    def write(self, arrays: dict) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = []
        for array in arrays.values():
            if isinstance(array, tuple):
                offsets, sizes = array
                bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
                columns.append(pa.ListArray.from_arrays(bounds, offsets))
                continue
            rows, length = array.shape[:2]
            flat = array.reshape(rows * length, -1) if array.ndim > 2 else array.reshape(-1)
            values = pa.array(flat) if flat.ndim == 1 else pa.FixedSizeListArray.from_arrays(
                pa.array(flat.reshape(-1)), flat.shape[1])
            bounds = np.arange(0, rows * length + 1, length, dtype=np.int32)
            columns.append(pa.ListArray.from_arrays(bounds, values))
        table = pa.Table.from_arrays(columns, names=list(arrays))
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.stream, table.schema)
        self.writer.write_table(table)

    def close(self, meta: dict) -> None:
        if self.writer is not None:
            self.writer.close()


@contextlib.contextmanager
def _atomic_folder(path: str) -> Iterator[str]:
    """A temporary folder beside ``path`` that becomes ``path`` on success."""
    target = Path(path.rstrip("/" + os.sep) or path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"-o {path} already exists and is not an empty folder: give a new "
                         "folder name for the .npy files")
    if not target.parent.is_dir():
        raise UsageError(f"-o {path}: folder {target.parent} does not exist: create it first")
    tmp = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; match a normal folder
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
