"""Packing documents into rows of exactly ``length`` steps, vectorised with numpy.

Instead of padding every document to one length, several documents share a
row. Documents are placed by *best-fit decreasing* (BFD): longest first, each
into the open row with the least room that still holds it, a new row when
none does. Placement happens over a *window* of ``window`` consecutive
documents at a time, so memory stays bounded and the input streams; rows are
not shared between windows.

The result is the seqio layout (also maxtext's and big_vision's), per field
``NAME``:

- ``NAME``: the tokens, the pad value after the row's last document;
- ``NAME_segment_ids``: 1..k for the row's k documents, in input order, and
  0 at padding;
- ``NAME_positions``: 0.. within each document, 0 at padding.

Several fields of one record (``input_ids`` and ``labels``) are one document:
they must have the same length and travel together.

BFD is exact and needs no per-document loop: documents of one length are
placed together. Room left in a row only shrinks, so once the fullest row
that fits a document of length ``s`` is chosen, it stays the best fit for the
following documents of length ``s`` until its room drops below ``s``: it
takes ``room // s`` of them at once. Ties between rows of equal room go to
the row opened first; documents of equal length are placed in input order.
The result depends only on the input, never on how it was read in chunks.

A document longer than ``length`` is split into pieces of ``length`` steps
(``overflow="split"``, each piece its own document, positions from 0) or
truncated to its first ``length`` steps (``"truncate"``). Empty documents
hold no step and are skipped (counted).

The function API, for code building on it (a sharded or Arrow packer):

- :func:`best_fit_decreasing` places lengths into rows (the placement only);
- :func:`pack_window` packs one window of ragged fields into
  :class:`PackedRows`;
- :class:`Packer` streams chunks of ragged fields through windows;
- :func:`pack_sequences` packs Python lists, for notebooks and tests.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from maskcli.core.errors import InputError, UsageError
from maskcli.core.packed_cells import RunCells, Runs, layout
from maskcli.core.padding import Ragged

# Documents placed together. A million documents of 1-99 steps into rows of 1024: fill 0.9998
# (0.9999 with 100,000), and 0.2 s faster end to end than 100,000 (6 interleaved runs each).
DEFAULT_WINDOW = 50_000
OVERFLOWS = ("split", "truncate")
WORKERS = 4  # windows packed at once, at most (and at most one per CPU)


@dataclass(frozen=True)
class PackOptions:
    """Validated packing options."""

    length: int
    window: int = DEFAULT_WINDOW
    overflow: str = "split"

    def __post_init__(self):
        for name, value in (("length", self.length), ("window", self.window)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise UsageError(f"{name} must be a whole number of at least 1, got {value!r}")
        if self.overflow not in OVERFLOWS:
            raise UsageError(f"overflow {self.overflow!r} is not understood: use 'split' or "
                             "'truncate'")


def best_fit_decreasing(lengths, capacity: int) -> tuple[np.ndarray, int]:
    """Place documents of ``lengths`` (each 1..``capacity``) into rows of
    ``capacity`` steps by best-fit decreasing: return the row of each document
    (rows numbered in the order they are opened) and the number of rows.

    >>> best_fit_decreasing([3, 5, 2, 4], 8)
    (array([0, 0, 1, 1]), 2)
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if len(lengths) and (lengths.min() < 1 or lengths.max() > capacity):
        raise UsageError(f"lengths must be 1..{capacity} to be packed into rows of {capacity}")
    order = _stable_order(capacity - lengths, capacity)  # longest first; ties in input order
    sorted_lengths = lengths[order]
    run_starts = np.flatnonzero(np.diff(sorted_lengths, prepend=-1))
    run_ends = np.append(run_starts[1:], len(lengths))
    row_of_sorted = np.empty(len(lengths), dtype=np.int64)
    room = np.empty(len(lengths), dtype=np.int64)  # per row: at most a row per document
    opened = 0
    # a handful of numpy calls per length, not per document: rows come from a preallocated
    # array, sorts of rooms (below 2**16) are radix sorts, the first row making up the count
    # is a binary search
    for start, end in zip(run_starts.tolist(), run_ends.tolist()):
        size, count = int(sorted_lengths[start]), end - start
        rows = np.flatnonzero(room[:opened] >= size)
        at = start
        if len(rows):
            rows = rows[_stable_order(room[rows], capacity)]  # fullest first, then oldest
            takes = room[rows] // size
            made = np.cumsum(takes)
            placed = min(int(made[-1]), count)
            if made[-1] >= count:  # the rows up to the first that makes up the count
                last = int(np.searchsorted(made, count))
                rows, takes = rows[:last + 1], takes[:last + 1]
                takes[-1] -= int(made[last]) - count
            room[rows] -= takes * size
            row_of_sorted[at:at + placed] = np.repeat(rows, takes)
            at, count = at + placed, count - placed
        if count:  # new rows, each taking as many as fit
            per_row = capacity // size
            new = -(-count // per_row)
            row_of_sorted[at:end] = opened + np.arange(count) // per_row
            room[opened:opened + new] = capacity - per_row * size
            room[opened + new - 1] = capacity - (count - per_row * (new - 1)) * size
            opened += new
    row_of = np.empty_like(row_of_sorted)
    row_of[order] = row_of_sorted
    return row_of, opened


def _stable_order(keys: np.ndarray, largest: int) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for keys 0..``largest``: a stable
    order is unique, and numpy sorts 16-bit keys by radix, 4-5 times faster."""
    if largest < 1 << 16:
        keys = keys.astype(np.uint16)
    return np.argsort(keys, kind="stable")


@dataclass
class PackedRows:
    """Packed rows of one window.

    ``fields`` maps each field name to its tokens, shape ``(rows, length) +
    step shape``; ``segment_ids`` and ``positions`` (int32, ``(rows,
    length)``) are shared by every field, built from ``runs`` when first
    asked for. ``documents`` is the input index of each packed document (a
    piece of a split one keeps its document's index), in row order;
    ``lengths`` their lengths and ``counts`` the documents per row, so
    ``documents`` splits into rows by ``counts``.
    """

    fields: dict[str, np.ndarray]
    runs: Runs
    documents: np.ndarray
    lengths: np.ndarray
    counts: np.ndarray

    @functools.cached_property
    def segment_ids(self) -> np.ndarray:
        return np.asarray(RunCells(self.runs, "segment_ids"))

    @functools.cached_property
    def positions(self) -> np.ndarray:
        return np.asarray(RunCells(self.runs, "positions"))

    @property
    def rows(self) -> int:
        return self.runs.rows

    @property
    def real_steps(self) -> int:
        return int(self.lengths.sum())


@dataclass
class PackReport:
    """Counts over everything packed, for the messages on stderr."""

    documents: int = 0  # input documents (records)
    rows: int = 0
    real_steps: int = 0
    length: int = 0
    empty: int = 0  # documents with no step, skipped
    overflowed: int = 0  # documents longer than ``length``
    cut_steps: int = 0  # steps dropped by truncation
    pieces: int = 0  # extra documents made by splitting

    @property
    def cells(self) -> int:
        return self.rows * self.length

    @property
    def fill(self) -> float:
        """Real steps over the cells of the packed rows (1.0: no padding)."""
        return self.real_steps / self.cells if self.cells else 1.0


def pack_window(chunk: Sequence[Ragged], names: Sequence[str], options: PackOptions,
                pad_values: Sequence, first: int = 0,
                report: PackReport | None = None) -> PackedRows:
    """Pack one window: ``chunk`` holds one :class:`Ragged` per field (the
    same documents in each, already cast), ``pad_values`` each field's pad
    value, ``first`` the input index of the window's first document."""
    length = options.length
    lengths = _same_lengths(chunk, names)
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    documents = np.arange(first, first + len(lengths), dtype=np.int64)
    report = report if report is not None else PackReport()
    report.documents += len(lengths)
    report.length = length
    long = lengths > length
    report.overflowed += int(long.sum())
    if long.any() and options.overflow == "split":
        pieces = np.maximum(-(-lengths // length), 1)  # an empty document stays one, to be counted
        report.pieces += int(pieces.sum()) - len(lengths)
        documents = np.repeat(documents, pieces)
        piece_starts = np.repeat(starts, pieces)
        within = np.arange(len(documents)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
        piece_starts += within * length
        lengths = np.minimum(np.repeat(lengths, pieces) - within * length, length)
        starts = piece_starts
    elif long.any():
        report.cut_steps += int((lengths[long] - length).sum())
        lengths = np.minimum(lengths, length)
    real = lengths > 0
    report.empty += int((~real).sum())
    if not real.all():
        documents, starts, lengths = documents[real], starts[real], lengths[real]
    row_of, rows = best_fit_decreasing(lengths, length)
    in_rows = _stable_order(row_of, rows)  # row by row, input order within a row
    documents, starts, lengths = documents[in_rows], starts[in_rows], lengths[in_rows]
    counts = np.bincount(row_of, minlength=rows)
    fields, runs = layout(chunk, names, lengths, starts, counts, length, pad_values)
    report.rows += rows
    report.real_steps += int(lengths.sum())
    return PackedRows(fields, runs, documents, lengths, counts)


def _same_lengths(chunk: Sequence[Ragged], names: Sequence[str]) -> np.ndarray:
    lengths = chunk[0].lengths
    for name, part in zip(names[1:], chunk[1:]):
        differ = np.flatnonzero(part.lengths != lengths)
        if len(differ):
            at = int(differ[0])
            raise InputError(
                f"{part.place(at)}: field {name!r} has {int(part.lengths[at])} steps but "
                f"{names[0]!r} has {int(lengths[at])}: packed fields travel together, so each "
                "record needs the same length in every field (pack the fields separately)")
    return lengths.astype(np.int64, copy=False)


class Packer:
    """Pack a stream of chunks (one :class:`Ragged` per field each) window by
    window: ``pack(chunks)`` yields :class:`PackedRows`; ``report`` counts.

    Windows hold exactly ``options.window`` documents (the last fewer),
    whatever the chunk sizes, so the result depends on the input alone.
    Up to ``workers`` windows are packed at once, in threads (numpy's
    gathers and repeats run without the GIL); they are yielded in order.
    """

    def __init__(self, names: Sequence[str], options: PackOptions, pad_values: Sequence,
                 workers: int | None = None):
        self.names, self.options, self.pad_values = tuple(names), options, tuple(pad_values)
        self.report = PackReport(length=options.length)
        self.workers = max(1, min(WORKERS, os.cpu_count() or 1) if workers is None else workers)

    def pack(self, chunks: Iterable[Sequence[Ragged]]) -> Iterator[PackedRows]:
        if self.workers == 1:
            for window, first in self._windows(chunks):
                yield self._window(window, first, self.report)
            return
        from maskcli.core.workers import worker_pool

        queue: deque = deque()
        with worker_pool(self.workers, "maskcli-pack") as pool:  # cancels what is queued
            for window, first in self._windows(chunks):
                report = PackReport(length=self.options.length)
                queue.append((pool.submit(self._window, window, first, report), report))
                while len(queue) > self.workers:
                    yield self._done(*queue.popleft())
            while queue:
                yield self._done(*queue.popleft())

    def _done(self, future, report: PackReport) -> PackedRows:
        packed = future.result()
        for name in ("documents", "rows", "real_steps", "empty", "overflowed", "cut_steps",
                     "pieces"):
            setattr(self.report, name, getattr(self.report, name) + getattr(report, name))
        return packed

    def _windows(self, chunks: Iterable[Sequence[Ragged]]):
        """Each window of documents, with the input index of its first."""
        pending: list[Sequence[Ragged]] = []
        held = 0
        first = 0
        for chunk in chunks:
            pending.append(chunk)
            held += len(chunk[0].lengths)
            while held >= self.options.window:
                window, rest = _split(pending, self.options.window)
                yield window, first
                first += self.options.window
                pending, held = ([rest] if rest is not None else []), held - self.options.window
        if held or not first:
            yield (_split(pending, held)[0] if pending else None), first

    def _window(self, window, first: int, report: PackReport) -> PackedRows:
        if window is None:  # no documents at all
            window = [Ragged(np.empty(0), np.zeros(0, np.int64))] * len(self.names)
        return pack_window(window, self.names, self.options, self.pad_values, first, report)


def _split(pending: list[Sequence[Ragged]], count: int):
    """The first ``count`` documents of the pending chunks as one chunk, and the rest."""
    fields = len(pending[0])
    joined = [_join([chunk[index] for chunk in pending]) for index in range(fields)]
    if len(joined[0].lengths) == count:
        return joined, None
    head, rest = [], []
    for part in joined:
        steps = int(part.lengths[:count].sum())
        head.append(Ragged(part.values[:steps], part.lengths[:count], part.source, part.first,
                           None if part.lines is None else part.lines[:count], part.unit))
        rest.append(Ragged(part.values[steps:], part.lengths[count:], part.source,
                           part.first + count,
                           None if part.lines is None else part.lines[count:], part.unit))
    return head, rest


def _join(parts: list[Ragged]) -> Ragged:
    if len(parts) == 1:
        return parts[0]
    lines = None if any(part.lines is None for part in parts) else np.concatenate(
        [part.lines for part in parts])
    return Ragged(np.concatenate([part.values for part in parts]),
                  np.concatenate([part.lengths for part in parts]), parts[0].source,
                  parts[0].first, lines, parts[0].unit)


def pack_sequences(sequences, length: int, *, window: int = DEFAULT_WINDOW,
                   overflow: str = "split", value=0, dtype="int32") -> dict[str, np.ndarray]:
    """Pack Python sequences into rows of ``length``: the seqio arrays
    ``inputs``, ``inputs_segment_ids`` and ``inputs_positions``.

    >>> packed = pack_sequences([[1, 2, 3], [4, 5], [6]], 4)
    >>> packed["inputs"].tolist(), packed["inputs_segment_ids"].tolist()
    ([[1, 2, 3, 6], [4, 5, 0, 0]], [[1, 1, 1, 2], [1, 1, 0, 0]])
    """
    sequences = [list(sequence) for sequence in sequences]
    lengths = np.array([len(sequence) for sequence in sequences], dtype=np.int64)
    steps = [step for sequence in sequences for step in sequence]
    values = np.asarray(steps, dtype=dtype) if steps else np.empty(0, dtype=dtype)
    packer = Packer(("inputs",), PackOptions(length, window, overflow), (value,))
    return seqio_arrays(list(packer.pack([(Ragged(values, lengths),)])))


def seqio_arrays(windows: list[PackedRows]) -> dict[str, np.ndarray]:
    """The windows' rows stacked into the seqio arrays of every field."""
    arrays = {}
    for name in windows[0].fields:
        arrays[name] = np.concatenate([window.fields[name] for window in windows])
        arrays[f"{name}_segment_ids"] = np.concatenate([w.segment_ids for w in windows])
        arrays[f"{name}_positions"] = np.concatenate([w.positions for w in windows])
    return arrays
