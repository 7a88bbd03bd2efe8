"""A batched audit's references, and the ``batch-weighting`` check.

In batches, Keras' loss is the average of per-batch masked means, weighted by
the sequences in each batch (:mod:`maskcli.core.batching`): a real token
weighs ``R * n_b / (N * R_b)`` of the token mean. The references of a
batched audit are therefore computed batch by batch, and ``loss-parity``
compares Keras' ``evaluate(batch_size=B)`` with them. ``batch-weighting``
then compares that loss with the plain mean over every real token, and says
how unequally the batches weigh real tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maskcli.core.batching import batch_weighting, ratio_text
from maskcli.keras import models
from maskcli.keras.audit import batched
from maskcli.keras.audit.reference import reduced
from maskcli.keras.audit.report import Check
from maskcli.keras.audit.values import show
from maskcli.keras.audit.weights import step_weights

if TYPE_CHECKING:
    from maskcli.keras.audit.state import AuditRun

CHECK_ID = "batch-weighting"
# The largest ratio between two real tokens' weights that passes: a token
# may weigh up to 1.5 times another. Shuffled batches of 256 sequences with
# lengths spread evenly over 1..128 give about 1.2; batches of 32, about 2.
SPREAD_TOLERANCE = 1.5


def batched_references(run: AuditRun) -> None:
    """Set the run's masked, unmasked, padding-removed and token-mean losses,
    each reduced batch by batch as a correctly masked loss would be, then
    averaged as ``evaluate`` averages (a batch without a real step counts 0)."""
    real, slices, reg = run.mask, run.slices, run.regularization
    if run.spec.kind is not None:
        weights, ones, counted = run.reference_weights(), np.ones(real.shape), run.counted_steps()
        run.masked_loss = _per_batch(run, lambda part: reduced(
            run.spec, run.per_step[part], weights[part], counted[part])) + reg
        run.unmasked_loss = _per_batch(run, lambda part: reduced(
            run.spec, run.per_step[part], ones[part])) + reg
        token_mean = reduced(run.spec, run.per_step, weights, counted)
        run.token_mean_loss = None if token_mean is None else token_mean + reg
        run.all_steps_loss = _per_batch(run, lambda part: divided_by_all_steps(
            run.per_step[part], weights[part])) + reg
    step_w = None if run.weights is None else step_weights(run.weights, real)
    removed = []
    for part in slices:  # the same loss on each batch's real steps alone
        inside = real[part]
        removed.append(models.compiled_loss(
            run.model, batched.rows(run.y, part)[inside][None], run.out[part][inside][None],
            sample_weight=None if step_w is None else
            step_w[part][inside][None].astype(np.float32)) if inside.any() else reg)
    run.removed_loss = batched.combine(removed, slices)
    if run.spec.kind is None:
        # A custom loss: its value on each batch's real steps; the token mean
        # weighs each batch by its real steps (exact for a mean over steps).
        run.masked_loss = run.removed_loss
        share = np.array([real[part].sum() for part in slices], dtype=np.float64)
        sizes = np.array([real[part].size for part in slices], dtype=np.float64)
        run.all_steps_loss = batched.combine(list((np.array(removed) - reg) * share / sizes),
                                             slices) + reg
        run.token_mean_loss = float(np.dot(np.array(removed) - reg, share) / share.sum()) + reg
        run.unmasked_loss = batched.combine(
            batched.batch_losses(run.model, run.y, run.out, None, slices), slices)


def divided_by_all_steps(losses: np.ndarray, weights: np.ndarray) -> float:
    """The weighted sum of ``losses`` over every step, padding included: what a
    loss that divides by all steps (tf.keras up to 2.10, ``reduction="none"``
    averaged by evaluate, Keras' default reduction with sample weights and no
    Keras mask) reports."""
    return float((weights * losses).sum() / max(weights.size, 1))


def _per_batch(run: AuditRun, value) -> float:
    return batched.combine([value(part) or 0.0 for part in run.slices], run.slices)


def batch_weighting_check(run: AuditRun, strict: bool) -> Check:
    """``pass`` when the real tokens' weights spread within
    :data:`SPREAD_TOLERANCE`, else ``warn`` (``fail`` with ``strict``)."""
    size = run.batching.size
    if not run.time_axis:
        return Check(CHECK_ID, "skipped", detail=(
            "the output has no time axis: each sequence counts once in its batch, and the "
            "batches' average weighs every sequence the same"))
    if run.spec.reduction == "sum":
        return Check(CHECK_ID, "skipped", detail=(
            "a sum reduction does not divide by each batch's real steps: no token weighs "
            "more for the company it keeps"))
    weighting = batch_weighting(run.mask.sum(axis=1), size, _divisors(run))
    real = int(run.mask.sum())
    detail = (f"Keras' loss in {weighting.batches} batches of {size}, averaged as evaluate "
              f"does: {show(run.keras_loss)}; the mean over all {real} real tokens: "
              f"{show(run.token_mean_loss)}; per-batch normalization weighs a real token "
              f"{weighting.weight_min:.3g} to {weighting.weight_max:.3g} times the token "
              f"mean: spread {ratio_text(weighting.spread)} (tolerance {SPREAD_TOLERANCE:g})")
    if run.weights is not None:
        detail += " (its sample weight aside)"
    if weighting.spread is None or weighting.spread <= SPREAD_TOLERANCE:
        return Check(CHECK_ID, "pass", run.keras_loss, run.token_mean_loss, detail)
    detail += "; fix: " + fix(weighting)
    return Check(CHECK_ID, "fail" if strict else "warn", run.keras_loss, run.token_mean_loss,
                 detail)


def _divisors(run: AuditRun) -> np.ndarray:
    """What each sequence adds to its batch's divisor: its real steps, or (a
    loss that divides by the sample weights) their weights; a step whose label
    the loss ignores counts for nothing."""
    if run.spec.kind is None:
        return run.mask.sum(axis=1)
    if run.spec.reduction == "mean_with_sample_weight":
        return run.reference_weights().sum(axis=1)
    return run.counted_steps().sum(axis=1)


def fix(weighting) -> str:
    """How to make real tokens weigh the same, for a spread over tolerance."""
    before, after = weighting.spread, weighting.spread_sorted
    if after > before * 1.01:
        effect = f"raises the spread to {ratio_text(after)}"
    elif after < before / 1.01:
        effect = f"lowers the spread to {ratio_text(after)}"
    else:
        effect = f"leaves the spread at {ratio_text(after)}"
    return ("divide a sum reduction by a global count of real tokens (the epoch's, or the "
            "accumulation step's, as Hugging Face transformers 4.46 does), or use batches "
            "that hold similar numbers of real tokens; sorting or bucketing by length "
            "(tf.data bucket_by_sequence_length, Hugging Face group_by_length) saves padding "
            f"({weighting.padded_fraction_in_order:.1%} -> "
            f"{weighting.padded_fraction_sorted:.1%} here) but {effect}: a batch of short "
            "sequences weighs each of its tokens more")


def cause(run: AuditRun) -> str:
    """The verdict's cause when batch-weighting alone failed (``--strict``)."""
    weighting = batch_weighting(run.mask.sum(axis=1), run.batching.size, _divisors(run))
    return (f"per-batch normalization weighs real tokens unequally in batches of "
            f"{run.batching.size} (spread {ratio_text(weighting.spread)}, tolerance "
            f"{SPREAD_TOLERANCE:g}): {fix(weighting)}")
