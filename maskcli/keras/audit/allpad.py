"""A sequence of padding only must give finite outputs, loss and gradients.

Softmax over a row whose every key is masked gives NaN in many hand-written
attentions (``-inf`` on every score), and a mean over zero real steps 0/0:
one empty sequence in a batch then makes the whole batch's loss and
gradients NaN. Forward-invariance runs one such sequence (every per-step
input set to what its padded steps hold, mask inputs to 0) and, where NaN
or inf appears, names the first layer whose output holds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maskcli.core.errors import MaskcliError
from maskcli.keras import models, trace
from maskcli.keras.trace.graph import walkable
from maskcli.keras.trace.record import record_calls

if TYPE_CHECKING:
    from maskcli.keras.audit.state import AuditRun


def empty_sequence(run: AuditRun):
    """The model's inputs for one sequence of padding only, or None when no
    input has a time axis."""
    batch = run.batch
    arrays, padded = {}, False
    for name, array in batch.arrays.items():
        one = np.array(array[:1])
        if batch.paddings[name] is not None and one.ndim >= 2:
            one[:] = batch.fill(name)
            padded = True
        arrays[name] = one
    return batch.model_inputs(arrays) if padded else None


def all_padding_problem(run: AuditRun, model) -> str | None:
    """Why a sequence of padding only breaks ``model`` (NaN or inf in its
    output, loss or gradients, with the layer where it first appears), or None."""
    x = empty_sequence(run)
    if x is None:
        return None
    keras = models.import_keras()
    try:
        import tensorflow as tf

        y = run.y[:1]
        weights = None if run.keras_weights is None else np.zeros_like(run.keras_weights[:1])
        with tf.GradientTape() as tape:
            out = model(x, training=False)
            loss = model.compute_loss(x=x, y=y, y_pred=out, sample_weight=weights,
                                      training=False)
        grads = tape.gradient(loss, model.trainable_weights)
    except Exception:  # a model or loss that cannot run so: the other parts judge
        return None
    out = np.asarray(keras.ops.convert_to_numpy(out))
    if not np.isfinite(out.astype(np.float64)).all():
        return f"its output holds NaN or inf{_first_layer(model, x)}"
    loss = np.asarray(loss, dtype=np.float64)  # reduction="none": one loss per step
    if not np.isfinite(loss).all():
        return "the loss holds NaN or inf (the outputs are finite)"
    bad = [w.path for w, g in zip(model.trainable_weights, grads)  # Embedding: IndexedSlices
           if g is not None and not np.isfinite(np.asarray(tf.convert_to_tensor(g))).all()]
    if bad:
        return (f"the gradients of {len(bad)} weights hold NaN or inf (first: {bad[0]}; the "
                "outputs and the loss are finite): a masked operation whose derivative is not")
    return None


def _first_layer(model, x) -> str:
    """``, first at layer 'name' (Class)``: where NaN or inf first appears."""
    found = []

    def record(row, refs, values, input_refs, inputs=None):
        if row is None or found:
            return
        for value in values:
            if value is None:
                continue
            array = np.asarray(models.import_keras().ops.convert_to_numpy(value))
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                found.append(row)
                return

    try:
        if walkable(model):
            trace.trace_mask(model, x, record=record)
        else:
            record_calls(model, x, record)
    except MaskcliError:
        return ""
    if not found:
        return ""
    row = found[0]
    where = f" inside '{row.path.rpartition('/')[0]}'" if "/" in row.path else ""
    return (f", first at {row.kind} '{row.name}' ({row.cls}){where}: mask with a large "
            "negative bias (-1e9, not -inf) and divide by max(count, 1), so that a row "
            "with no real step stays finite")
