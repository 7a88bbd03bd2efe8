"""The ``accumulation`` check: how gradient accumulation (and data-parallel
replicas) weigh real tokens, measured on Keras' own losses.

``gradient_accumulation_steps=K`` (read from the compiled optimizer, or set
with ``--accumulation-steps``) makes each update the mean of the gradients of
K micro-batches of ``--batch-size`` sequences; with ``--replicas R`` each
micro-batch is further split into R consecutive shares, each normalized on
its own (:mod:`maskcli.core.accumulation`). Each unit's loss here is Keras'
compiled loss on that unit's outputs: what ``evaluate`` gives on it alone.

``value``: the loss of each window of K micro-batches as the accumulated
update sees it (the mean of its units' losses), averaged over windows.
``reference``: each window's loss over its real tokens (sum of token losses
/ real tokens of the window), averaged over windows: what one batch of the
window's sequences gives. The fix (a summing loss with sample weights scaled
by 1 / the window's real tokens) is tried on the same outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from maskcli.core.accumulation import (
    AccumulationWeighting,
    accumulation_weighting,
    fixed_weights,
    summed_weighting,
    windows,
)
from maskcli.core.batching import ratio_text
from maskcli.keras import models
from maskcli.keras.audit import batched, weighting
from maskcli.keras.audit.reference import reduced
from maskcli.keras.audit.report import Check, Fix
from maskcli.keras.audit.values import close, show

if TYPE_CHECKING:
    from maskcli.keras.audit.state import AuditRun

CHECK_ID = "accumulation"
SPREAD_TOLERANCE = weighting.SPREAD_TOLERANCE  # as batch-weighting judges a spread


@dataclass(frozen=True)
class Accumulation:
    """How the audited updates are made: ``steps`` micro-batches per update,
    each split over ``replicas``; ``source`` says where ``steps`` came from."""

    steps: int
    replicas: int
    source: str


def model_steps(model) -> int | None:
    """The compiled optimizer's ``gradient_accumulation_steps`` (None without)."""
    optimizer = getattr(model, "optimizer", None)
    steps = getattr(optimizer, "gradient_accumulation_steps", None) if optimizer else None
    return int(steps) if steps else None


def configure(run: AuditRun, steps: int | None, replicas: int | None) -> None:
    """Set ``run.accumulation``: ``steps`` (else the optimizer's own) and
    ``replicas``; None when there is nothing to check. An optimizer that
    accumulates, audited without a batch size, gets a note."""
    own = model_steps(run.model)
    run.accumulation = None
    if steps is None and replicas is None and own is None:
        return
    if not run.batching.size or run.batching.auto:
        run.notes.append(f"the optimizer accumulates gradients over {own} steps: give the "
                         "micro-batch size (--batch-size B) to check how that weighs real tokens")
        return
    source = ("--accumulation-steps" if steps is not None else
              f"the optimizer's gradient_accumulation_steps={own}" if own
              else "--replicas, no accumulation")
    run.accumulation = Accumulation(steps or own or 1, replicas or 1, source)


def applies(run: AuditRun) -> bool:
    return getattr(run, "accumulation", None) is not None


def _divisors(run: AuditRun) -> np.ndarray:
    return weighting._divisors(run)


def _units(run: AuditRun) -> list[list[slice]]:
    acc = run.accumulation
    return windows(run.mask.shape[0], run.batching.size, acc.steps, acc.replicas)


def _per_window(values: list[float], groups: list[list[slice]]) -> float:
    """Unit values averaged within each window, then over the windows."""
    means, start = [], 0
    for group in groups:
        means.append(float(np.mean(values[start:start + len(group)])))
        start += len(group)
    return float(np.mean(means))


def unit_losses(run: AuditRun, groups: list[list[slice]]) -> list[float]:
    """Keras' compiled loss on each unit (a micro-batch, or a replica's share)."""
    units = [unit for group in groups for unit in group]
    return list(batched.batch_losses(run.model, run.y, run.out, run.out_mask, units,
                                     run.keras_weights))


def window_references(run: AuditRun, groups: list[list[slice]], losses: list[float]) -> float:
    """Each window's loss over its real tokens, averaged over the windows: the
    numpy per-step loss for a built-in loss; for a custom one, its units'
    losses weighted by their real tokens (exact for a mean over steps)."""
    reg, divisors = run.regularization, _divisors(run)
    values, start = [], 0
    for group in groups:
        rows = slice(group[0].start, group[-1].stop)
        if run.spec.reduction == "sum":  # the token mean the sample weights should give
            counted = run.counted_steps()[rows]
            value = float(run.per_step[rows][counted].sum() / counted.sum()) \
                if counted.any() else None
        elif run.spec.kind is not None:
            value = reduced(run.spec, run.per_step[rows], run.reference_weights()[rows],
                            run.counted_steps()[rows])
        else:
            shares = np.array([divisors[unit].sum() for unit in group], dtype=np.float64)
            own = np.array(losses[start:start + len(group)]) - reg
            value = float(np.dot(own, shares) / shares.sum()) if shares.sum() else None
        values.append((value or 0.0) + reg)
        start += len(group)
    return float(np.mean(values))


def describe(acc: Accumulation, size: int) -> str:
    text = f"{acc.steps} micro-batch{'es' if acc.steps != 1 else ''} of {size}"
    if acc.replicas > 1:
        text += f", each split over {acc.replicas} replicas"
    return text


