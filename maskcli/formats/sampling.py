"""Reading part of an input: its first N sequences (``--limit``) or a seeded
random sample of N (``--sample`` with ``--seed``), without reading it whole.

- npy: memory-mapped; only the chosen rows are copied
  (:mod:`maskcli.formats.partial`).
- npz: each array read on its own; a stored one memory-mapped, a compressed
  one streamed, a chunk of rows at a time. The mask, lengths and targets of
  an npz from ``maskcli pad`` are cut to the same rows.
- jsonl, csv, tsv: streamed line by line; only the chosen lines are parsed.
  A sample counts the lines first (a pass that reads bytes and parses
  nothing), then parses the chosen ones; a limit parses the first N lines
  and counts the rest.
- Standard input: ``--limit`` reads jsonl, csv, tsv or npy up to the N-th
  sequence and stops there (the total stays unknown). An npz (a zip, whose
  index is at its end) and ``--sample`` (which reads twice) need a file.

The same seed picks the same sequences whatever the format: the rows are
``numpy.random.default_rng(seed).choice(total, N, replace=False)``, sorted, so
that the audited sequences keep the file's order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from maskcli.core.errors import InputError, UsageError, where
from maskcli.core.limits import too_big
from maskcli.core.padded import Padded, check_mask
from maskcli.formats.arrays import (
    NPY_MAGIC,
    ZIP_MAGIC,
    _check_dtype,
    _parse_meta,
    _parse_row,
    sniff_format,
    stack_rows,
)
from maskcli.formats.files import open_source
from maskcli.formats.partial import NpzMembers, memmap_rows, read_header, stream_rows

SNIFF_BYTES = 4096
_PER_SEQUENCE = ("inputs", "mask", "lengths", "targets")  # the npz arrays cut to the rows


@dataclass(frozen=True)
class Selection:
    """Which sequences to read: the first ``limit``, or a random ``sample``
    of that many drawn with ``seed``. Neither: all of them."""

    limit: int | None = None
    sample: int | None = None
    seed: int = 0

    def __post_init__(self):
        if self.limit is not None and self.sample is not None:
            raise UsageError("--limit and --sample both choose the sequences: give one of them")
        for option, value in (("--limit", self.limit), ("--sample", self.sample)):
            if value is not None and value < 1:
                raise UsageError(f"{option} must be at least 1, got {value}")

    @property
    def active(self) -> bool:
        return self.limit is not None or self.sample is not None

    def rows(self, total: int, source: str) -> np.ndarray:
        """The chosen rows of ``total``, sorted."""
        if self.limit is not None:
            return np.arange(min(self.limit, total))
        if self.sample is None:
            return np.arange(total)
        if self.sample > total:
            raise InputError(f"--sample {self.sample}: {source} holds only {total} sequences: "
                             f"give --sample {total} or less, or drop --sample")
        rng = np.random.default_rng(self.seed)
        return np.sort(rng.choice(total, size=self.sample, replace=False))

    def describe(self, audited: int, total: int | None) -> str:
        """``the first 100 of 1000 sequences``, ``a random sample of 100 of
        1000 sequences (--seed 0)``; the total may be unknown (a pipe)."""
        if total is None:
            return f"the first {audited} sequences (the rest of the input was not read)"
        if self.sample is not None:
            return f"a random sample of {audited} of {total} sequences (--seed {self.seed})"
        return f"the first {audited} of {total} sequences"


@dataclass
class Part:
    """What was read: ``rows`` are the chosen rows' places in the input, and
    ``total`` its number of sequences (None when a pipe was read only up to
    the limit)."""

    padded: Padded
    rows: np.ndarray
    total: int | None
    selection: Selection

    def describe(self) -> str:
        return self.selection.describe(len(self.rows), self.total)


def load_padded_part(path: str, selection: Selection, named: bool = False) -> Part:
    """Read the chosen sequences of padded inputs (plus mask, lengths, meta and
    targets from an npz), as :func:`maskcli.formats.arrays.load_padded` reads all.

    ``named``: as ``load_padded(named=True)``, an npz may hold arrays named
    after a model's inputs instead of ``inputs``; every array with one row per
    sequence (as many as ``inputs``, else as its first array) is then cut to
    the chosen rows, and goes to ``extra``; any other is read whole.
    """
    chosen: dict = {}

    def pick(total: int, name: str) -> np.ndarray:
        chosen["rows"] = selection.rows(total, name)
        return chosen["rows"]

    keys = None if named else _PER_SEQUENCE + ("meta",)
    name, total, arrays = _read(path, pick, selection.limit, npz_keys=keys)
    present = arrays.pop("_keys", None)
    if "inputs" not in arrays and not named:
        raise InputError(f"{name} has no 'inputs' array (it has: "
                         f"{', '.join(sorted(present or [])) or 'none'}): "
                         "write it with 'maskcli pad -o FILE.npz'")
    inputs = arrays.pop("inputs", None)
    inputs = None if inputs is None else _check_dtype(name, inputs)
    rows = chosen.get("rows", np.arange(len(inputs)) if inputs is not None else np.arange(0))
    mask = arrays.pop("mask", None)
    if mask is not None and inputs is not None:
        mask = check_mask(name, mask, inputs)
    lengths = arrays.pop("lengths", None)
    meta = _parse_meta(name, arrays.pop("meta", None))
    for key, array in arrays.items():
        _check_dtype(f"{name}, array '{key}'", array)
    return Part(Padded(inputs, name, mask, lengths, meta, arrays), rows, total, selection)


def start_part(path: str, key: str | None, selection: Selection) -> tuple[np.ndarray, Part]:
    """The chosen rows of one array (the first ``--input`` file, when there
    is no INPUT), and the part they make, which the other files follow."""
    chosen: dict = {}

    def pick(total: int, name: str) -> np.ndarray:
        chosen["rows"] = selection.rows(total, name)
        return chosen["rows"]

    name, total, arrays = _read(path, pick, selection.limit, npz_keys=(key or "inputs",),
                                any_key=True)
    array = arrays.get(key or "inputs")
    if array is None:
        raise InputError(f"{name} has no '{key}' array (it has: "
                         f"{', '.join(sorted(arrays['_keys']))}): save the array under the "
                         f"name '{key}'")
    array = _check_dtype(name, array)
    rows = chosen.get("rows", np.arange(len(array)))
    return array, Part(Padded(array, name), rows, total, selection)


def load_npz_part(path: str, part: Part, label: str) -> dict[str, np.ndarray]:
    """Every array of an npz, the per-sequence ones cut to ``part``'s rows."""
    name, _, arrays = _read(path, _follow(part, label), None if part.selection.sample
                            else len(part.rows), npz_keys=None)
    arrays.pop("_keys", None)
    return {key: _check_dtype(name, array) for key, array in arrays.items()}


