"""The vectorised integer parsers against json.loads / int() line by line.

Soundness: whenever a fast parser returns a result, it is exactly what the
line-by-line reference reads. Completeness on the inputs it is for: integer
jsonl and text in every common layout are parsed, not left to the fallback.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskcli.formats.fastparse import parse_jsonl_ints, parse_text_ints

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)
INT64 = (-(2**63), 2**63 - 1)


class NotIntegers(Exception):
    """The reference cannot read the input as integer sequences."""


def _lines(data: bytes) -> list[str]:
    lines = data.decode("utf-8").split("\n")  # a bad byte: UnicodeDecodeError, unreadable
    return lines[:-1] if lines[-1] == "" else lines  # the last newline ends a line


def reference_jsonl(data: bytes):
    sequences, lines = [], []
    for number, line in enumerate(_lines(data), 1):
        if not line.strip(" \t\r"):
            continue
        try:
            sequence = json.loads(line)
        except ValueError:
            raise NotIntegers(line) from None
        if not isinstance(sequence, list) or not all(
                type(v) is int and INT64[0] <= v <= INT64[1] for v in sequence):
            raise NotIntegers(line)
        sequences.append(sequence)
        lines.append(number)
    return sequences, lines


def reference_text(data: bytes):
    """A blank line is an empty sequence, as in pad's text format."""
    sequences, lines = [], []
    for number, line in enumerate(_lines(data), 1):
        tokens = line.split()
        try:
            sequence = [int(token) for token in tokens]
        except ValueError:
            raise NotIntegers(line) from None
        if not all(INT64[0] <= v <= INT64[1] for v in sequence):
            raise NotIntegers(line)
        sequences.append(sequence)
        lines.append(number)
    return sequences, lines


def assert_same(result, expected):
    sequences, lines = expected
    assert result is not None, "the fast parser fell back on an input it should read"
    values, lengths, got_lines, _ = result
    assert values.dtype == np.int64 and lengths.dtype == np.int64
    assert lengths.tolist() == [len(s) for s in sequences]
    assert values.tolist() == [v for s in sequences for v in s]
    assert got_lines.tolist() == lines


def assert_sound(parse, reference, data: bytes):
    """The fast parser either falls back or reads exactly what the reference reads."""
    result = parse(data)
    if result is not None:
        assert result.newlines == data.count(b"\n")
    try:
        expected = reference(data)
    except (NotIntegers, UnicodeDecodeError):
        assert result is None, f"{data!r} was read although the reference refuses it"
        return
    if result is not None:
        assert_same(result, expected)


# --- generated valid inputs, in many layouts ---------------------------------

ints = st.one_of(st.integers(0, 30000), st.integers(-99, 99),
                 st.integers(-(10**18) + 1, 10**18 - 1))
sequences = st.lists(st.lists(ints, max_size=12), max_size=12)
blank = st.sampled_from(["", " ", "\t", "  \t "])
space = st.sampled_from(["", "", " ", "  ", "\t"])


@st.composite
def jsonl_documents(draw):
    """Integer jsonl with random spacing, CRLF or LF, blank lines, final newline or not."""
    lines = []
    for sequence in draw(sequences):
        while draw(st.integers(0, 5)) == 0:
            lines.append(draw(blank))
        layout = draw(st.sampled_from(["dumps", "compact", "random"]))
        if layout == "dumps":
            line = json.dumps(sequence)
        elif layout == "compact":
            line = json.dumps(sequence, separators=(",", ":"))
        else:
            items = [f"{draw(space)}{v}{draw(space)}" for v in sequence] or [draw(space)]
            line = f"{draw(space)}[{','.join(items)}]{draw(space)}"
        lines.append(line)
    end = draw(st.sampled_from(["\n", "\r\n"]))
    text = end.join(lines)
    if lines and draw(st.booleans()):
        text += end
    return text.encode()


@st.composite
def text_documents(draw):
    lines = []
    for sequence in draw(sequences):
        items = [str(v) for v in sequence]
        if items and len(items[0]) < 16 and draw(st.booleans()):
            items[0] = "0" * draw(st.integers(1, 3)) + items[0].lstrip("-")  # leading zeros
        seps = [draw(st.sampled_from([" ", "  ", "\t", " \t"])) for _ in items]
        line = draw(space) + "".join(i + s for i, s in zip(items, seps)).rstrip() + draw(space)
        lines.append(line)
    end = draw(st.sampled_from(["\n", "\r\n"]))
    text = end.join(lines)
    if lines and draw(st.booleans()):
        text += end
    return text.encode()


@SETTINGS
@given(jsonl_documents())
def test_jsonl_reads_what_json_loads_reads(data):
    assert_same(parse_jsonl_ints(data), reference_jsonl(data))
    assert parse_jsonl_ints(data).newlines == data.count(b"\n")


@SETTINGS
@given(text_documents())
def test_text_reads_what_int_reads(data):
    assert_same(parse_text_ints(data), reference_text(data))
    assert parse_text_ints(data).newlines == data.count(b"\n")


# --- inputs near the grammar: read exactly, or fall back ----------------------

