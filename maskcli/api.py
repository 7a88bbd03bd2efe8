"""The Python entry points that take a path as readily as an array.

The core works on arrays; this module reads a file first when it is given a
path, as the commands do. ``from maskcli import inspect_mask`` lands here.
"""

from __future__ import annotations

import os

import numpy as np

from maskcli.core import diagnose
from maskcli.core.diagnose import MaskReport
from maskcli.formats.arrays import load_padded


def inspect_mask(data, *, mode: str | None = None, mask_value=None,
                 mask: np.ndarray | None = None) -> MaskReport:
    """Build the mask of padded data, summarise it and diagnose it.

    ``data`` is a path (or ``-`` for standard input) read like
    ``inspect-mask``'s INPUT, a :class:`~maskcli.core.padded.Padded`, or an
    array of padded inputs; the other arguments are those of
    :func:`maskcli.core.diagnose.inspect_mask`.

    >>> inspect_mask(np.array([[5, 0, 3, 0]])).lengths.tolist()
    [2]
    """
    if isinstance(data, (str, os.PathLike)):
        data = load_padded(os.fspath(data))
    return diagnose.inspect_mask(data, mode=mode, mask_value=mask_value, mask=mask)
