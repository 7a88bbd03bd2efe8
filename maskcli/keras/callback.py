"""``PaddingAudit``: a Keras callback that audits ``fit``'s own first batches.

At the start of training, before any weight moves, it runs the loss audit
(:func:`maskcli.keras.audit.run.audit_loss`) on the first batch(es) of the
data ``fit`` was given, with the model's compiled loss, metrics and the
batches' sample weights. On a leak it stops training before the first step,
raises, or warns.

It never changes the training itself. ``fit`` keeps no public handle on its
data, so the callback reads it from ``fit``'s own frame (``x``, ``y``,
``sample_weight``, ``batch_size`` and its epoch iterator, the same names in
Keras 3's TensorFlow, JAX and PyTorch trainers):

- a ``tf.data.Dataset``: the callback creates the iterator ``fit`` is about
  to create, saves its state (tf.data iterators checkpoint their position,
  shuffle buffers included), reads the first batches, restores the state and
  hands that very iterator to ``fit``. A new iterator would draw a new
  shuffle order from the dataset's seed generator and change the training;
- a ``keras.utils.PyDataset``: its first items, by index, as Keras reads them;
- arrays: their first ``batches x batch_size`` rows (with ``shuffle=True``
  Keras draws other rows first; the audit reads the same kind of batch).

The audit leaves the global random seeds alone and runs the model for
inference only (a forward pass, one per sequence alone or padded further,
``evaluate``, and the loss gradient with respect to the outputs).
"""

from __future__ import annotations

import sys
import warnings

from maskcli.core.errors import PaddingLeakError, UsageError
from maskcli.keras import models
from maskcli.keras.audit import batched, run
from maskcli.keras.fit_data import batch_arrays

keras = models.import_keras()

ON_LEAK = ("stop", "raise", "warn")


class PaddingLeakWarning(UserWarning):
    """Padding leaks into the loss, and training goes on (``on_leak="warn"``)."""


class PaddingAudit(keras.callbacks.Callback):
    """Audit, before the first training step, that the loss ignores padding.

    ``on_leak``: "stop" (stop training before its first step, and say why on
    standard error), "raise" (:class:`maskcli.PaddingLeakError`, naming the
    cause and the fix) or "warn" (:class:`PaddingLeakWarning`; training goes
    on). ``batches``: how many of fit's first batches to audit. The other
    keyword arguments are :func:`maskcli.audit_loss`'s (``mask_input``,
    ``output``, ``target_pad``, ``strict``, ...). ``report`` holds the
    :class:`~maskcli.keras.audit.report.AuditReport` once training began.

    >>> model.fit(dataset, epochs=3, callbacks=[PaddingAudit(on_leak="raise")])
    """

    def __init__(self, on_leak: str = "stop", batches: int = 1, **options):
        super().__init__()
        if on_leak not in ON_LEAK:
            raise UsageError(f"on_leak={on_leak!r}: give one of {', '.join(map(repr, ON_LEAK))}")
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
            raise UsageError(f"batches={batches!r}: give the number of batches to audit, 1 or "
                             "more")
        self.on_leak, self.batches, self.options = on_leak, batches, options
        self.report = None
        self._skipped_step = None

    def on_train_begin(self, logs=None):
        elements, note = fit_batches(self.model, self.batches)
        options = dict(self.options)
        arrays = batch_arrays(elements, targets=options.pop("targets", None),
                              sample_weight=options.pop("sample_weight", None),
                              pad_value=options.get("pad_value", 0),
                              target_pad=options.get("target_pad"))
        self.report = run.audit_loss(arrays.x, targets=arrays.y,
                                     sample_weight=arrays.sample_weight, model=self.model,
                                     batch_size=arrays.batch_size, source="fit's first batches",
                                     reseed=False, **options)
        self.report.notes.extend(arrays.notes + ([note] if note else []))
        if self.report.verdict == "leaks":
            self._leaked()

    def _leaked(self) -> None:
        report = self.report
        message = (f"padding leaks into the loss of {report.model} (failed: "
                   f"{', '.join(report.failed)}): {report.cause}")
        if self.on_leak == "raise":
            raise PaddingLeakError(message, report=report)
        if self.on_leak == "warn":
            warnings.warn(message, PaddingLeakWarning, stacklevel=2)
            return
        # stop_training is read after each step: the step itself is skipped too,
        # so that no weight moves on a model whose loss counts padding.
        print(f"PaddingAudit: {message}. Training stopped before its first step.",
              file=sys.stderr)
        self.model.stop_training = True
        self._skipped_step = self.model.train_function
        self.model.train_function = _no_step

    def on_train_end(self, logs=None):
        if self._skipped_step is not None:
            self.model.train_function, self._skipped_step = self._skipped_step, None


