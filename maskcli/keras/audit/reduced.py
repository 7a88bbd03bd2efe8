"""Sequences run with their padding reduced: when a batch holds many distinct
lengths, running each length alone costs one model call per length; instead
the sequences are sorted by length into ``GROUPS`` groups and each group is
cut to its longest real part (padding reduced, never added; each sequence on
its own padding side). A model that lets padding in changes its outputs at
real steps when the amount of padding changes, as it does alone."""

from __future__ import annotations

import numpy as np

from maskcli.core.extend import pre_padded_rows, real_part
from maskcli.keras.audit.inputs import Batch

GROUPS = 16  # more distinct lengths than this: padding reduced in this many groups


def length_keys(batch: Batch, rows: np.ndarray) -> list[tuple]:
    """Per row, its real length in every per-step input."""
    return [tuple(int(pad[i].sum()) for pad in batch.per_step.values()) for i in rows]


def reduced_groups(batch: Batch, rows: np.ndarray, groups: int = GROUPS):
    """Yields (sequences, arrays, starts): ``starts[name][k]`` is where the
    real steps of the k-th sequence begin in input ``name``."""
    keys = length_keys(batch, rows)
    order = np.array([i for _, i in sorted(zip(keys, rows))])
    pre = {name: pre_padded_rows(pad) for name, pad in batch.per_step.items()}
    for group in np.array_split(order, min(groups, len(order))):
        arrays, starts = {}, {}
        for name, array in batch.arrays.items():
            pad = batch.paddings[name]
            if pad is None:
                arrays[name] = array[group]
                continue
            parts = [real_part(array, pad, i) for i in group]
            steps = max(1, max(len(part) for part in parts))
            cut = np.empty((len(group), steps) + array.shape[2:], array.dtype)
            cut[:] = batch.fill(name)
            start = np.array([steps - len(part) if pre[name][i] else 0
                              for part, i in zip(parts, group)])
            for k, part in enumerate(parts):
                cut[k, start[k]:start[k] + len(part)] = part
            arrays[name], starts[name] = cut, start
        yield group, arrays, starts
