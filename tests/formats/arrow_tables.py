"""Parquet and Arrow bytes made with pyarrow inside the tests (no binary fixtures)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq


def parquet(table: pa.Table, **options) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
    return sink.getvalue().to_pybytes()


def arrow_file(table: pa.Table, batch_rows: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=batch_rows)
    return sink.getvalue().to_pybytes()


def arrow_stream(table: pa.Table, batch_rows: int | None = None) -> bytes:
    """The IPC stream format, as ``datasets.Dataset.save_to_disk`` writes its .arrow files."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=batch_rows)
    return sink.getvalue().to_pybytes()


def feather_v2(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    feather.write_feather(table, sink)  # Feather v2 is the Arrow IPC file format
    return sink.getvalue().to_pybytes()


# name -> (writer, file extension)
CONTAINERS = {
    "parquet": (parquet, ".parquet"),
    "arrow-file": (arrow_file, ".arrow"),
    "arrow-stream": (arrow_stream, ".arrow"),
    "feather": (feather_v2, ".feather"),
}