def _no_step(iterator):
    return {}


def fit_batches(model, count: int) -> tuple[list, str | None]:
    """The first ``count`` batches of the data the running ``fit`` of
    ``model`` trains on, without consuming or reshuffling them; and a note
    for the report, or None."""
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "fit"
                                     and frame.f_locals.get("self") is model
                                     and "epoch_iterator" in frame.f_locals):
        frame = frame.f_back
    if frame is None:
        raise UsageError("PaddingAudit runs inside model.fit(..., callbacks=[PaddingAudit()]): "
                         "to audit outside training, call maskcli.audit_loss")
    found = frame.f_locals
    del frame
    x, epoch_iterator = found["x"], found["epoch_iterator"]
    if isinstance(x, keras.utils.PyDataset):
        return [x[i] for i in range(min(count, len(x)))], None
    import tensorflow as tf

    if isinstance(x, tf.data.Dataset):
        return _peek(epoch_iterator, x, count)
    if _is_arrays(x):
        size = found.get("batch_size") or 32  # fit's default
        y, weights = found.get("y"), found.get("sample_weight")
        total = batched.count(x)
        elements = []
        for start in range(0, min(total, count * size), size):
            part = slice(start, min(start + size, total))
            element = [batched.rows(x, part), batched.rows(y, part), batched.rows(weights, part)]
            while element[-1] is None:
                element.pop()
            elements.append(tuple(element))
        note = ("fit shuffles the arrays: the audit read their first rows, in order"
                if found.get("shuffle") else None)
        return elements, note
    raise UsageError(f"PaddingAudit reads fit's data from arrays, a tf.data.Dataset or a "
                     f"keras.utils.PyDataset, not a {type(x).__name__}, which it cannot read "
                     "without consuming it: audit a few batches with maskcli.audit_loss "
                     "before fit")


def _is_arrays(x) -> bool:
    if isinstance(x, dict):
        return all(hasattr(value, "shape") for value in x.values())
    if isinstance(x, (list, tuple)):
        return bool(x) and all(hasattr(value, "shape") for value in x)
    return hasattr(x, "shape")


def _peek(epoch_iterator, dataset, count: int) -> tuple[list, str | None]:
    """Read the first batches of the iterator fit is about to create, then
    rewind it and hand it to fit (see the module's docstring)."""
    import tensorflow as tf

    distributed = epoch_iterator._distributed_dataset  # what fit iterates, each epoch anew
    iterator = fresh = None
    if isinstance(distributed, _FirstIterator):  # another PaddingAudit in the same fit
        iterator = distributed.iterator
    elif isinstance(distributed, tf.data.Dataset):
        iterator = fresh = iter(distributed)
        distributed = _FirstIterator(distributed, iterator)
    if iterator is not None:
        try:
            state = iterator._save()
        except Exception:  # a pipeline that cannot checkpoint (from_generator, py_function)
            state = None
        if state is not None:
            elements = _take(iterator, count)
            iterator._restore(state)
            epoch_iterator._distributed_dataset = distributed
            return elements, None
    return _take(fresh if fresh is not None else iter(dataset), count), (
        "the dataset could not be rewound: the audit read its first batches through an "
        "iterator of its own")


def _take(iterator, count: int) -> list:
    elements = []
    for element in iterator:
        elements.append(element)
        if len(elements) == count:
            break
    return elements


class _FirstIterator:
    """Fit's dataset, whose first iteration is the rewound ``iterator``."""

    def __init__(self, dataset, iterator):
        self.dataset, self.iterator = dataset, iterator

    def __iter__(self):
        iterator, self.iterator = self.iterator, None
        return iterator if iterator is not None else iter(self.dataset)
