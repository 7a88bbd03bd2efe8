"""Try a fix before suggesting it: re-run a leaking audit's failing checks
with one change applied, on a copy of what the audit ran.

A :class:`Trial` changes the data (the padding moved to the other side, the
pad value changed, sample weights passed, padded targets filled) or the
compiled loss (a reduction, ``ignore_class``, ``weighted_metrics``: compiled
on a CLONE of the model with the same weights, never on the user's model),
builds a new :class:`~maskcli.keras.audit.state.AuditRun` on it and runs the
checks that failed. ``Outcome.passed`` is True when they all pass then.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskcli.keras import models
from maskcli.keras.audit import batched
from maskcli.keras.audit.inputs import Batch
from maskcli.keras.audit.reference import loss_spec
from maskcli.keras.audit.state import AuditRun
from maskcli.keras.audit.suite import CHECK_IDS, run_checks


@dataclass
class Outcome:
    """What a trial did (``tried``) and whether the failing checks then passed
    (None: it could not run)."""

    passed: bool | None
    tried: str


class Trial:
    """Re-runs the checks ``failed`` of ``run`` with one change applied."""

    def __init__(self, run: AuditRun, failed: list[str]):
        self.run = run
        self.failed = [check for check in failed if check in CHECK_IDS]  # the padding's checks
        self._clones: dict = {}

    # -- the changes -------------------------------------------------------

    def padding(self, side: str, *, weights=None, reduction: str | None = None) -> Outcome:
        """The batch re-padded on ``side`` ("pre" or "post"): every sequence's
        real steps moved to the other end, the padded steps keep their values."""
        run = self.run
        order = _order(run.mask, side)
        arrays, paddings = {}, {}
        for name, array in run.batch.arrays.items():
            pad = run.batch.paddings[name]
            if pad is not None and pad.shape != run.mask.shape:
                return Outcome(None, f"input '{name}' has padding of its own length: not re-padded")
            arrays[name] = array if pad is None else _take(array, _order(pad, side))
            paddings[name] = None if pad is None else _take(pad, _order(pad, side))
        batch = Batch(run.batch.spec, arrays, paddings, list(run.batch.mask_inputs),
                      dict(run.batch.pad_values))
        mask = _take(run.mask, order)
        y = _take(run.y, order) if run.time_axis else run.y
        if weights is None and run.weights is not None:
            weights = _take(run.weights, order) if np.ndim(run.weights) == 2 else run.weights
        elif isinstance(weights, np.ndarray) and weights.shape == run.mask.shape:
            weights = _take(weights, order)
        tried = f"re-padded {side} (maskcli pad --padding {side})"
        return self._outcome(tried, batch=batch, mask=mask, y=y, weights=weights,
                             reduction=reduction)

    def pad_value(self, value, tried: str) -> Outcome:
        """Every feature of every padded step of the driving input set to ``value``."""
        run = self.run
        name = run.driver or run.batch.names[0]
        array = run.batch.arrays[name].copy()
        array[~run.batch.paddings[name]] = value
        arrays = dict(run.batch.arrays, **{name: array})
        pad_values = dict(run.batch.pad_values, **{name: value})
        batch = Batch(run.batch.spec, arrays, dict(run.batch.paddings),
                      list(run.batch.mask_inputs), pad_values)
        return self._outcome(tried, batch=batch)

    def targets(self, y, tried: str) -> Outcome:
        return self._outcome(tried, y=y)

    def weights(self, weights, tried: str, reduction: str | None = None) -> Outcome:
        return self._outcome(tried, weights=weights, reduction=reduction)

    def compiled(self, tried: str, *, reduction: str | None = None,
                 weighted_metrics: bool = False) -> Outcome:
        return self._outcome(tried, reduction=reduction, weighted_metrics=weighted_metrics)

    # -- running it --------------------------------------------------------

    def _outcome(self, tried, *, batch=None, mask=None, y=None, weights=None, reduction=None,
                 weighted_metrics=False) -> Outcome:
        run = self.run
        model = run.model
        if reduction is not None or weighted_metrics:
            model, why = self._clone(reduction, weighted_metrics)
            if model is None:
                return Outcome(None, f"{tried}: not tried ({why})")
        # The same inputs through the same layers: the outputs are the run's own, and
        # only the loss is computed again (metric-parity needs evaluate's metrics).
        same = batch is None and "metric-parity" not in self.failed
        try:
            trial = AuditRun(model, run.label, loss_spec(model.loss), batch or run.batch,
                             run.mask if mask is None else mask, run.source, run.target_padded,
                             batching=run.batching, progress=batched.no_progress,
                             outputs=(run.out, run.out_mask, run.regularization) if same
                             else None)
            trial.set_weights(run.weights if weights is None else weights)
            trial.set_targets(run.y if y is None else y, 0)
            checks = run_checks(trial, only=self.failed)
        except Exception as exc:  # the change may not fit the model: then it is no fix
            return Outcome(None, f"{tried}: could not run ({models.first_line(exc)})")
        still = [c.id for c in checks if c.status == "fail"]
        if still:
            return Outcome(False, f"{tried}: {', '.join(still)} still "
                                  f"{'fails' if len(still) == 1 else 'fail'}")
        return Outcome(True, f"{tried}: {', '.join(self.failed)} then "
                             f"{'passes' if len(self.failed) == 1 else 'pass'}")

    def _clone(self, reduction, weighted_metrics):
        key = (reduction, weighted_metrics)
        if key not in self._clones:
            self._clones[key] = recompiled(self.run.model, reduction, weighted_metrics)
        return self._clones[key]


def recompiled(model, reduction: str | None, weighted_metrics: bool):
    """A clone of ``model`` with the same weights, its loss compiled with
    ``reduction`` and (``weighted_metrics``) its metrics as weighted_metrics;
    or (None, why)."""
    keras = models.import_keras()
    try:
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
    except Exception as exc:  # a subclassed model without get_config
        return None, f"the model cannot be cloned: {models.first_line(exc)}"
    loss = model.loss
    if reduction is not None:
        loss = _with_reduction(keras, loss, reduction)
        if loss is None:
            return None, "the loss is not one of Keras' Loss classes"
    configs = [type(m).from_config(m.get_config()) for m in models.compiled_metrics(model)]
    clone.compile(optimizer="adam", loss=loss, metrics=None if weighted_metrics else configs,
                  weighted_metrics=configs if weighted_metrics else None)
    return clone, None


def _with_reduction(keras, loss, reduction: str):
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        config = loss.get_config()
        config["reduction"] = reduction
        return type(loss).from_config(config)
    names = {keras.losses.mean_squared_error: keras.losses.MeanSquaredError,
             keras.losses.mean_absolute_error: keras.losses.MeanAbsoluteError,
             keras.losses.binary_crossentropy: keras.losses.BinaryCrossentropy,
             keras.losses.categorical_crossentropy: keras.losses.CategoricalCrossentropy,
             keras.losses.sparse_categorical_crossentropy:
                 keras.losses.SparseCategoricalCrossentropy}
    cls = names.get(loss)
    return None if cls is None else cls(reduction=reduction)


def _order(mask: np.ndarray, side: str) -> np.ndarray:
    """Per row, the step order that puts the padding on ``side``."""
    key = mask if side == "pre" else ~mask  # stable: the real steps keep their order
    return np.argsort(key, axis=1, kind="stable")


def _take(array: np.ndarray, order: np.ndarray) -> np.ndarray:
    index = order.reshape(order.shape + (1,) * (array.ndim - 2))
    return np.take_along_axis(array, index, axis=1)
