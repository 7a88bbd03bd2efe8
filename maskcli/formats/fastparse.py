"""Fast parsing of integer-only jsonl and text, vectorised over the raw bytes.

The generic readers build one Python object per token, which is what makes
``json.loads`` per line slow on a million lines. Here a chunk of whole lines
is parsed by numpy in a few passes over its bytes, into the ragged pair the
padding core takes: ``values`` (int64, every step of every line concatenated)
and ``lengths`` (int64, one per sequence), plus ``lines`` (the 1-based line of
each sequence within the chunk, for error messages) and the count of newlines.

Only inputs this module can reproduce *exactly* are accepted; for anything
else (floats, strings, objects, nested lists, malformed JSON, numbers beyond
int64, whitespace other than space/tab/newline, a carriage return not
followed by a newline, a byte-order mark) the parsers return None and the
caller uses the generic reader, which also writes the error messages.

How it works (jsonl): digits are classified with byte arithmetic; a digit run
starts and ends where that class flips, so one ``flatnonzero`` gives every
number's start and end. The structure is checked on the *tokens*: the
non-blank bytes that are not inside a number. Each line must read
``[ (-?d (, -?d)*)? ]``, and that grammar is fully checked by allowing only
certain pairs of consecutive tokens (a table indexed by both token bytes,
which also refuses every byte that has no place in such a line). Numbers are
read 8 bytes at a time: the uint64 word ending at a number's last digit
holds up to 8 digits, combined by three multiply-shift steps (SWAR); longer
numbers take one more word per 8 digits. Integer text is the same without
brackets: any run of digits, after an optional minus, is a number.

Blocks are parsed independently (a block holds whole lines), so a caller can
parse several at once on threads: numpy releases the GIL in its loops.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Beyond 18 digits a number may not fit int64: leave it to the generic reader.
MAX_DIGITS = 18
_TEXT_BYTES = b"0123456789- \t\r\n"
_BLANKS_TO_SPACE = bytes.maketrans(b"\t\r", b"  ")
_PAD = 8  # bytes before the data, so that every 8-byte window starts inside the buffer

_U64 = np.uint64
# For a run of k digits ending an 8-byte window: the low nibbles of its last k bytes.
_DIGIT_MASKS = np.array([0] + [0x0F0F0F0F0F0F0F0F << (64 - 8 * k) & (2**64 - 1)
                               for k in range(1, 9)], dtype=_U64)
# The smallest number of each digit count without a leading zero (1 digit: "0" is fine).
_SMALLEST = np.array([0, 0] + [10 ** (k - 1) for k in range(2, MAX_DIGITS + 1)], dtype=np.int64)


def _token_pairs() -> np.ndarray:
    """Which token byte may follow which in a jsonl line of integers.

    Indexed by ``first | second << 8``. A digit here is the first digit of a
    number (the rest are not tokens). Every other byte pair is refused, which
    also refuses every byte that has no place in such a line.
    """
    digits = "0123456789"
    follows = {"\n": "\n[", "[": "]-" + digits, "-": digits, ",": "-" + digits, "]": "\n"}
    for digit in digits:
        follows[digit] = ",]"
    table = np.zeros(1 << 16, dtype=bool)
    for first, nexts in follows.items():
        for second in nexts:
            table[ord(first) | ord(second) << 8] = True
    return table


_JSONL_PAIRS = _token_pairs()


class Parsed(NamedTuple):
    """A chunk of lines read as integer sequences."""

    values: np.ndarray  # int64, every step of every sequence
    lengths: np.ndarray  # int64, one per sequence
    lines: np.ndarray  # int64, the 1-based line of each sequence within the chunk
    newlines: int  # the line ends in the chunk


def keep_freed_memory() -> None:
    """Have glibc keep freed memory for reuse rather than hand it back to the OS.

    Each chunk allocates and frees the same scratch arrays; by default glibc
    returns them to the OS, and the next chunk page-faults them in anew, which
    measured 2-3 times slower parsing. Up to 64 MiB freed is kept instead.
    Does nothing without glibc.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mallopt(m_mmap_threshold, 32 << 20)  # below this, take blocks from the heap, not mmap
    mallopt(m_trim_threshold, 64 << 20)  # and trim the heap only beyond this much free


