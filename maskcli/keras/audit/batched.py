"""The audit's model calls in batches: forward passes, ``evaluate``, the loss
and its gradient, training steps. TensorFlow's working memory is then bounded
by the batch, not by the input.

Without a batch size every call runs on the whole input, eagerly, as a single
batch: the audit as it always ran. With one, the batches are consecutive rows
(:func:`maskcli.core.batching.batch_slices`) and:

- forward passes run the model as a traced ``tf.function``
  (``reduce_retracing``: a new length or the last, smaller batch does not
  retrace it each time; eager calls cost about a millisecond per time step
  of an RNN, whatever the batch); a model that cannot be traced runs
  eagerly. :func:`settle` then gives the model an eager call's state back;
- ``evaluate`` is Keras' own, with ``batch_size``: its loss is the average of
  the batch losses weighted by the sequences in each batch, as in training;
- the loss, its gradient and the metrics are computed batch by batch on the
  model's outputs.

Inputs, targets and sample weights may be arrays or (for models with several
inputs) dicts, lists or tuples of arrays: every array is cut to the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from maskcli.core.batching import batch_slices
from maskcli.keras import models

# A model call on more sequence-steps than this (sequences x steps) runs in
# batches even without --batch-size: the built-in LSTM took about 0.35 GB of
# TensorFlow memory for 2,048 sequences of 128 steps (Keras 3.15.1, CPU).
AUTO_BATCH_STEPS = 1 << 18

Progress = Callable[[str, int, int], None]  # (what runs, batches done, batches in all)


def no_progress(label: str, done: int, total: int) -> None:
    pass


class Stage:
    """A stage made of several calls: counts their batches as one progress,
    ``total`` batches in all, whatever each call reports."""

    def __init__(self, progress: Progress, label: str, total: int):
        self.progress, self.label, self.total, self.done = progress, label, total, 0

    def __call__(self, label: str, done: int, total: int) -> None:
        self.done += 1
        self.progress(self.label, min(self.done, self.total), self.total)


def batch_count(rows: int, size: int | None) -> int:
    """How many calls a Forward of ``size`` makes on ``rows`` sequences."""
    return 1 if size is None else max(1, math.ceil(rows / size))


@dataclass(frozen=True)
class Batching:
    """How an audit cuts the input: ``size`` rows per batch (None: one batch of
    everything); ``auto`` when the memory budget chose it, not --batch-size."""

    size: int | None = None
    auto: bool = False

    def slices(self, count: int) -> list[slice]:
        return batch_slices(count, self.size)

    def batched(self, count: int) -> bool:
        return self.size is not None and self.size < count


def plan(sequences: int, steps: int, batch_size: int | None) -> Batching:
    """``batch_size`` when given; else one batch, unless that exceeds the
    memory budget (:data:`AUTO_BATCH_STEPS`)."""
    if batch_size is not None:
        return Batching(batch_size)
    if sequences * max(steps, 1) <= AUTO_BATCH_STEPS:
        return Batching()
    return Batching(max(1, AUTO_BATCH_STEPS // max(steps, 1)), auto=True)


def rows(data, part: slice):
    """``data`` cut to rows ``part``: an array, or each array of a dict/list/tuple."""
    if data is None:
        return None
    if isinstance(data, dict):
        return {key: value[part] for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(value[part] for value in data)
    return data[part]


def count(data) -> int:
    """The number of sequences (rows) in ``data``."""
    if isinstance(data, dict):
        data = next(iter(data.values()))
    elif isinstance(data, (list, tuple)):
        data = data[0]
    return len(data)


def combine(values, slices: list[slice]) -> float:
    """Batch values averaged as ``evaluate`` averages its batch losses:
    weighted by the sequences in each batch."""
    sizes = np.array([part.stop - part.start for part in slices], dtype=np.float64)
    return float(np.dot(np.asarray(values, dtype=np.float64), sizes) / sizes.sum())


class Forward:
    """Run ``model`` on inputs in batches of ``size`` (None: one eager call).

    Calling it returns ``(outputs, mask, regularization)``: the outputs and
    their Keras mask (True = real step, or None) as numpy, concatenated over
    the batches, and the model's ``losses`` (regularization) averaged over the
    batches as ``evaluate`` averages them. A model with several outputs
    returns them as they come, unconcatenated, for the caller to refuse.
    One ``Forward`` traces its model once for every call (and length).
    """

    def __init__(self, model, size: int | None, progress: Progress = no_progress,
                 label: str = "forward pass"):
        self.model, self.size, self.progress, self.label = model, size, progress, label
        self.traced = None  # the tf.function; False once tracing failed

    def __call__(self, inputs):
        total = count(inputs)
        slices = batch_slices(total, self.size) if self.size else [slice(0, total)]
        outs, masks, regs = [], [], []
        for done, part in enumerate(slices):
            y, mask, reg = self._call(rows(inputs, part))
            if isinstance(y, (list, tuple, dict)):
                return y, None, 0.0
            outs.append(np.asarray(y))
            masks.append(None if mask is None else np.asarray(mask).astype(bool))
            regs.append(reg)
            self.progress(self.label, done + 1, len(slices))
        out = outs[0] if len(outs) == 1 else np.concatenate(outs)
        mask = None if masks[0] is None else (masks[0] if len(masks) == 1
                                              else np.concatenate(masks))
        return out, mask, combine(regs, slices)

    def _call(self, batch):
        if self.size is not None and self.traced is not False:
            try:
                return self._traced(batch)
            except Exception:  # a model that cannot be traced: eagerly from now on
                self.traced = False
        y = self.model(batch, training=False)
        if isinstance(y, (list, tuple, dict)):
            return y, None, 0.0
        return y, models.keras_mask(y), float(sum(float(v) for v in self.model.losses))

    def _traced(self, batch):
        if self.traced is None:
            import tensorflow as tf

            model = self.model

            def call(x):
                y = model(x, training=False)
                if isinstance(y, (list, tuple, dict)):
                    return y, None, 0.0
                reg = tf.add_n([tf.cast(v, tf.float32) for v in model.losses]) \
                    if model.losses else tf.constant(0.0)
                return y, models.keras_mask(y), reg

            self.traced = tf.function(call, reduce_retracing=True)
        y, mask, reg = self.traced(batch)
        return y, mask, float(reg)


def settle(model, inputs) -> None:
    """One eager call on the first sequence of ``inputs``: a traced call
    leaves graph tensors in the model's ``losses`` (activity regularizers),
    which no eager loss computation could read afterwards."""
    model(rows(inputs, slice(0, 1)), training=False)


def evaluate(model, x, y, size: int | None, sample_weight=None,
             progress: Progress = no_progress) -> dict:
    """Keras' ``evaluate``: on the whole input at once (eagerly: for one batch
    that is faster than tracing a graph), or with ``batch_size=size`` through
    the model's own compiled test function (eagerly if it cannot be traced).
    The model's compiled functions are left as they were."""
    total = count(x)
    if size is None or size >= total:
        with keep_functions(model, run_eagerly=True):
            return model.evaluate(x, y, batch_size=total, verbose=0, return_dict=True,
                                  sample_weight=sample_weight)
    steps = math.ceil(total / size)
    callbacks = [_progress_callback(progress, "evaluate", steps)]
    try:
        with keep_functions(model, run_eagerly=False):
            result = model.evaluate(x, y, batch_size=size, verbose=0, return_dict=True,
                                    sample_weight=sample_weight, callbacks=callbacks)
    except Exception:  # a model whose call cannot be traced: the same, eagerly
        with keep_functions(model, run_eagerly=True):
            return model.evaluate(x, y, batch_size=size, verbose=0, return_dict=True,
                                  sample_weight=sample_weight, callbacks=callbacks)
    settle(model, x)
    return result


