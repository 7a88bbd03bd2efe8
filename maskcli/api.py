"""The Python entry points that take a path as readily as an array.

The core works on arrays; this module reads a file first when it is given a
path, as the commands do. ``from maskcli import inspect_mask`` lands here.
"""

from __future__ import annotations

import os

import numpy as np

from maskcli.core import diagnose
from maskcli.core.diagnose import MaskReport
from maskcli.core.errors import UsageError
from maskcli.formats.arrays import load_padded


def inspect_mask(data, *, mode: str | None = None, mask_value=None,
                 mask: np.ndarray | None = None, field: str | None = None,
                 batch_size: int | None = None, accumulation_steps: int | None = None,
                 replicas: int | None = None) -> MaskReport:
    """Build the mask of padded data, summarise it and diagnose it.

    ``data`` is a path (or ``-`` for standard input) read like
    ``inspect-mask``'s INPUT, a :class:`~maskcli.core.padded.Padded`, or an
    array of padded inputs; the other arguments are those of
    :func:`maskcli.core.diagnose.inspect_mask`. ``field`` picks a field of an
    npz of several fields (default: the first), with its own mask and pad value.

    >>> inspect_mask(np.array([[5, 0, 3, 0]])).lengths.tolist()
    [2]
    """
    if isinstance(data, (str, os.PathLike)):
        data = load_padded(os.fspath(data), field=field)
    elif field is not None:
        raise UsageError(f"field {field!r}: give the path of an npz of several fields, not "
                         "an array")
    return diagnose.inspect_mask(data, mode=mode, mask_value=mask_value, mask=mask,
                                 batch_size=batch_size, accumulation_steps=accumulation_steps,
                                 replicas=replicas)
