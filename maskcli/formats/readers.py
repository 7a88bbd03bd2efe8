"""Reading raw (unpadded) sequences: jsonl, json, text, Parquet and Arrow, in chunks.

Formats:

- ``jsonl``: one JSON array per line, or one object per line with a
  sequence under each of ``fields`` (e.g. ``input_ids``, ``labels``). Blank
  lines are skipped; ``[]`` is an empty sequence.
- ``json``: one JSON array of such arrays (or objects).
- ``parquet``, ``arrow``: a table with one list column per field, read by
  :mod:`maskcli.formats.arrow` (pyarrow is imported only for them).
- ``text``: one sequence per line, tokens split on whitespace or on ``sep``;
  every line is a sequence, so an empty line is an empty sequence. When
  ``numbers`` is set, tokens are parsed as numbers: integers if every token of
  a chunk is an integer (``-3``, ``42``), else floats (``1.5``, ``2e-3``, ``nan``).

Lines end with ``\\n`` or ``\\r\\n``; a UTF-8 byte order mark is skipped.
Line numbers in messages count from 1, sequence and step indices from 0
(they are the row and column of the padded array).

The input is read in blocks of whole lines (record batches for tables) and
each block becomes one :class:`~maskcli.core.padding.Ragged` chunk per field, so
memory stays bounded when the consumer streams. :func:`parse_block` is the single place where a block's
bytes become numbers. Integer-only jsonl and text take a faster route first
(:mod:`maskcli.formats.fastparse`, vectorised over the bytes, on worker threads);
whatever it cannot read exactly goes to the generic parser, which also writes
every error message.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from maskcli.core.errors import InputError, UsageError, where
from maskcli.core.padding import Ragged
from maskcli.core.steps import describe_step
from maskcli.formats import records
from maskcli.formats.files import Source

INPUT_FORMATS = ("auto", "jsonl", "json", "text", "parquet", "arrow")
TABLE_FORMATS = ("parquet", "arrow")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".txt": "text",
               ".parquet": "parquet", ".pq": "parquet",
               ".arrow": "arrow", ".arrows": "arrow", ".feather": "arrow", ".ipc": "arrow"}
# Parquet files start with PAR1; Arrow IPC files with ARROW1; Arrow IPC streams
# (what datasets' save_to_disk writes) with the continuation marker 0xFFFFFFFF.
_MAGIC = ((b"PAR1", "parquet"), (b"ARROW1", "arrow"), (b"\xff\xff\xff\xff", "arrow"))
BLOCK_BYTES = 1 << 20  # 1 MiB: thousands of typical lines, and the fast parser's
# scratch arrays stay in the CPU caches (4 MiB blocks parse a third slower)
FAST_PARSE = True  # False: every block takes the generic parser (tests compare the two)
_BOM = b"\xef\xbb\xbf"
# A text token that is a number. Python's float() also takes "1_0" and
# non-ASCII digits; maskcli does not, so that the rule is easy to state.
_NUMBER = re.compile(r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|nan|inf|infinity)",
                     re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class ReadOptions:
    fmt: str = "auto"
    # jsonl/json: the keys holding the sequences; Parquet/Arrow: the list
    # columns. A single name (or None) is accepted for one field.
    fields: tuple[str, ...] = ()
    sep: str | None = None  # text: the token separator (None: any whitespace)
    numbers: bool = True  # text: parse tokens as numbers rather than keep strings
    # Parquet/Arrow: chunks of a multiple of this many rows where the file allows
    # (None: arrow.BATCH_ROWS); pack gives its window, so that no window is a copy
    # joined from two chunks
    chunk_rows: int | None = None

    def __post_init__(self):
        fields = self.fields
        if fields is None or isinstance(fields, str):
            fields = () if fields is None else (fields,)
        object.__setattr__(self, "fields", tuple(fields))


@dataclass
class Fields:
    """An opened input: its field names and its chunks, one Ragged per field.

    ``names`` is empty for bare sequences (jsonl arrays, text): each chunk
    then holds one Ragged. Record i of the input is row i of every field.
    """

    names: tuple[str, ...]
    chunks: Iterator[tuple[Ragged, ...]]


def detect_format(source: Source, head: bytes) -> str:
    """The input format: by the file extension, else by the first bytes.

    Parquet and Arrow are told by their magic bytes. Otherwise a first line
    that is a whole JSON value means jsonl; a JSON document spread over
    several lines means json; anything else is text.
    """
    if source.path is not None and source.path.suffix.lower() in _EXTENSIONS:
        return _EXTENSIONS[source.path.suffix.lower()]
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    start = head.removeprefix(_BOM).lstrip()
    if not start or start[:1] == b"{":
        return "jsonl"
    if start[:1] == b"[":
        try:
            json.loads(start.split(b"\n", 1)[0])
        except ValueError:
            return "json"
        return "jsonl"
    return "text"


def read_chunks(source: Source, options: ReadOptions = ReadOptions(),
                block_bytes: int | None = None,
                progress: Callable[[int], None] | None = None) -> Iterator[Ragged]:
    """Yield the sequences of ``source`` (one field at most) as Ragged chunks, in order."""
    for chunk in open_fields(source, options, block_bytes, progress).chunks:
        yield chunk[0]


def open_fields(source: Source, options: ReadOptions = ReadOptions(),
                block_bytes: int | None = None,
                progress: Callable[[int], None] | None = None) -> Fields:
    """Open ``source``: its field names, and its chunks in input order.

    Every chunk's steps have the same shape as the first chunk's, field by
    field (checked). ``progress``, if given, is called with the number of
    input bytes read so far each time a chunk is ready.
    """
    block_bytes = block_bytes or BLOCK_BYTES
    progress = progress or (lambda done: None)
    head = source.stream.read(block_bytes)
    fmt = detect_format(source, head) if options.fmt == "auto" else options.fmt
    if fmt not in INPUT_FORMATS[1:]:
        raise UsageError(f"unknown input format {fmt!r}: use one of {', '.join(INPUT_FORMATS)}")
    if options.fields and fmt == "text":
        raise UsageError(f"--field applies to jsonl/json input and Parquet/Arrow tables, but "
                         f"{source.name} is read as text: drop --field, or say --from jsonl")
    if options.sep is not None and fmt != "text":
        raise UsageError(f"--sep applies to text input, but {source.name} is read as {fmt}: "
                         "drop --sep, or say --from text")
    if len(set(options.fields)) != len(options.fields):
        twice = next(name for name in options.fields if options.fields.count(name) > 1)
        raise UsageError(f"--field {twice} is given twice: name each field once")
    if fmt in TABLE_FORMATS:
        from maskcli.formats import arrow  # pyarrow: only for Parquet and Arrow input

        names, chunks = arrow.open_table(source, fmt, options.fields, head, progress,
                                          options.chunk_rows)
        return Fields(names, _same_step_shapes(chunks))
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{source.name} is UTF-16 text: convert it to UTF-8, e.g. "
                         "iconv -f UTF-16 -t UTF-8")
    skipped = len(head)
    head = head.removeprefix(_BOM)
    skipped -= len(head)
    if fmt == "json":
        chunks = records.json_chunks(head + source.stream.read(), options.fields, source.name)
    else:
        chunks = _line_chunks(head, source, fmt, options, block_bytes,
                              lambda done: progress(skipped + done))
    return Fields(options.fields, _same_step_shapes(chunks))


def _same_step_shapes(chunks: Iterator[tuple[Ragged, ...]]) -> Iterator[tuple[Ragged, ...]]:
    """The chunks, checked: each field's steps keep the shape of its first steps.

    A field with no step in a chunk (every sequence empty, as data sorted by
    length starts) cannot tell whether its steps are feature vectors. Such a
    chunk waits for the first chunk that tells, and takes its step shape, as
    pad_sequences takes the shape of the first non-empty sequence: otherwise its
    rows would be padded 2-D and the later ones 3-D. What waits is mostly
    lengths: the empty field has no values.
    """
    shapes, waiting = {}, []
    for chunk in chunks:
        for index, field in enumerate(chunk):
            if len(field.values):
                shape = field.values.shape[1:]
                expected = shapes.setdefault(index, shape)
                if shape != expected:
                    raise InputError(
                        f"{field.place_of_step(0)}: steps with {describe_step(shape)} after steps "
                        f"with {describe_step(expected)}: give every step the same number of "
                        "features")
        waiting.append(chunk)
        if len(shapes) == len(chunk):
            yield from (_shaped(held, shapes) for held in waiting)
            waiting = []
    yield from waiting  # a field with no step at all: single values, as for no input


def _shaped(chunk: tuple[Ragged, ...], shapes: dict) -> tuple[Ragged, ...]:
    """``chunk`` with its empty fields' values given their field's step shape."""
    return tuple(replace(field, values=np.empty((0,) + shapes[index], field.values.dtype))
                 if not len(field.values) else field for index, field in enumerate(chunk))


def _line_chunks(head: bytes, source: Source, fmt: str, options: ReadOptions,
                 block_bytes: int, progress: Callable[[int], None]
                 ) -> Iterator[tuple[Ragged, ...]]:
    line, sequence, done = 1, 0, 0
    blocks = _blocks(head, source.stream, block_bytes)
    for block, parsed in _parse_ahead(_fast_parser(fmt, options), blocks):
        if parsed is None:
            chunk = parse_fields(block, fmt, options, source.name, line, sequence)
            line += block.count(b"\n")
        else:
            chunk = (_fast_chunk(parsed, fmt, source.name, line, sequence),)
            line += parsed.newlines
        sequence += len(chunk[0].lengths)
        done += len(block)
        progress(done)
        yield chunk


def _fast_parser(fmt: str, options: ReadOptions):
    """The vectorised parser for blocks of this input, or None where only the
    generic parser applies (objects, a separator, tokens kept as strings)."""
    if not FAST_PARSE:
        return None
    from maskcli.formats import fastparse

    if fmt == "jsonl" and not options.fields:
        return fastparse.parse_jsonl_ints
    if fmt == "text" and options.sep is None and options.numbers:
        return fastparse.parse_text_ints
    return None


def _parse_ahead(parse, blocks: Iterator[bytes]) -> Iterator[tuple[bytes, object]]:
    """Pair each block with ``parse(block)`` (None: not fast-parseable), in order.

    numpy releases the GIL in its loops, so two worker threads parse the next
    blocks while this thread pads and writes the current one. A block that the
    fast parser refuses is left to the generic parser, in this thread and in
    order, so that its messages name the right line and sequence.
    """
    if parse is None:
        for block in blocks:
            yield block, None
        return
    first, second = next(blocks, None), next(blocks, None)
    if second is None:  # a single block: no threads to start
        if first is not None:
            yield first, parse(first)
        return
    blocks = itertools.chain((first, second), blocks)
    from maskcli.core.workers import worker_pool
    from maskcli.formats.fastparse import keep_freed_memory

    keep_freed_memory()
    workers = min(2, os.cpu_count() or 1)
    with worker_pool(workers, "maskcli-parse") as pool:
        pending = deque()
        for block in blocks:
            pending.append((block, pool.submit(parse, block)))
            if len(pending) > 2 * workers:
                block, parsed = pending.popleft()
                yield block, parsed.result()
        while pending:
            block, parsed = pending.popleft()
            yield block, parsed.result()


def _fast_chunk(parsed, fmt: str, source: str, first_line: int, first_sequence: int) -> Ragged:
    """A chunk from the fast parser, identical to what :func:`parse_block` returns."""
    values, lengths, lines, _ = parsed
    if fmt == "jsonl" and not len(values):
        values = np.asarray([])  # numpy's default for no steps, as the generic parser gets
    lines += first_line - 1
    return Ragged(values, lengths, source, first_sequence, lines)


def _blocks(head: bytes, stream, block_bytes: int) -> Iterator[bytes]:
    """Split the input into blocks of whole lines (the last may lack its newline)."""
    pending, more = b"", head
    while more:
        cut = more.rfind(b"\n") + 1
        if cut:
            yield b"".join((pending, memoryview(more)[:cut]))  # one copy of the block
            pending = more[cut:]
        else:
            pending += more  # no line end yet
        more = stream.read(block_bytes)
    if pending:
        yield pending


def parse_block(block: bytes, fmt: str, options: ReadOptions, source: str, first_line: int,
                first_sequence: int) -> Ragged:
    """Parse a block of whole jsonl or text lines into one Ragged chunk.

    ``first_line`` (1-based) and ``first_sequence`` place the block in the
    input. This is the seam for a faster parser: any replacement must return
    the same ``values`` (same dtype), ``lengths`` and ``lines`` as this one,
    and leave the messages of malformed input to it.
    """
    return parse_fields(block, fmt, options, source, first_line, first_sequence)[0]


def parse_fields(block: bytes, fmt: str, options: ReadOptions, source: str, first_line: int,
                 first_sequence: int) -> tuple[Ragged, ...]:
    """:func:`parse_block` for every field: one Ragged per field of ``options``."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + block.count(b"\n", 0, exc.start)
        raise InputError(f"{where(source, line)}: not UTF-8 text: convert the file to UTF-8, e.g. "
                         "iconv -f latin1 -t UTF-8") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the block starts no line
    if "\r" in text:
        lines = [line.removesuffix("\r") for line in lines]
    if fmt == "jsonl":
        return records.parse_jsonl(lines, options.fields, source, first_line, first_sequence,
                                   records.has_literals(text))
    return (_parse_text(lines, options, source, first_line, first_sequence,
                        strict=text.isascii() and "_" not in text),)