def load_array_part(path: str, part: Part, key: str, label: str) -> np.ndarray:
    """The same rows as ``part`` of one array (targets, or a mask) in ``path``:
    npy, npz (array ``key``, or its only array), jsonl, csv or tsv. ``label``
    names it in messages (``targets y.npy``)."""
    # A limit reads the first rows (and counts the rest); a sample needs two passes.
    limit = len(part.rows) if part.selection.sample is None else None
    name, _, arrays = _read(path, _follow(part, label), limit, npz_keys=(key,), any_key=True)
    if key not in arrays:
        raise InputError(f"{name} has no '{key}' array (it has: "
                         f"{', '.join(sorted(arrays['_keys']))}): save the array under the "
                         f"name '{key}'")
    return _check_dtype(name, arrays[key])


Pick = Callable[[int, str], np.ndarray]


def _follow(part: Part, label: str) -> Pick:
    """Pick ``part``'s rows in another file, which must hold as many sequences."""
    wanted = part.rows

    def pick(total: int, name: str) -> np.ndarray:
        if part.total is not None and total != part.total:
            raise InputError(f"{label} hold {total} rows but {part.padded.source} holds "
                             f"{part.total} sequences: give one row per sequence")
        if total < len(wanted):
            raise InputError(f"{label} hold {total} rows, fewer than the {len(wanted)} "
                             "sequences read: give one row per sequence")
        return wanted

    return pick


