"""Packed rows into a folder of ``.npy`` files, each written as its windows arrive.

An npy file's header holds the row count, known only at the end; but for
the packed arrays its length is the same whatever the count (checked), so
each file starts with a placeholder header, takes every window's rows as
they come, and gets its real header at the end: the bytes ``np.save``
writes, without keeping the rows meanwhile. The writes (and the segment ids
and positions, built a block at a time from their runs) run in a thread of
their own, while the next windows are read and packed; at most ``AHEAD``
windows wait for it. An array whose header length would depend on the count
(``cu_seqlens``, as wide as the row with most documents) is kept and written
at the end.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from maskcli.core.names import member_name
from maskcli.core.packed_cells import RunCells

AHEAD = 2  # windows handed to the writing thread and not yet written


class NpyFolderWriter:
    """``write(arrays)`` per window, ``close(meta)`` at the end, into ``folder``."""

    def __init__(self, folder: str, keep):
        self.folder = folder
        self.keep = keep  # a writer that keeps arrays and writes them at close
        self.files: dict[str, list] = {}  # name -> [file, dtype, step shape, rows]
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="maskcli-npy")
        self.pending: deque = deque()

    def write(self, arrays: dict) -> None:
        streamed = {}
        for name, array in arrays.items():
            if name not in self.files and not self._open(name, array):
                self.keep.write({name: array})
                continue
            streamed[name] = array
        self.pending.append(self.pool.submit(self._append, streamed))
        while len(self.pending) > AHEAD:
            self.pending.popleft().result()  # a failed write raises here

    def _open(self, name: str, first) -> bool:
        """Start ``name``'s file if its header length does not depend on the row count."""
        if name in self.keep.parts or not isinstance(first, (np.ndarray, RunCells)):
            return False
        from maskcli.formats.npz_stream import fixed_header_length

        dtype, step = np.dtype(first.dtype), tuple(first.shape[1:])
        header = fixed_header_length(dtype, step)
        if header is None:
            return False
        member_name(name, f"array {name}")  # a field's name from data: never a path outside
        stream = open(os.path.join(self.folder, f"{name}.npy"), "wb")
        stream.write(b" " * header)  # the header's place
        self.files[name] = [stream, dtype, step, 0]
        return True

    def _append(self, arrays: dict) -> None:
        for name, array in arrays.items():
            entry = self.files[name]
            stream, dtype = entry[0], entry[1]
            for block in array.blocks() if isinstance(array, RunCells) else [array]:
                stream.write(np.ascontiguousarray(block, dtype=dtype).reshape(-1).view(np.uint8)
                             .data)
            entry[3] += len(array)

    def close(self, meta: dict) -> None:
        from maskcli.formats.npz_stream import npy_header

        try:
            while self.pending:
                self.pending.popleft().result()
            for stream, dtype, step, rows in self.files.values():
                stream.seek(0)
                stream.write(npy_header(dtype, (rows,) + step))
        finally:
            self.discard()
        self.keep.close(meta)  # the arrays kept, and meta.json

    def discard(self) -> None:
        """Stop writing and close the files (after a failure, the folder is removed)."""
        for future in self.pending:
            future.cancel()
        self.pool.shutdown()
        for entry in self.files.values():
            entry[0].close()
