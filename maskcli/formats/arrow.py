"""Parquet and Arrow IPC tables into ragged chunks, without a Python object per token.

Arrow stores a list column as offsets plus one flat array of values: the
ragged pair of :mod:`maskcli.core.padding`, already built. Each record batch (or
Parquet row group) of the chosen columns becomes one
:class:`~maskcli.core.padding.Ragged` per column: ``lengths`` from the offsets,
``values`` a view of Arrow's own buffer (numbers), so padding is one
vectorised scatter. Strings are dictionary-encoded first, so that only the
distinct tokens become Python strings.

Accepted columns: ``list``, ``large_list`` or ``fixed_size_list`` of
integers, floats or strings (also dictionary-encoded), and lists of those
whose steps are fixed-size lists or lists of numbers: feature vectors, a 3-D
padded array. Nulls are refused with the row and the column: maskcli never
guesses a token.

Files are read a batch at a time, so memory stays bounded when the
consumer streams. Parquet and the Arrow file format need to seek, so
standard input (or a pipe) is read into memory first, refused beyond this
machine's memory.

pyarrow is imported here only: this module is loaded for Parquet and Arrow
input alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from maskcli.core.errors import InputError, MaskcliError, UsageError
from maskcli.core.limits import too_big
from maskcli.core.padding import Ragged
from maskcli.core.steps import describe_step
from maskcli.formats.files import Source

# Rows per chunk: small batches (datasets writes 1,000 rows a batch) are joined
# up to this many, so that the per-chunk cost of numpy calls stays small.
BATCH_ROWS = 1 << 16
_READ_BYTES = 1 << 24  # standard input is read into memory in blocks this size
_READ_PAGES = 1 << 20  # Parquet pages are read through a buffer this size
_FIX = {"parquet": "re-export it, e.g. with pyarrow.parquet.write_table or Dataset.to_parquet",
        "arrow": "re-export it, e.g. with pyarrow.feather.write_feather or "
                 "Dataset.save_to_disk"}


def open_table(source: Source, fmt: str, fields: tuple[str, ...], head: bytes,
               progress: Callable[[int], None],
               chunk_rows: int | None = None) -> tuple[tuple[str, ...], Iterator]:
    """Open a Parquet or Arrow input: the names of the columns to pad (``fields``,
    or the table's only list column), and its chunks, one Ragged per column.

    Chunks hold ``BATCH_ROWS`` rows, or where ``chunk_rows`` is given the
    smallest multiple of it that is at least half as many (where the file
    allows): a consumer taking ``chunk_rows`` at a time then never joins two
    chunks. ``pack``'s default window of 50,000 documents is then one chunk:
    against two windows per chunk, a median of 1.72 s instead of 1.90 s on a
    million rows, half the system time (interleaved runs, 6 each).
    """
    table = _Table(source, fmt, head)
    names = _columns(table.schema, fields, source.name)
    rows = BATCH_ROWS if chunk_rows is None else chunk_rows * -(-BATCH_ROWS // 2 // chunk_rows)
    return names, _read_ahead(table.chunks(names, progress, rows))


def _read_ahead(chunks: Iterator) -> Iterator:
    """The chunks, each read while the caller pads and writes the one before.

    pyarrow releases the GIL while it decodes, so reading and padding can
    overlap on a free second core, as the jsonl parser's threads do. On the
    shared 2-core machine of the benchmarks no core was free: interleaved runs
    on a million rows measured 0.85-1.00 s with this thread and 0.81-1.27 s
    without. One thread at a time advances ``chunks``: the next read starts
    only once the previous one is done.
    """
    from maskcli.core.workers import worker_pool
    from maskcli.formats.fastparse import keep_freed_memory

    keep_freed_memory()  # each chunk's padded array reuses the last one's pages
    with worker_pool(1, "maskcli-arrow") as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk


class _Table:
    """A Parquet file or an Arrow IPC file or stream, read a batch at a time."""

    def __init__(self, source: Source, fmt: str, head: bytes):
        self.name, self.fmt = source.name, fmt
        self.size = source.size
        if source.path is not None and source.size is not None:
            where = str(source.path)  # a regular file: pyarrow reads it itself
        else:
            where = pa.py_buffer(_read_all(source, head))
        self.stream = None
        with self._errors("its start"):
            if fmt == "parquet":
                import pyarrow.parquet as pq

                # Pages are read as they are decoded, not a whole column chunk
                # (one row group can be the whole file) at once: measured
                # 100 MB less for a million rows, in the same time.
                self.reader = pq.ParquetFile(where, pre_buffer=False, buffer_size=_READ_PAGES)
                self.schema = self.reader.schema_arrow
                self.rows = self.reader.metadata.num_rows
            else:
                stream = pa.OSFile(where) if isinstance(where, str) else pa.BufferReader(where)
                file_format = head.startswith(b"ARROW1")
                self.reader = (pa.ipc.open_file if file_format else pa.ipc.open_stream)(stream)
                self.schema = self.reader.schema
                self.stream = stream

    def _done(self, rows: int) -> int | None:
        """Bytes of the input read so far, for the progress bar (None: unknown)."""
        if not self.size:
            return None
        if self.stream is not None:
            return self.stream.tell()
        return self.size * rows // max(self.rows, 1)

    def _errors(self, place: str):
        return _ArrowErrors(self.name, self.fmt, place)

    def _batches(self, names: tuple[str, ...], rows: int) -> Iterator[pa.RecordBatch]:
        if self.fmt == "parquet":
            yield from self.reader.iter_batches(batch_size=rows, columns=list(names))
        elif isinstance(self.reader, pa.ipc.RecordBatchFileReader):
            for index in range(self.reader.num_record_batches):
                yield self.reader.get_batch(index)
        else:
            while self.reader is not None:
                yield from self.reader
                self.reader = self._next_stream()

    def _next_stream(self):
        """The reader of a second Arrow stream after the first one's end (``cat
        shard0.arrow shard1.arrow``): read on if its columns are the same,
        refused otherwise, never dropped; None at the end of the input."""
        at, size = self.stream.tell(), self.stream.size()
        if at >= size:
            return None
        head = self.stream.read(8)
        self.stream.seek(at)
        if not head.startswith(b"\xff\xff\xff\xff"):
            raise InputError(f"{self.name} holds more after its Arrow stream ends (at byte {at}), "
                             "and it is not a second Arrow stream: give one file at a time, or "
                             "the shards of one save_to_disk dataset")
        reader = pa.ipc.open_stream(self.stream)
        if not reader.schema.equals(self.schema, check_metadata=False):
            raise InputError(f"{self.name} holds a second Arrow stream at byte {at}, whose "
                             f"columns ({_describe(reader.schema)}) differ from the first's "
                             f"({_describe(self.schema)}): pad each stream alone, or give "
                             "streams of one dataset")
        return reader

    def chunks(self, names: tuple[str, ...], progress: Callable[[int], None],
               chunk_rows: int = BATCH_ROWS) -> Iterator:
        batches, first = self._batches(names, chunk_rows), 0
        while True:
            pending, rows = [], 0
            with self._errors(f"row {first}"):
                for batch in batches:  # join small batches up to chunk_rows rows
                    pending.append(batch)
                    rows += batch.num_rows
                    if rows >= chunk_rows:
                        break
                if not pending:
                    return
                chunk = tuple(column_chunk(_join(batch.column(name) for batch in pending), name,
                                           self.name, first) for name in names)
            yield chunk
            first += rows
            done = self._done(first)
            if done is not None:
                progress(done)


def _join(arrays: Iterator[pa.Array]) -> pa.Array:
    arrays = list(arrays)
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)


class _ArrowErrors:
    """Turn pyarrow's errors on a damaged file into one InputError naming the place."""

    def __init__(self, name: str, fmt: str, place: str):
        self.name, self.fmt, self.place = name, fmt, place

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if exc is None or isinstance(exc, MaskcliError):
            return False
        what = "a Parquet" if self.fmt == "parquet" else "an Arrow IPC"
        if isinstance(exc, MemoryError):
            raise InputError(f"{self.name}: reading at {self.place} would take more than this "
                             f"machine's memory: it may be damaged; {_FIX[self.fmt]}") from None
        if isinstance(exc, (pa.ArrowException, OSError, EOFError)):
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{self.name} is not {what} file that can be read, it may be "
                             f"truncated or damaged (at {self.place}: {detail}): "
                             f"{_FIX[self.fmt]}") from None
        return False


