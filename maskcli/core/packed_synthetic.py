"""Synthetic packed rows: what ``trace-mask`` and ``audit-loss`` run a packed
model on when no data is given.

A few seeded documents of varied lengths are packed by :mod:`maskcli.core.packing`
(best-fit decreasing, the packer of ``maskcli pack``) into rows of the model's
length, so that the batch has what packing gets wrong: several documents per
row (a boundary to cross), a document of one step, and a row that ends in
padding. Every field of the model (token ids, features) holds the same
documents; segment ids are 1..k per row and positions restart at 0 at each
document, as ``maskcli pack`` writes them.

>>> rows = synthetic_rows(8, seed=0)
>>> rows.segment_ids.shape, int(rows.segment_ids.max()) >= 2, 1 in rows.lengths
((3, 8), True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskcli.core.errors import UsageError
from maskcli.core.packing import Packer, PackOptions, best_fit_decreasing
from maskcli.core.padding import Ragged

SYNTHETIC_ROWS = 3
SYNTHETIC_STEPS = 16  # a row's steps when the model's input leaves its length open
SYNTHETIC_VOCAB = 10  # token ids 1..9, unless an Embedding takes fewer
ATTEMPTS = 1000  # draws of document lengths until one packs with every property


@dataclass(frozen=True)
class FieldSpec:
    """One field of the documents: token ids ``1..vocab - 1`` (never the pad
    id 0, which ``Embedding(mask_zero=True)`` masks), or, with ``vocab`` None,
    normal draws; ``step_shape`` the shape of one step (``()`` for ids),
    ``dtype`` as the model input takes it."""

    vocab: int | None = SYNTHETIC_VOCAB
    step_shape: tuple = ()
    dtype: str = "int32"


@dataclass
class SyntheticRows:
    """Packed rows: each field's ``(rows, steps[, features])`` array (padding
    0), the ``segment_ids`` and ``positions`` shared by them, the documents'
    ``lengths`` in row order, and the ``seed`` that drew them."""

    fields: dict[str, np.ndarray]
    segment_ids: np.ndarray
    positions: np.ndarray
    lengths: list[int] = field(default_factory=list)
    seed: int = 0

    @property
    def rows(self) -> int:
        return int(self.segment_ids.shape[0])

    @property
    def steps(self) -> int:
        return int(self.segment_ids.shape[1])

    @property
    def documents(self) -> int:
        return len(self.lengths)

    def describe(self) -> str:
        """One line for messages: what the rows hold and where they came from."""
        return (f"{self.documents} synthetic documents of {min(self.lengths)} to "
                f"{max(self.lengths)} steps, packed into {self.rows} rows of {self.steps} "
                f"steps, seed {self.seed}")


def synthetic_rows(steps: int = SYNTHETIC_STEPS, *, seed: int = 0, rows: int = SYNTHETIC_ROWS,
                   fields: dict[str, FieldSpec] | None = None) -> SyntheticRows:
    """``rows`` packed rows of ``steps`` steps, drawn with ``seed``: the same
    rows for the same arguments. ``fields`` (default one field of token ids,
    ``inputs``) says what each field of the documents holds.

    Whenever the rows are long enough for it (4 steps or more) every row holds
    two documents or more, one document has a single step, the lengths vary
    and the last row ends in padding (from 2 steps on, one row does).
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise UsageError(f"the synthetic rows need a length of at least 1 step, got {steps!r}")
    if rows < 1:
        raise UsageError(f"the synthetic rows need 1 row or more, got {rows!r}")
    steps, rows = int(steps), int(rows)
    fields = fields or {"inputs": FieldSpec()}
    rng = np.random.default_rng(seed)
    lengths = None
    for _ in range(ATTEMPTS):
        lengths = _document_lengths(rng, steps, rows)
        if _complete(lengths, steps, rows):
            break
    arrays = {name: _values(rng, spec, lengths) for name, spec in fields.items()}
    packer = Packer(tuple(arrays), PackOptions(steps, window=len(lengths)),
                    (0,) * len(arrays), workers=1)
    (window,) = packer.pack([tuple(Ragged(values, lengths) for values in arrays.values())])
    out = {name: window.fields[name].astype(spec.dtype, copy=False)
           for name, spec in fields.items()}
    return SyntheticRows(out, window.segment_ids, window.positions,
                         [int(n) for n in window.lengths], seed)


def _document_lengths(rng, steps: int, rows: int) -> np.ndarray:
    """Lengths of 1..steps/2 that fill ``rows`` rows but for a few steps of
    padding, one of them 1, in a random order."""
    padding = int(rng.integers(1, max(1, steps // 4) + 1)) if steps > 1 else 0
    total = rows * steps - padding
    longest = max(1, steps // 2)
    lengths: list[int] = []
    while sum(lengths) < total:
        lengths.append(min(int(rng.integers(1, longest + 1)), total - sum(lengths)))
    if 1 not in lengths:  # split one document into a 1 and the rest
        at = int(rng.integers(len(lengths)))
        lengths[at:at + 1] = [1, lengths[at] - 1]
    return rng.permutation(np.array(lengths, dtype=np.int64))


def _complete(lengths: np.ndarray, steps: int, rows: int) -> bool:
    """Whether ``lengths``, placed as the packer places them, give rows with
    every property ``synthetic_rows`` promises."""
    row_of, placed = best_fit_decreasing(lengths, steps)
    if placed != rows:
        return False
    if steps >= 2 and lengths[row_of == rows - 1].sum() == steps:  # the last row is full
        return False
    if steps >= 4 and (np.bincount(row_of).min() < 2 or len(set(lengths.tolist())) < 2):
        return False
    return 1 in lengths


def _values(rng, spec: FieldSpec, lengths: np.ndarray) -> np.ndarray:
    shape = (int(lengths.sum()), *spec.step_shape)
    if spec.vocab is None:
        return rng.standard_normal(shape).astype(spec.dtype)
    return rng.integers(1, max(int(spec.vocab), 2), size=shape).astype(spec.dtype)
