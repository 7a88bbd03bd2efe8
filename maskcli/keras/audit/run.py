"""Run an audit: prepare the model and the batch, run every check, report."""

from __future__ import annotations

import numpy as np

from maskcli.core.batching import check_batch_size
from maskcli.core.errors import InputError, ModelError, UsageError
from maskcli.core.masks import step_mask
from maskcli.keras import feed, models
from maskcli.keras.audit import batched, checks, weighting
from maskcli.keras.audit.batch import (
    boolean_mask,
    checked_inputs,
    checked_targets,
    fitted_targets,
    reference_mask,
    synthetic_targets,
    target_padding_mask,
)
from maskcli.keras.audit.cause import likely_cause
from maskcli.keras.audit.inputs import Batch, named_batch, reference_for_output
from maskcli.keras.audit.prepare import built_in_model, user_model
from maskcli.keras.audit.reference import loss_rtol, loss_spec, reduced, spec_per_step
from maskcli.keras.audit.report import AuditReport, Check
from maskcli.keras.audit.values import finite_steps, show
from maskcli.keras.audit.weights import MASK, checked_weights, keras_weights, step_weights

CHECK_IDS = ("loss-parity", "target-invariance", "padding-gradient", "forward-invariance",
             "metric-parity")
# Checks that read the loss at padded steps: they need an output with a time axis.
TIME_AXIS_CHECKS = CHECK_IDS[:3]


