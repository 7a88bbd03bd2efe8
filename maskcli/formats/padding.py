"""Padding from Python: sequences of any kind, and several fields at once.

``maskcli.pad_sequences`` is :func:`maskcli.core.padding.pad_sequences` for
lists and numpy (object) arrays, and takes Arrow list arrays (``ListArray``,
``LargeListArray``, ``FixedSizeListArray``, ``ChunkedArray`` of those) as
their offsets and values, without a Python object per token.

:func:`pad_fields` is ``maskcli pad --field A --field B --value B=V`` from
Python: it pads several fields of a file (read as the command reads it), an
Arrow table, a Hugging Face ``datasets.Dataset`` or a dict of columns, each to
its own longest sequence (or ``maxlen``), and returns each field's padded
array with its mask (True = real step) and lengths.

pyarrow is imported only when an Arrow object is given, or a file needs it.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from maskcli.core import padding as core_padding
from maskcli.core.errors import InputError, UsageError
from maskcli.core.fields import check_values
from maskcli.core.padding import PadOptions, Ragged, cast, pad_chunk, pad_value


class PaddedField(NamedTuple):
    """One padded field: ``values`` (sequences, steps, ...), ``mask`` (True =
    real step) and ``lengths`` (the steps of each sequence before truncation)."""

    values: np.ndarray
    mask: np.ndarray
    lengths: np.ndarray


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0, *, pad_to_multiple_of=None) -> np.ndarray:
    """Pad sequences to the same length, as ``keras.utils.pad_sequences`` does.

    Same signature and defaults (padding AND truncating at the front).
    ``sequences`` is a list of sequences, a numpy object array of them, or an
    Arrow list array (also chunked). See :func:`maskcli.core.padding.pad_sequences`.

    >>> pad_sequences([[1], [2, 3], [4, 5, 6]], padding="post").tolist()
    [[1, 0, 0], [2, 3, 0], [4, 5, 6]]
    """
    if not _is_arrow(sequences):
        return core_padding.pad_sequences(sequences, maxlen, dtype, padding, truncating, value,
                                          pad_to_multiple_of=pad_to_multiple_of)
    options = PadOptions.make(maxlen, dtype, padding, truncating, value, pad_to_multiple_of)
    return _pad([_arrow_ragged(sequences, "sequences")], options)[0]


def pad_fields(data, fields=None, *, values: dict | None = None, maxlen=None, dtype="int32",
               padding="pre", truncating="pre", value=0.0,
               pad_to_multiple_of=None) -> dict[str, PaddedField]:
    """Pad several fields of ``data`` at once: ``{name: PaddedField}``.

    ``data``: a path (jsonl, json, Parquet, Arrow... read as ``maskcli pad``
    reads it), an Arrow table, a ``datasets.Dataset``, or a dict of columns
    (lists of sequences, numpy object arrays, Arrow list arrays). ``fields``:
    the names to pad (default: every list column of a table or dict; a file
    of records needs them). ``values`` gives a field its own pad value
    (``{"labels": -100}``, the command's ``--value labels=-100``); ``value``
    pads the others. The other arguments are ``pad_sequences``'.

    >>> padded = pad_fields({"ids": [[5, 6], [7]], "labels": [[1, 2], [3]]},
    ...                     values={"labels": -100}, padding="post")
    >>> padded["labels"].values.tolist(), padded["ids"].lengths.tolist()
    ([[1, 2], [3, -100]], [2, 1])
    """
    options = PadOptions.make(maxlen, dtype, padding, truncating, value, pad_to_multiple_of)
    if isinstance(fields, str):
        fields = (fields,)
    fields = tuple(fields or ())
    if isinstance(data, (str, os.PathLike)):
        columns = _file_columns(os.fspath(data), fields, options)
    else:
        columns = _memory_columns(data, fields)
    values = dict(values or {})
    check_values({name: str(v) for name, v in values.items()}, tuple(columns))
    padded = {}
    for name, chunks in columns.items():
        each = options if name not in values else PadOptions(
            options.maxlen, options.dtype, options.padding, options.truncating,
            pad_value(values[name], options.dtype), options.pad_to_multiple_of)
        padded[name] = PaddedField(*_pad(chunks, each))
    return padded


def _pad(chunks: list[Ragged], options: PadOptions):
    """Chunks of one field padded alike: (values, mask, lengths)."""
    chunks = [cast(chunk, options.dtype) for chunk in chunks]
    longest = max((int(chunk.lengths.max()) for chunk in chunks if len(chunk.lengths)),
                  default=0)
    maxlen = longest if options.maxlen is None else options.maxlen
    parts = [pad_chunk(chunk, options, maxlen) for chunk in chunks]
    lengths = np.concatenate([chunk.lengths for chunk in chunks])
    if len(parts) == 1:
        return parts[0][0], parts[0][1], lengths
    return (np.concatenate([part[0] for part in parts]),
            np.concatenate([part[1] for part in parts]), lengths)


def _file_columns(path: str, fields: tuple, options: PadOptions) -> dict[str, list[Ragged]]:
    """The fields of a file, read exactly as ``maskcli pad`` reads them."""
    from maskcli.formats import readers
    from maskcli.formats.files import open_source

    read = readers.ReadOptions(fields=fields, numbers=options.dtype.kind != "U")
    with open_source(path) as source:
        opened = readers.open_fields(source, read)
        names = opened.names or ("inputs",)
        columns: dict[str, list[Ragged]] = {name: [] for name in names}
        for chunk in opened.chunks:
            for name, part in zip(names, chunk):
                columns[name].append(part)
    return columns


def _memory_columns(data, fields: tuple) -> dict[str, list[Ragged]]:
    data = _table_of(data)
    if _is_arrow(data):  # a Table or RecordBatch
        names = fields or tuple(name for name in data.column_names
                                if _is_list_column(data.column(name)))
        missing = [name for name in names if name not in data.column_names]
        columns = {name: data.column(name) for name in names if name not in missing}
    elif isinstance(data, dict):
        names = fields or tuple(data)
        missing = [name for name in names if name not in data]
        columns = {name: data[name] for name in names if name not in missing}
    else:
        raise UsageError(f"data is a {type(data).__name__}: give a path, an Arrow table, a "
                         "datasets.Dataset or a dict of columns")
    if missing:
        held = data.column_names if _is_arrow(data) else list(data)
        raise InputError(f"fields={list(names)!r}: no field {missing[0]!r} (the data has: "
                         f"{', '.join(map(str, held))}): name one of those")
    if not columns:
        raise InputError("data holds no column of sequences: give fields=[...] by name")
    return {name: [_ragged(column, name)] for name, column in columns.items()}


def _table_of(data):
    """A ``datasets.Dataset``'s Arrow table (it keeps one under ``.data.table``)."""
    table = getattr(getattr(data, "data", None), "table", None)
    return table if table is not None and _is_arrow(table) else data


def _ragged(column, name: str) -> Ragged:
    if _is_arrow(column):
        return _arrow_ragged(column, name)
    from maskcli.core.steps import steps_to_values

    sequences = list(column)
    lengths = np.zeros(len(sequences), dtype=np.int64)
    for index, sequence in enumerate(sequences):
        if isinstance(sequence, (str, bytes)) or not hasattr(sequence, "__len__"):
            raise InputError(f"field {name!r}, sequence {index}: expected a list of steps, got "
                             f"{type(sequence).__name__} {sequence!r}: give a list of sequences")
        lengths[index] = len(sequence)
    chunk = Ragged(np.empty(0), lengths, f"field {name!r}")
    chunk.values = steps_to_values([step for sequence in sequences for step in sequence], chunk)
    return chunk


def _arrow_ragged(column, name: str) -> Ragged:
    from maskcli.formats.arrow_memory import arrow_column_chunk

    return arrow_column_chunk(column, name)


def _is_arrow(data) -> bool:
    return type(data).__module__.split(".")[0] == "pyarrow"


def _is_list_column(column) -> bool:
    from maskcli.formats.arrow_memory import is_list_column

    return is_list_column(column)
