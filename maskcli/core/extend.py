"""More padding, or none: how the invariance checks reshape a padded batch.

A model that ignores padding gives the same outputs at real steps whether a
sequence is run with its padding, with more of it, or alone without it.
These functions build those variants of one padded array, given its mask
(True at real steps). Every per-step input of a model is extended or trimmed
the same way, each by its own mask and on its own padding side, so that a
model with several inputs (token ids, segment ids, a padding mask) sees them
stay aligned.
"""

from __future__ import annotations

import numpy as np


def pre_padded_rows(mask: np.ndarray) -> np.ndarray:
    """Per sequence: True where its padding sits at the front.

    A sequence without padding (or of padding only) gets the side most padded
    sequences of the batch use, so that extra padding goes where the user's
    padding goes.
    """
    mask = np.asarray(mask, dtype=bool)
    pre = ~mask[:, 0] & mask[:, -1] if mask.shape[1] else np.zeros(len(mask), bool)
    padded = ~mask.all(axis=1) & mask.any(axis=1)
    batch_pre = (pre & padded).sum() > (padded & ~pre).sum()
    return np.where(padded, pre, batch_pre)


def pad_fill(array: np.ndarray, mask: np.ndarray):
    """What one padded step of ``array`` holds (its first padded step), or None
    when the mask marks every step real."""
    padded = ~np.asarray(mask, dtype=bool)
    return array[padded][0] if padded.any() else None


def extend_padding(array: np.ndarray, mask: np.ndarray, extra: int, fill=None,
                   pre: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``array`` with ``extra`` more padding steps per sequence, each on its
    padding side, filled with ``fill`` (default: what a padded step holds).

    Returns the extended array and, per sequence, the offset of its original
    steps in it (``extra`` for pre-padded rows, 0 for post-padded ones): real
    step ``t`` of sequence ``i`` is at ``offsets[i] + t``.

    >>> x, offsets = extend_padding(np.array([[0, 7], [5, 6]]), np.array([[0, 1], [1, 1]]), 1)
    >>> x.tolist(), offsets.tolist()
    ([[0, 0, 7], [0, 5, 6]], [1, 1])
    """
    mask = np.asarray(mask, dtype=bool)
    pre = pre_padded_rows(mask) if pre is None else pre
    if fill is None:
        fill = pad_fill(array, mask)
        fill = 0 if fill is None else fill
    n, steps = mask.shape
    extended = np.empty((n, steps + extra) + array.shape[2:], dtype=array.dtype)
    extended[...] = fill
    offsets = np.where(pre, extra, 0)
    for i in range(n):
        extended[i, offsets[i]:offsets[i] + steps] = array[i]
    return extended, offsets


def real_part(array: np.ndarray, mask: np.ndarray, row: int) -> np.ndarray:
    """Sequence ``row`` of ``array`` without its padding: its real steps alone."""
    return array[row][np.asarray(mask[row], dtype=bool)]