def _read(path: str, pick: Pick, limit: int | None, npz_keys: tuple[str, ...] | None,
          any_key: bool = False) -> tuple[str, int | None, dict]:
    """Read the rows ``pick(total, name)`` chooses; on standard input, the
    first ``limit`` rows only (``pick`` then gets no total). ``npz_keys``: the
    arrays of an npz to read (the first sets the rows), None for all of them;
    a file of one array gives it under the first key (``inputs`` for None)."""
    with open_source(path) as src:
        head = src.stream.read(SNIFF_BYTES)
        if not head:
            raise InputError(f"{src.name} is empty: give padded data, e.g. from "
                             "'maskcli pad -o x.npz'")
        fmt = sniff_format(path, head)
        stdin = src.path is None
        if stdin and limit is None:
            raise UsageError(f"--sample reads {src.name} twice (to count, then to pick): give "
                             "a file path instead of standard input, or use --limit")
        if fmt == "npz":
            if stdin:
                raise UsageError("--limit cannot read part of an npz from standard input (a "
                                 "zip's index is at its end): give the npz file's path")
            if not head.startswith(ZIP_MAGIC):
                raise InputError(f"{src.name} is not an npz file (not a zip): save the arrays "
                                 "with np.savez or 'maskcli pad -o FILE.npz'")
            return (src.name,) + _npz(str(src.path), src.name, pick, npz_keys, any_key)
        stream = _Peeked(head, src.stream)
        if fmt == "npy":
            total, array = _npy(stream, src, pick, limit, stdin)
        else:
            total, array = _text(stream, src, fmt, pick, limit, stdin)
        return src.name, total, {(npz_keys or ("inputs",))[0]: array}


def _npz(path: str, name: str, pick: Pick, keys, any_key: bool) -> tuple[int, dict]:
    with NpzMembers(path, name) as npz:
        present = npz.keys()
        if keys is None:  # every array: those of one row per sequence are cut
            return _all_arrays(npz, present, pick, name)
        wanted = [key for key in keys if key in present]
        if any_key and not wanted and len(present) == 1:
            # One array under another name: it is the one asked for.
            return _npz_arrays(npz, {keys[0]: present[0]}, pick, name)
        arrays = {"_keys": present}
        if keys[0] not in present:
            return 0, arrays
        total, found = _npz_arrays(npz, {key: key for key in wanted}, pick, name)
        arrays.update(found)
        return total, arrays


def _all_arrays(npz: NpzMembers, present: list[str], pick: Pick, name: str):
    """Every array; those with as many rows as ``inputs`` (else as the first
    array of at least one axis) cut to the chosen rows, the others whole."""
    headers = {key: npz.header(key) for key in present}
    first = "inputs" if "inputs" in headers else next(
        (key for key in present if headers[key].shape), None)
    arrays: dict = {"_keys": present}
    if first is None:
        arrays.update({key: npz.read(key, None) for key in present})
        return 0, arrays
    total = headers[first].shape[0]
    rows = pick(total, name)
    _check_size(name, len(rows) * sum(h.row_bytes for h in headers.values()
                                      if h.shape and h.shape[0] == total))
    for key, header in headers.items():
        per_sequence = bool(header.shape) and header.shape[0] == total and key != "meta"
        arrays[key] = npz.read(key, rows if per_sequence else None)
    return total, arrays


def _npz_arrays(npz: NpzMembers, names: dict[str, str], pick: Pick, name: str):
    """Read ``names`` (wanted key -> member), the per-sequence ones cut to the
    rows chosen from the first one's length."""
    first = next(iter(names.values()))
    header = npz.header(first)
    if not header.shape:
        raise InputError(f"{name}: '{first}' has shape (): expected padded sequences of shape "
                         "(sequences, steps) or (sequences, steps, features)")
    total = header.shape[0]
    rows = pick(total, name)
    _check_size(name, len(rows) * header.row_bytes)
    arrays = {}
    for key, member in names.items():
        if key == "meta":
            arrays[key] = npz.read(member, None)
            continue
        shape = npz.header(member).shape
        if not shape or shape[0] != total:
            raise InputError(f"{name}: '{member}' holds {shape[0] if shape else 'no'} rows but "
                             f"'{first}' holds {total}: give one row per sequence, e.g. "
                             "re-write the file with 'maskcli pad -o FILE.npz'")
        arrays[key] = npz.read(member, rows)
    return total, arrays


