"""How gradient accumulation and data-parallel replicas weigh real tokens:
numpy, from the sequences' lengths alone.

A Keras 3 optimizer with ``gradient_accumulation_steps=K`` applies the MEAN
of the gradients of K consecutive micro-batches (``base_optimizer.py``:
``(g + acc_g) / steps``), and each micro-batch's masked loss is already
divided by its own real tokens. Under ``tf.distribute.MirroredStrategy`` with
R replicas, each replica takes a consecutive share of ``B / R`` sequences of
the batch, divides its masked loss by its own real tokens and by R, and the
gradients are summed (measured: ``benchmarks/measure_replicas.py``). Both
are a mean of means. Call each share a *unit* (a micro-batch when R is 1) and
each K micro-batches a *window* (``K * R`` units): the update of a window is::

    mean over its units u of (sum of token losses in u / D_u)

where ``D_u`` is the unit's divisor (its real tokens), while one batch of the
window's ``K * B`` sequences would give ``sum of token losses / D_w``. A real
token of unit u therefore weighs, relative to that big batch::

    weight = D_w / (units_w * D_u)

For lengths 1 and 4 in micro-batches of 1 with K = 2: D_w = 5, so 5 / (2 * 1)
= 2.5 and 5 / (2 * 4) = 0.625, a spread (max / min) of 4.0. The last window
may hold fewer micro-batches: it averages the ones it has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskcli.core.batching import check_batch_size
from maskcli.core.errors import UsageError, option, spelled


def check_accumulation(batch_size: int | None, steps: int | None, replicas: int | None) -> None:
    """Refuse settings the accumulation weighting cannot use: the steps or
    replicas without a batch size, values below 1, a batch that does not
    split evenly over the replicas."""
    for flag, value in (("--accumulation-steps", steps), ("--replicas", replicas)):
        if value is None:
            continue
        if value < 1:
            raise UsageError(f"{option(flag)} must be at least 1, got {value}")
        if batch_size is None:
            raise UsageError(f"{option(flag)} needs {option('--batch-size')}: give the "
                             f"micro-batch size with "
                             f"{spelled('--batch-size B', 'batch_size=B')}")
    if batch_size is not None:
        check_batch_size(batch_size)
        if replicas and batch_size % replicas:
            raise UsageError(f"{option('--batch-size')} {batch_size} does not split evenly over "
                             f"{replicas} replicas: give a multiple of {option('--replicas')} "
                             f"({replicas})")


def windows(count: int, batch_size: int, steps: int, replicas: int = 1) -> list[list[slice]]:
    """The units (consecutive shares of ``batch_size / replicas`` sequences) of
    ``count`` sequences, grouped in windows of ``steps`` micro-batches."""
    check_accumulation(batch_size, steps, replicas)
    share = batch_size // replicas
    units = [slice(start, min(start + share, count)) for start in range(0, count, share)]
    per_window = steps * replicas
    return [units[start:start + per_window] for start in range(0, len(units), per_window)]


def window_token_weights(divisors, batch_size: int, steps: int, replicas: int = 1) -> np.ndarray:
    """The weight of each real token of each sequence relative to its window's
    token mean: ``D_w / (units_w * D_u)``. ``divisors``: what each sequence adds
    to its unit's divisor (its real steps, or the sum of its sample weights for
    a loss that divides by them). One value per sequence, NaN for a sequence
    with no real step."""
    divisors = np.asarray(divisors, dtype=np.float64)
    weights = np.full(len(divisors), np.nan)
    for window in windows(len(divisors), batch_size, steps, replicas):
        total = sum(float(divisors[unit].sum()) for unit in window)
        for unit in window:
            own = float(divisors[unit].sum())
            if own > 0:
                weights[unit] = total / (len(window) * own)
    weights[divisors == 0] = np.nan
    return weights


@dataclass(frozen=True)
class AccumulationWeighting:
    """What accumulating ``steps`` micro-batches of ``batch_size`` (each split
    over ``replicas``) does to the real tokens' weights, relative to one batch
    of the window's sequences (1.0: every real token weighs the same).
    ``spread`` is ``weight_max / weight_min``, None without a real token."""

    batch_size: int
    steps: int
    replicas: int
    windows: int
    weight_min: float | None
    weight_max: float | None
    spread: float | None

    @property
    def window_sequences(self) -> int:
        return self.batch_size * self.steps

    def to_dict(self) -> dict:
        return {"batch_size": self.batch_size, "accumulation_steps": self.steps,
                "replicas": self.replicas, "windows": self.windows,
                "window_sequences": self.window_sequences, "weight_min": self.weight_min,
                "weight_max": self.weight_max, "spread": self.spread}


def accumulation_weighting(lengths, batch_size: int, steps: int, replicas: int = 1,
                           divisors=None) -> AccumulationWeighting:
    """Summarise :func:`window_token_weights` for ``lengths``.

    >>> w = accumulation_weighting([1, 4], 1, 2)
    >>> w.weight_max, w.weight_min, w.spread
    (2.5, 0.625, 4.0)
    """
    divisors = np.asarray(lengths if divisors is None else divisors, dtype=np.float64)
    weights = window_token_weights(divisors, batch_size, steps, replicas)
    return _summary(weights[np.isfinite(weights)], len(divisors), batch_size, steps, replicas)


def summed_weighting(weights, counted, batch_size: int, steps: int,
                     replicas: int = 1) -> AccumulationWeighting:
    """The same for a loss that SUMS over real tokens (``reduction="sum"``):
    its sample weights are the normalization, so a real token weighs its
    ``weight x D_w / units_w`` relative to its window's token mean (``D_w``
    the window's counted tokens). ``weights`` and ``counted`` are per step
    (sequences, steps); tokens of weight 0 are left out.

    >>> summed_weighting([[2, 0], [2, 2]], [[1, 0], [1, 1]], 1, 2).spread  # the fix's weights
    1.0
    """
    weights = np.asarray(weights, dtype=np.float64)
    counted = np.asarray(counted, dtype=bool)
    found = []
    for window in windows(len(weights), batch_size, steps, replicas):
        rows = slice(window[0].start, window[-1].stop)
        total = int(counted[rows].sum())
        if total:
            found.append(weights[rows][counted[rows]] * total / len(window))
    values = np.concatenate(found) if found else np.zeros(0)
    return _summary(values[values > 0], len(weights), batch_size, steps, replicas)


def _summary(real: np.ndarray, count: int, batch_size: int, steps: int,
             replicas: int) -> AccumulationWeighting:
    low = float(real.min()) if real.size else None
    high = float(real.max()) if real.size else None
    return AccumulationWeighting(
        batch_size=int(batch_size), steps=int(steps), replicas=int(replicas),
        windows=len(windows(count, batch_size, steps, replicas)),
        weight_min=low, weight_max=high, spread=None if low is None else high / low)


def fixed_weights(divisors, batch_size: int, steps: int, replicas: int = 1) -> np.ndarray:
    """The per-sequence factor of the fix: with a loss that SUMS over real
    tokens (``reduction="sum"``), a sample weight of ``units_w / D_w`` on each
    real token of window w makes the accumulated update (the mean over the
    window's units) the window's token mean: every token weighs 1.0. One
    value per sequence (0 for a window without a real token)."""
    divisors = np.asarray(divisors, dtype=np.float64)
    factors = np.zeros(len(divisors))
    for window in windows(len(divisors), batch_size, steps, replicas):
        total = sum(float(divisors[unit].sum()) for unit in window)
        if total > 0:
            for unit in window:
                factors[unit] = len(window) / total
    return factors


def inspected(lengths, batch_size: int | None, steps: int | None,
              replicas: int | None) -> AccumulationWeighting | None:
    """What ``inspect-mask --accumulation-steps K --replicas R`` shows: None
    when neither is given."""
    if steps is None and replicas is None:
        return None
    check_accumulation(batch_size, steps, replicas)
    return accumulation_weighting(lengths, batch_size, steps or 1, replicas or 1)