def accumulation_check(run: AuditRun, strict: bool) -> Check:
    """``pass`` when the real tokens' weights within each window spread within
    :data:`SPREAD_TOLERANCE`, else ``warn`` (``fail`` with ``strict``)."""
    acc, size = run.accumulation, run.batching.size
    run.accumulation_fix = None
    if not run.time_axis:
        return Check(CHECK_ID, "skipped", detail=(
            "the output has no time axis: each sequence counts once in its micro-batch"))
    groups = _units(run)
    losses = unit_losses(run, groups)
    value, reference = _per_window(losses, groups), window_references(run, groups, losses)
    found = weighing(run)
    detail = (f"updates of {describe(acc, size)} ({acc.source}), {found.windows} "
              f"window{'s' if found.windows != 1 else ''}: the mean of the micro-batch "
              f"losses, as the accumulated update sees them: {show(value)}; each window's "
              f"mean over its real tokens: {show(reference)}; " + spread_text(found))
    if found.spread is None or found.spread <= SPREAD_TOLERANCE:
        return Check(CHECK_ID, "pass", value, reference, detail)
    run.accumulation_fix = try_fix(run, groups, reference)
    detail += f"; fix: {FIX_TEXT}"
    if run.accumulation_fix.verified is not None:
        detail += f" ({run.accumulation_fix.tried})"
    return Check(CHECK_ID, "fail" if strict else "warn", value, reference, detail)


def weighing(run: AuditRun) -> AccumulationWeighting:
    """The real tokens' weights within each window: from the divisors of a
    mean reduction, or (``reduction="sum"``) from the sample weights."""
    acc, size = run.accumulation, run.batching.size
    if run.spec.reduction == "sum":
        return summed_weighting(run.reference_weights(), run.counted_steps(), size, acc.steps,
                                acc.replicas)
    return accumulation_weighting(run.mask.sum(axis=1), size, acc.steps, acc.replicas,
                                  _divisors(run))


def spread_text(found: AccumulationWeighting) -> str:
    """The token weights and what they do to the gradient."""
    if found.spread is None:
        return "no real token"
    return (f"a real token weighs {found.weight_min:.3g} to {found.weight_max:.3g} times its "
            f"weight in one batch of the window's {found.window_sequences} sequences: spread "
            f"{ratio_text(found.spread)} (tolerance {SPREAD_TOLERANCE:g}); its gradient is "
            f"scaled alike, so tokens of short micro-batches move the weights up to "
            f"{ratio_text(found.spread)} times as much as tokens of long ones")


FIX_TEXT = ("make each window's loss one mean over its real tokens: compile the loss with "
            "reduction=\"sum\" and give each real token a sample weight of (micro-batches x "
            "replicas in the window) / (real tokens in the window), or divide a summed loss by "
            "a global count of real tokens (Hugging Face transformers 4.46's "
            "num_items_in_batch)")


def try_fix(run: AuditRun, groups: list[list[slice]], reference: float) -> Fix:
    """The fix, tried: Keras' loss with ``reduction="sum"`` on each unit, with
    the reference weights (mask, sample weights, ignore_class) scaled by
    :func:`maskcli.core.accumulation.fixed_weights`."""
    acc = run.accumulation
    if run.spec.kind is None:
        return Fix(FIX_TEXT, "compile", None, "a custom loss: maskcli cannot set its reduction")
    loss = summing_loss(run.model.loss)
    if loss is None:
        return Fix(FIX_TEXT, "compile", None, "maskcli cannot rebuild this loss with "
                   "reduction=\"sum\"")
    factors = fixed_weights(_divisors(run), run.batching.size, acc.steps, acc.replicas)
    # A sum's own weights were its normalization: the fix replaces them.
    base = run.counted_steps() if run.spec.reduction == "sum" else run.reference_weights()
    weights = (base * factors[:, None]).astype(np.float32)
    keras = models.import_keras()
    values = []
    for unit in (unit for group in groups for unit in group):
        y_pred = keras.ops.convert_to_tensor(run.out[unit])
        if run.out_mask is not None:
            models._attach_mask(y_pred, run.out_mask[unit])
        values.append(float(loss(run.y[unit], y_pred, sample_weight=weights[unit]))
                      + run.regularization)
    fixed = _per_window(values, groups)
    verified = close(fixed, reference, run.rtol)
    tried = (f"maskcli tried it on these outputs: reduction=\"sum\", sample weights x "
             f"{acc.steps * acc.replicas} / (real tokens in the window): the accumulated loss "
             f"{show(fixed)} against the windows' token mean {show(reference)}, ")
    tried += ("equal: every real token then weighs the same (spread 1.0)" if verified
              else "still apart")
    return Fix(FIX_TEXT, "compile", verified, tried)


def summing_loss(loss):
    """The compiled ``loss`` rebuilt with ``reduction="sum"``, or None."""
    keras = models.import_keras()
    try:
        if isinstance(loss, keras.losses.Loss):
            return type(loss).from_config({**loss.get_config(), "reduction": "sum"})
        function = keras.losses.get(loss) if isinstance(loss, str) else loss
        return keras.losses.LossFunctionWrapper(function, reduction="sum")
    except Exception:  # a loss Keras cannot rebuild from its config
        return None


def fixes(run: AuditRun) -> list[Fix]:
    """The tried fix, for a report whose accumulation check warned or failed."""
    fix = getattr(run, "accumulation_fix", None)
    return [] if fix is None else [fix]


def cause(run: AuditRun) -> str:
    """The verdict's cause when accumulation failed (``--strict``)."""
    found = weighing(run)
    return (f"accumulating {describe(run.accumulation, run.batching.size)} averages their "
            f"per-micro-batch means: real tokens weigh unequally (spread "
            f"{ratio_text(found.spread)}, tolerance {SPREAD_TOLERANCE:g}): {FIX_TEXT}")
