"""The cells of one window's packed rows: tokens, segment ids and positions.

Each row is its documents in turn, then one run of padding (perhaps empty),
so the whole window is a sequence of *runs*. The per-cell arrays come from
repeats and gathers over the runs, never a loop over rows or a boolean
scatter over the cells.

The cells are built a block of rows at a time: the per-cell temporaries
(64-bit gather indices, the repeats) then stay small enough to be reused
from the heap and to stay in cache, instead of being fresh pages for every
window. Segment ids and positions are kept as their runs (:class:`Runs`)
and built when they are asked for: an npz writer asks for them a block at
a time as it writes, so that they never take a whole array's memory. On a
million documents that is 400 MB fewer fresh pages, whose zeroing by the
kernel measured a fifth of ``maskcli pack``'s CPU time.
"""

from __future__ import annotations

import numpy as np

BLOCK_CELLS = 1 << 18  # cells gathered at once: 2 MiB of int64 gather indices
WRITE_CELLS = 1 << 20  # cells of segment ids or positions built at once for a writer


class Runs:
    """One window's rows as runs of cells: a document's steps, or padding."""

    def __init__(self, lengths, starts, counts, length):
        rows, documents = len(counts), len(lengths)
        self.rows, self.length = rows, length
        fill = np.zeros(rows, dtype=np.int64)
        first_of_row = np.cumsum(counts) - counts
        if rows:
            np.add.reduceat(lengths, first_of_row, out=fill)
        row_of = np.repeat(np.arange(rows), counts)
        doc_runs = np.arange(documents) + row_of  # every earlier row added one padding run
        pad_runs = np.cumsum(counts) + np.arange(rows)
        self.run_lengths = np.empty(documents + rows, dtype=np.int64)
        self.run_lengths[doc_runs], self.run_lengths[pad_runs] = lengths, length - fill
        self.run_starts = np.cumsum(self.run_lengths) - self.run_lengths  # row-major cells
        # each run's first gather index minus its first cell: padding reads from
        # step 0 ("wrap" keeps it in range) and is then set to the pad value
        self.offsets = -self.run_starts
        self.offsets[doc_runs] += starts
        self.run_ids = np.zeros(documents + rows, dtype=np.int32)
        self.run_ids[doc_runs] = np.arange(documents) - np.repeat(first_of_row, counts) + 1
        self.first_run = np.append(first_of_row + np.arange(rows), documents + rows)  # per row
        self.pad_cells = _padding_cells(fill, length)

    def bounds(self, cells: int):
        """Blocks of whole rows of about ``cells`` cells: (top, bottom) rows."""
        step = max(1, cells // self.length)
        return [(top, min(top + step, self.rows)) for top in range(0, self.rows, step)]

    def _runs(self, top: int, bottom: int):
        begin, end = int(self.first_run[top]), int(self.first_run[bottom])
        return slice(begin, end), self.run_lengths[begin:end]

    def gather(self, top: int, bottom: int) -> np.ndarray:
        """The step of the values each cell of rows top..bottom reads."""
        runs, counts = self._runs(top, bottom)
        low = top * self.length
        gather = np.repeat(self.offsets[runs] + low, counts)
        gather += _arange((bottom - top) * self.length, np.int64)  # + each cell's index
        return gather

    def segment_ids(self, top: int = 0, bottom: int | None = None) -> np.ndarray:
        """Segment ids of rows top..bottom, flat: 1..k per row, 0 at padding."""
        runs, counts = self._runs(top, self.rows if bottom is None else bottom)
        return np.repeat(self.run_ids[runs], counts)

    def positions(self, top: int = 0, bottom: int | None = None) -> np.ndarray:
        """Positions of rows top..bottom, flat: 0.. within each document, 0 at padding."""
        bottom = self.rows if bottom is None else bottom
        runs, counts = self._runs(top, bottom)
        low, high = top * self.length, bottom * self.length
        # each cell's index in the block less its run's first: the step within
        # its run, in int32 from the start (a block has far fewer than 2**31 cells)
        positions = np.repeat((self.run_starts[runs] - low).astype(np.int32), counts)
        np.subtract(_arange(high - low, np.int32), positions, out=positions)
        pads = self.pad_cells[np.searchsorted(self.pad_cells, low):
                              np.searchsorted(self.pad_cells, high)]
        positions[pads - low] = 0
        return positions


def layout(chunk, names, lengths, starts, counts, length, pad_values):
    """The tokens of one window, ``{name: (rows, length) + step shape}``, and
    their :class:`Runs`.

    ``lengths`` and ``starts`` (into each field's values) are the documents
    in row order, ``counts`` the documents per row.
    """
    runs = Runs(lengths, starts, counts, length)
    cells = runs.rows * length
    fields = {name: np.empty((cells,) + part.values.shape[1:], part.values.dtype)
              for name, part in zip(names, chunk)}
    for top, bottom in runs.bounds(BLOCK_CELLS):
        gather = runs.gather(top, bottom)
        for name, part in zip(names, chunk):  # straight into the kept array
            out = fields[name][top * length:bottom * length]
            np.take(part.values, gather, axis=0, out=out, mode="wrap")
    for name, value in zip(names, pad_values):
        fields[name][runs.pad_cells] = value
        fields[name] = fields[name].reshape((runs.rows, length) + fields[name].shape[1:])
    return fields, runs


class RunCells:
    """Segment ids or positions of one window, built from its :class:`Runs`
    a block at a time by :meth:`blocks`, or whole by ``np.asarray``."""

    dtype = np.dtype(np.int32)
    ndim = 2

    def __init__(self, runs: Runs, kind: str):
        self.runs, self.kind = runs, kind
        self.shape = (runs.rows, runs.length)
        self.nbytes = runs.rows * runs.length * self.dtype.itemsize

    def __len__(self) -> int:
        return self.runs.rows

    def blocks(self):
        build = getattr(self.runs, self.kind)
        for top, bottom in self.runs.bounds(WRITE_CELLS):
            yield build(top, bottom)

    def __array__(self, dtype=None, copy=None):
        whole = getattr(self.runs, self.kind)().reshape(self.shape)
        return whole if dtype is None else whole.astype(dtype)


_ARANGES: dict = {}


def _arange(count: int, dtype) -> np.ndarray:
    """``np.arange(count)``, a view of a kept one that grows: every block
    needs one, and filling it anew was a pass over the cells each time."""
    kept = _ARANGES.get(dtype)
    if kept is None or len(kept) < count:
        kept = _ARANGES[dtype] = np.arange(max(count, WRITE_CELLS), dtype=dtype)
    return kept[:count]


def _padding_cells(fill: np.ndarray, length: int) -> np.ndarray:
    """The flat indices of the padding cells: the end of each row, in order."""
    gaps = length - fill
    ends = (np.arange(len(fill), dtype=np.int64) + 1) * length
    return np.arange(int(gaps.sum())) + np.repeat(ends - np.cumsum(gaps), gaps)