def parse_jsonl_ints(data: bytes) -> Parsed | None:
    """Parse lines of JSON arrays of integers, e.g. ``[1, -2, 3]`` and ``[]``.

    Returns :class:`Parsed`, or None when ``data`` holds anything else.
    Blank lines (only spaces/tabs) are skipped. ``data`` holds whole lines:
    only its last line may lack the newline.
    """
    u = _bytes_array(data)
    if u is None:
        return None
    is_digit = (u - np.uint8(48)) < np.uint8(10)
    starts, ends = _digit_runs(is_digit)
    # Tokens: every byte that is neither a space nor a digit continuing a number.
    # The virtual newline before the data is the first token: a line start.
    first = _PAD - 1
    is_token = np.greater(u[first:] != 32, is_digit[first:] & is_digit[first - 1:-1])
    positions = np.flatnonzero(is_token)
    positions += first
    tokens = u.take(positions)
    pairs = tokens[:-1].astype(np.uint16)
    pairs |= tokens[1:].astype(np.uint16) << 8
    if not _JSONL_PAIRS.take(pairs).all():
        return None
    signed = b"-" in data
    if signed:
        minus = np.flatnonzero(tokens == 45)
        if not is_digit.take(positions.take(minus) + 1).all():  # "- 1" is no JSON number
            return None
    values = _numbers(u, starts, ends, signed, leading_zeros=False)
    if values is None:
        return None
    # In a valid line the tokens from "[" to "]" are 2k+1 for k >= 1 numbers
    # (and 2 for "[]"), plus one per minus sign.
    opens = np.flatnonzero(tokens == 91)
    closes = np.flatnonzero(tokens == 93)
    lengths = closes - opens
    if signed:
        lengths -= np.searchsorted(minus, closes) - np.searchsorted(minus, opens)
    lengths >>= 1
    newlines = np.flatnonzero(tokens == 10)
    if len(newlines) == len(closes) + 1:  # no blank line: line k holds sequence k
        lines = np.arange(1, len(closes) + 1, dtype=np.int64)
    else:
        lines = np.searchsorted(newlines, closes)
    return Parsed(values, lengths, lines, _line_ends(data, len(newlines)))


def parse_text_ints(data: bytes) -> Parsed | None:
    """Parse lines of whitespace-separated integers, e.g. ``1 -2 3``.

    Returns :class:`Parsed`, or None when ``data`` holds anything else.
    A blank line is an empty sequence, as in pad's text format. Leading zeros
    are fine (``007`` is 7), as for Python's ``int``.
    """
    u = _bytes_array(data, _TEXT_BYTES)
    if u is None:
        return None
    is_digit = (u - np.uint8(48)) < np.uint8(10)
    starts, ends = _digit_runs(is_digit)
    signed = b"-" in data
    if signed:
        minus = np.flatnonzero(u == 45)
        # A minus sign stands alone before the digits: not "1-2", "--1", "- 1", "-".
        if not (is_digit.take(minus + 1).all() and (u.take(minus - 1) <= 32).all()):
            return None
    values = _numbers(u, starts, ends, signed, leading_zeros=True)
    if values is None:
        return None
    newlines = np.flatnonzero(u[_PAD - 1:] == 10)
    newlines += _PAD - 1
    lengths = np.diff(np.searchsorted(starts, newlines))
    lines = np.arange(1, len(lengths) + 1, dtype=np.int64)
    return Parsed(values, lengths, lines, _line_ends(data, len(newlines)))


def _line_ends(data: bytes, newlines: int) -> int:
    """The newlines in ``data``, from those counted in its array: less the one
    before the data, and the one added when its last line had none."""
    return newlines - 1 - (not data.endswith(b"\n") and bool(data))