def _read_all(source: Source, head: bytes) -> bytes:
    """The whole input, for readers that must seek: refused beyond memory."""
    parts, block = [], head
    while block:
        parts.append(block)
        over = too_big(sum(map(len, parts)))
        if over:
            raise InputError(f"{source.name}: reading it into memory would take more than "
                             f"{over}: give the file's path instead of standard input")
        block = source.stream.read(_READ_BYTES)
    return b"".join(parts)


def _columns(schema: pa.Schema, fields: tuple[str, ...], name: str) -> tuple[str, ...]:
    """The columns to pad: ``fields``, checked, or the table's only list column."""
    lists = [column.name for column in schema if _is_list(column.type)]
    if not fields:
        if not lists:
            raise InputError(f"{name} has no list column (columns: {_describe(schema)}): "
                             "maskcli pads columns of lists, e.g. input_ids: list<int32>")
        if len(lists) > 1:
            raise UsageError(f"{name} has several list columns ({', '.join(lists)}): name the "
                             "one to pad with --field NAME, or several with --field A --field B")
        fields = (lists[0],)
    for field in fields:
        found = schema.get_all_field_indices(field)
        if not found:
            raise UsageError(f"--field {field}: {name} has no column {field!r} (columns: "
                             f"{_describe(schema)}): give --field one of them")
        if len(found) > 1:
            raise InputError(f"{name} has {len(found)} columns named {field!r}: rename them "
                             "so that each name is unique")
        kind = schema.field(field).type
        if not _is_list(kind):
            raise InputError(f"{name}, column {field!r} is {kind}, not a list of tokens: give "
                             f"--field a list column ({', '.join(lists) or 'there is none here'})")
        _check_steps(kind.value_type, f"{name}, column {field!r} holds {kind}")
    return tuple(fields)


