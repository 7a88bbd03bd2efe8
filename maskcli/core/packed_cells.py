"""The cells of one window's packed rows: tokens, segment ids and positions.

Each row is its documents in turn, then one run of padding (perhaps empty),
so the whole window is a sequence of *runs*. The per-cell arrays come from
repeats and gathers over the runs, never a loop over rows or a boolean
scatter over the cells.

The cells are built a block of rows at a time, straight into the output
arrays: the per-cell temporaries (64-bit gather indices, the repeats) then
stay small enough to be reused from the heap and to stay in cache, instead
of being fresh pages for every window. A window of 100,000 documents is
5 million cells; whole-window temporaries of 40 MB were mapped and faulted
in anew for every window, and measured more system time than the packing.
"""

from __future__ import annotations

import numpy as np

BLOCK_CELLS = 1 << 18  # cells laid out at once: 2 MiB of int64 gather indices


def layout(chunk, names, lengths, starts, counts, length, pad_values):
    """The packed arrays of one window: ``(fields, segment_ids, positions)``.

    ``lengths`` and ``starts`` (into each field's values) are the documents
    in row order, ``counts`` the documents per row.
    """
    rows, documents = len(counts), len(lengths)
    fill = np.zeros(rows, dtype=np.int64)
    first_of_row = np.cumsum(counts) - counts
    if rows:
        np.add.reduceat(lengths, first_of_row, out=fill)
    row_of = np.repeat(np.arange(rows), counts)
    doc_runs = np.arange(documents) + row_of  # every earlier row added one padding run
    pad_runs = np.cumsum(counts) + np.arange(rows)
    run_lengths = np.empty(documents + rows, dtype=np.int64)
    run_lengths[doc_runs], run_lengths[pad_runs] = lengths, length - fill
    run_starts = np.cumsum(run_lengths) - run_lengths  # in the cells, row-major
    # each run's first gather index minus its first cell: padding reads from
    # step 0 ("wrap" keeps it in range) and is then set to the pad value
    offsets = -run_starts
    offsets[doc_runs] += starts
    run_ids = np.zeros(documents + rows, dtype=np.int32)
    run_ids[doc_runs] = np.arange(documents) - np.repeat(first_of_row, counts) + 1  # 1..k
    cells = rows * length
    fields = {name: np.empty((cells,) + part.values.shape[1:], part.values.dtype)
              for name, part in zip(names, chunk)}
    segment_ids = np.empty(cells, dtype=np.int32)
    positions = np.empty(cells, dtype=np.int32)
    block_rows = max(1, BLOCK_CELLS // length)
    first_run = np.append(first_of_row + np.arange(rows), documents + rows)  # of each row
    for top in range(0, rows, block_rows):
        bottom = min(top + block_rows, rows)
        begin, end = int(first_run[top]), int(first_run[bottom])
        low, high = top * length, bottom * length
        counts_here = run_lengths[begin:end]
        cell = np.arange(low, high, dtype=np.int64)
        gather = np.repeat(offsets[begin:end], counts_here)
        gather += cell
        for name, part in zip(names, chunk):
            np.take(part.values, gather, axis=0, out=fields[name][low:high], mode="wrap")
        cell -= np.repeat(run_starts[begin:end], counts_here)  # the step within its run
        positions[low:high] = cell
        segment_ids[low:high] = np.repeat(run_ids[begin:end], counts_here)
    pad_cells = _padding_cells(fill, length)
    positions[pad_cells] = 0
    for name, value in zip(names, pad_values):
        fields[name][pad_cells] = value
        fields[name] = fields[name].reshape((rows, length) + fields[name].shape[1:])
    return fields, segment_ids.reshape(rows, length), positions.reshape(rows, length)


def _padding_cells(fill: np.ndarray, length: int) -> np.ndarray:
    """The flat indices of the padding cells: the end of each row."""
    gaps = length - fill
    ends = (np.arange(len(fill), dtype=np.int64) + 1) * length
    return np.arange(int(gaps.sum())) + np.repeat(ends - np.cumsum(gaps), gaps)