def train(model, x, y, steps: int, size: int | None, sample_weight=None,
          progress: Progress = no_progress) -> None:
    """``steps`` training steps: on the whole input each (eagerly), or one per
    batch of ``size``, cycling through the batches in order."""
    total = count(x)
    if size is None or size >= total:
        with keep_functions(model, run_eagerly=True):
            model.fit(x, y, batch_size=total, epochs=steps, shuffle=False, verbose=0,
                      sample_weight=sample_weight)
        return
    slices = batch_slices(total, size)
    with keep_functions(model, run_eagerly=False):
        for step in range(steps):
            part = slices[step % len(slices)]
            model.train_on_batch(rows(x, part), rows(y, part),
                                 sample_weight=rows(sample_weight, part))
            progress("training", step + 1, steps)
    settle(model, x)


def batch_losses(model, y, out, mask, slices: list[slice], sample_weight=None) -> np.ndarray:
    """Keras' compiled loss on each batch of the outputs ``out`` (with their
    Keras ``mask`` attached, and the batch's ``sample_weight``), one value per batch."""
    return np.array([models.compiled_loss(model, rows(y, part), out[part],
                                          None if mask is None else mask[part],
                                          rows(sample_weight, part))
                     for part in slices])


def gradient_extremes(model, y, out, mask, real: np.ndarray, slices: list[slice],
                      sample_weight=None) -> tuple[float, float]:
    """The largest |d loss / d y_pred| at padded and at real steps, each
    batch's loss differentiated on its own (no whole-input gradient is kept)."""
    at_padded = at_real = 0.0
    for part in slices:
        grad = models.compiled_loss_gradient(model, rows(y, part), out[part],
                                             None if mask is None else mask[part],
                                             rows(sample_weight, part))
        grad = np.abs(grad.reshape(real[part].shape + (-1,)))
        padded = ~real[part]
        if padded.any():
            at_padded = max(at_padded, float(grad[padded].max()))
        if real[part].any():
            at_real = max(at_real, float(grad[real[part]].max()))
    return at_padded, at_real


class keep_functions:
    """Set ``run_eagerly`` for the block, and leave the model's own compiled
    functions (and its ``run_eagerly``) as they were afterwards."""

    NAMES = ("train_function", "test_function", "predict_function")

    def __init__(self, model, run_eagerly: bool):
        self.model, self.run_eagerly = model, run_eagerly

    def __enter__(self):
        self.saved = (self.model.run_eagerly,
                      {name: getattr(self.model, name, None) for name in self.NAMES})
        self.model.run_eagerly = self.run_eagerly

    def __exit__(self, *exc):
        self.model.run_eagerly = self.saved[0]
        for name, function in self.saved[1].items():
            if hasattr(self.model, name):
                setattr(self.model, name, function)


def _progress_callback(progress: Progress, label: str, steps: int):
    """A Keras callback reporting each finished batch of ``evaluate``."""
    import keras

    class Callback(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            progress(label, batch + 1, steps)

    return Callback()