def _describe(schema: pa.Schema) -> str:
    shown = [f"{column.name} ({column.type})" for column in schema][:12]
    return ", ".join(shown) + (", ..." if len(schema) > 12 else "") if shown else "none"


def _is_list(kind: pa.DataType) -> bool:
    return (pa.types.is_list(kind) or pa.types.is_large_list(kind)
            or pa.types.is_fixed_size_list(kind))


_FLOATS = {"halffloat": "float16", "float": "float32", "double": "float64"}


def numbers(array: pa.Array) -> np.ndarray:
    """An Arrow array of integers or floats without nulls as numpy: a view of
    its data buffer. (``Array.to_numpy`` imports pandas on its first call,
    half a second of ``maskcli pack``'s time.)"""
    kind = array.type
    if array.null_count or not _is_number(kind):
        return array.to_numpy()
    dtype = np.dtype(_FLOATS.get(str(kind), str(kind)))
    data = array.buffers()[1]
    if data is None:  # an empty array
        return np.empty(0, dtype)
    return np.frombuffer(data, dtype=dtype, count=array.offset + len(array))[array.offset:]


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or (
        hasattr(pa.types, "is_string_view") and pa.types.is_string_view(kind))


def _check_steps(kind: pa.DataType, what: str) -> None:
    """Refuse a step type that is not a token, a number or a feature vector."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if _is_number(kind) or _is_text(kind) or pa.types.is_null(kind):
        return
    if _is_list(kind):
        inner = kind.value_type
        if _is_number(inner):
            return
        problem = ("feature vectors must hold numbers" if not _is_list(inner)
                   else "nested deeper than feature vectors")
        raise InputError(f"{what}: {problem}: give lists of numbers per step, e.g. "
                         "list<list<float>>")
    if pa.types.is_boolean(kind):
        raise InputError(f"{what}: booleans are neither token ids nor numbers: cast the column "
                         "to integers first, e.g. pyarrow.compute.cast(column, "
                         "pa.list_(pa.int8()))")
    raise InputError(f"{what}: give lists of integers, floats or strings (or of feature "
                     "vectors of numbers)")


def column_chunk(column: pa.Array, name: str, source: str, first_row: int) -> Ragged:
    """One list column of a batch as a Ragged chunk: lengths from the offsets,
    values from the flat child array (a view of Arrow's buffer for numbers)."""
    chunk = Ragged(np.empty(0), np.zeros(len(column), np.int64), f"{source}, column {name!r}",
                   first_row, unit="row")
    if column.null_count:
        row = int(np.argmax(~np.asarray(column.is_valid())))
        raise InputError(f"{chunk.place(row)}: null instead of a sequence: give an empty list [] "
                         "or drop the row (e.g. table.drop_null())")
    chunk.lengths = _lengths(column)
    chunk.values = _values(_steps(column, chunk.lengths), chunk)
    return chunk


def _steps(column: pa.Array, lengths: np.ndarray) -> pa.Array:
    """The steps of every list of ``column`` (without nulls), in turn: a
    slice of its child array for lists (``flatten`` imports pyarrow.compute)."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        start = int(numbers(column.offsets)[0]) if len(column) else 0
        return column.values.slice(start, int(lengths.sum()))
    return column.flatten()


def _lengths(column: pa.Array) -> np.ndarray:
    """The length of each list of ``column``: from its offsets for lists (no
    pyarrow.compute to import), else counted by Arrow."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return np.diff(numbers(column.offsets)).astype(np.int64)
    import pyarrow.compute as pc

    return numbers(pc.list_value_length(column)).astype(np.int64)


def _values(steps: pa.Array, chunk: Ragged) -> np.ndarray:
    """The steps of every row, as numpy: numbers, strings, or feature vectors (2-D)."""
    _refuse_nulls(steps, chunk, "null inside the sequence")
    kind = steps.type
    if pa.types.is_dictionary(kind):
        if not len(steps):
            return np.empty(0)
        return _values(steps.dictionary, chunk)[steps.indices.to_numpy()]
    if _is_number(kind):
        return numbers(steps)
    if not len(steps):
        return np.empty(0)  # as the JSON readers give for rows of []
    if _is_text(kind):
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(steps)  # Python strings for the distinct tokens only
        return np.array(encoded.dictionary.to_pylist(), dtype=str)[encoded.indices.to_numpy()]
    widths = _lengths(steps)
    width = int(widths[0])
    ragged = np.flatnonzero(widths != width)
    if len(ragged):
        step = int(ragged[0])
        raise InputError(f"{chunk.place_of_step(step)}: {describe_step((int(widths[step]),))} "
                         f"among steps with {describe_step((width,))}: give every step the same "
                         "number of features")
    features = steps.flatten()
    if features.null_count:
        at = int(np.argmax(~np.asarray(features.is_valid()))) // max(width, 1)
        raise InputError(f"{chunk.place_of_step(at)}: null inside a feature vector: fill it with "
                         "a number (e.g. 0 or nan)")
    return features.to_numpy().reshape(len(steps), width)


def _refuse_nulls(steps: pa.Array, chunk: Ragged, problem: str) -> None:
    if steps.null_count:  # a column of type null counts every step as null
        step = int(np.argmax(~np.asarray(steps.is_valid())))
        raise InputError(f"{chunk.place_of_step(step)}: {problem}: fill it with a real token or "
                         "value, or drop it: maskcli never guesses one")
