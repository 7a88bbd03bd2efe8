"""The arrays packed rows are written as: the seqio layout, Hugging Face's
flattening layout, and per-row ``cu_seqlens``.

- ``seqio`` (also maxtext and big_vision): per field ``NAME``, the arrays
  ``NAME``, ``NAME_segment_ids`` (1..k, 0 = padding) and ``NAME_positions``
  (0.. within each document, 0 at padding).
- ``flatten`` (``transformers.DataCollatorWithFlattening``): the fields,
  ``position_ids`` (0.. within each document, 0 at padding) and ``labels``:
  the ``labels`` field if there is one, else a copy of the first field, with
  -100 (ignored by the loss) at each document's first step, so that no
  document is trained to predict its first token from the one before, and
  at padding.
- ``cu_seqlens`` (flash-attention's varlen kernels): per row, the offsets
  where its documents start, then the row's real steps: ``[0, l1, l1+l2,
  ..., fill]``. Rows hold different numbers of documents; in an npz the rows
  are filled out on the right by repeating their last offset (empty
  documents, which the kernels skip).
"""

from __future__ import annotations

import numpy as np

from maskcli.core.errors import UsageError
from maskcli.core.label_fields import IGNORE_LABEL as IGNORE_INDEX
from maskcli.core.packed_cells import RunCells
from maskcli.core.packing import PackedRows

LAYOUTS = ("seqio", "flatten")
SEGMENT_SUFFIX, POSITION_SUFFIX = "_segment_ids", "_positions"


def check_layout(layout: str, names: tuple[str, ...], dtype: np.dtype) -> None:
    """Refuse, before reading, a layout the fields cannot take."""
    if layout not in LAYOUTS:
        raise UsageError(f"layout {layout!r} is not understood: use 'seqio' or 'flatten'")
    if layout == "flatten" and dtype.kind not in "iu":
        raise UsageError(f"the flatten layout sets labels to {IGNORE_INDEX}, which needs "
                         f"integer token ids, but --dtype is {dtype}: use int32 or int64")


def array_names(names: tuple[str, ...], layout: str, cu_seqlens: bool) -> list[str]:
    """The arrays written, in order, for fields ``names``."""
    if layout == "seqio":
        out = [f"{name}{suffix}" for name in names
               for suffix in ("", SEGMENT_SUFFIX, POSITION_SUFFIX)]
    else:
        out = list(names) + ([] if "labels" in names else ["labels"]) + ["position_ids"]
    return out + (["cu_seqlens"] if cu_seqlens else [])


def layout_arrays(packed: PackedRows, layout: str, cu_seqlens: bool,
                  lazy: bool = False) -> dict:
    """The arrays of one window's rows: name -> 2-D array, except
    ``cu_seqlens``: a pair (offsets of every row concatenated, count per row).

    ``lazy``: seqio's segment ids and positions as :class:`RunCells`, built a
    block at a time by a writer that keeps every window until the end (npz),
    rather than whole arrays kept meanwhile.
    """
    arrays: dict = {}
    if layout == "seqio":
        segment_ids, positions = (RunCells(packed.runs, "segment_ids"),
                                  RunCells(packed.runs, "positions")) if lazy \
            else (packed.segment_ids, packed.positions)
        for name, tokens in packed.fields.items():
            arrays[name] = tokens
            arrays[name + SEGMENT_SUFFIX] = segment_ids
            arrays[name + POSITION_SUFFIX] = positions
    else:
        arrays.update(packed.fields)
        first = next(iter(packed.fields))
        source = packed.fields.get("labels", packed.fields[first])
        ignored = (packed.positions == 0)  # each document's first step, and padding
        labels = source.astype(np.result_type(source.dtype, np.int8), copy=True)
        labels[ignored] = IGNORE_INDEX
        arrays["labels"] = labels
        arrays["position_ids"] = packed.positions
    if cu_seqlens:
        arrays["cu_seqlens"] = row_offsets(packed.lengths, packed.counts)
    return arrays


def row_offsets(lengths: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cu_seqlens`` of each row, concatenated, and how many each row has
    (its documents + 1).

    >>> offsets, sizes = row_offsets(np.array([3, 1, 2]), np.array([2, 1]))
    >>> offsets.tolist(), sizes.tolist()
    ([0, 3, 4, 0, 2], [3, 2])
    """
    rows = len(counts)
    sizes = counts + 1
    first_of_row = np.cumsum(counts) - counts
    ends = np.cumsum(lengths)
    before_row = np.where(first_of_row > 0, ends[np.maximum(first_of_row - 1, 0)], 0) \
        if len(lengths) else np.zeros(rows, np.int64)
    offsets = np.zeros(int(sizes.sum()), dtype=np.int32)
    doc_slots = np.arange(len(lengths)) + np.repeat(np.arange(rows), counts) + 1
    offsets[doc_slots] = ends - np.repeat(before_row, counts)
    return offsets, sizes


def rectangular(offsets: np.ndarray, sizes: np.ndarray, width: int) -> np.ndarray:
    """Per-row offsets as a ``(rows, width)`` array, each row filled out on
    the right with its last offset.

    >>> rectangular(np.array([0, 3, 4, 0, 2]), np.array([3, 2]), 4).tolist()
    [[0, 3, 4, 4], [0, 2, 2, 2]]
    """
    rows = len(sizes)
    out = np.empty((rows, width), dtype=np.int32)
    starts = np.cumsum(sizes) - sizes
    columns = np.minimum(np.arange(width), sizes[:, None] - 1)
    out[:] = offsets[starts[:, None] + columns] if rows else out
    return out
