"""Padding and truncation, vectorised with numpy.

A batch of sequences travels as a *ragged pair*: ``values``, every step of
every sequence concatenated (shape ``(total_steps,) + feature_shape``), and
``lengths`` (int64, one per sequence). :func:`pad_ragged` turns that pair into
the padded array with one scatter, no per-sequence Python loop;
:func:`pad_sequences` is ``keras.utils.pad_sequences`` on top of it.

The result is Keras' own wherever Keras is right. Where Keras is silent or
crashes, maskcli raises instead (a :class:`~maskcli.errors.MaskcliError`,
which is a ``ValueError``) or does the documented thing:

- floats that are not whole numbers, into an integer dtype: error (Keras cuts 1.7 to 1);
- strings into a numeric dtype: error (map them to ids with a vocabulary);
- ``dtype=str`` is sized to the longest token (Keras keeps one character);
- a pad value or an integer that does not fit the dtype: error, never wraparound;
- no sequences at all: an empty ``(0, maxlen or 0)`` array (Keras crashes);
- ``maxlen=0``: a valid ``(n, 0)`` array, the limit of truncation (Keras crashes);
- a padded array larger than this machine's memory: error before allocating it
  (Keras raises MemoryError, or the system kills it).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np

from maskcli.core.errors import InputError, UsageError, where
from maskcli.core.limits import too_big
from maskcli.core.steps import steps_to_values

SIDES = ("pre", "post")
_SUPPORTED = "int32, int64, float32, float64 or str"


@dataclass
class Ragged:
    """Sequences as a ragged pair, plus what error messages need to name a place.

    ``first`` is the index of this chunk's first sequence in the whole input;
    ``lines`` (when the input has lines) the 1-based line of each sequence;
    ``unit`` what messages call a sequence (``row`` in a Parquet/Arrow table).
    """

    values: np.ndarray
    lengths: np.ndarray
    source: str = "sequences"
    first: int = 0
    lines: np.ndarray | None = None
    unit: str = "sequence"

    def place(self, sequence: int, step: int | None = None) -> str:
        """Name sequence ``sequence`` of this chunk (and a step of it)."""
        line = None if self.lines is None else int(self.lines[sequence])
        return where(self.source, line, self.first + sequence, step, self.unit)

    def place_of_step(self, flat_index: int) -> str:
        """Name the step at ``flat_index`` of ``values``."""
        ends = np.cumsum(self.lengths)
        sequence = int(np.searchsorted(ends, flat_index, side="right"))
        step = flat_index - (int(ends[sequence - 1]) if sequence else 0)
        return self.place(sequence, step)


def parse_dtype(dtype) -> np.dtype:
    """The output dtype. ``str`` (itemsize 0) means: as wide as the longest token."""
    try:
        parsed = np.dtype(dtype)
    except TypeError:
        raise UsageError(f"unknown dtype {dtype!r}: use {_SUPPORTED}") from None
    if parsed.kind == "O":
        raise UsageError("dtype object is not supported: use str, which maskcli sizes "
                         "to the longest token (and npy/npz files never hold pickles)")
    if parsed.kind not in "iufU":
        raise UsageError(f"dtype {parsed} is not supported: use {_SUPPORTED}")
    return parsed


@dataclass(frozen=True)
class PadOptions:
    """Validated padding options; ``value`` is converted to fit ``dtype``."""

    maxlen: int | None = None
    dtype: np.dtype = np.dtype("int32")
    padding: str = "pre"
    truncating: str = "pre"
    value: object = 0
    pad_to_multiple_of: int | None = None

    @classmethod
    def make(cls, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0,
             pad_to_multiple_of=None) -> PadOptions:
        dtype = parse_dtype(dtype)
        for name, side in (("padding", padding), ("truncating", truncating)):
            if side not in SIDES:
                raise UsageError(f"{name} {side!r} is not understood: use 'pre' or 'post'")
        return cls(_count("maxlen", maxlen, 0), dtype, padding, truncating,
                   pad_value(value, dtype), _count("pad_to_multiple_of", pad_to_multiple_of, 1))

    def width(self, maxlen: int) -> int:
        """The padded length for truncation length ``maxlen``."""
        multiple = self.pad_to_multiple_of or 1
        return -(-maxlen // multiple) * multiple

    @property
    def meta(self) -> dict:
        """What an npz records about how it was padded (the dtype comes from the array)."""
        return {"padding": self.padding, "truncating": self.truncating, "value": self.value,
                "maxlen": self.maxlen}


def _count(name: str, value, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def pad_value(value, dtype: np.dtype):
    """Convert the pad value to a Python scalar of ``dtype``, or raise if it does not fit."""
    if dtype.kind == "U":
        text = value if isinstance(value, str) else str(np.asarray(value).astype(str))
        if dtype.itemsize and len(text) > dtype.itemsize // 4:
            raise UsageError(f"pad value {text!r} is wider than dtype {dtype}: use dtype str, "
                             "which maskcli sizes to fit")
        return text
    if isinstance(value, (str, bytes)):
        raise UsageError(f"pad value {value!r} is text but the dtype is {dtype}: give a number, "
                         "or dtype str to pad strings")
    if not isinstance(value, (int, float, np.number, np.bool_)):
        raise UsageError(f"pad value {value!r} is not a number: give a number such as 0 or -1")
    if dtype.kind == "f":
        number = float(value)
        with np.errstate(over="ignore"):
            fits = np.isfinite(np.asarray(number).astype(dtype))
        if math.isfinite(number) and not fits:
            raise UsageError(f"pad value {value} overflows {dtype}: use float64, or a smaller value")
        return number
    if not isinstance(value, (int, np.integer)):
        number = float(value)
        if not math.isfinite(number) or number != int(number):
            raise UsageError(f"pad value {value} does not fit the integer dtype {dtype}: give a "
                             "whole number, or a float dtype such as float32 (--dtype float32)")
    info = np.iinfo(dtype)
    if not info.min <= int(value) <= info.max:
        raise UsageError(f"pad value {value} is out of range for {dtype} ({info.min}..{info.max}): "
                         "give a smaller value, or a wider dtype such as int64")
    return int(value)


def cast(chunk: Ragged, dtype: np.dtype) -> Ragged:
    """Convert ``chunk.values`` to ``dtype``, refusing every lossy conversion.

    A flexible ``str`` dtype becomes as wide as the chunk's longest token.
    """
    values = chunk.values
    kind = values.dtype.kind
    if kind not in "biufUSO":
        raise InputError(f"{chunk.source}: values of dtype {values.dtype} cannot be padded: "
                         "give numbers or strings")
    if dtype.kind == "U":
        return replace(chunk, values=_to_text(chunk, dtype))
    if kind in "US":
        index = _first(np.ones(values.shape, bool))
        raise InputError(
            f"{chunk.place_of_step(index[0])}: token {_item(values, index)!r} is not a number "
            f"and the dtype is {dtype}: map tokens to ids with --vocab FILE or --save-vocab FILE, "
            "or keep them with --dtype str")
    if kind == "O":
        values = _numbers_from_objects(chunk, dtype)
        kind = values.dtype.kind
    if kind == "b":
        values = values.astype(np.uint8)
    if dtype.kind == "f":
        with np.errstate(over="ignore"):  # overflow is reported below, with its place
            converted = values.astype(dtype)
        _refuse(chunk, np.isfinite(values) & ~np.isfinite(converted),  # 70000 into float16 too
                f"overflows {dtype}: use the dtype float64 (--dtype float64)")
        return replace(chunk, values=converted)
    if kind == "f":
        _refuse(chunk, ~np.isfinite(values) | (values != np.trunc(values)),
                f"is not a whole number and the dtype is {dtype}: to keep fractions, "
                "use the dtype float32 (--dtype float32)")
    info = np.iinfo(dtype)
    # a dtype that holds every value of the input's (int32 ids into int32) needs no look at
    # them; else min and max first: no per-value arrays
    if kind == "f" or not (np.can_cast(values.dtype, dtype) or _within(values, info)):
        wider = next((name for name in ("int64", "uint64")  # one that holds every value
                      if name != dtype and not _out_of_range(values, np.iinfo(name)).any()), None)
        _refuse(chunk, _out_of_range(values, info),
                f"is out of range for {dtype} ({info.min}..{info.max}): " + (
                    f"use a wider dtype such as {wider} (--dtype {wider})" if wider
                    else "give smaller ids, or the dtype float64 (--dtype float64)"))
    return replace(chunk, values=values.astype(dtype, copy=False))  # no copy if it is dtype


def _within(values: np.ndarray, info: np.iinfo) -> bool:
    return not values.size or (info.min <= values.min() and values.max() <= info.max)


def _numbers_from_objects(chunk: Ragged, dtype: np.dtype) -> np.ndarray:
    """numpy keeps None, dicts, booleans mixed with text and integers beyond
    64 bits as Python objects: name the first such item, else convert."""
    values = chunk.values
    for index in np.ndindex(values.shape):
        item = values[index]
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, float, np.number)):
            problem = f"{item!r} is not a number"
        elif isinstance(item, int) and not -2**63 <= item < 2**64:
            problem = f"{item} does not fit {dtype}"
        else:
            continue
        raise InputError(f"{chunk.place_of_step(index[0])}: {problem}: give numbers that fit {dtype}")
    return np.asarray(values.tolist())


def _to_text(chunk: Ragged, dtype: np.dtype) -> np.ndarray:
    values = chunk.values
    text = values if values.dtype.kind == "U" else values.astype(str)
    widths = np.char.str_len(text)
    if not dtype.itemsize:
        return text.astype(f"<U{int(widths.max()) if widths.size else 0}")
    _refuse(chunk, widths > dtype.itemsize // 4,
            f"is wider than {dtype}: use --dtype str, which maskcli sizes to the longest token")
    return text.astype(dtype)


def _out_of_range(values: np.ndarray, info: np.iinfo) -> np.ndarray:
    if values.dtype.kind == "f":
        # Powers of two are exact as floats, so compare with max + 1, not max.
        return (values < float(info.min)) | (values >= float(info.max + 1))
    source = np.iinfo(values.dtype)
    bad = np.zeros(values.shape, bool)
    # Compare only with bounds the source dtype can hold (numpy refuses others).
    if info.min > source.min:
        bad |= values < info.min
    if info.max < source.max:
        bad |= values > info.max
    return bad


def _refuse(chunk: Ragged, bad: np.ndarray, problem: str) -> None:
    if bad.any():
        index = _first(bad)
        raise InputError(f"{chunk.place_of_step(index[0])}: {_item(chunk.values, index)!r} "
                         f"{problem}")


def _first(bad: np.ndarray) -> tuple:
    return np.unravel_index(int(np.argmax(bad)), bad.shape)


def _item(values: np.ndarray, index: tuple):
    item = values[index]
    return item.item() if isinstance(item, np.generic) else item


def padded_dtype(dtype: np.dtype, options: PadOptions) -> np.dtype:
    """The dtype of the padded array: a str dtype widens to hold the pad value."""
    if dtype.kind == "U":
        return np.result_type(dtype, np.dtype(f"<U{len(options.value)}"))
    return dtype


def check_memory(rows: int, step_shape: tuple, dtype: np.dtype, options: PadOptions,
                 maxlen: int) -> None:
    """Refuse, before allocating it, a padded array (and its mask) of ``rows``
    sequences that would not fit in memory."""
    width = options.width(maxlen)
    over = too_big(rows * width * (math.prod(step_shape) * dtype.itemsize + 1))
    if not over:
        return
    if width > maxlen:
        fix = "give a smaller --pad-to-multiple-of"
    elif options.maxlen is not None:
        fix = "give a smaller --maxlen"
    else:
        fix = f"give --maxlen to truncate (the longest sequence has {maxlen} steps)"
    sequences = f"{rows} sequence{'s' if rows != 1 else ''}"
    raise UsageError(f"padding {sequences} to {width} steps would take {over}: {fix}")


def pad_chunk(chunk: Ragged, options: PadOptions, maxlen: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad a chunk already cast to ``options.dtype``: return ``(padded, mask)``.

    ``mask`` is True at real steps. Steps beyond ``maxlen`` are cut on the
    ``truncating`` side; rows are filled up to ``options.width(maxlen)`` on the
    ``padding`` side. One boolean scatter does all rows at once: the kept steps,
    in order, land on the True cells of ``mask`` in row-major order.
    """
    values, lengths = chunk.values, chunk.lengths
    width = options.width(maxlen)
    kept = np.minimum(lengths, maxlen)
    dtype = padded_dtype(values.dtype, options)
    check_memory(len(lengths), values.shape[1:], dtype, options, maxlen)
    padded = np.full((len(lengths), width) + values.shape[1:], options.value, dtype=dtype)
    columns = np.arange(width)
    if options.padding == "post":
        mask = columns < kept[:, None]
    else:
        mask = columns >= (width - kept)[:, None]
    if (kept == lengths).all():
        padded[mask] = values
    else:
        padded[mask] = values[_kept_steps(lengths, kept, options.truncating)]
    return padded, mask


