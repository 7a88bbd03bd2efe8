"""Padding as an Arrow map: a batch of rows in, the same rows padded out.

:func:`pad_arrow` is the function that data engines call on each batch:
``datasets.Dataset.map(..., batched=True)`` on the arrow format, Ray Data's
``map_batches(..., batch_format="pyarrow")``, and, through
:func:`pad_arrow_batches`, Spark's ``mapInArrow``. Each list column named in
``fields`` is read as ``maskcli pad`` reads a Parquet column
(:func:`maskcli.formats.arrow.column_chunk`), cast and padded by the same core
functions, so values and errors are ``maskcli pad``'s.

Every batch is padded to the same ``maxlen``, so every batch has the same
schema: a padded field becomes ``fixed_size_list<dtype, width>`` (feature
vectors a fixed-size list of them), followed by ``NAME_mask``
(``fixed_size_list<bool>``, True = real step) and ``NAME_lengths`` (int64,
before truncation) for each field. ``mask_as`` stores the first field's mask
instead as int32 1/0 under that name (KerasHub's ``padding_mask``, Hugging
Face's ``attention_mask``). The batch's other columns are kept, in place,
unless ``keep_columns=False``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace

import numpy as np
import pyarrow as pa

from maskcli.core import fields as field_names
from maskcli.core.errors import UsageError
from maskcli.core.padding import PadOptions, cast, pad_chunk, pad_value
from maskcli.formats.arrow import _columns, column_chunk

# How the engines hand a batch over when asked for Arrow, for the error that
# names the fix when they hand over something else.
_ARROW_FORMATS = ("Dataset.with_format('arrow') in datasets, batch_format='pyarrow' in Ray Data, "
                  "or mapInArrow in Spark")


def pad_arrow(batch, fields: Iterable[str] = (), maxlen: int | None = None, padding: str = "pre",
              truncating: str = "pre", value=0, values: Mapping | None = None,
              dtype="int32", mask_as: str | None = None, pad_to_multiple_of: int | None = None,
              keep_columns: bool = True, fixed_size: bool = True) -> pa.Table:
    """Pad the list columns ``fields`` of an Arrow batch, one output row per input row.

    ``batch`` is a ``pyarrow.Table`` or ``RecordBatch``; ``fields`` the list
    columns to pad (default: the batch's only list column); ``maxlen`` is
    required, so that every batch of a dataset gets the same width.
    ``padding``, ``truncating``, ``value``, ``dtype`` and
    ``pad_to_multiple_of`` are ``maskcli pad``'s options, ``values`` maps a
    field to its own pad value (``{"labels": -100}``). ``fixed_size=False``
    writes plain ``list`` columns (Spark's ArrayType) instead of fixed-size ones.

    >>> import pyarrow as pa
    >>> table = pad_arrow(pa.table({"ids": [[1, 2], [3]]}), maxlen=3, padding="post")
    >>> table.column("ids").to_pylist(), table.column("ids_lengths").to_pylist()
    ([[1, 2, 0], [3, 0, 0]], [2, 1])
    """
    mapper = _Padder(fields, maxlen, padding, truncating, value, values, dtype, mask_as,
                     pad_to_multiple_of, keep_columns, fixed_size)
    return mapper.table(batch, first_row=0)


def pad_arrow_batches(batches: Iterable, fields: Iterable[str] = (), maxlen: int | None = None,
                      padding: str = "pre", truncating: str = "pre", value=0,
                      values: Mapping | None = None, dtype="int32", mask_as: str | None = None,
                      pad_to_multiple_of: int | None = None, keep_columns: bool = True,
                      fixed_size: bool = False) -> Iterator[pa.RecordBatch]:
    """:func:`pad_arrow` over an iterator of record batches, yielding record
    batches: the function Spark's ``mapInArrow`` calls. Errors name the row
    counted over all batches. Columns are plain lists by default
    (``fixed_size=False``), as Spark's ArrayType holds them.

    >>> import pyarrow as pa
    >>> batches = pa.table({"ids": [[1, 2], [3]]}).to_batches(max_chunksize=1)
    >>> [batch.num_rows for batch in pad_arrow_batches(batches, maxlen=2)]
    [1, 1]
    """
    mapper = _Padder(fields, maxlen, padding, truncating, value, values, dtype, mask_as,
                     pad_to_multiple_of, keep_columns, fixed_size)
    first = 0
    for batch in batches:
        yield from mapper.table(batch, first).to_batches()
        first += batch.num_rows


class _Padder:
    """The options, checked once; :meth:`table` pads one batch with them."""

    def __init__(self, fields, maxlen, padding, truncating, value, values, dtype, mask_as,
                 pad_to_multiple_of, keep_columns, fixed_size):
        if isinstance(fields, str):
            fields = (fields,)  # one name, not its letters
        self.fields = tuple(fields)
        if maxlen is None:
            raise UsageError("pad_arrow needs maxlen: each batch is padded alone, and the batches "
                             "of one dataset must share one width: give maxlen=N, e.g. the "
                             "longest sequence that `maskcli inspect-mask` reports")
        self.options = PadOptions.make(maxlen, dtype, padding, truncating, value,
                                       pad_to_multiple_of)
        if self.options.maxlen == 0:
            raise UsageError("maxlen 0 leaves no steps, and Arrow has no list of size 0: give "
                             "maxlen=1 or more")
        self.values = dict(values or {})
        if mask_as is not None and not str(mask_as).strip():
            raise UsageError("mask_as needs the name to store the mask under, e.g. padding_mask "
                             "(KerasHub) or attention_mask (Hugging Face)")
        self.mask_as, self.keep_columns, self.fixed_size = mask_as, keep_columns, fixed_size

    def table(self, batch, first_row: int) -> pa.Table:
        batch = as_table(batch)
        names = _columns(batch.schema, self.fields, "batch")
        self._first = names[0]
        field_names.check_values(self.values, names)
        added = self._added(names, batch.schema.names)
        padded = {name: [] for name in (*names, *(name for pair in added for name in pair))}
        # A table of no rows may hold no batch at all: pad one of no rows, for the types.
        for part in batch.to_batches() or [pa.RecordBatch.from_pylist([], schema=batch.schema)]:
            for name, (mask_name, lengths_name) in zip(names, added):
                array, mask, lengths = self._pad(part.column(name), name, first_row)
                padded[name].append(array)
                padded[mask_name].append(mask)
                padded[lengths_name].append(lengths)
            first_row += part.num_rows
        columns = {name: batch.column(name)
                   for name in (batch.schema.names if self.keep_columns else names)}
        for name, arrays in padded.items():  # padded fields in place, masks and lengths after
            columns[name] = pa.chunked_array(arrays, arrays[0].type)
        return pa.table(columns)

    def _added(self, names: tuple[str, ...], existing: list[str]) -> list[tuple[str, str]]:
        """The mask and lengths columns of each field, refused if a kept column has the name."""
        added = added_columns(names, self.mask_as)
        kept = set(existing) - set(names) if self.keep_columns else set()
        taken = set(names)
        for name in (name for pair in added for name in pair):
            if name in kept or name in taken:
                raise UsageError(f"the batch already has a column {name!r}, where the padded "
                                 f"output puts a mask or lengths: drop or rename it first, or "
                                 "pass keep_columns=False")
            taken.add(name)
        return added

    def _pad(self, column: pa.Array, name: str, first_row: int) -> tuple[pa.Array, ...]:
        """One field of one record batch: its padded lists, mask and lengths."""
        options = self.options
        if name in self.values:
            options = replace(options, value=pad_value(self.values[name], options.dtype))
        chunk = cast(column_chunk(column, name, "batch", first_row), options.dtype)
        array, mask = pad_chunk(chunk, options, options.maxlen)
        if self.mask_as and name == self._first:
            mask = mask.astype(np.int32)  # 1 = real step, as KerasHub and Hugging Face want it
        return (padded_lists(array, self.fixed_size), padded_lists(mask, self.fixed_size),
                pa.array(chunk.lengths, pa.int64()))


def padded_lists(array: np.ndarray, fixed_size: bool = True) -> pa.Array:
    """A padded numpy array of shape (rows, width, *features) as nested Arrow
    lists: fixed-size lists, or plain lists all of one length."""
    if array.dtype.kind == "U":
        flat = pa.array(array.reshape(-1), pa.string())
    else:
        flat = pa.array(array.reshape(-1))
    for axis in range(array.ndim - 1, 0, -1):
        size = array.shape[axis]
        if not size:  # pyarrow cannot build a list of size 0
            raise UsageError("padding to 0 steps leaves nothing, and Arrow has no list of size 0: "
                             "give a maxlen of 1 or more" if axis == 1 else
                             f"steps of shape {array.shape[2:]} hold no numbers: give feature "
                             "vectors of at least one number")
        if fixed_size:
            flat = pa.FixedSizeListArray.from_arrays(flat, size)
        else:
            offsets = pa.array(np.arange(0, len(flat) + 1, size, dtype=np.int32))
            flat = pa.ListArray.from_arrays(offsets, flat)
    return flat


def added_columns(names: tuple[str, ...], mask_as: str | None) -> list[tuple[str, str]]:
    """The mask and lengths columns of each padded field, in order."""
    return [(mask_as if index == 0 and mask_as else name + field_names.MASK_SUFFIX,
             name + field_names.LENGTHS_SUFFIX) for index, name in enumerate(names)]


def as_table(batch, who: str = "pad_arrow") -> pa.Table:
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    if isinstance(batch, pa.Table):
        return batch
    raise UsageError(f"{who} takes a pyarrow Table or RecordBatch, got "
                     f"{type(batch).__name__}: ask the engine for Arrow batches ({_ARROW_FORMATS})")
