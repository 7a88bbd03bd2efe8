"""The checks of an audit, one function each. Each takes the ``AuditRun``
(the model's outputs on the batch, the targets, the reference mask) and
returns a :class:`~maskcli.keras.audit.report.Check`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maskcli.core.errors import ModelError
from maskcli.core.extend import pre_padded_rows, real_part
from maskcli.keras import models
from maskcli.keras.audit import batched
from maskcli.keras.audit.allpad import all_padding_problem
from maskcli.keras.audit.reduced import GROUPS, length_keys, reduced_groups
from maskcli.keras.audit.report import Check
from maskcli.keras.audit.values import close, max_diff, metric_value, show
from maskcli.keras.audit.weights import step_weights
from maskcli.keras.trace.effect import EXTRA_PADDING, FORWARD_RTOL

if TYPE_CHECKING:
    from maskcli.keras.audit.state import AuditRun

LARGE_TARGET = 1e6       # the padded targets of the target-invariance probe
# EXTRA_PADDING (steps added on the padding side) and FORWARD_RTOL (outputs run
# alone vs in the batch: float32 matmul blocking differs) are shared with the
# padding-effect trace, so that both measure the same thing.


def loss_parity(run: AuditRun) -> Check:
    real, total = int(run.mask.sum()), run.mask.size
    if run.spec.kind is None:
        how = f"custom loss: reference = the same loss on the {real} real steps alone"
    else:
        mean = "sum" if run.spec.reduction == "sum" else "mean"
        if run.weights is not None:  # the default reduction divides by the steps, not weights
            mean = {"sum": "weighted sum", "mean_with_sample_weight": "weighted mean"}.get(
                run.spec.reduction, "mean of weight x loss")
        how = (f"reference = {run.spec.name} per step in numpy, {mean} over {real} "
               f"real of {total} steps")
        ignored = run.ignored_steps()
        if ignored is not None and (ignored & run.mask).any():
            how += (f" less {int((ignored & run.mask).sum())} whose label is ignore_class="
                    f"{run.spec.ignore_class}")
    detail = (f"{how}; unmasked {'sum' if run.spec.reduction == 'sum' else 'mean'} over all "
              f"steps: {show(run.unmasked_loss)}; rtol {run.rtol:.1e}")
    if run.regularization:
        detail += f"; both include {run.regularization:.6g} of regularization losses"
    ok = close(run.keras_loss, run.masked_loss, run.rtol)
    return Check("loss-parity", "pass" if ok else "fail", run.keras_loss,
                 run.masked_loss, detail)


def target_invariance(run: AuditRun) -> Check:
    if run.target_padded:
        return Check("target-invariance", "skipped", detail=run.target_padded)
    padded = ~run.mask
    base_batches = _losses_with(run, run.y)
    base = batched.combine(base_batches, run.slices)
    if run.spec.kind == "sparse_categorical_crossentropy":
        changed = run.y.copy()
        changed[padded] = (changed[padded] + 1) % run.out.shape[-1]
        probe = "another class"
    else:
        changed = run.y.astype(np.float32)
        changed[padded] = LARGE_TARGET
        probe = f"{LARGE_TARGET:g}"
    large_batches = _losses_with(run, changed)
    large = batched.combine(large_batches, run.slices)
    ok = all(close(a, b, run.rtol) for a, b in zip(large_batches, base_batches))
    detail = f"padded targets set to {probe}: {show(large)} (as given: {show(base)})"
    if len(run.slices) > 1:
        detail += f", compared in each of {len(run.slices)} batches"
    if run.nonfinite_padded_targets:
        ok = False
        detail += (f"; the targets hold NaN or inf at {run.nonfinite_padded_targets} "
                   "padded steps, which make Keras' loss NaN")
    elif run.spec.kind != "sparse_categorical_crossentropy":
        nan_targets = run.y.astype(np.float32)
        nan_targets[padded] = np.nan
        nan_loss = batched.combine(_losses_with(run, nan_targets), run.slices)
        detail += f"; set to NaN: {show(nan_loss)}"
        if not close(nan_loss, base, run.rtol):
            # Keras' own behaviour (the mask multiplies), not a leak of these targets.
            detail += " (Keras masks by multiplying: keep padded targets finite)"
    return Check("target-invariance", "pass" if ok else "fail", large, base, detail)


def _losses_with(run: AuditRun, y) -> np.ndarray:
    """Keras' compiled loss for targets ``y`` on the model's output and its mask,
    one value per batch."""
    try:
        return batched.batch_losses(run.model, y, run.out, run.out_mask, run.slices,
                                    run.keras_weights)
    except Exception as exc:  # a custom loss may refuse odd targets
        raise ModelError(f"the loss of {run.label} failed on probe targets: "
                         f"{models.first_line(exc)}") from None


def padding_gradient(run: AuditRun) -> Check:
    at_padded, at_real = batched.gradient_extremes(run.model, run.y, run.out, run.out_mask,
                                                   run.mask, run.slices, run.keras_weights)
    ok = at_padded == 0.0  # a mask multiplies: anything but an exact 0 is a leak
    detail = (f"max |d loss / d y_pred| over {int((~run.mask).sum())} padded steps "
              f"(at real steps: {at_real:.3g})")
    return Check("padding-gradient", "pass" if ok else "fail", at_padded, 0.0, detail)


def forward_invariance(run: AuditRun) -> Check:
    model, reason = models.free_length_model(run.model)
    if model is None:
        return Check("forward-invariance", "skipped", detail=reason)
    if run.time_axis and run.driver is None:
        return Check("forward-invariance", "skipped", detail=(
            f"no input has the output's {run.mask.shape[1]} steps: which input steps make "
            "which output steps is unknown"))
    batch = run.batch
    lengths = run.mask.sum(axis=1)
    usable = lengths > 0
    for padding in batch.per_step.values():
        usable &= padding.any(axis=1)
    rows = np.flatnonzero(usable)
    forward = batched.Forward(model, run.batching.size, batched.Stage(
        run.progress, "forward-invariance", _calls(run, rows, model is run.model)))
    try:
        if model is not run.model and not _same(forward(run.inputs)[0], run.out):
            return Check("forward-invariance", "skipped", detail=(
                f"{reason}, but the rebuilt model's outputs differ from the original's"))
        alone, unrun, ran_padded = _trimmed_alone_diff(run, forward, rows)
        try:
            extended, sides = _extra_padding_diff(run, forward, rows)
        except _LengthFollowed:
            raise
        except Exception as exc:  # a fixed maximum length: judged on what runs, alone
            if not ran_padded:  # no padded sequence ran alone: nothing is judged
                raise
            extended, sides = None, models.first_line(exc)
        if run.batching.size:
            batched.settle(model, run.inputs)
    except _LengthFollowed as shapes:  # more padding, more output: padding changes it
        return Check("forward-invariance", "fail", float("inf"), 0.0, detail=(
            f"the output's shape follows the padded length: a sequence alone without its "
            f"padding gives {shapes.args[0]}, in the batch {shapes.args[1]}: padding changes "
            "the output"))
    except Exception as exc:  # a layer may insist on the original length
        fixed = f"{reason.split(':')[0]} and" if reason else "the model"
        return Check("forward-invariance", "skipped", detail=(
            f"{fixed} cannot run on another length ({models.first_line(exc)})"))
    tolerance = FORWARD_RTOL * max(1.0, float(np.nanmax(np.abs(run.out))))
    worst = alone if extended is None else max(alone, extended)
    ok = worst <= tolerance
    where = "real steps" if run.time_axis else "sequence outputs"
    inputs = "" if len(batch.per_step) < 2 else f", every per-step input of {len(batch.per_step)}"
    ran = len(rows) - unrun[0]
    alone_text = (f"with padding reduced ({GROUPS} groups of similar lengths, each cut to "
                  "its longest)" if _reduced(run, rows) else "alone without padding")
    detail = (f"max |diff| at {where}: {alone_text} {alone:.3g} "
              f"({ran} sequences{inputs}), ")
    if extended is None:
        detail += (f"judged so: {EXTRA_PADDING} extra padding steps do not fit the model "
                   f"({sides}); tolerance {tolerance:.1e}")
    else:
        detail += (f"with {EXTRA_PADDING} extra padding steps ({sides}) {extended:.3g}; "
                   f"tolerance {tolerance:.1e}")
    if unrun[0]:  # e.g. shorter than a 'valid' convolution's kernels: the extended run judges
        detail += (f"; {unrun[0]} sequences cannot run alone without their padding "
                   f"({unrun[1]}), only with the extra padding")
    if len(rows) < len(lengths):
        detail += f"; {len(lengths) - len(rows)} all-padding sequences skipped"
    if reason:
        detail += f"; {reason}"
    broken = all_padding_problem(run, model)
    if broken and (lengths == 0).any():  # the data holds such a sequence: it breaks the batch
        ok, run.empty_sequence = False, broken
        detail += f"; {int((lengths == 0).sum())} sequences of padding only: {broken}"
    elif broken:
        detail += f"; a sequence of padding only (the data holds none) would break it: {broken}"
        if not any(note.startswith("a sequence of padding only") for note in run.notes):
            run.notes.append(f"a sequence of padding only would break the model: {broken}")
    else:
        detail += "; a sequence of padding only: finite outputs, loss and gradients"
    return Check("forward-invariance", "pass" if ok else "fail", worst, 0.0, detail)


def _calls(run: AuditRun, rows, same_model: bool) -> int:
    """How many batches forward-invariance runs: the trimmed groups (one per
    distinct set of lengths), the extended batch, and the rebuilt model's check."""
    size, whole = run.batching.size, batched.batch_count(run.batch.sequences, run.batching.size)
    lengths = [padding.sum(axis=1)[rows] for padding in run.batch.per_step.values()]
    groups = (np.unique(np.stack(lengths, axis=1), axis=0, return_counts=True)[1]
              if lengths and len(rows) else [len(rows)])
    if len(groups) > GROUPS:
        groups = [len(part) for part in np.array_split(np.arange(len(rows)), GROUPS)]
    checks = 1 if same_model else 2  # the rebuilt model is first run on the batch itself
    return sum(batched.batch_count(int(n), size) for n in groups) + whole * checks


