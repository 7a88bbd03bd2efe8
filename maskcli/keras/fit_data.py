"""The data ``fit`` takes, as the arrays an audit reads.

``model.fit`` takes arrays (one, a list in the model's input order, or a dict
by input name), ``(x, y[, sample_weight])`` tuples, a ``tf.data.Dataset`` or a
``keras.utils.PyDataset`` yielding such batches. :func:`fit_arrays` turns any
of them into one set of numpy arrays plus the batches' own size, so that the
audit runs the model on the very batches training sees (``batch_size``).

A batched source is read for its first ``batches`` batches only, through a
new iterator (a ``tf.data`` pipeline that reshuffles each iteration then
shuffles its next pass differently; :class:`maskcli.keras.callback.PaddingAudit`
reads ``fit``'s own first batches without that). Batches padded to different
lengths (``padded_batch`` pads each to its longest sequence) are padded
further to the longest of them, with the pad value for inputs and targets,
0 for mask inputs and sample weights; the report's notes say so.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from maskcli.core.errors import InputError, UsageError
from maskcli.keras.feed import is_mask_input

# Batches a dataset is audited on by default: enough for batch-weighting to
# compare batches, few enough to cost a handful of forward passes.
DEFAULT_BATCHES = 4


@dataclass
class FitArrays:
    """Inputs (array, list or dict by name), targets and sample weights, and
    the size of the batches they came in (None: not batched)."""

    x: object
    y: np.ndarray | None = None
    sample_weight: object = None
    batch_size: int | None = None
    batches: int = 1
    notes: list[str] = field(default_factory=list)


def fit_arrays(data, *, targets=None, sample_weight=None, batches: int = DEFAULT_BATCHES,
               pad_value=0, target_pad=None) -> FitArrays:
    """``data`` as ``fit`` takes it, as arrays (see the module's docstring).

    ``targets`` and ``sample_weight`` are arrays, or names of a field of a
    dict (of ``data``, or of each batch) to take them from; given as arrays
    they may not also come with ``data``.
    """
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise UsageError(f"batches={batches!r}: give the number of batches to audit, 1 or more")
    source = _batched_source(data)
    if source is not None:
        return batch_arrays(_first_batches(source, batches), targets=targets,
                            sample_weight=sample_weight, pad_value=pad_value,
                            target_pad=target_pad)
    x, y, weights = _unpacked(data, targets, sample_weight)
    if isinstance(x, (list, tuple)):
        x = x[0] if len(x) == 1 else list(x)  # [x] feeds a one-input model, as in fit
    return FitArrays(x, y, weights)


def batch_arrays(elements: list, *, targets=None, sample_weight=None, pad_value=0,
                 target_pad=None) -> FitArrays:
    """Batches as ``fit`` reads them (each ``(x, y[, sample_weight])`` or x),
    joined into one set of arrays cut at the same boundaries."""
    if not elements:
        raise InputError("the dataset yields no batch: give one with data to audit")
    parts = [_unpacked(element, targets, sample_weight) for element in elements]
    return _concatenated(parts, pad_value, target_pad)


def _batched_source(data):
    """A list-like of batches (a PyDataset), an iterable dataset, or None."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        if isinstance(data, tf.data.Dataset):
            return data
    if "keras" in sys.modules:
        import keras

        if isinstance(data, keras.utils.PyDataset):
            return data
    if hasattr(data, "element_spec") or (hasattr(data, "__getitem__")
                                         and hasattr(data, "on_epoch_end")):
        return data  # a dataset of another flavour that iterates the same way
    return None


def _first_batches(source, count: int) -> list:
    if hasattr(source, "on_epoch_end") and hasattr(source, "__len__"):  # a PyDataset
        # Indexed, as Keras indexes it: no iterator, no worker, no shuffling.
        return [source[i] for i in range(min(count, len(source)))]
    if hasattr(source, "take"):
        source = source.take(count)
    found = []
    for element in source:
        found.append(element)
        if len(found) == count:
            break
    return found


def _numpy(value):
    if value is None or isinstance(value, (str, np.ndarray)):
        return value
    if isinstance(value, dict):
        return {str(key): _numpy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_numpy(item) for item in value)
    if hasattr(value, "to_tensor"):  # a RaggedTensor: fit pads it the same way
        value = value.to_tensor()
    return np.asarray(value)


def _unpacked(data, targets, sample_weight):
    """(x, y, sample_weight) of one batch, or of the whole data, as fit unpacks it:
    a tuple is (x,), (x, y) or (x, y, sample_weight); anything else is x."""
    data = _numpy(data)
    x, y, weights = data, None, None
    if isinstance(data, tuple):
        if not 1 <= len(data) <= 3:
            raise InputError(f"a tuple of {len(data)} items: fit takes (x,), (x, y) or "
                             "(x, y, sample_weight): give one of those (a list for several "
                             "model inputs)")
        x, y, weights = (*data, None, None)[:3]
    y = _field("targets", targets, x, y)
    weights = _field("sample_weight", sample_weight, x, weights)
    return x, y, weights


def _field(argument: str, given, x, found):
    """The targets or sample weights: ``given`` (an array, a field name of
    ``x``, or "mask" for the sample weights), else those ``found`` beside x."""
    if given is None:
        return found
    if isinstance(given, str):
        if argument == "sample_weight" and given == "mask":
            return given
        if not isinstance(x, dict):
            raise UsageError(f"{argument}={given!r} names a field, and the inputs are not a dict "
                             "of fields: give the array itself")
        if given not in x:
            raise InputError(f"{argument}={given!r}: no such field (the fields: "
                             f"{', '.join(sorted(x))}): name one of those")
        return x.pop(given)
    if found is not None:
        raise UsageError(f"{argument} given twice, as an argument and within the data: give "
                         "it once")
    return np.asarray(given)


def _concatenated(parts: list, pad_value, target_pad) -> FitArrays:
    sizes = [_rows(x) for x, _, _ in parts]
    size = sizes[0]
    # Batch boundaries are fixed-size cuts: a smaller batch can only come last.
    kept = next((i + 1 for i, rows in enumerate(sizes) if rows != size), len(parts))
    parts, notes = parts[:kept], []
    lengths = sorted({_steps(x) for x, _, _ in parts} - {None})
    if len(lengths) > 1:
        notes.append(f"the {len(parts)} batches hold {', '.join(map(str, lengths))} steps: "
                     f"each was padded further to {lengths[-1]} to audit them together")
    xs, ys, weights = zip(*parts)
    x = _join(list(xs), pad_value, "x")
    y = None if ys[0] is None else _join(list(ys), 0 if target_pad is None else target_pad, "y")
    w = weights[0] if isinstance(weights[0], str) else (
        None if weights[0] is None else _join(list(weights), 0, "sample_weight"))
    # One batch is audited as one (eagerly); several as --batch-size cuts them.
    return FitArrays(x, y, w, batch_size=size if len(parts) > 1 else None,
                     batches=len(parts), notes=notes)


def _rows(x) -> int:
    if isinstance(x, dict):
        x = next(iter(x.values()))
    elif isinstance(x, (list, tuple)):
        x = x[0]
    return len(x)


def _steps(x) -> int | None:
    if isinstance(x, dict):
        x = next(iter(x.values()))
    elif isinstance(x, (list, tuple)):
        x = x[0]
    return x.shape[1] if np.ndim(x) >= 2 else None


def _join(values: list, fill, name: str):
    """Batches of one structure concatenated along the sequences, each array
    padded (axis 1) to the longest; mask inputs are padded with 0."""
    first = values[0]
    if any(type(value) is not type(first) for value in values):
        raise InputError(f"the batches' {name} change structure from one batch to the next: "
                         "give batches of one structure")
    if isinstance(first, dict):
        return {key: _join([value[key] for value in values],
                           0 if is_mask_input(key) else fill, f"{name}['{key}']")
                for key in first}
    if isinstance(first, (list, tuple)):
        return [_join([value[i] for value in values], fill, f"{name}[{i}]")
                for i in range(len(first))]
    if first.ndim >= 2:
        longest = max(value.shape[1] for value in values)
        values = [_padded(value, longest, fill) for value in values]
    try:
        return np.concatenate(values)
    except ValueError as exc:
        raise InputError(f"the batches' {name} cannot be joined ({exc}): give batches "
                         "whose arrays differ in sequences and steps only") from None


def _padded(value: np.ndarray, steps: int, fill) -> np.ndarray:
    if value.shape[1] == steps:
        return value
    out = np.full((value.shape[0], steps) + value.shape[2:], fill, dtype=value.dtype)
    out[:, :value.shape[1]] = value
    return out
