"""Arrow arrays held in memory (a list column, a table's column) as ragged chunks.

The same conversion as for Parquet and Arrow files (:mod:`maskcli.formats.arrow`):
lengths from the offsets, values from the flat child array.
"""

from __future__ import annotations

import pyarrow as pa

from maskcli.core.errors import InputError
from maskcli.core.padding import Ragged
from maskcli.formats.arrow import _check_steps, _is_list, column_chunk


def arrow_column_chunk(column, name: str) -> Ragged:
    """A list array (or chunked array) as one Ragged chunk; ``name`` names it in messages."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()  # one array: a copy only when it is chunked
    if not isinstance(column, pa.Array) or not _is_list(column.type):
        kind = column.type if isinstance(column, pa.Array) else type(column).__name__
        raise InputError(f"{name}: an Arrow {kind}, not a list array: give a list column, "
                         "one sequence per row")
    _check_steps(column.type.value_type, f"{name} ({column.type})")
    return column_chunk(column, name, "the Arrow data", 0)


def is_list_column(column) -> bool:
    return _is_list(column.type)