def _same(a, b) -> bool:
    return a.shape == b.shape and np.allclose(a, b, rtol=FORWARD_RTOL,
                                              atol=FORWARD_RTOL, equal_nan=True)


def _trimmed_alone_diff(run: AuditRun, forward, rows) -> tuple[float, tuple[int, str], int]:
    """Each sequence run alone, every per-step input trimmed to its real steps
    (one call per distinct set of lengths), against its outputs in the batch.
    Also returns how many sequences could not run so (a model whose 'valid'
    convolutions need more steps than a short sequence has) and why, and how
    many of those that ran had padding to lose."""
    worst, unrun, why, ran_padded = 0.0, 0, "", 0
    driver = run.batch.paddings.get(run.driver) if run.time_axis else None
    groups = (reduced_groups(run.batch, rows) if _reduced(run, rows) else
              ((group, arrays, None) for group, arrays in run.batch.trimmed_groups(rows)))
    for group, arrays, starts in groups:
        try:
            alone = forward(run.batch.model_inputs(arrays))[0]
        except Exception as exc:  # the padded batch ran: its padding let them run
            unrun, why = unrun + len(group), why or models.first_line(exc)
            continue
        ran_padded += int((~run.mask[group]).any(axis=1).sum())
        for k, (out, i) in enumerate(zip(alone, group)):
            if run.time_axis:
                # the output's step start + j is the driving input's j-th real step
                steps = np.flatnonzero(driver[i])
                keep = run.mask[i][steps]
                at = np.arange(len(steps)) + (starts[run.driver][k] if starts else 0)
                worst = max(worst, max_diff(out[at[keep]], run.out[i][steps[keep]]))
            else:
                worst = max(worst, max_diff(_same_shape(out, run.out[i]), run.out[i]))
    return worst, (unrun, why), ran_padded