def audit_loss(inputs, *, mask=None, targets=None, target_pad=None, model=None,
               arch: str | None = None, loss: str | None = None, units: int | None = None,
               seed: int = 0, train_steps: int = 0, per_sample: bool = False, pad_value=0,
               verbose: bool = False, source: str = "inputs",
               model_label: str | None = None, targets_label: str = "targets",
               sample_weight=None, sample_weight_label: str = "sample weights",
               output: str | None = None, mask_input: str | None = None,
               pad_values: dict | None = None, recorded_masks: dict | None = None,
               file_mask=None, batch_size: int | None = None, strict: bool = False,
               progress: batched.Progress = batched.no_progress) -> AuditReport:
    """Audit whether ``model``'s loss ignores the padding of ``inputs``.

    ``inputs`` is an array, or for a model with several inputs a dict (by
    input name) or a list (in the model's order). ``mask`` (True = real step)
    is the reference padding mask; without it the mask is derived from
    ``inputs`` and ``pad_value`` as Embedding(mask_zero) or Masking would, or
    from ``targets`` equal to ``target_pad``; with several inputs it is the
    padding of the inputs the output's time axis follows (mask inputs such as
    ``padding_mask``, or ``mask_input``, mark real steps with 1).
    ``sample_weight`` ((sequences, steps) or (sequences,), or "mask" for the
    reference mask) weighs the loss as ``fit`` does. ``model`` is a Keras
    model (compiled or not; ``output`` picks one of several outputs); without
    it the built-in ``arch`` is built. Without ``targets``, synthetic ones
    from ``seed`` are used; messages call them ``targets_label``.
    ``train_steps`` trains ``model`` in place before the audit. ``batch_size``
    runs every model call in batches of that size (every input, the targets
    and the weights cut alike) and adds the batch-weighting check (``strict``:
    its warning fails the audit); ``progress(what, done, total)`` hears of
    each batch. For example
    ``audit_loss(np.array([[3, 1, 0, 0], [2, 2, 1, 0]])).verdict`` is
    "ignored" (the built-in embedding-lstm masks its loss).
    """
    if train_steps < 0:
        raise UsageError(f"--train-steps must be 0 or more, got {train_steps}")
    if batch_size is not None:
        check_batch_size(batch_size)
    if model is not None and arch is not None:
        raise UsageError("--arch and --model both name a model: give one of them")
    spec = feed.model_inputs(model) if model is not None else None
    if model is None and isinstance(inputs, dict) and len(inputs) > 1:
        raise UsageError("several inputs need --model: the built-in --arch models take one array")
    arrays = _named_arrays(inputs, spec, source)
    if arrays is not None and len(arrays) == 1 and (spec is None or len(spec.names) == 1):
        name, inputs = next(iter(arrays.items()))  # one array: the single-input audit
        pad_value = (pad_values or {}).get(name, pad_value)
        arrays = None
    if arrays is None:
        inputs = checked_inputs(inputs, source)
        sequences = inputs.shape[0]
        if spec is not None and len(spec.names) > 1:
            raise InputError(f"{source} holds one array, and the model takes {len(spec.names)} "
                             f"named inputs ({', '.join(spec.names)}): give an npz whose arrays "
                             "are named after them, or --input NAME=FILE for each")
    else:
        feed.check_shapes(spec, arrays, source)
        sequences = len(next(iter(arrays.values())))
    if targets is not None:
        targets = checked_targets(targets, sequences, targets_label)
    given = None if mask is None else boolean_mask(mask)
    if given is None and arrays is None:
        given = None if file_mask is None else step_mask(np.asarray(file_mask))
    real = None
    if model is None:
        real = reference_mask(inputs, given, targets, target_pad, pad_value, source, targets_label)

    keras = models.import_keras(verbose)
    keras.utils.set_random_seed(seed)
    if model is None:
        model, label = built_in_model(arch, loss, units, seed, inputs, targets, real, pad_value,
                                      verbose)
    else:
        model, label = user_model(model, loss, units, output)
    if model_label:  # the file's name, and the output chosen of several
        label = model_label + (label[label.index(", output "):] if ", output " in label else "")
    spec_loss = loss_spec(model.loss)
    target_padded = None
    if target_pad is not None:
        target_padded = "--target-pad defines the padding by the targets themselves"
    elif (spec_loss.ignore_class is not None and targets is not None and given is None
          and (arrays is None or file_mask is None)):
        target_pad = spec_loss.ignore_class  # label padding, the way --target-pad defines it
        target_padded = (f"ignore_class={spec_loss.ignore_class} defines the padding by the "
                         "targets themselves")
    if arrays is None:
        if real is None:
            real = reference_mask(inputs, given, targets, target_pad, pad_value, source,
                                  targets_label)
        batch = Batch.single(inputs, real, spec)
    else:
        batch = named_batch(spec, arrays, source=source, mask_input=mask_input,
                            pad_values=pad_values, recorded_masks=recorded_masks,
                            file_mask=file_mask)
        if target_pad is not None:
            if targets is None:
                raise UsageError("--target-pad needs the targets: give --targets FILE")
            given = target_padding_mask(targets, target_pad, targets_label)
    steps = max((array.shape[1] for array in batch.arrays.values() if array.ndim >= 2),
                default=1)
    batching = batched.plan(batch.sequences, steps, batch_size)
    with models.full_float32():
        audit = AuditRun(model, label, spec_loss, batch, real, source, target_padded,
                         given=given, file_mask=file_mask, batching=batching, progress=progress)
        audit.set_weights(sample_weight, sample_weight_label)
        audit.set_targets(targets, seed, targets_label)
        audit.train(train_steps)
        return audit.report(per_sample, strict)


def _named_arrays(inputs, spec, source: str) -> dict | None:
    """``inputs`` as one array per model input name, or None for one array."""
    if isinstance(inputs, dict):
        arrays = {str(name): np.asarray(array) for name, array in inputs.items()}
        if spec is None:
            if len(arrays) != 1:
                raise UsageError(f"{source}: {len(arrays)} named inputs, and the model takes one "
                                 "array: give that array")
            return arrays
        return feed.match_inputs(spec, arrays, {}, None, source)
    if isinstance(inputs, (list, tuple)) and spec is not None and len(spec.names) > 1:
        if len(inputs) != len(spec.names):
            raise InputError(f"{source}: {len(inputs)} arrays for the model's "
                             f"{len(spec.names)} inputs ({', '.join(spec.names)}): give one "
                             "array per input, in that order")
        return {name: np.asarray(array) for name, array in zip(spec.names, inputs)}
    return None


