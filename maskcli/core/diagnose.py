"""What ``inspect-mask`` reports: the mask in effect, a summary and diagnostics.

Two masks are involved:
- the mask in effect: the ``mask`` recorded in an npz from ``maskcli pad``
  when there is one and no mode was asked for, else the mask Keras builds
  from the values (:func:`maskcli.masks.compute_mask`);
- the value mask: what Keras builds from the values under the chosen mode
  (or the default mode for the data's shape), whatever the npz says.

Where the padding sits (sides, empty rows) is read from the mask in effect;
what Keras would do with the values (a pad value between real tokens, partly
padded steps) from the value mask. A ``mask`` is True at REAL steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from maskcli.core.accumulation import AccumulationWeighting, check_accumulation, inspected
from maskcli.core.batching import BatchWeighting, batch_weighting
from maskcli.core.errors import InputError
from maskcli.core.masks import compute_mask, default_mode, parse_value, step_mask
from maskcli.core.padded import Padded, check_mask

# Stable ids, in the order they are reported.
DIAGNOSTICS = ("pad-value-inside", "partial-timestep", "non-finite", "all-padding-row",
               "pre-padding-rnn", "mixed-padding-sides", "mask-mismatch")
LOCATIONS = 5  # how many (sequence, step) places a diagnostic lists

_LAYER = {"embedding": "Embedding(mask_zero=True)", "masking": "Masking",
          "elementwise": "an elementwise mask"}


@dataclass(frozen=True)
class Diagnostic:
    """One mistake found in the data: how often, where first, why, and the fix."""

    id: str
    count: int
    unit: str  # "steps" or "sequences": what ``count`` counts
    locations: list[tuple[int, int | None]]  # (sequence, step); step None for a whole row
    message: str
    fix: str

    def to_dict(self) -> dict:
        return {"id": self.id, "count": self.count, "unit": self.unit,
                "locations": [{"sequence": seq, "step": step} for seq, step in self.locations],
                "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class Summary:
    sequences: int
    timesteps: int
    features: int | None  # None for 2-D token ids
    real_steps: int
    padded_steps: int
    padded_fraction: float
    min_length: int | None  # None when there is no sequence
    median_length: float | None
    max_length: int | None
    padding_side: str  # "pre", "post", "mixed" or "none"

    def to_dict(self) -> dict:
        return {"sequences": self.sequences, "timesteps": self.timesteps,
                "features": self.features, "real_steps": self.real_steps,
                "padded_steps": self.padded_steps, "padded_fraction": self.padded_fraction,
                "lengths": {"min": self.min_length, "median": self.median_length,
                            "max": self.max_length},
                "padding_side": self.padding_side}


@dataclass
class MaskReport:
    """The result of :func:`inspect_mask`.

    ``mask`` is the mask in effect (True = real step), shaped (sequences,
    steps), or (sequences, steps, features) for an elementwise mask;
    ``lengths`` the number of real steps of each sequence.
    """

    source: str
    shape: tuple[int, ...]
    dtype: str
    mask: np.ndarray
    mask_source: str  # "npz": the recorded mask; "mode": built from the values
    mode: str  # the mode the values are read with
    mask_value: object
    lengths: np.ndarray
    summary: Summary
    diagnostics: list[Diagnostic] = field(default_factory=list)
    batch_weighting: BatchWeighting | None = None  # with a batch size only
    accumulation: AccumulationWeighting | None = None  # with accumulation steps or replicas

    @property
    def real(self) -> np.ndarray:
        """One boolean per (sequence, step): True at real steps."""
        return step_mask(self.mask)

    def diagnostic(self, id: str) -> Diagnostic | None:
        return next((d for d in self.diagnostics if d.id == id), None)

    def to_dict(self) -> dict:
        """A JSON-ready dict (the schema of ``inspect-mask --format json``)."""
        report = {"source": self.source, "shape": list(self.shape), "dtype": self.dtype,
                  "mask_source": self.mask_source, "mode": self.mode,
                  "mask_value": json_value(self.mask_value),
                  "summary": self.summary.to_dict(),
                  "diagnostics": [d.to_dict() for d in self.diagnostics]}
        if self.batch_weighting is not None:
            report["batch_weighting"] = self.batch_weighting.to_dict()
        if self.accumulation is not None:
            report["accumulation"] = self.accumulation.to_dict()
        report["lengths"] = self.lengths.tolist()
        return report


def inspect_mask(data, *, mode: str | None = None, mask_value=None,
                 mask: np.ndarray | None = None, batch_size: int | None = None,
                 accumulation_steps: int | None = None,
                 replicas: int | None = None) -> MaskReport:
    """Build the mask of padded data, summarise it and diagnose it.

    ``data`` is a :class:`~maskcli.core.padded.Padded` (as read from a file
    by :func:`maskcli.formats.arrays.load_padded`) or an array of padded inputs. ``mask`` is
    a mask recorded with the data (as an npz's ``mask``); it is the mask in
    effect unless ``mode`` is given. ``mask_value`` defaults to the pad value
    recorded in the npz ``meta``, else 0. With ``batch_size``, the report also
    says how batches of that size weigh the real tokens
    (:mod:`maskcli.core.batching`); ``accumulation_steps`` and ``replicas``: how
    updates of that many micro-batches weigh them (:mod:`maskcli.core.accumulation`).

    >>> report = inspect_mask(np.array([[5, 0, 3, 0]]))
    >>> report.lengths.tolist(), [d.id for d in report.diagnostics]
    ([2], ['pad-value-inside'])
    """
    check_accumulation(batch_size, accumulation_steps, replicas)
    padded = _as_padded(data, mask)
    inputs = padded.inputs
    if inputs.ndim not in (2, 3):
        raise InputError(
            f"{padded.source}: expected 2-D token ids (sequences, steps) or 3-D features "
            f"(sequences, steps, features), got shape {inputs.shape}: "
            "pad the sequences first with 'maskcli pad'")
    if inputs.shape[0] == 0:
        raise InputError(f"{padded.source} holds no sequences: give at least one padded sequence")
    value = _resolve_value(mask_value, padded)
    value_mode = mode or default_mode(inputs)
    value_mask = compute_mask(inputs, value_mode, value)
    recorded = padded.mask
    if recorded is not None and mode is None:
        effective, mask_source = recorded, "npz"
    else:
        effective, mask_source = value_mask, "mode"

    real = step_mask(effective)
    lengths = real.sum(axis=1).astype(np.int64)
    sides = _row_sides(real)
    summary = _summarise(inputs, real, lengths, sides)
    diagnostics = [d for d in (
        _pad_value_inside(step_mask(value_mask), value, value_mode),
        _partial_timestep(inputs, value, value_mode),
        _non_finite(inputs, value),
        _all_padding_rows(sides),
        _pre_padding_rnn(sides),
        _mixed_padding_sides(sides),
        _mask_mismatch(recorded, value_mask, value_mode, value),
    ) if d is not None]
    weighting = None if batch_size is None else batch_weighting(lengths, batch_size)
    accumulation = inspected(lengths, batch_size, accumulation_steps, replicas)
    return MaskReport(padded.source, tuple(inputs.shape), str(inputs.dtype), effective,
                      mask_source, value_mode, value, lengths, summary, diagnostics, weighting,
                      accumulation)


def _as_padded(data, mask) -> Padded:
    if isinstance(data, Padded):
        padded = data
    else:
        padded = Padded(np.asarray(data), "<array>")
    if mask is not None:
        padded = Padded(padded.inputs, padded.source,
                        check_mask(padded.source, mask, padded.inputs),
                        padded.lengths, padded.meta, padded.extra, padded.fields, padded.field)
    return padded


def _resolve_value(given, padded: Padded):
    """The mask value: given (``--mask-value``), else recorded in the npz
    meta, else 0; a number, or a string for string data."""
    if padded.inputs.dtype.kind in "US":
        value = given if given is not None else padded.pad_value
        return 0 if value is None else str(value)
    if given is not None:
        return parse_value(given, "--mask-value")
    recorded = padded.numeric_pad_value("--mask-value")
    return 0 if recorded is None else recorded


# --- where the padding sits -------------------------------------------------

_EMPTY, _FULL, _PRE, _POST, _BOTH = "empty", "full", "pre", "post", "both"


@dataclass(frozen=True)
class _Sides:
    """Per row: its side and where its padding at either end starts."""

    side: np.ndarray  # one of _EMPTY/_FULL/_PRE/_POST/_BOTH per row
    trailing_start: np.ndarray  # first padded step after the last real one


def _row_sides(real: np.ndarray) -> _Sides:
    """Classify each row by the padding at its two ends.

    Masked steps between real steps are holes, not a side (pad-value-inside
    reports them); a row with no real step is empty.
    """
    n, steps = real.shape
    has_real = real.any(axis=1)
    if steps:
        first_real = real.argmax(axis=1)
        last_real = steps - 1 - real[:, ::-1].argmax(axis=1)
    else:
        first_real = last_real = np.zeros(n, dtype=np.int64)
    leading = first_real > 0
    trailing = last_real < steps - 1
    side = np.select([~has_real, leading & trailing, leading, trailing],
                     [_EMPTY, _BOTH, _PRE, _POST], default=_FULL)
    return _Sides(side, last_real + 1)


def _padding_side(sides: _Sides) -> str:
    found = set(sides.side.tolist()) & {_PRE, _POST, _BOTH}
    if not found:
        return "none"
    return found.pop() if found in ({_PRE}, {_POST}) else "mixed"


def _summarise(inputs: np.ndarray, real: np.ndarray, lengths: np.ndarray,
               sides: _Sides) -> Summary:
    n, steps = real.shape
    real_steps = int(real.sum())
    padded_steps = n * steps - real_steps
    return Summary(
        sequences=n, timesteps=steps,
        features=int(inputs.shape[2]) if inputs.ndim == 3 else None,
        real_steps=real_steps, padded_steps=padded_steps,
        padded_fraction=padded_steps / (n * steps) if steps else 0.0,
        min_length=int(lengths.min()), median_length=float(np.median(lengths)),
        max_length=int(lengths.max()), padding_side=_padding_side(sides))


# --- the diagnostics ----------------------------------------------------------

def _places(where: np.ndarray) -> list[tuple[int, int]]:
    return [(int(seq), int(step)) for seq, step in np.argwhere(where)[:LOCATIONS]]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _pad_value_inside(value_real: np.ndarray, value, mode: str) -> Diagnostic | None:
    # Strictly between two real steps of the same row: a masked step with a
    # real step somewhere before it and somewhere after it.
    before = np.logical_or.accumulate(value_real, axis=1)
    after = np.logical_or.accumulate(value_real[:, ::-1], axis=1)[:, ::-1]
    inside = ~value_real & before & after
    count = int(inside.sum())
    if not count:
        return None
    shown = format_value(value)
    what = (f"the pad value {shown} is found" if mode == "embedding"
            else f"the mask value {shown} fills every feature of a step")
    return Diagnostic(
        "pad-value-inside", count, "steps", _places(inside),
        f"{what} between real steps ({_plural(count, 'step')}): "
        f"{_LAYER[mode]} masks those steps, so real data there is ignored",
        "pad with a value that is never real data (e.g. shift token ids by 1 so 0 is free), "
        "or pass the mask explicitly")


def _partial_timestep(inputs: np.ndarray, value, mode: str) -> Diagnostic | None:
    # An elementwise mask handles partly padded steps by design.
    if mode != "masking":
        return None
    kept = compute_mask(inputs, "elementwise", value)
    partial = kept.any(axis=-1) & ~kept.all(axis=-1)
    count = int(partial.sum())
    if not count:
        return None
    return Diagnostic(
        "partial-timestep", count, "steps", _places(partial),
        f"some but not all features equal the mask value {format_value(value)} at "
        f"{_plural(count, 'step')}: Masking keeps a step unless ALL its features equal it",
        "pad whole steps with the mask value, or build a per-value mask (--mode elementwise) "
        "and pass it to the model")


def _non_finite(inputs: np.ndarray, value) -> Diagnostic | None:
    if inputs.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(inputs)
    if inputs.ndim == 3:
        bad = bad.any(axis=-1)
    count = int(bad.sum())
    if not count:
        return None
    nan_steps = np.isnan(inputs)
    nan_steps = int((nan_steps.any(axis=-1) if inputs.ndim == 3 else nan_steps).sum())
    message = (f"NaN or ±inf at {_plural(count, 'step')} ({nan_steps} of them with NaN): a NaN "
               "or inf even at a padded step makes the loss NaN, since the mask multiplies")
    if _is_nan(value):
        message += "; the mask value is NaN, which masks nothing (NaN != NaN)"
    return Diagnostic("non-finite", count, "steps", _places(bad), message,
                      "replace NaN/inf before training (e.g. np.nan_to_num) and pad with a "
                      "finite value such as 0")


def _all_padding_rows(sides: _Sides) -> Diagnostic | None:
    rows = np.flatnonzero(sides.side == _EMPTY)
    if not rows.size:
        return None
    return Diagnostic(
        "all-padding-row", int(rows.size), "sequences",
        [(int(row), None) for row in rows[:LOCATIONS]],
        f"no real step in {_plural(int(rows.size), 'sequence')}: a masked average over such a "
        "sequence is NaN, its loss contribution is 0, and cuDNN's RNN kernels refuse it",
        "drop empty sequences before padding")


def _pre_padding_rnn(sides: _Sides) -> Diagnostic | None:
    rows = np.flatnonzero(np.isin(sides.side, (_PRE, _BOTH)))
    if not rows.size:
        return None
    return Diagnostic(
        "pre-padding-rnn", int(rows.size), "sequences",
        [(int(row), 0) for row in rows[:LOCATIONS]],
        f"padding at the front of {_plural(int(rows.size), 'sequence')}: cuDNN's fast "
        "LSTM/GRU kernels need post-padding, so Keras falls back to the slow path (or fails "
        "in a compiled function)",
        "pad at the end: maskcli pad --padding post (pad_sequences(..., padding='post'))")


def _mixed_padding_sides(sides: _Sides) -> Diagnostic | None:
    if _padding_side(sides) != "mixed":
        return None
    side = sides.side
    counts = {s: int((side == s).sum()) for s in (_PRE, _POST, _BOTH)}
    # The rows off the most common side are the odd ones out; a row padded at
    # both ends always is.
    majority = _PRE if counts[_PRE] > counts[_POST] else _POST
    odd = np.isin(side, [s for s in (_PRE, _POST, _BOTH) if s != majority])
    rows = np.flatnonzero(odd)
    first_padded = np.where(side == _POST, sides.trailing_start, 0)
    return Diagnostic(
        "mixed-padding-sides", int(rows.size), "sequences",
        [(int(row), int(first_padded[row])) for row in rows[:LOCATIONS]],
        f"sequences are padded on different sides: {counts[_PRE]} at the front, "
        f"{counts[_POST]} at the back, {counts[_BOTH]} at both ends",
        "pad every sequence on the same side: maskcli pad --padding post")


def _mask_mismatch(recorded: np.ndarray | None, value_mask: np.ndarray, mode: str,
                   value) -> Diagnostic | None:
    if recorded is None:
        return None
    if recorded.shape == value_mask.shape:
        differ = recorded != value_mask
        differ = differ.any(axis=-1) if differ.ndim == 3 else differ
    else:
        differ = step_mask(recorded) != step_mask(value_mask)
    count = int(differ.sum())
    if not count:
        return None
    return Diagnostic(
        "mask-mismatch", count, "steps", _places(differ),
        f"the npz mask differs at {_plural(count, 'step')} from the mask {_LAYER[mode]} "
        f"builds from the values with mask value {format_value(value)}: the model will "
        "not see the mask the npz records",
        "use the --mode your model builds its mask with, or re-pad with a pad value that "
        "is never real data")


# --- values for messages and JSON ----------------------------------------------

def _is_nan(value) -> bool:
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def format_value(value) -> str:
    """``0``, ``-1.5``, ``nan``, ``-inf`` or ``'<pad>'``: a value as a user types it."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def json_value(value):
    """A number JSON can hold; NaN and ±inf as the strings "nan", "inf", "-inf"."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