def _kept_steps(lengths: np.ndarray, kept: np.ndarray, truncating: str) -> np.ndarray:
    """True for each step that truncation keeps, over all steps of all sequences.

    Each sequence is a run of kept steps and a run of cut ones (cut first for
    ``pre``): one ``np.repeat`` of alternating flags, no per-step positions.
    """
    cut = lengths - kept
    runs = np.empty(2 * len(lengths), dtype=np.int64)
    runs[0::2], runs[1::2] = (kept, cut) if truncating == "post" else (cut, kept)
    flags = np.array([truncating == "post", truncating == "pre"])
    return np.repeat(np.tile(flags, len(lengths)), runs)


def pad_ragged(values, lengths, maxlen=None, dtype="int32", padding="pre", truncating="pre",
               value=0.0, *, pad_to_multiple_of=None) -> np.ndarray:
    """Pad a ragged pair: ``values`` (all steps concatenated) and ``lengths``.

    >>> pad_ragged([1, 2, 3, 4, 5, 6], [1, 2, 3]).tolist()
    [[0, 0, 1], [0, 2, 3], [4, 5, 6]]
    """
    options = PadOptions.make(maxlen, dtype, padding, truncating, value, pad_to_multiple_of)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    values = np.asarray(values)
    if values.ndim == 0 or (lengths < 0).any() or lengths.sum() != len(values):
        raise UsageError(f"values of shape {values.shape} do not match lengths summing to "
                         f"{int(lengths.sum())}: lengths must be non-negative and sum to the "
                         "number of steps")
    chunk = cast(Ragged(values, lengths), options.dtype)
    longest = int(lengths.max()) if len(lengths) else 0
    return pad_chunk(chunk, options, longest if options.maxlen is None else options.maxlen)[0]


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0, *, pad_to_multiple_of=None) -> np.ndarray:
    """Pad sequences to the same length, as ``keras.utils.pad_sequences`` does.

    Same signature and defaults (padding AND truncating at the front); the
    same result wherever Keras is right, and an error or the documented result
    where Keras is silent or crashes (see the module docstring).
    ``pad_to_multiple_of`` rounds the padded length up to a multiple of it.

    >>> pad_sequences([[1], [2, 3], [4, 5, 6]], padding="post").tolist()
    [[1, 0, 0], [2, 3, 0], [4, 5, 6]]
    """
    sequences = list(sequences)
    lengths = np.zeros(len(sequences), dtype=np.int64)
    for index, sequence in enumerate(sequences):
        if isinstance(sequence, (str, bytes)) or not hasattr(sequence, "__len__"):
            raise InputError(f"{where('sequences', sequence=index)}: expected a list of steps, got "
                             f"{type(sequence).__name__} {sequence!r}: give a list of sequences")
        lengths[index] = len(sequence)
    chunk = Ragged(np.empty(0), lengths)
    values = steps_to_values(list(itertools.chain.from_iterable(sequences)), chunk)
    return pad_ragged(values, lengths, maxlen, dtype, padding, truncating, value,
                      pad_to_multiple_of=pad_to_multiple_of)
