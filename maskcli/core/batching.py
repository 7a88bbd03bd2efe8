"""How batches weigh real tokens: numpy, from the sequences' lengths alone.

Keras normalizes a masked loss within each batch: the sum over the batch's
real steps divided by their count. ``evaluate`` (and the loss ``fit``
reports) then averages the batch losses weighted by the number of sequences
in each batch: its loss tracker is a ``Mean`` updated with ``sample_weight``
= the batch's size (measured on Keras 3.15.1, last partial batch included).
So a real token of batch ``b`` counts ``n_b / (N * R_b)`` of the loss, where
``n_b`` is the batch's sequences, ``R_b`` its real steps and ``N`` all
sequences. Relative to the token mean (``1 / R``, ``R`` all real steps),
where 1.0 means every real token weighs the same::

    weight = R * n_b / (N * R_b)

For lengths 1 and 4 in batches of 1: R = 5, N = 2, so 5 / (2 * 1) = 2.5 and
5 / (2 * 4) = 0.625: a spread (max / min) of 4.0. The loss Keras reports is
then ``mean(weight * loss)`` over the real tokens, not ``mean(loss)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskcli.core.errors import UsageError


def batch_slices(count: int, batch_size: int | None) -> list[slice]:
    """Consecutive batches of ``batch_size`` rows (the last may be shorter);
    one batch of every row for ``None``."""
    if batch_size is None:
        return [slice(0, count)]
    check_batch_size(batch_size)
    return [slice(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")


def token_weights(lengths, batch_size: int) -> np.ndarray:
    """The weight of each real token of each sequence, relative to the token
    mean, when ``lengths`` (real steps per sequence, in order; or the sum of
    their sample weights, for a loss that divides by the weights) fall into
    consecutive batches of ``batch_size``: one value per sequence, NaN for a
    sequence with no real step (it has no token to weigh)."""
    check_batch_size(batch_size)
    lengths = np.asarray(lengths, dtype=np.float64)
    count = len(lengths)
    if count == 0:
        return np.zeros(0)
    starts = np.arange(0, count, batch_size)
    real_per_batch = np.add.reduceat(lengths, starts).astype(np.float64)
    rows_per_batch = np.diff(np.append(starts, count)).astype(np.float64)
    total = float(lengths.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        per_batch = total * rows_per_batch / (count * real_per_batch)
    weights = np.repeat(per_batch, rows_per_batch.astype(np.int64))  # one per sequence
    weights[lengths == 0] = np.nan
    return weights


def batch_padded_fraction(lengths, batch_size: int) -> float:
    """The padded share of the steps when each batch of ``batch_size``
    consecutive sequences is padded to its own longest one."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if not len(lengths):
        return 0.0
    starts = np.arange(0, len(lengths), batch_size)
    longest = np.maximum.reduceat(lengths, starts)
    rows = np.diff(np.append(starts, len(lengths)))
    steps = int((longest * rows).sum())
    return (steps - int(lengths.sum())) / steps if steps else 0.0


@dataclass(frozen=True)
class BatchWeighting:
    """What batches of ``batch_size`` do to the real tokens' weights.

    ``weight_min``/``weight_max`` are relative to the token mean (1.0: every
    real token weighs the same) and ``spread`` is their ratio, None when no
    sequence has a real step. The ``padded_fraction_*`` values count each
    batch padded to its own longest sequence: in the given order, and with
    the sequences sorted by length first (bucketing); ``spread_sorted`` is the
    spread those sorted batches would give.
    """

    batch_size: int
    batches: int
    weight_min: float | None
    weight_max: float | None
    spread: float | None
    padded_fraction_in_order: float
    padded_fraction_sorted: float
    spread_sorted: float | None

    def to_dict(self) -> dict:
        return {"batch_size": self.batch_size, "batches": self.batches,
                "weight_min": self.weight_min, "weight_max": self.weight_max,
                "spread": self.spread,
                "padded_fraction_in_order": self.padded_fraction_in_order,
                "padded_fraction_sorted": self.padded_fraction_sorted,
                "spread_sorted": self.spread_sorted}


def batch_weighting(lengths, batch_size: int, divisors=None) -> BatchWeighting:
    """Summarise :func:`token_weights` for ``lengths`` in batches of ``batch_size``.
    ``divisors``: what each sequence adds to its batch's divisor when that is
    not its length (the sum of its sample weights); the padding still counts
    ``lengths``.

    >>> w = batch_weighting([1, 4], 1)
    >>> w.weight_max, w.weight_min, w.spread
    (2.5, 0.625, 4.0)
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    divisors = lengths if divisors is None else np.asarray(divisors, dtype=np.float64)
    low, high, spread = _extremes(token_weights(divisors, batch_size))
    order = np.argsort(lengths, kind="stable")
    return BatchWeighting(
        batch_size=int(batch_size), batches=len(batch_slices(len(lengths), batch_size)),
        weight_min=low, weight_max=high, spread=spread,
        padded_fraction_in_order=batch_padded_fraction(lengths, batch_size),
        padded_fraction_sorted=batch_padded_fraction(lengths[order], batch_size),
        spread_sorted=_extremes(token_weights(divisors[order], batch_size))[2])


def _extremes(weights: np.ndarray) -> tuple[float | None, float | None, float | None]:
    real = weights[np.isfinite(weights)]
    if not real.size:
        return None, None, None
    low, high = float(real.min()), float(real.max())
    return low, high, high / low


def ratio_text(value: float | None) -> str:
    """A spread as the reports print it: ``4.0``, ``1.25``, ``n/a``."""
    if value is None:
        return "n/a"
    text = f"{value:.3g}"
    return text if "." in text or "e" in text else f"{text}.0"
