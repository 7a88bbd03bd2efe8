"""Reading raw (unpadded) sequences: jsonl, json and text, in chunks.

Formats:

- ``jsonl``: one JSON array per line, or one object per line with the
  sequence under ``field`` (e.g. ``input_ids``). Blank lines are skipped;
  ``[]`` is an empty sequence.
- ``json``: one JSON array of such arrays (or objects).
- ``text``: one sequence per line, tokens split on whitespace or on ``sep``;
  every line is a sequence, so an empty line is an empty sequence. When
  ``numbers`` is set, tokens are parsed as numbers: integers if every token of
  a chunk is an integer (``-3``, ``42``), else floats (``1.5``, ``2e-3``, ``nan``).

Lines end with ``\\n`` or ``\\r\\n``; a UTF-8 byte order mark is skipped.
Line numbers in messages count from 1, sequence and step indices from 0
(they are the row and column of the padded array).

The input is read in blocks of whole lines and each block becomes one
:class:`~maskcli.padding.Ragged` chunk, so memory stays bounded when the
consumer streams. :func:`parse_block` is the single place where a block's
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
from dataclasses import dataclass

import numpy as np

from maskcli.core.errors import InputError, UsageError, where
from maskcli.core.padding import Ragged, describe_step, steps_to_values
from maskcli.formats.files import Source

INPUT_FORMATS = ("auto", "jsonl", "json", "text")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".txt": "text"}
BLOCK_BYTES = 1 << 20  # 1 MiB: thousands of typical lines, and the fast parser's
# scratch arrays stay in the CPU caches (4 MiB blocks parse a third slower)
FAST_PARSE = True  # False: every block takes the generic parser (tests compare the two)
JSON_CHUNK = 1 << 15  # sequences per chunk for the json format
_BOM = b"\xef\xbb\xbf"
# A text token that is a number. Python's float() also takes "1_0" and
# non-ASCII digits; maskcli does not, so that the rule is easy to state.
_NUMBER = re.compile(r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|nan|inf|infinity)",
                     re.IGNORECASE | re.ASCII)
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number",
               float: "a number", bool: "a boolean", type(None): "null"}


@dataclass(frozen=True)
class ReadOptions:
    fmt: str = "auto"
    field: str | None = None  # jsonl/json: the key holding the sequence
    sep: str | None = None  # text: the token separator (None: any whitespace)
    numbers: bool = True  # text: parse tokens as numbers rather than keep strings


def detect_format(source: Source, head: bytes) -> str:
    """The input format: by the file extension, else sniffed from the first bytes.

    A first line that is a whole JSON value means jsonl; a JSON document
    spread over several lines means json; anything else is text.
    """
    if source.path is not None and source.path.suffix.lower() in _EXTENSIONS:
        return _EXTENSIONS[source.path.suffix.lower()]
    start = head.lstrip()
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
    """Yield the sequences of ``source`` as Ragged chunks, in input order.

    Every chunk's steps have the same shape as the first chunk's (checked).
    ``progress``, if given, is called with the number of input bytes read
    so far each time a chunk is ready.
    """
    block_bytes = block_bytes or BLOCK_BYTES
    progress = progress or (lambda done: None)
    head = source.stream.read(block_bytes)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{source.name} is UTF-16 text: convert it to UTF-8, e.g. "
                         "iconv -f UTF-16 -t UTF-8")
    skipped = len(head)
    head = head.removeprefix(_BOM)
    skipped -= len(head)
    fmt = detect_format(source, head) if options.fmt == "auto" else options.fmt
    if fmt not in INPUT_FORMATS[1:]:
        raise UsageError(f"unknown input format {fmt!r}: use one of {', '.join(INPUT_FORMATS)}")
    if options.field is not None and fmt == "text":
        raise UsageError(f"--field applies to jsonl/json input, but {source.name} is read as text: "
                         "drop --field, or say --from jsonl")
    if options.sep is not None and fmt != "text":
        raise UsageError(f"--sep applies to text input, but {source.name} is read as {fmt}: "
                         "drop --sep, or say --from text")
    if fmt == "json":
        chunks = _json_chunks(head + source.stream.read(), options, source.name)
    else:
        chunks = _line_chunks(head, source, fmt, options, block_bytes,
                              lambda done: progress(skipped + done))
    feature_shape = None
    for chunk in chunks:
        if len(chunk.values):
            shape = chunk.values.shape[1:]
            if feature_shape is None:
                feature_shape = shape
            elif shape != feature_shape:
                raise InputError(
                    f"{chunk.place_of_step(0)}: steps with {describe_step(shape)} after steps with "
                    f"{describe_step(feature_shape)}: give every step the same number of features")
        yield chunk


def _line_chunks(head: bytes, source: Source, fmt: str, options: ReadOptions,
                 block_bytes: int, progress: Callable[[int], None]) -> Iterator[Ragged]:
    line, sequence, done = 1, 0, 0
    blocks = _blocks(head, source.stream, block_bytes)
    for block, parsed in _parse_ahead(_fast_parser(fmt, options), blocks):
        if parsed is None:
            chunk = parse_block(block, fmt, options, source.name, line, sequence)
            line += block.count(b"\n")
        else:
            chunk = _fast_chunk(parsed, fmt, source.name, line, sequence)
            line += parsed.newlines
        sequence += len(chunk.lengths)
        done += len(block)
        progress(done)
        yield chunk


def _fast_parser(fmt: str, options: ReadOptions):
    """The vectorised parser for blocks of this input, or None where only the
    generic parser applies (objects, a separator, tokens kept as strings)."""
    if not FAST_PARSE:
        return None
    from maskcli.formats import fastparse

    if fmt == "jsonl" and options.field is None:
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
    from concurrent.futures import ThreadPoolExecutor

    from maskcli.formats.fastparse import keep_freed_memory

    keep_freed_memory()
    workers = min(2, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers, thread_name_prefix="maskcli-parse") as pool:
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
        return _parse_jsonl(lines, options.field, source, first_line, first_sequence,
                            _has_literals(text))
    return _parse_text(lines, options, source, first_line, first_sequence,
                       strict=text.isascii() and "_" not in text)


def _parse_jsonl(lines: list[str], field: str | None, source: str, first_line: int,
                 first_sequence: int, literals: bool) -> Ragged:
    numbers, records = [], []
    for offset, line in enumerate(lines):
        if not line or line.isspace():
            continue
        number = first_line + offset
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            detail = f"{exc.msg}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
            raise InputError(f"{where(source, number)}: malformed JSON ({detail}): fix the line; "
                             "each line holds one JSON array, e.g. [1, 2, 3]") from None
        except RecursionError:
            raise InputError(f"{where(source, number)}: JSON nested too deeply: each line holds "
                             "one array of tokens or of feature vectors, e.g. [1, 2, 3]") from None
        numbers.append(number)
    return _records_to_chunk(records, field, source, first_sequence, literals, numbers)


def _json_chunks(data: bytes, options: ReadOptions, source: str) -> Iterator[Ragged]:
    try:
        text = data.decode("utf-8")
        records = json.loads(text) if text.strip() else []
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{where(source, line)}: not UTF-8 text: convert the file to UTF-8, e.g. "
                         "iconv -f latin1 -t UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where(source, exc.lineno)}: malformed JSON ({exc.msg}, column "
                         f"{exc.colno}): fix it; the file holds one JSON array of arrays") from None
    except RecursionError:
        raise InputError(f"{source}: JSON nested too deeply: the file holds one array of "
                         "sequences, e.g. [[1, 2], [3]]") from None
    if not isinstance(records, list):
        raise InputError(f"{source}: expected a JSON array of sequences, got "
                         f"{_JSON_TYPES.get(type(records), 'a value')}: write [[1, 2], [3]], "
                         "or use --from jsonl for one object per line")
    literals = _has_literals(text)  # once: it scans the whole text
    for start in range(0, len(records), JSON_CHUNK):
        yield _records_to_chunk(records[start:start + JSON_CHUNK], options.field, source, start,
                                literals)


def _records_to_chunk(records: list, field: str | None, source: str, first_sequence: int,
                      literals: bool, lines: list[int] | None = None) -> Ragged:
    chunk = Ragged(np.empty(0), np.zeros(len(records), np.int64), source, first_sequence,
                   None if lines is None else np.array(lines, dtype=np.int64))
    steps = []
    for index, record in enumerate(records):
        sequence = _sequence(record, field, chunk, index)
        chunk.lengths[index] = len(sequence)
        steps.extend(sequence)
    if literals:
        _refuse_literals(steps, chunk)
    chunk.values = steps_to_values(steps, chunk)
    return chunk


def _sequence(record, field: str | None, chunk: Ragged, index: int) -> list:
    if field is not None:
        if not isinstance(record, dict):
            raise InputError(f"{chunk.place(index)}: {_JSON_TYPES.get(type(record), 'a value')}, "
                             f"not an object with the field {field!r}: drop --field to read arrays")
        if field not in record:
            raise InputError(f"{chunk.place(index)}: no field {field!r} (keys: {_keys(record)}): "
                             "name the field holding the sequence with --field")
        record = record[field]
    elif isinstance(record, dict):
        raise InputError(f"{chunk.place(index)}: an object, not an array (keys: {_keys(record)}): "
                         "name the field holding the sequence with --field, e.g. --field input_ids")
    if not isinstance(record, list):
        raise InputError(f"{chunk.place(index)}: expected an array, got "
                         f"{_JSON_TYPES.get(type(record), 'a value')}: "
                         "give each sequence as a JSON array, e.g. [1, 2, 3]")
    return record


def _keys(record: dict) -> str:
    keys = list(record)
    shown = ", ".join(map(repr, keys[:10]))
    return (shown + ", ...") if len(keys) > 10 else (shown or "none")


def _has_literals(text: str) -> bool:
    """Whether JSON text may hold true, false or null (a cheap test, before a slow one)."""
    return "true" in text or "false" in text or "null" in text


def _refuse_literals(steps: list, chunk: Ragged) -> None:
    """JSON true/false/null are no tokens; numpy would silently turn true into 1."""
    for index, step in enumerate(steps):
        items = step if isinstance(step, list) else (step,)
        for item in items:
            if item is None or isinstance(item, bool):
                raise InputError(f"{chunk.place_of_step(index)}: {json.dumps(item)} is neither a "
                                 "number nor a string: give token ids, numbers or strings")


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
        for dtype in (np.int64, np.float64):
            try:
                return tokens.astype(dtype)
            except (ValueError, OverflowError):
                continue
    index, word = next((i, token) for i, token in enumerate(tokens.tolist())
                       if not _NUMBER.fullmatch(token))
    raise InputError(f"{chunk.place_of_step(index)}: token {word!r} is not a number: map words to "
                     "ids with --vocab FILE or --save-vocab FILE, or keep them with --dtype str")
