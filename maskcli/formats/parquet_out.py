"""``maskcli pad --to parquet``: padded fields as fixed-size list columns.

The layout is :func:`maskcli.pad_arrow`'s, so a file padded by the command
and a dataset padded inside an engine read the same: each field a
``fixed_size_list<dtype, width>`` column (feature vectors a fixed-size list
of them), then ``NAME_mask`` (``fixed_size_list<bool>``, True = real step)
and ``NAME_lengths`` (int64, before truncation) per field; ``--mask-as NAME``
stores the first field's mask as int32 1/0 under NAME instead. A row group
per chunk, written as it arrives, so memory stays bounded. The schema's
metadata holds the npz's ``meta`` under ``maskcli`` (JSON).

A lone field without a name (lists read from jsonl, json or text) is the
column ``inputs``, as in the npz.
"""

from __future__ import annotations

import json
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from maskcli.core.errors import UsageError
from maskcli.formats.arrow_map import added_columns, padded_lists

META_KEY = b"maskcli"


def check_names(names: tuple[str, ...], mask_as: str | None) -> None:
    """Refuse, before reading, column names that would collide."""
    taken = {name: f"field {name!r}" for name in names}
    for name, (mask, lengths) in zip(names, added_columns(names, mask_as)):
        for column, what in ((mask, "mask"), (lengths, "lengths")):
            owner = f"--mask-as {mask_as}" if column == mask_as and what == "mask" \
                else f"field {name!r}"
            if column in taken:
                raise UsageError(f"{owner} needs the column {column!r} for its {what}, which is "
                                 f"{taken[column]}: rename a field, or give another --mask-as")
            taken[column] = f"the {what} of {name!r}" + (
                f" (--mask-as {mask_as})" if owner.startswith("--") else "")


class PaddedParquetWriter:
    """``write_fields`` per chunk (a ``(padded, mask, lengths)`` per field),
    then ``close(meta)``."""

    keeps_chunks = False

    def __init__(self, stream: BinaryIO, names: tuple[str, ...], mask_as: str | None = None):
        self.stream, self.names, self.mask_as = stream, names or ("inputs",), mask_as
        self.writer = None

    def write(self, padded: np.ndarray, mask: np.ndarray, lengths: np.ndarray) -> None:
        self.write_fields([(padded, mask, lengths)])

    def write_fields(self, parts: list[tuple]) -> None:
        columns = {}
        for name, (padded, _, _) in zip(self.names, parts):
            columns[name] = padded_lists(padded)
        for index, (mask_name, lengths_name) in enumerate(added_columns(self.names, self.mask_as)):
            _, mask, lengths = parts[index]
            columns[mask_name] = padded_lists(mask.astype(np.int32) if mask_name == self.mask_as
                                              else mask)
            columns[lengths_name] = pa.array(lengths, pa.int64())
        table = pa.table(columns)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.stream, table.schema)
        self.writer.write_table(table)

    def close(self, meta: dict) -> None:
        if self.writer is None:
            return
        self.writer.add_key_value_metadata({META_KEY: json.dumps(meta).encode()})
        self.writer.close()