def _parse_text(lines: list[str], options: ReadOptions, source: str, first_line: int,
                first_sequence: int, strict: bool) -> Ragged:
    sep = options.sep
    lengths = np.zeros(len(lines), dtype=np.int64)
    chunk = Ragged(np.empty(0), lengths, source, first_sequence,
                   np.arange(first_line, first_line + len(lines), dtype=np.int64))
    tokens = []
    for index, line in enumerate(lines):
        if sep is None:
            sequence = line.split()
        else:
            sequence = [token.strip() for token in line.split(sep)] if line.strip() else []
            if "" in sequence:
                raise InputError(f"{chunk.place(index, sequence.index(''))}: empty token (two "
                                 f"separators {sep!r} in a row, or one at an end): remove it")
        lengths[index] = len(sequence)
        tokens.extend(sequence)
    values = np.array(tokens, dtype=str)
    chunk.values = _text_numbers(values, chunk, strict) if options.numbers else values
    return chunk


def _text_numbers(tokens: np.ndarray, chunk: Ragged, strict: bool) -> np.ndarray:
    """Parse text tokens as int64, else float64, or name the first word.

    ``strict`` says the block is plain ASCII without underscores, where
    numpy's own parsing accepts exactly the tokens ``_NUMBER`` accepts.
    """
    if not tokens.size:
        return np.empty(0, dtype=np.int64)
    if strict or all(_NUMBER.fullmatch(token) for token in tokens.tolist()):
        for dtype in (np.int64, np.uint64, np.float64):  # uint64: ids beyond int64, exact
            try:
                return tokens.astype(dtype)
            except (ValueError, OverflowError):
                continue
    index, word = next((i, token) for i, token in enumerate(tokens.tolist())
                       if not _NUMBER.fullmatch(token))
    raise InputError(f"{chunk.place_of_step(index)}: token {word!r} is not a number: map words to "
                     "ids with --vocab FILE or --save-vocab FILE, or keep them with --dtype str")
