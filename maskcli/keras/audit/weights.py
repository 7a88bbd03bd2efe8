"""Sample weights: how models that carry no Keras mask mask their loss.

KerasHub's preprocessors hand ``fit`` an ``(x, y, sample_weight)`` triple whose
weight is 0 at padded tokens. Keras multiplies each step's loss by its weight,
then reduces: the default reduction, ``sum_over_batch_size``, divides the
weighted sum by ALL steps, padding included; ``mean_with_sample_weight``
divides by the sum of the weights, which is the mean over real steps.

Weights are (sequences, steps), one per step, or (sequences,), one per
sequence (given to Keras as (sequences, 1) for a per-step loss, which is how
it broadcasts them over the steps).
"""

from __future__ import annotations

import numpy as np

from maskcli.core.errors import InputError

MASK = "mask"  # --sample-weight mask: the reference mask as weights, as KerasHub gives them


def checked_weights(weights, mask: np.ndarray, time_axis: bool, label: str) -> np.ndarray:
    """``weights`` as float32, checked to fit the batch: (sequences, steps) for
    an output with a time axis, or (sequences,); finite and not negative."""
    weights = np.asarray(weights)
    n, steps = mask.shape
    if weights.dtype.kind not in "biuf":
        raise InputError(f"{label} holds {weights.dtype}, not numbers: give numeric weights")
    shapes = [(n,), (n, 1)] + ([(n, steps)] if time_axis else [])
    if weights.shape not in shapes:
        wanted = f"({n}, {steps}) (one per step) or ({n},)" if time_axis else f"({n},)"
        what = "" if time_axis else " (the model's output has no time axis: one weight a sequence)"
        raise InputError(f"{label} of shape {weights.shape} do not fit the {n} sequences of "
                         f"{steps} steps{what}: give weights of shape {wanted}")
    weights = weights.astype(np.float32)
    bad = np.argwhere(~np.isfinite(weights) | (weights < 0))
    if bad.size:
        place = ", ".join(f"{axis} {int(i)}" for axis, i in zip(("sequence", "step"), bad[0]))
        raise InputError(f"{label} holds {weights[tuple(bad[0])]} at {place}: weights must be "
                         "finite and 0 or more")
    return weights[:, 0] if weights.shape == (n, 1) else weights


def keras_weights(weights: np.ndarray | None, time_axis: bool):
    """The weights as Keras' ``evaluate``/``fit``/``compute_loss`` take them:
    a per-sequence weight of a per-step loss as (sequences, 1)."""
    if weights is None or not time_axis or weights.ndim == 2:
        return weights
    return weights[:, None]


def step_weights(weights: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
    """One float64 weight per step (all 1 without weights), for the references."""
    if weights is None:
        return np.ones(mask.shape)
    weights = weights.astype(np.float64)
    return np.broadcast_to(weights[:, None] if weights.ndim == 1 else weights, mask.shape)


def weighted_padding(weights: np.ndarray | None, mask: np.ndarray) -> int:
    """How many padded steps have a weight that is not 0 (each one a leak when
    the model's output carries no mask)."""
    if weights is None:
        return 0
    return int(((step_weights(weights, mask) != 0) & ~mask).sum())


def check_measured(run) -> None:
    """Refuse an audit (an ``AuditRun``) that would measure nothing: no step
    the loss counts (real and not ignored), or weights of 0 at every one of
    them. Every loss is then 0 and every check passes, which proves nothing."""
    mask, counted, weights = run.mask, run.counted_steps(), run.weights
    target_padded, ignore_class = run.target_padded, run.spec.ignore_class
    label = getattr(run, "weights_label", "the sample weights")
    if not mask.any() and target_padded:
        why = f"the targets are padding at every step ({target_padded})"
        fix = "give targets with real labels at real steps, or the right --target-pad"
    elif not mask.any():
        why = f"the reference mask has no real step (all {mask.size} steps are padding)"
        fix = "give data with real steps, or the mask with True (1) at real steps"
    elif not counted.any():
        why = f"every real step's target is {ignore_class}, the loss' ignore_class"
        fix = "give targets with real labels at real steps"
    elif weights is not None and not (step_weights(weights, mask) * counted).any():
        why = f"{label} weigh every real step 0"
        fix = "give weights above 0 at the real steps (1 where a step counts)"
    else:
        return
    raise InputError(f"nothing to audit: {why}, so every loss is 0 and no check could fail: {fix}")
