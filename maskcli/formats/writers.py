"""Writing padded arrays, chunk by chunk.

- ``jsonl``: one padded array per line; ``csv``/``tsv``: one row per
  sequence, no header (2-D data only). Rows stream out as chunks arrive.
  Floats are written with the shortest text that reads back to the same
  value in the output dtype; NaN and infinities as Python's json writes them
  (``NaN``, ``Infinity``) in jsonl and as ``nan``, ``inf`` in csv/tsv.
- ``npy``: the padded array. ``npz``: ``inputs`` (the padded array), ``mask``
  (bool, True = real step), ``lengths`` (int64, before truncation) and
  ``meta`` (a 0-d unicode JSON string: padding, truncating, value, maxlen,
  dtype), the contract :mod:`maskcli.formats.arrays` reads. The chunks are kept and
  written once their total shape is known, without a concatenated copy.
- Several fields (see :mod:`maskcli.core.fields`): npz holds one array per field
  under its name (``mask`` and ``lengths`` are the first field's, and a field
  whose lengths differ gets ``NAME_mask`` and ``NAME_lengths``); jsonl one
  object per line keyed by field. ``mask_as`` adds the first field's mask as
  int32 1/0 under that name (KerasHub's ``padding_mask``, Hugging Face's
  ``attention_mask``).

Strings go to npy/npz as fixed-width unicode as wide as the longest token.
Nothing is pickled.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.lib.format as npy_format

from maskcli.core.errors import UsageError
from maskcli.core.fields import LENGTHS_SUFFIX, MASK_SUFFIX
from maskcli.core.names import member_name
from maskcli.formats.fastformat import IntRows
from maskcli.formats.files import STDIN

OUTPUT_FORMATS = ("auto", "jsonl", "csv", "tsv", "npy", "npz", "parquet")
BINARY_FORMATS = ("npy", "npz", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv",
               ".npy": "npy", ".npz": "npz", ".parquet": "parquet"}
_JSON_FLOATS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def output_format(path: str, fmt: str = "auto") -> str:
    """The output format: ``fmt``, else by the extension of ``path``; jsonl on stdout."""
    if fmt != "auto":
        if fmt not in OUTPUT_FORMATS:
            raise UsageError(f"unknown output format {fmt!r}: use one of {', '.join(OUTPUT_FORMATS)}")
        return fmt
    if path == STDIN:
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise UsageError(f"-o {path}: cannot tell the format from the extension {suffix or '(none)'}: "
                         "name the file .jsonl, .csv, .tsv, .npy, .npz or .parquet, or give --to")
    return _EXTENSIONS[suffix]


def open_writer(stream: BinaryIO, fmt: str, dtype: np.dtype | None = None,
                fields: tuple[str, ...] = (), mask_as: str | None = None,
                names: tuple[str, ...] = ()):
    """A writer of padded chunks to ``stream``: ``write(padded, mask, lengths)`` per
    chunk (``write_fields`` with one such triple per field), then ``close(meta)``
    once. ``dtype``: the output dtype, if known (a flexible ``str`` is not: its
    width comes from the longest token). ``fields``: the names of two or more
    fields (the caller has refused formats that hold one array); ``names``
    those of every field, even one (Parquet names its columns after them)."""
    if fmt == "parquet":
        from maskcli.formats.parquet_out import PaddedParquetWriter  # pyarrow: only here

        return PaddedParquetWriter(stream, names, mask_as)
    if fmt == "npy" and dtype is not None and dtype.itemsize and stream.seekable():
        return NpyWriter(stream)
    if fmt in BINARY_FORMATS:
        return ArrayWriter(stream, fmt, fields, mask_as)
    return RowWriter(stream, fmt, fields)


class RowWriter:
    """jsonl, csv and tsv: each chunk's rows are written as soon as they arrive."""

    keeps_chunks = False

    def __init__(self, stream: BinaryIO, fmt: str, fields: tuple[str, ...] = ()):
        self.stream, self.fmt = stream, fmt
        self.keys = [json.dumps(name, ensure_ascii=False) + ": " for name in fields]
        self.ints = IntRows(", " if fmt == "jsonl" else "\t" if fmt == "tsv" else ",",
                            brackets=fmt == "jsonl")

    def write(self, padded: np.ndarray, mask: np.ndarray, lengths: np.ndarray) -> None:
        text = self.ints.format(padded)  # None: not a 2-D integer array it can print
        if text is not None:
            self.stream.write(text)
            return
        rows = self._rows(padded)
        if rows:
            self.stream.write(("\n".join(rows) + "\n").encode("utf-8"))

    def write_fields(self, parts: list[tuple]) -> None:
        """jsonl of several fields: one object per line, ``{"ids": [...], "labels": [...]}``."""
        if len(parts) == 1:
            self.write(*parts[0])
            return
        columns = []
        for padded, _, _ in parts:
            text = self.ints.format(padded)
            columns.append(text.decode().splitlines() if text is not None else self._rows(padded))
        lines = ["{" + ", ".join(key + row for key, row in zip(self.keys, record)) + "}\n"
                 for record in zip(*columns)]
        self.stream.write("".join(lines).encode("utf-8"))

    def _rows(self, padded: np.ndarray) -> list[str]:
        if self.fmt == "jsonl" and padded.dtype.kind in "iu":
            return list(map(str, padded.tolist()))  # Python prints a list of ints as JSON
        if self.fmt == "jsonl":
            return [_json_array(row) for row in _element_texts(padded, json_floats=True)]
        return self._delimited(padded)

    def _delimited(self, padded: np.ndarray) -> list[str]:
        if padded.ndim > 2:
            raise UsageError(f"{self.fmt} holds one row of numbers per sequence, but this data has "
                             f"feature vectors, shape (sequences, steps, features) = "
                             f"{padded.shape}: write .npz, .npy or .jsonl instead")
        delimiter = "\t" if self.fmt == "tsv" else ","
        if padded.dtype.kind == "U":  # tokens may hold the delimiter or quotes
            text = io.StringIO()
            csv.writer(text, delimiter=delimiter, lineterminator="\n").writerows(padded.tolist())
            return text.getvalue().splitlines()
        if padded.dtype.kind in "iu":
            return [delimiter.join(map(str, row)) for row in padded.tolist()]
        return [delimiter.join(row) for row in _element_texts(padded).tolist()]

    def close(self, meta: dict) -> None:
        """Rows carry no metadata."""


