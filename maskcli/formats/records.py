"""JSON records into ragged chunks: the jsonl and json formats of ``maskcli pad``.

A record is a JSON array (one sequence), or an object holding one sequence
under each of ``fields`` (``input_ids`` and ``labels`` for a tagger, ``source``
and ``target`` for translation). A chunk of records becomes one
:class:`~maskcli.core.padding.Ragged` per field, all with one sequence per record,
so that every field of record i is row i of its padded array.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from maskcli.core.errors import InputError, where
from maskcli.core.padding import Ragged
from maskcli.core.steps import steps_to_values

JSON_CHUNK = 1 << 15  # sequences per chunk for the json format
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number",
               float: "a number", bool: "a boolean", type(None): "null"}


def parse_jsonl(lines: list[str], fields: tuple[str, ...], source: str, first_line: int,
                first_sequence: int, literals: bool) -> tuple[Ragged, ...]:
    """Parse jsonl lines (blank ones skipped): one Ragged per field, or one for arrays."""
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
    return records_to_chunks(records, fields, source, first_sequence, literals, numbers)


def json_chunks(data: bytes, fields: tuple[str, ...], source: str) -> Iterator[tuple[Ragged, ...]]:
    """Parse a json document holding one array of records, in chunks of records."""
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
    literals = has_literals(text)  # once: it scans the whole text
    for start in range(0, len(records), JSON_CHUNK):
        yield records_to_chunks(records[start:start + JSON_CHUNK], fields, source, start, literals)


def records_to_chunks(records: list, fields: tuple[str, ...], source: str, first_sequence: int,
                      literals: bool, lines: list[int] | None = None) -> tuple[Ragged, ...]:
    """One Ragged per field (one for bare arrays) from a list of JSON records.

    With several fields, messages name the field after the file.
    """
    line_numbers = None if lines is None else np.array(lines, dtype=np.int64)
    chunks = []
    for field in fields or (None,):
        named = source if len(fields) < 2 else f"{source}, field {field!r}"
        chunk = Ragged(np.empty(0), np.zeros(len(records), np.int64), named, first_sequence,
                       line_numbers)
        steps = []
        for index, record in enumerate(records):
            sequence = _sequence(record, field, chunk, index)
            chunk.lengths[index] = len(sequence)
            steps.extend(sequence)
        if literals:
            _refuse_literals(steps, chunk)
        chunk.values = steps_to_values(steps, chunk)
        chunks.append(chunk)
    return tuple(chunks)


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


def has_literals(text: str) -> bool:
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