def _bytes_array(data: bytes, allowed: bytes | None = None):
    """``data`` as uint8 after ``_PAD`` newlines, ending with a newline, then
    spaces up to whole 8-byte words plus one spare word; tabs and carriage
    returns made spaces. None if ``data`` holds a byte not ``allowed``."""
    if allowed is not None and data.translate(None, allowed):
        return None
    if b"\r" in data:
        # "\r\n" ends a line either way; a lone "\r" ends one for str.splitlines
        # but not for a reader that splits on "\n": leave that to the generic reader.
        if data.count(b"\r") != data.count(b"\r\n"):
            return None
        data = data.translate(_BLANKS_TO_SPACE)
    elif b"\t" in data:
        data = data.translate(_BLANKS_TO_SPACE)
    if data and not data.endswith(b"\n"):
        data += b"\n"
    filler = -(_PAD + len(data)) % 8 + 8
    return np.frombuffer(b"".join((b"\n" * _PAD, data, b" " * filler)), dtype=np.uint8)


def _digit_runs(is_digit: np.ndarray):
    """Start and end (exclusive) of every run of digits. The array starts and
    ends with a non-digit, so the class flips come in start/end pairs."""
    flips = np.flatnonzero(is_digit[1:] != is_digit[:-1])
    flips += 1
    return flips[0::2], flips[1::2]


def _numbers(u: np.ndarray, starts, ends, signed: bool, leading_zeros: bool):
    """The int64 value of each digit run (negated after a '-'), or None when a
    run is longer than MAX_DIGITS or, unless allowed, has a leading zero."""
    digits = ends - starts
    if not len(digits):
        return np.zeros(0, dtype=np.int64)
    longest = int(digits.max())
    if longest > MAX_DIGITS:
        return None
    values = _swar(_windows(u, ends), np.minimum(digits, 8) if longest > 8 else digits)
    values = values.view(np.int64)
    for done in range(8, longest, 8):  # the next 8 digits to the left, of the long runs
        long = np.flatnonzero(digits > done)
        high = _swar(_windows(u, ends[long] - done), np.minimum(digits[long] - done, 8))
        values[long] += high.view(np.int64) * 10 ** done
    if not leading_zeros and longest > 1 and (values < _SMALLEST.take(digits)).any():
        return None  # "01" is not a JSON number
    if signed:
        negative = u.take(starts - 1) == 45
        np.negative(values, out=values, where=negative)
    return values


def _windows(u: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The 8 bytes before each of ``ends``, as little-endian uint64.

    Read as two aligned words and shifted together: numpy gathers from an
    aligned array far faster than from an unaligned, overlapping view.
    """
    words = u.view("<u8")
    start = ends - 8
    bits = ((start & 7) << 3).view(_U64)
    start >>= 3
    low = words.take(start)
    start += 1
    high = words.take(start)
    low >>= bits
    high <<= _U64(64) - bits  # numpy shifts by 64 to 0, as needed when bits is 0
    low |= high
    return low


def _swar(windows: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """Read the last ``digits`` (1..8) bytes of each uint64 window as a decimal number."""
    # Keep the digit bytes' values (low nibble of '0'..'9'), zero the bytes before them.
    w = windows & _DIGIT_MASKS.take(digits)
    # Little-endian: the first digit is the lowest byte. Combine neighbours into
    # 2-digit values in 16-bit lanes, then 4-digit in 32-bit lanes, then 8 digits.
    w *= _U64(10 * 2**8 + 1)
    w >>= _U64(8)
    w &= _U64(0x00FF00FF00FF00FF)
    w *= _U64(100 * 2**16 + 1)
    w >>= _U64(16)
    w &= _U64(0x0000FFFF0000FFFF)
    w *= _U64(10000 * 2**32 + 1)
    w >>= _U64(32)
    return w