JSONL_NOISE = ["-", "[", "]", ",", " ", "\t", "\n", "\r\n", "\r", "0", "00", "-0", "[]", ", ", ".",
               "e", "1.5", '"a"', "{}", "true", "null", "\x0c", "\xa0", "\ufeff", "\x00",
               "12345678901234567890", "9223372036854775808"]
TEXT_NOISE = ["-", "+", " ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", ".", "e", "_",
              "\xa0", "-0", "007", "[", ",", "12345678901234567890"]


@st.composite
def mutated(draw, documents, noise):
    """A valid document with a few bytes deleted or noise inserted."""
    data = draw(documents).decode()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data = data[:at] + data[at + 1:]
        else:
            data = data[:at] + draw(st.sampled_from(noise)) + data[at:]
    return data.encode()


@settings(max_examples=300, deadline=None, derandomize=True)
@given(mutated(jsonl_documents(), JSONL_NOISE))
def test_jsonl_never_misreads(data):
    assert_sound(parse_jsonl_ints, reference_jsonl, data)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(mutated(text_documents(), TEXT_NOISE))
def test_text_never_misreads(data):
    assert_sound(parse_text_ints, reference_text, data)


# --- edge cases, named ---------------------------------------------------------

@pytest.mark.parametrize("data, values, lengths, lines", [
    (b"", [], [], []),
    (b"[]\n", [], [0], [1]),
    (b"[]", [], [0], [1]),
    (b"[1, 2, 3]", [1, 2, 3], [3], [1]),  # no final newline
    (b"[1,2]\r\n[3]\r\n", [1, 2, 3], [2, 1], [1, 2]),
    (b"\n[1]\n\n  \t\n[2]\n\n", [1, 2], [1, 1], [2, 5]),  # blank lines are skipped
    (b"[-5, -0, 0, 7]\n", [-5, 0, 0, 7], [4], [1]),
    (b"\t[ 1 ,\t2 ]  \n", [1, 2], [2], [1]),
    (b"[999999999999999999, -999999999999999999]",
     [999999999999999999, -999999999999999999], [2], [1]),
    (b"[123456789, 12345678, 1234567890123456]", [123456789, 12345678, 1234567890123456], [3], [1]),
])
def test_jsonl_edge_cases(data, values, lengths, lines):
    assert_same(parse_jsonl_ints(data), reference_jsonl(data))
    got = parse_jsonl_ints(data)
    assert (got[0].tolist(), got[1].tolist(), got[2].tolist()) == (values, lengths, lines)


@pytest.mark.parametrize("data", [
    b"[1.5]", b"[1e3]", b'["a"]', b"[[1, 2]]", b'{"input_ids": [1]}', b"[1, 2", b"1, 2]",
    b"[1,]", b"[,1]", b"[1,,2]", b"[01]", b"[-01]", b"[- 1]", b"[1 2]", b"[1]]", b"[[1]",
    b"[1] [2]", b"[1]x", b"[true]", b"[null]", b"[-]", b"[--1]", b"[1-2]",
    b"[1234567890123456789]",  # 19 digits: may not fit int64, the generic path decides
    b"[1]\r[2]",  # a lone carriage return
    b"\xef\xbb\xbf[1]",  # a byte-order mark: the caller strips it at the start of a file
    b"[1,\x0c2]", b"[1,\xc2\xa02]",  # whitespace JSON does not allow
    b"[1]\n[2]\x00",
])
def test_jsonl_falls_back(data):
    assert parse_jsonl_ints(data) is None


@pytest.mark.parametrize("data, values, lengths, lines", [
    (b"", [], [], []),
    (b"1 2 3", [1, 2, 3], [3], [1]),
    (b"1\t2\r\n\r\n-3 007 -0\n", [1, 2, -3, 7, 0], [2, 0, 3], [1, 2, 3]),
    (b"\n\n", [], [0, 0], [1, 2]),
    (b"  5  \n", [5], [1], [1]),
])
def test_text_edge_cases(data, values, lengths, lines):
    got = parse_text_ints(data)
    assert (got[0].tolist(), got[1].tolist(), got[2].tolist()) == (values, lengths, lines)
    assert_same(got, reference_text(data))


@pytest.mark.parametrize("data", [
    b"1.5", b"1e3", b"a", b"+1", b"1_000", b"1-2", b"--1", b"- 1", b"1 -", b"-",
    b"12345678901234567890", b"1\r2", b"1\x0b2", b"1\x0c2", b"\xef\xbb\xbf1", b"[1]", b"1,2",
])
def test_text_falls_back(data):
    assert parse_text_ints(data) is None


def test_long_input_across_word_boundaries():
    """Every alignment of numbers of every width against the 8-byte words."""
    rng = np.random.default_rng(0)
    widths = rng.integers(1, 19, 2000)
    sequences = [[int(rng.integers(10 ** (w - 1), 10 ** w)) * int(rng.choice([-1, 1]))
                  for w in widths[i:i + 7]] for i in range(0, 2000, 7)]
    data = "\n".join(json.dumps(s) for s in sequences).encode()
    assert_same(parse_jsonl_ints(data), reference_jsonl(data))
    text = "\n".join(" ".join(map(str, s)) for s in sequences).encode()
    assert_same(parse_text_ints(text), reference_text(text))