class _OneArray:
    """``write_fields`` for writers that hold one field."""

    def write_fields(self, parts: list[tuple]) -> None:
        (part,) = parts
        self.write(*part)


class NpyWriter(_OneArray):
    """npy to a file: each chunk goes to disk as it arrives, so memory stays
    bounded. The header is written first for zero rows, then rewritten in
    place with the final row count: numpy's header keeps room for that, and
    the file is byte for byte what ``np.save`` writes."""

    keeps_chunks = False

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.rows = 0
        self.header = None

    def write(self, padded: np.ndarray, mask: np.ndarray, lengths: np.ndarray) -> None:
        if self.header is None:
            self.dtype = padded.dtype
            self.header = {"descr": npy_format.dtype_to_descr(self.dtype),
                           "fortran_order": False, "shape": (0,) + padded.shape[1:]}
            self.start = self.stream.tell()
            npy_format.write_array_header_1_0(self.stream, self.header)
        self.stream.write(np.ascontiguousarray(padded, dtype=self.dtype).data)
        self.rows += len(padded)

    def close(self, meta: dict) -> None:
        end = self.stream.tell()
        self.header["shape"] = (self.rows,) + self.header["shape"][1:]
        self.stream.seek(self.start)
        npy_format.write_array_header_1_0(self.stream, self.header)
        self.stream.seek(end)