def _reduced(run: AuditRun, rows) -> bool:
    """More distinct lengths than GROUPS: run with padding reduced, not alone."""
    return len(set(length_keys(run.batch, rows))) > GROUPS


class _LengthFollowed(Exception):
    """A sequence output whose shape changes with the padded length."""


def _same_shape(out, reference):
    if np.shape(out) != np.shape(reference):
        raise _LengthFollowed(np.shape(out), np.shape(reference))
    return out


def _extra_padding_diff(run: AuditRun, forward, rows) -> tuple[float, str]:
    arrays, offsets = run.batch.extended(EXTRA_PADDING)
    out = forward(run.batch.model_inputs(arrays))[0]
    worst = 0.0
    for i in rows:
        if run.time_axis:
            real_steps = np.flatnonzero(run.mask[i])
            worst = max(worst, max_diff(out[i][real_steps + offsets[run.driver][i]],
                                        real_part(run.out, run.mask, i)))
        else:
            worst = max(worst, max_diff(_same_shape(out[i], run.out[i]), run.out[i]))
    sides = sorted({"pre" if p else "post" for padding in run.batch.per_step.values()
                    for p in pre_padded_rows(padding)})
    return worst, "/".join(sides)


def metric_parity(run: AuditRun) -> Check:
    metrics = models.compiled_metrics(run.model)
    if not metrics:
        return Check("metric-parity", "skipped", detail="the model has no compiled metric")
    w_ref = run.weights
    weighted = models.weighted_metric_ids(run.model) if w_ref is not None else set()
    values, references, parts, ok = {}, {}, [], True
    for metric in metrics:
        keras_value = metric_value(metric.result())
        metric.reset_state()
        for y_ref, p_ref, w_part in _metric_batches(run):  # batch by batch, as evaluate
            # Keras weighs only the metrics compiled as weighted_metrics=.
            metric.update_state(y_ref, p_ref,
                                sample_weight=w_part if id(metric) in weighted else None)
        reference = metric_value(metric.result())
        values[metric.name], references[metric.name] = keras_value, reference
        same = np.allclose(keras_value, reference, rtol=run.rtol, atol=0, equal_nan=False)
        ok = ok and same
        blind = (run.time_axis and not models.is_mask_aware_metric(metric)
                 and (w_ref is None or id(metric) not in weighted))
        unweighted = w_ref is not None and id(metric) not in weighted
        if blind:
            run.mask_blind_metrics.append(metric.name)
        elif unweighted and not same:
            run.unweighted_metrics.append(metric.name)
        parts.append(f"{metric.name}: {'equal' if same else 'differs'}"
                     + (" (ignores masks, as Keras' confusion-matrix metrics do)"
                        if blind else "")
                     + (" (not weighted: Keras weighs only weighted_metrics=)"
                        if unweighted else ""))
    scope = "the real steps alone" if run.time_axis else "the whole batch"
    detail = f"reference = the same metric on {scope}; " + "; ".join(parts)
    return Check("metric-parity", "pass" if ok else "fail", values, references, detail)


def _metric_batches(run: AuditRun):
    """(targets, outputs, weights) of each batch for the reference metrics: its
    real steps alone. Mean-style metrics average per sample: the real steps of
    the one batch are one sample, of several batches one sample each, so that
    the mean runs over steps, as Keras' does."""
    weights = run.weights
    if run.time_axis and weights is not None:
        weights = step_weights(weights, run.mask).astype(np.float32)
    alone = (lambda a: a[None]) if len(run.slices) == 1 else (lambda a: a[:, None])
    for part in run.slices:
        w_part = None if weights is None else weights[part]
        if not run.time_axis:
            yield run.y[part], run.out[part], w_part
            continue
        real = run.mask[part]
        if real.any():
            yield (alone(run.y[part][real]), alone(run.out[part][real]),
                   None if w_part is None else alone(w_part[real]))
