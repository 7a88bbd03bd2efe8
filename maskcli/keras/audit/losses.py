"""The reference losses of an audit: the loss a correctly masked model would
report, over the whole batch or batch by batch, and per sequence."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maskcli.keras import models
from maskcli.keras.audit import weighting
from maskcli.keras.audit.reference import reduced, spec_per_step
from maskcli.keras.audit.weights import step_weights

if TYPE_CHECKING:
    from maskcli.keras.audit.state import AuditRun


def set_references(run: AuditRun) -> None:
    """Set the run's per-step losses and its masked, unmasked, padding-removed
    and all-steps losses."""
    real = run.mask
    if run.spec.kind is not None:  # batch by batch: float64 temporaries stay small
        run.per_step = np.concatenate([spec_per_step(run.spec, run.y[part], run.out[part])
                                       for part in run.slices])
    if run.batching.size:
        return weighting.batched_references(run)
    weights = None if run.weights is None else step_weights(run.weights, real)
    run.removed_loss = models.compiled_loss(
        run.model, run.y[real][None], run.out[real][None],
        sample_weight=None if weights is None else weights[real][None].astype(np.float32))
    if run.spec.kind is None:
        run.masked_loss = run.removed_loss
        run.unmasked_loss = models.compiled_loss(run.model, run.y, run.out)
        share = real.sum() / real.size
        run.all_steps_loss = (run.masked_loss - run.regularization) * share \
            + run.regularization
        return
    run.masked_loss = _plus(reduced(run.spec, run.per_step, run.reference_weights(),
                                    run.counted_steps()), run.regularization)
    run.all_steps_loss = weighting.divided_by_all_steps(run.per_step, run.reference_weights()) \
        + run.regularization
    run.unmasked_loss = _plus(reduced(run.spec, run.per_step, np.ones(real.shape)),
                              run.regularization)


def per_sample(run: AuditRun) -> list[dict]:
    """Each sequence's length and its masked and unmasked loss."""
    lengths = run.mask.sum(axis=1)
    rows = []
    for i, length in enumerate(lengths):
        row = {"sequence": i, "length": int(length), "masked_loss": None,
               "unmasked_loss": None}
        if run.time_axis:
            row.update(_sample_losses(run, i))
        rows.append(row)
    return rows


def _sample_losses(run: AuditRun, i: int) -> dict:
    real = run.mask[i]
    if run.spec.kind is not None:
        values = run.per_step[i]
        masked = reduced(run.spec, values, run.reference_weights()[i], run.counted_steps()[i])
        return {"masked_loss": masked, "unmasked_loss": reduced(run.spec, values,
                                                                np.ones(values.shape))}
    # compiled_loss adds the model's regularization losses; a sample's loss has none.
    masked = (models.compiled_loss(run.model, run.y[i][real][None], run.out[i][real][None])
              - run.regularization if real.any() else None)
    unmasked = models.compiled_loss(run.model, run.y[i:i + 1], run.out[i:i + 1])
    return {"masked_loss": masked, "unmasked_loss": unmasked - run.regularization}


def _plus(value: float | None, regularization: float) -> float | None:
    return None if value is None else value + regularization
