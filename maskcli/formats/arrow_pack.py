"""Packing as an Arrow map: a batch of documents in, rows of exactly L steps out.

:func:`pack_arrow` is :func:`maskcli.pad_arrow`'s sibling for ``maskcli
pack``: the documents of one batch are packed together by the same core
(:class:`maskcli.core.packing.Packer`, best-fit decreasing, windows of
``window`` documents) and laid out by the same code
(:mod:`maskcli.core.packed_layout`), so a batch holding a whole file gives
``maskcli pack``'s arrays. Documents never cross batches: an engine's batch is
the packing window, and a bigger ``batch_size`` packs tighter.

Each array becomes a ``fixed_size_list<L>`` column (seqio: ``NAME``,
``NAME_segment_ids``, ``NAME_positions`` per field; flatten: the fields,
``labels`` and ``position_ids``), ``cu_seqlens`` a list per row. Rows are new
rows, so the batch's other columns are not kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa

from maskcli.core import fields as field_names
from maskcli.core.packed_layout import check_layout, layout_arrays
from maskcli.core.packing import DEFAULT_WINDOW, Packer, PackOptions
from maskcli.core.padding import cast, pad_value, parse_dtype
from maskcli.formats.arrow import _columns, column_chunk
from maskcli.formats.arrow_map import as_table, padded_lists
from maskcli.formats.pack_pipeline import _check_names


def pack_arrow(batch, length: int, fields: Iterable[str] = (), overflow: str = "split",
               layout: str = "seqio", cu_seqlens: bool = False, value=0,
               values: Mapping | None = None, dtype="int32", window: int = DEFAULT_WINDOW,
               fixed_size: bool = True) -> pa.Table:
    """Pack the documents of an Arrow batch into rows of ``length`` steps.

    ``batch`` is a ``pyarrow.Table`` or ``RecordBatch``; ``fields`` the list
    columns packed together (default: the only list column). The other
    options are ``maskcli pack``'s.

    >>> import pyarrow as pa
    >>> rows = pack_arrow(pa.table({"ids": [[1, 2], [3], [4, 5, 6]]}), length=3)
    >>> rows.column("ids").to_pylist(), rows.column("ids_segment_ids").to_pylist()
    ([[4, 5, 6], [1, 2, 3]], [[1, 1, 1], [1, 1, 2]])
    """
    packer = _BatchPacker(length, fields, overflow, layout, cu_seqlens, value, values, dtype,
                          window, fixed_size)
    return packer.table(batch, first_row=0)


def pack_arrow_batches(batches: Iterable, length: int, fields: Iterable[str] = (),
                       overflow: str = "split", layout: str = "seqio", cu_seqlens: bool = False,
                       value=0, values: Mapping | None = None, dtype="int32",
                       window: int = DEFAULT_WINDOW,
                       fixed_size: bool = False) -> Iterator[pa.RecordBatch]:
    """:func:`pack_arrow` over an iterator of record batches, each packed alone,
    yielding record batches (Spark's ``mapInArrow``); plain list columns by
    default, as Spark's ArrayType holds them."""
    packer = _BatchPacker(length, fields, overflow, layout, cu_seqlens, value, values, dtype,
                          window, fixed_size)
    first = 0
    for batch in batches:
        yield from packer.table(batch, first).to_batches()
        first += batch.num_rows


class _BatchPacker:
    """The options, checked once; :meth:`table` packs one batch with them."""

    def __init__(self, length, fields, overflow, layout, cu_seqlens, value, values, dtype,
                 window, fixed_size):
        self.options = PackOptions(length, window, overflow)
        self.fields = (fields,) if isinstance(fields, str) else tuple(fields)
        self.dtype = parse_dtype(dtype)
        check_layout(layout, self.fields, self.dtype)
        self.layout, self.cu_seqlens, self.fixed_size = layout, cu_seqlens, fixed_size
        self.value, self.values = value, dict(values or {})

    def table(self, batch, first_row: int) -> pa.Table:
        batch = as_table(batch, "pack_arrow")
        names = _columns(batch.schema, self.fields, "batch")
        field_names.check_values(self.values, names)
        _check_names(names, self.layout, self.cu_seqlens)
        pads = [pad_value(self.values.get(name, self.value), self.dtype) for name in names]
        column = {name: batch.column(name).combine_chunks() for name in names}
        chunk = tuple(cast(column_chunk(column[name], name, "batch", first_row), self.dtype)
                      for name in names)
        arrays: dict[str, list] = {}
        for packed in Packer(names, self.options, pads).pack([chunk]):
            for name, array in layout_arrays(packed, self.layout, self.cu_seqlens).items():
                arrays.setdefault(name, []).append(self._column(array))
        return pa.table({name: pa.chunked_array(parts, parts[0].type)
                         for name, parts in arrays.items()})

    def _column(self, array) -> pa.Array:
        if isinstance(array, tuple):  # cu_seqlens: every row's offsets, and how many per row
            offsets, sizes = array
            bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
            return pa.ListArray.from_arrays(pa.array(bounds), pa.array(offsets))
        return padded_lists(array, self.fixed_size)
