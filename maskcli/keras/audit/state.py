"""The state of one audit: the model, its output on the batch, the targets,
the sample weights and the reference mask (True at REAL steps).

``AuditRun`` is what every check, cause and fix reads. It imports none of
them: the run (:mod:`~maskcli.keras.audit.run`) builds it, the checks read
it, and the arrows between the modules run one way.
"""

from __future__ import annotations

import numpy as np

from maskcli.core.errors import InputError, ModelError, UsageError
from maskcli.core.masks import step_mask
from maskcli.keras import models
from maskcli.keras.audit import batched
from maskcli.keras.audit.batch import fitted_targets, synthetic_targets
from maskcli.keras.audit.inputs import Batch, reference_for_output
from maskcli.keras.audit.values import finite_steps, show
from maskcli.keras.audit.weights import MASK, checked_weights, keras_weights, step_weights


class AuditRun:
    """The state shared by the checks of one audit."""

    def __init__(self, model, label, spec, batch: Batch, mask, source, target_padded,
                 *, given=None, file_mask=None, batching: batched.Batching | None = None,
                 progress: batched.Progress = batched.no_progress, given_label: str = "the mask",
                 outputs: tuple | None = None):
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
        self.empty_sequence: str | None = None  # what a sequence of padding only breaks
        self.weights = self.keras_weights = None
        # outputs: (y_pred, mask, regularization) already computed on this batch by this
        # model's layers (a tried fix that changes the loss only): no forward pass, and
        # Keras' loss computed on them rather than by evaluate().
        self.loss_from_outputs = outputs is not None
        if outputs is None:
            self._forward()
        else:
            self.out, self.out_mask, self.regularization = outputs
        if self.mask is None:  # several inputs: the padding of the output's time axis
            self.mask = reference_for_output(batch, self.out.shape, source, given=given,
                                             given_label=given_label, file_mask=file_mask)
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
        self.weights_label = label
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
            value = self.y[seq, step]
            # The advice must not lead back here: --target-pad keeps the same loss, which
            # fails the same way. A negative id is a label of steps not to score.
            fix = (f"if the steps labelled {show(value)} are not to be scored (Hugging Face's "
                   f"-100), compile the loss with SparseCategoricalCrossentropy(ignore_class="
                   f"{show(value)}); else give class ids in 0..{classes - 1}"
                   if value < 0 and value == np.round(value)
                   else f"give class ids in 0..{classes - 1} (the model's output has "
                        f"{classes} classes)")
            raise InputError(
                f"targets hold class id {show(value)} at a {where} step (sequence "
                f"{seq}, step {step}), outside 0..{classes - 1}: Keras' "
                f"sparse_categorical_crossentropy cannot take it: {fix}")

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

    def evaluate(self) -> dict:
        if self.loss_from_outputs or self._loss_alone():
            # Keras' compiled loss on the outputs the forward pass gave: what evaluate()
            # computes, without running the model again (a model called before carries
            # its regularization losses in model.losses, which compute_loss adds).
            losses = batched.batch_losses(self.model, self.y, self.out, self.out_mask,
                                          self.slices, self.keras_weights)
            regularization = 0.0 if self.model.losses else self.regularization
            return {"loss": batched.combine(losses, self.slices) + regularization}
        # Keras' own compiled loss and metrics: on the whole batch eagerly (for one
        # batch that is faster than tracing a graph), or in batches as training runs.
        try:
            return batched.evaluate(self.model, self.inputs, self.y, self.batching.size,
                                    sample_weight=self.keras_weights, progress=self.progress)
        except Exception as exc:
            raise ModelError(f"Keras could not compute the loss of {self.label} on "
                             f"{self.source}: {models.first_line(exc)}: check that the targets "
                             "fit the loss") from None

    def _loss_alone(self) -> bool:
        """One batch, no compiled metric and Keras' own test_step: evaluate()
        would only compute the compiled loss on the outputs already here."""
        keras = models.import_keras()
        return (self.batching.size is None and getattr(self.model, "_compile_metrics", 1) is None
                and type(self.model).test_step is keras.Model.test_step)

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
