"""Steps into values: a flat list of JSON steps (numbers, strings or feature
vectors) stacked into one numpy array, refusing what numpy would get wrong.

numpy silently turns numbers among strings into strings, cannot stack steps
of different shapes, and reads integers beyond int64 among others as
float64, rounding them: each becomes an error naming the step, or the exact
array.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING

import numpy as np

from maskcli.core.errors import InputError

if TYPE_CHECKING:
    from maskcli.core.padding import Ragged


def steps_to_values(steps: list, chunk: Ragged) -> np.ndarray:
    """Stack a flat list of steps (numbers, strings or feature vectors) into ``values``.

    ``chunk`` (with ``values`` not yet set) names the place of a ragged step.
    """
    try:
        values = np.asarray(steps)
    except ValueError:
        values = None  # numpy cannot stack steps of different shapes
    if values is None:
        raise InputError(_ragged_step_message(steps, chunk))
    if values.dtype.kind == "U":  # numpy turns numbers among strings into strings
        _refuse_mixed_types(steps, chunk)
    if values.dtype.kind == "f" and values.size and np.abs(values).max() >= 2.0 ** 63:
        values = _exact_uint64(steps, values)
    return values


def _exact_uint64(steps: list, values: np.ndarray) -> np.ndarray:
    """numpy reads integers beyond int64 among others as float64, which rounds
    them (2**63 + 1 becomes 2**63): keep integers that all fit uint64 exact."""
    items = itertools.chain.from_iterable(s if isinstance(s, list) else (s,) for s in steps)
    if not all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        return values
    try:
        return np.array(steps, dtype=np.uint64)
    except (OverflowError, ValueError):  # a negative one too: no 64-bit integer holds both
        return values


def _refuse_mixed_types(steps: list, chunk: Ragged) -> None:
    """Name the first element whose type (string or number) differs from the first one's."""
    first = None
    for index, step in enumerate(steps):
        for item in step if isinstance(step, list) else (step,):
            if first is None:
                first = item
            elif isinstance(item, str) != isinstance(first, str):
                raise InputError(
                    f"{chunk.place_of_step(index)}: {json.dumps(item)} among "
                    f"{'strings' if isinstance(first, str) else 'numbers'} (mixed element "
                    "types): give numbers only (token ids), or strings only (tokens)")


def _ragged_step_message(steps: list, chunk: Ragged) -> str:
    expected = None
    for index, step in enumerate(steps):
        try:
            shape = np.shape(step)
        except ValueError:
            shape = "ragged"
        if expected is None:
            expected = shape
        elif shape != expected or shape == "ragged":
            return (f"{chunk.place_of_step(index)}: {describe_step(shape)} among steps with "
                    f"{describe_step(expected)}: give every step the same number of features")
    return f"{chunk.source}: steps of different shapes: give every step the same number of features"


def describe_step(shape) -> str:
    if shape == "ragged":
        return "a ragged nested list"
    if shape == ():
        return "a single value"
    if len(shape) == 1:
        return f"{shape[0]} feature{'s' if shape[0] != 1 else ''}"
    return f"shape {shape}"