class ArrayWriter:
    """npz, and npy that cannot stream (a pipe, or flexible ``str`` whose width is
    known only at the end): chunks are kept and written out once, in order, at
    ``close``."""

    keeps_chunks = True

    def __init__(self, stream: BinaryIO, fmt: str, fields: tuple[str, ...] = (),
                 mask_as: str | None = None):
        self.stream, self.fmt = stream, fmt
        self.fields, self.mask_as = fields, mask_as
        # per field, its chunks: padded arrays, masks and lengths
        self.padded, self.masks, self.lengths = [], [], []

    def write(self, padded: np.ndarray, mask: np.ndarray, lengths: np.ndarray) -> None:
        self.write_fields([(padded, mask, lengths)])

    def write_fields(self, parts: list[tuple]) -> None:
        if not self.padded:
            self.padded, self.masks, self.lengths = ([[] for _ in parts] for _ in range(3))
        first_mask, first_lengths = parts[0][1], parts[0][2]
        for index, (padded, mask, lengths) in enumerate(parts):
            if mask.shape == first_mask.shape and np.array_equal(lengths, first_lengths):
                mask = first_mask  # the same mask: keep it once (a tagger's labels)
            self.padded[index].append(padded)
            self.masks[index].append(mask)
            self.lengths[index].append(lengths)

    def close(self, meta: dict) -> None:
        # Chunks of strings may differ in width: the widest wins.
        dtypes = [np.result_type(*(part.dtype for part in field)) for field in self.padded]
        if self.fmt == "npy":
            _write_npy(self.stream, self.padded[0], dtypes[0])
            return
        names = self.fields or ("inputs",)
        arrays = {name: (parts, dtype) for name, parts, dtype in zip(names, self.padded, dtypes)}
        arrays["mask"] = (self.masks[0], np.dtype(bool))
        arrays["lengths"] = (self.lengths[0], np.dtype(np.int64))
        meta = {**meta, "dtype": str(dtypes[0])}
        if self.fields:
            meta["masks"] = {names[0]: "mask"}
            for index, name in enumerate(names[1:], 1):
                meta["masks"][name] = "mask"
                if any(not np.array_equal(first, other)
                       for first, other in zip(self.lengths[0], self.lengths[index])):
                    arrays[name + MASK_SUFFIX] = (self.masks[index], np.dtype(bool))
                    arrays[name + LENGTHS_SUFFIX] = (self.lengths[index], np.dtype(np.int64))
                    meta["masks"][name] = name + MASK_SUFFIX
        if self.mask_as:
            arrays[self.mask_as] = (self.masks[0], np.dtype(np.int32))  # 1 = real step
        meta_text = np.array(json.dumps(meta))
        arrays["meta"] = ([meta_text], meta_text.dtype)
        import zipfile  # only here: pad's start-up stays light for the other formats

        from maskcli.formats.npz_stream import in_order

        with zipfile.ZipFile(in_order(self.stream), "w", compression=zipfile.ZIP_STORED,
                             allowZip64=True) as archive:
            for name, (parts, part_dtype) in arrays.items():
                member_name(name, f"-o npz array {name}")  # pad checked them before reading
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    _write_npy(member, parts, part_dtype)


def _write_npy(stream: BinaryIO, parts: list[np.ndarray], dtype: np.dtype) -> None:
    """Write ``parts`` stacked along axis 0 as one npy array, the bytes ``np.save`` writes."""
    shape = (sum(len(part) for part in parts),) + parts[0].shape[1:] if parts[0].ndim else ()
    npy_format.write_array_header_1_0(
        stream, {"descr": npy_format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    for part in parts:  # the array's own bytes, not a copy (unless a dtype changes)
        stream.write(np.ascontiguousarray(part, dtype=dtype).reshape(-1).view(np.uint8).data)


def _element_texts(padded: np.ndarray, json_floats: bool = False) -> np.ndarray:
    """Each value as its text, in an array of the same shape."""
    if padded.dtype.kind == "U":
        return np.vectorize(lambda token: json.dumps(token, ensure_ascii=False),
                            otypes=[str])(padded)
    texts = padded.astype(str)
    if json_floats and padded.dtype.kind == "f":
        texts = texts.astype(np.result_type(texts.dtype, "<U9"))  # room for "-Infinity"
        for plain, spelled in _JSON_FLOATS.items():
            texts[texts == plain] = spelled
    return texts


def _json_array(texts: np.ndarray) -> str:
    if texts.ndim == 1:
        return "[" + ", ".join(texts.tolist()) + "]"
    return "[" + ", ".join(_json_array(inner) for inner in texts) + "]"