def _npy(stream, src, pick: Pick, limit: int | None, stdin: bool) -> tuple[int | None, np.ndarray]:
    if not stream.head.startswith(NPY_MAGIC):
        hint = ": it is a zip, give it a .npz name" if stream.head.startswith(ZIP_MAGIC) else ""
        raise InputError(f"{src.name} is not an npy file (no numpy header){hint}: "
                         "save the array with np.save")
    header = read_header(stream, src.name)
    if not header.shape:
        raise InputError(f"{src.name}: inputs of shape (): expected padded sequences of shape "
                         "(sequences, steps) or (sequences, steps, features)")
    total = header.shape[0]
    rows = pick(total, src.name) if not stdin else np.arange(min(limit, total))
    _check_size(src.name, len(rows) * header.row_bytes)
    if stdin:
        return total, stream_rows(stream, header, rows, src.name)
    return total, memmap_rows(str(src.path), header, rows, src.name)


def _text(stream, src, fmt: str, pick: Pick, limit: int | None,
          stdin: bool) -> tuple[int | None, np.ndarray]:
    """jsonl/csv/tsv: parse the chosen lines only (blank lines are skipped,
    and line numbers in messages count every line, as the whole-file reader does)."""
    if limit is not None:  # one pass: parse the first rows, count the rest (not on a pipe)
        rows, total = _parse_lines(stream, src.name, fmt, np.arange(limit), count=not stdin)
        if total is not None:
            pick(total, src.name)  # checks the count against what it is read beside
    else:
        total = sum(1 for _ in _lines(stream, src.name))
        if not total:
            raise InputError(f"{src.name} holds no rows: give padded data, one sequence per line")
        with open_source(src.path) as again:  # the second pass: the chosen lines
            rows, _ = _parse_lines(_Peeked(b"", again.stream), src.name, fmt,
                                   pick(total, src.name), count=False)
    return total, stack_rows(src.name, rows)


def _parse_lines(stream, name: str, fmt: str, wanted: np.ndarray, count: bool):
    """Parse the non-blank lines whose places are in ``wanted`` (sorted); with
    ``count``, go on to the end to count them all (None otherwise)."""
    rows, index, last = [], 0, int(wanted[-1]) if len(wanted) else -1
    at = 0
    for number, raw in _lines(stream, name):
        if at < len(wanted) and index == wanted[at]:
            rows.append((number, _parse_row(name, number, _decode(raw, name, number), fmt)))
            at += 1
        index += 1
        if index > last and not count:
            return rows, None
    return rows, index


def _lines(stream, name: str):
    """(line number, bytes) of each non-blank line; a first line's BOM is dropped."""
    number = 0
    while True:
        raw = stream.readline()
        if not raw:
            return
        number += 1
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.strip():
            yield number, raw


def _decode(raw: bytes, name: str, number: int) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise InputError(f"{where(name, number)}: not UTF-8 text: convert it to UTF-8, "
                         "or give an npy/npz file") from None


def _check_size(name: str, nbytes: int) -> None:
    over = too_big(nbytes)
    if over:
        raise InputError(f"{name}: the chosen sequences would take {over}: choose fewer")


class _Peeked:
    """A stream whose first bytes (read to sniff the format) are read again."""

    def __init__(self, head: bytes, stream):
        self.head, self._pending, self._stream = head, head, stream

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            return self._stream.read(size)
        if size is None or size < 0:
            data, self._pending = self._pending + self._stream.read(), b""
            return data
        data, self._pending = self._pending[:size], self._pending[size:]
        if len(data) < size:
            data += self._stream.read(size - len(data))
        return data

    def readline(self) -> bytes:
        if not self._pending:
            return self._stream.readline()
        cut = self._pending.find(b"\n")
        if cut >= 0:
            line, self._pending = self._pending[:cut + 1], self._pending[cut + 1:]
            return line
        line, self._pending = self._pending, b""
        return line + self._stream.readline()