class AuditRun:
    """The state shared by the checks of one audit."""

    def __init__(self, model, label, spec, batch: Batch, mask, source, target_padded,
                 *, given=None, file_mask=None, batching: batched.Batching | None = None,
                 progress: batched.Progress = batched.no_progress):
        self.model, self.label, self.spec = model, label, spec
        # Batches of consecutive sequences; one batch of all without a batch size.
        self.batching, self.progress = batching or batched.Batching(), progress
        self.slices = self.batching.slices(batch.sequences)
        self.forward = batched.Forward(model, self.batching.size, progress)
        self.batch, self.inputs = batch, batch.model_inputs()
        self.mask, self.source = mask, source
        self.target_padded = target_padded  # why the targets define the padding, or None
        self.notes: list[str] = []
        self.mask_blind_metrics: list[str] = []
        self.unweighted_metrics: list[str] = []  # compiled as metrics=, so blind to the weights
        self.nonfinite_padded_targets = 0
        self.weights = self.keras_weights = None
        self._forward()
        if self.mask is None:  # several inputs: the padding of the output's time axis
            self.mask = reference_for_output(batch, self.out.shape, source, given=given,
                                             file_mask=file_mask)
            if self.mask.all():
                raise InputError(f"{source}: no padded step to audit (no input of the output's "
                                 "length has padding): give padded data, or the right --mask")
        self._set_time_axis()
        self.driver = batch.driver(self.mask.shape[1], self.mask)
        self.pad_step = batch.pad_step(self.driver)  # what one padded step of the input holds

    # -- preparation -------------------------------------------------------

    def _forward(self) -> None:
        try:
            y_pred, out_mask, regularization = self.forward(self.inputs)
            if self.batching.size:
                batched.settle(self.model, self.inputs)
        except Exception as exc:  # the user's model may raise anything
            raise ModelError(f"{self.label} cannot run on {self.source} "
                             f"({self.batch.describe()}): {models.first_line(exc)}: give inputs "
                             "that fit the model (shape, dtype, token ids below its vocabulary "
                             "size)") from None
        if isinstance(y_pred, (list, tuple, dict)):
            raise ModelError(f"{self.label} has several outputs: audit-loss audits one at a "
                             "time: choose it with --output NAME")
        self.out, self.out_mask, self.regularization = y_pred, out_mask, regularization
        if self.mask is not None:
            self._set_time_axis()

    def _set_time_axis(self) -> None:
        if self.out_mask is not None and self.out_mask.shape != self.out.shape[:2]:
            self.out_mask = step_mask(self.out_mask)
        self.time_axis = self.out.ndim >= 3 and self.out.shape[:2] == self.mask.shape

    def set_weights(self, weights, label: str = "sample weights") -> None:
        """Sample weights, as ``fit`` takes them; ``"mask"``: the reference mask."""
        if weights is None:
            return
        if isinstance(weights, str) and weights == MASK:
            weights, label = self.mask.astype(np.float32), "--sample-weight mask"
            if not self.time_axis:
                raise UsageError("--sample-weight mask weighs steps, and the model's output (shape "
                                 f"{self.out.shape}) has no time axis: drop it")
        self.weights = checked_weights(weights, self.mask, self.time_axis, label)
        self.keras_weights = keras_weights(self.weights, self.time_axis)
        self.notes.append(f"the loss and the metrics are weighted by {label}")

    def set_targets(self, targets, seed: int, label: str = "targets") -> None:
        if targets is None:
            targets = synthetic_targets(self.spec.kind, self.out.shape, seed)
            if self.spec.ignore_class is not None and self.time_axis:
                targets = self._ignored_at_padding(targets)
        self.y = fitted_targets(targets, self.out.shape, self.spec, label)
        if self.time_axis:
            real_values = self.y[self.mask]
            if not np.isfinite(real_values.astype(float)).all():
                seq, step = np.argwhere(self.mask & ~finite_steps(self.y))[0]
                raise InputError(f"targets hold NaN or inf at a real step (sequence {seq}, "
                                 f"step {step}): the loss is NaN whatever the padding: "
                                 "fix the targets")
            self.nonfinite_padded_targets = int((~self.mask & ~finite_steps(self.y)).sum())
            if self.spec.kind == "sparse_categorical_crossentropy":
                self._check_class_ids()
            ignored = self.ignored_steps()
            if ignored is not None and not self.target_padded and ignored[~self.mask].all():
                self.target_padded = (f"the padded targets hold ignore_class="
                                      f"{self.spec.ignore_class}, which the loss leaves out")

    def _ignored_at_padding(self, targets: np.ndarray) -> np.ndarray:
        """Synthetic class ids with ignore_class at padded steps and never at
        real ones, as a collator pads labels (Hugging Face: -100)."""
        ignore, classes = self.spec.ignore_class, self.out.shape[-1]
        targets = targets.copy()
        targets[self.mask & (targets == ignore)] = (ignore + 1) % classes
        targets[~self.mask] = ignore
        return targets

    def ignored_steps(self) -> np.ndarray | None:
        """True where the label is the loss' ignore_class (the loss is 0 there)."""
        if self.spec.ignore_class is None or not self.time_axis:
            return None
        return self.y == self.spec.ignore_class

    def _check_class_ids(self) -> None:
        classes = self.out.shape[-1]
        bad = (self.y < 0) | (self.y >= classes) | (self.y != np.round(self.y))
        if self.spec.ignore_class is not None:
            bad &= self.y != self.spec.ignore_class
        if bad.any():
            seq, step = np.argwhere(bad)[0]
            where = "real" if self.mask[seq, step] else "padded"
            raise InputError(
                f"targets hold class id {show(self.y[seq, step])} at a {where} step (sequence "
                f"{seq}, step {step}), outside 0..{classes - 1}: Keras' "
                "sparse_categorical_crossentropy cannot take it: pad targets with a valid "
                "class, or audit a custom masked loss (--model with --target-pad)")

    def train(self, steps: int) -> None:
        if not steps:
            return
        try:
            batched.train(self.model, self.inputs, self.y, steps, self.batching.size,
                          sample_weight=self.keras_weights, progress=self.progress)
        except Exception as exc:
            raise ModelError(f"training {self.label} failed: {models.first_line(exc)}: "
                             "check the targets and the model's optimizer") from None
        where = (f"batches of {self.batching.size}" if self.batching.batched(self.batch.sequences)
                 else "the whole batch")
        self.notes.append(f"audited after {steps} training steps on {where}")
        self._forward()

    # -- the audit ---------------------------------------------------------

    def report(self, per_sample: bool, strict: bool = False) -> AuditReport:
        self.rtol = loss_rtol(self.mask.size)
        self.keras_loss = float(self._evaluate()["loss"])
        self.removed_loss = self.masked_loss = self.unmasked_loss = self.token_mean_loss = None
        self.all_steps_loss = None  # what a loss that divides by all steps would report
        metric_check = checks.metric_parity(self)  # first: it reads the metrics evaluate() left
        if self.time_axis:
            self._references()
            loss_checks = [checks.loss_parity(self), checks.target_invariance(self),
                           checks.padding_gradient(self)]
        else:
            reason = (f"the output (shape {self.out.shape}) has no time axis: the loss sees "
                      "whole sequences, never a padded step")
            if self.out.ndim >= 3:  # e.g. after a 'valid' convolution: its steps are not the inputs'
                reason = (f"the output (shape {self.out.shape}) has no axis of the inputs' "
                          f"{self.mask.shape[1]} steps: which of its steps are padding is unknown")
            self.notes.append(f"{reason.split(':')[0]}: only forward-invariance and "
                              "metric-parity apply")
            loss_checks = [Check(cid, "skipped", detail=reason) for cid in TIME_AXIS_CHECKS]
        results = loss_checks + [checks.forward_invariance(self), metric_check]
        if self.batching.size and not self.batching.auto:
            results.append(weighting.batch_weighting_check(self, strict))
        if self.batching.auto:
            self.notes.append(f"{self.mask.shape[0]} sequences x {self.mask.shape[1]} steps "
                              f"exceed the memory budget of one model call: the audit ran in "
                              f"batches of {self.batching.size}, and Keras' loss is the average "
                              "of their losses (choose the batches with --batch-size)")
        failed = [check.id for check in results if check.status == "fail"]
        return AuditReport(
            verdict="leaks" if failed else "ignored",
            loss=self.spec.name, keras_loss=self.keras_loss, masked_loss=self.masked_loss,
            unmasked_loss=self.unmasked_loss, checks=results, versions=models.versions(),
            model=self.label, rtol=self.rtol, sequences=int(self.mask.shape[0]),
            steps=int(self.mask.size), real_steps=int(self.mask.sum()),
            per_sample=self._per_sample() if per_sample else None,
            cause=self._cause(failed), notes=self.notes, removed_loss=self.removed_loss,
            batch_size=self.batching.size, batches=len(self.slices),
            batch_size_auto=self.batching.auto)

    def _cause(self, failed: list[str]) -> str | None:
        if failed == [weighting.CHECK_ID]:
            return weighting.cause(self)
        return likely_cause(self, [f for f in failed if f != weighting.CHECK_ID]) if failed \
            else None

    def _evaluate(self) -> dict:
        # Keras' own compiled loss and metrics: on the whole batch eagerly (for one
        # batch that is faster than tracing a graph), or in batches as training runs.
        try:
            return batched.evaluate(self.model, self.inputs, self.y, self.batching.size,
                                    sample_weight=self.keras_weights, progress=self.progress)
        except Exception as exc:
            raise ModelError(f"Keras could not compute the loss of {self.label} on "
                             f"{self.source}: {models.first_line(exc)}: check that the targets "
                             "fit the loss") from None

    def counted_steps(self) -> np.ndarray:
        """True at the steps a correctly masked loss counts: real, and not
        labelled with the loss' ignore_class."""
        ignored = self.ignored_steps()
        return self.mask if ignored is None else self.mask & ~ignored

    def reference_weights(self) -> np.ndarray:
        """The weight of each step in the reference loss: the sample weight (1
        without), 0 at padding and at steps whose label the loss ignores."""
        weights = step_weights(self.weights, self.mask) * self.mask
        ignored = self.ignored_steps()
        return weights if ignored is None else weights * ~ignored

    def _references(self) -> None:
        real = self.mask
        if self.spec.kind is not None:  # batch by batch: float64 temporaries stay small
            self.per_step = np.concatenate([spec_per_step(self.spec, self.y[part], self.out[part])
                                            for part in self.slices])
        if self.batching.size:
            return weighting.batched_references(self)
        weights = None if self.weights is None else step_weights(self.weights, real)
        self.removed_loss = models.compiled_loss(
            self.model, self.y[real][None], self.out[real][None],
            sample_weight=None if weights is None else weights[real][None].astype(np.float32))
        if self.spec.kind is None:
            self.masked_loss = self.removed_loss
            self.unmasked_loss = models.compiled_loss(self.model, self.y, self.out)
            share = real.sum() / real.size
            self.all_steps_loss = (self.masked_loss - self.regularization) * share \
                + self.regularization
            return
        self.masked_loss = _plus(reduced(self.spec, self.per_step, self.reference_weights(),
                                         self.counted_steps()), self.regularization)
        self.all_steps_loss = weighting.divided_by_all_steps(self.per_step, self.reference_weights()) \
            + self.regularization
        self.unmasked_loss = _plus(reduced(self.spec, self.per_step, np.ones(real.shape)),
                                   self.regularization)

    def _per_sample(self) -> list[dict]:
        lengths = self.mask.sum(axis=1)
        rows = []
        for i, length in enumerate(lengths):
            row = {"sequence": i, "length": int(length), "masked_loss": None,
                   "unmasked_loss": None}
            if self.time_axis:
                row.update(self._sample_losses(i))
            rows.append(row)
        return rows

    def _sample_losses(self, i: int) -> dict:
        real = self.mask[i]
        if self.spec.kind is not None:
            values = self.per_step[i]
            masked = reduced(self.spec, values, self.reference_weights()[i],
                             self.counted_steps()[i])
            return {"masked_loss": masked, "unmasked_loss": reduced(self.spec, values,
                                                                    np.ones(values.shape))}
        # compiled_loss adds the model's regularization losses; a sample's loss has none.
        masked = (models.compiled_loss(self.model, self.y[i][real][None], self.out[i][real][None])
                  - self.regularization if real.any() else None)
        unmasked = models.compiled_loss(self.model, self.y[i:i + 1], self.out[i:i + 1])
        return {"masked_loss": masked, "unmasked_loss": unmasked - self.regularization}


def _plus(value: float | None, regularization: float) -> float | None:
    return None if value is None else value + regularization
