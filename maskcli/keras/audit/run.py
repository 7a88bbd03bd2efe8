"""Run an audit: prepare the model and the batch, run every check, report."""

from __future__ import annotations

import numpy as np

from maskcli.core.errors import InputError, ModelError, UsageError
from maskcli.core.masks import compute_mask, parse_value, step_mask
from maskcli.core.padded import check_mask
from maskcli.formats.arrays import load_array, load_padded
from maskcli.formats.model_files import check_model_file
from maskcli.keras import models
from maskcli.keras.audit import checks
from maskcli.keras.audit.batch import (
    SYNTHETIC_CLASSES,
    checked_inputs,
    checked_targets,
    fitted_targets,
    parse_target_pad,
    reference_mask,
    synthetic_targets,
)
from maskcli.keras.audit.cause import likely_cause
from maskcli.keras.audit.reference import LOSSES, loss_rtol, loss_spec, per_step_loss
from maskcli.keras.audit.report import AuditReport, Check
from maskcli.keras.audit.values import finite_steps, show

CHECK_IDS = ("loss-parity", "target-invariance", "padding-gradient", "forward-invariance",
             "metric-parity")
# Checks that read the loss at padded steps: they need an output with a time axis.
TIME_AXIS_CHECKS = CHECK_IDS[:3]

# The metric compiled into a built-in model, so that metric-parity has one to check.
DEFAULT_METRIC = {"mse": "mae", "mae": "mse", "binary_crossentropy": "binary_accuracy",
                  "categorical_crossentropy": "categorical_accuracy",
                  "sparse_categorical_crossentropy": "sparse_categorical_accuracy"}


def audit_loss(inputs, *, mask=None, targets=None, target_pad=None, model=None,
               arch: str | None = None, loss: str | None = None, units: int | None = None,
               seed: int = 0, train_steps: int = 0, per_sample: bool = False, pad_value=0,
               verbose: bool = False, source: str = "inputs",
               model_label: str | None = None, targets_label: str = "targets") -> AuditReport:
    """Audit whether ``model``'s loss ignores the padding of ``inputs``.

    ``mask`` (True = real step) is the reference padding mask; without it the
    mask is derived from ``inputs`` and ``pad_value`` as Embedding(mask_zero)
    or Masking would, or from ``targets`` equal to ``target_pad``. ``model`` is
    a Keras model (compiled or not); without it the built-in ``arch`` is built.
    Without ``targets``, synthetic ones from ``seed`` are used; messages call
    them ``targets_label`` (e.g. ``targets y.npy``). ``train_steps``
    trains ``model`` in place before the audit. For example
    ``audit_loss(np.array([[3, 1, 0, 0], [2, 2, 1, 0]])).verdict`` is
    "ignored" (the built-in embedding-lstm masks its loss).
    """
    inputs = checked_inputs(inputs, source)
    if train_steps < 0:
        raise UsageError(f"--train-steps must be 0 or more, got {train_steps}")
    if targets is not None:
        targets = checked_targets(targets, inputs, targets_label)
    real = reference_mask(inputs, mask, targets, target_pad, pad_value, source, targets_label)

    keras = models.import_keras(verbose)
    keras.utils.set_random_seed(seed)
    model, label = _prepared_model(model, arch, loss, units, seed, inputs, targets,
                                   real, pad_value, verbose)
    label = model_label or label
    spec = loss_spec(model.loss)
    with models.full_float32():
        audit = AuditRun(model, label, spec, inputs, real, source, target_pad is not None)
        audit.set_targets(targets, seed, targets_label)
        audit.train(train_steps)
        return audit.report(per_sample)


def audit_files(input_path: str = "-", *, mask_path: str | None = None, mode: str | None = None,
                mask_value: str | None = None, target_pad: str | None = None,
                targets_path: str | None = None, model_path: str | None = None,
                arch: str | None = None, unsafe: bool = False, imports=(),
                loss: str | None = None, units: int | None = None, seed: int = 0,
                train_steps: int = 0, per_sample: bool = False,
                verbose: bool = False) -> AuditReport:
    """``audit_loss`` on files, as ``maskcli audit-loss`` runs it.

    The reference mask comes from ``mask_path``, else the npz ``mask``, else
    ``mode``/``mask_value`` as in inspect-mask; or from the targets with
    ``target_pad``. ``imports`` run the user's own code before loading.
    """
    derive = mode is not None or mask_value is not None
    if unsafe and not model_path:
        raise UsageError("--unsafe applies to --model only: drop it")
    if model_path and arch:
        raise UsageError("--arch and --model both name a model: give one of them")
    if mask_path and derive:
        raise UsageError("--mask gives the mask, --mode/--mask-value derive one: give one or "
                         "the other")
    if target_pad is not None and (mask_path or derive):
        raise UsageError("--target-pad derives the mask from the targets: drop --mask, --mode "
                         "and --mask-value")
    padded = load_padded(input_path)
    pad_value = (parse_value(mask_value, "--mask-value") if mask_value is not None
                 else padded.numeric_pad_value("--mask-value"))
    pad_value = 0 if pad_value is None else pad_value
    targets = (load_array(targets_path, key="targets") if targets_path
               else padded.extra.get("targets"))
    mask = None
    if mask_path:
        mask = check_mask(mask_path, load_array(mask_path, key="mask"), padded.inputs)
    elif derive:
        mask = compute_mask(padded.inputs, mode, pad_value)
    elif target_pad is None:
        mask = padded.mask
    model = None
    if model_path:
        check_model_file(model_path)  # a refused file costs no TensorFlow import
    if model_path or imports:
        models.import_keras(verbose)  # before the user's code imports it, unsilenced
        models.import_user_code(imports)
    if model_path:
        model = models.load_model(model_path, unsafe=unsafe, verbose=verbose)
    return audit_loss(padded.inputs, mask=mask, targets=targets,
                      target_pad=None if target_pad is None else parse_target_pad(target_pad),
                      model=model, arch=arch, loss=loss, units=units, seed=seed,
                      train_steps=train_steps, per_sample=per_sample, pad_value=pad_value,
                      verbose=verbose, source=padded.source,
                      model_label=f"--model {model_path}" if model_path else None,
                      targets_label=f"targets {targets_path}" if targets_path
                      else f"the targets in {padded.source}")


class AuditRun:
    """The state shared by the checks of one audit."""

    def __init__(self, model, label, spec, inputs, mask, source, target_padded):
        self.model, self.label, self.spec = model, label, spec
        self.inputs, self.mask, self.source = inputs, mask, source
        self.target_padded = target_padded
        self.notes: list[str] = []
        self.mask_blind_metrics: list[str] = []
        self.nonfinite_padded_targets = 0
        self.pad_step = inputs[~mask][0]  # what one padded step of the input holds
        self._forward()

    # -- preparation -------------------------------------------------------

    def _forward(self) -> None:
        try:
            y_pred = self.model(self.inputs, training=False)
        except Exception as exc:  # the user's model may raise anything
            raise ModelError(f"{self.label} cannot run on {self.source} (shape "
                             f"{self.inputs.shape}): {models.first_line(exc)}: give inputs that "
                             "fit the model (shape, dtype, token ids below its vocabulary size)"
                             ) from None
        if isinstance(y_pred, (list, tuple, dict)):
            raise ModelError(f"{self.label} has several outputs: audit-loss audits a "
                             "single-output model; save one model per output")
        self.out = np.asarray(y_pred)
        self.out_mask = models.output_mask(y_pred)
        if self.out_mask is not None and self.out_mask.shape != self.out.shape[:2]:
            self.out_mask = step_mask(self.out_mask)
        self.time_axis = self.out.ndim >= 3 and self.out.shape[:2] == self.mask.shape
        self.regularization = float(sum(float(v) for v in self.model.losses))

    def set_targets(self, targets, seed: int, label: str = "targets") -> None:
        if targets is None:
            targets = synthetic_targets(self.spec.kind, self.out.shape, seed)
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

    def _check_class_ids(self) -> None:
        classes = self.out.shape[-1]
        bad = (self.y < 0) | (self.y >= classes) | (self.y != np.round(self.y))
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
        with eager(self.model, "train_function"):
            try:
                self.model.fit(self.inputs, self.y, batch_size=len(self.inputs), epochs=steps,
                               shuffle=False, verbose=0)
            except Exception as exc:
                raise ModelError(f"training {self.label} failed: {models.first_line(exc)}: "
                                 "check the targets and the model's optimizer") from None
        self.notes.append(f"audited after {steps} training steps on the whole batch")
        self._forward()

    # -- the audit ---------------------------------------------------------

    def report(self, per_sample: bool) -> AuditReport:
        self.rtol = loss_rtol(self.mask.size)
        self.keras_loss = float(self._evaluate()["loss"])
        self.removed_loss = self.masked_loss = self.unmasked_loss = None
        metric_check = checks.metric_parity(self)  # first: it reads the metrics evaluate() left
        if self.time_axis:
            self._references()
            loss_checks = [checks.loss_parity(self), checks.target_invariance(self),
                           checks.padding_gradient(self)]
        else:
            reason = (f"the output (shape {self.out.shape}) has no time axis: the loss sees "
                      "whole sequences, never a padded step")
            self.notes.append("the output has no time axis: only forward-invariance and "
                              "metric-parity apply")
            loss_checks = [Check(cid, "skipped", detail=reason) for cid in TIME_AXIS_CHECKS]
        results = loss_checks + [checks.forward_invariance(self), metric_check]
        failed = [check.id for check in results if check.status == "fail"]
        return AuditReport(
            verdict="leaks" if failed else "ignored",
            loss=self.spec.name, keras_loss=self.keras_loss, masked_loss=self.masked_loss,
            unmasked_loss=self.unmasked_loss, checks=results, versions=models.versions(),
            model=self.label, rtol=self.rtol, sequences=int(self.mask.shape[0]),
            steps=int(self.mask.size), real_steps=int(self.mask.sum()),
            per_sample=self._per_sample() if per_sample else None,
            cause=likely_cause(self, failed) if failed else None,
            notes=self.notes, removed_loss=self.removed_loss)

    def _evaluate(self) -> dict:
        # Eager evaluate: Keras' own compiled loss and metrics, without tracing a graph.
        with eager(self.model, "test_function"):
            try:
                return self.model.evaluate(self.inputs, self.y, batch_size=len(self.inputs),
                                           verbose=0, return_dict=True)
            except Exception as exc:
                raise ModelError(f"Keras could not compute the loss of {self.label} on "
                                 f"{self.source}: {models.first_line(exc)}: check that the targets "
                                 "fit the loss") from None

    def _references(self) -> None:
        real = self.mask
        self.removed_loss = models.compiled_loss(self.model, self.y[real][None],
                                                 self.out[real][None])
        if self.spec.kind is None:
            self.masked_loss = self.removed_loss
            self.unmasked_loss = models.compiled_loss(self.model, self.y, self.out)
            return
        self.per_step = per_step_loss(self.spec.kind, self.y, self.out)
        self.masked_loss = float(self.per_step[real].mean()) + self.regularization
        self.unmasked_loss = float(self.per_step.mean()) + self.regularization

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
            masked = float(values[real].mean()) if real.any() else None
            return {"masked_loss": masked, "unmasked_loss": float(values.mean())}
        # compiled_loss adds the model's regularization losses; a sample's loss has none.
        masked = (models.compiled_loss(self.model, self.y[i][real][None], self.out[i][real][None])
                  - self.regularization if real.any() else None)
        unmasked = models.compiled_loss(self.model, self.y[i:i + 1], self.out[i:i + 1])
        return {"masked_loss": masked, "unmasked_loss": unmasked - self.regularization}


def _prepared_model(model, arch, loss, units, seed, inputs, targets, mask, pad_value, verbose):
    """The model to audit, compiled, and how the report names it."""
    if loss is not None and loss not in LOSSES:
        raise UsageError(f"unknown --loss {loss!r}: use one of {', '.join(LOSSES)}")
    if model is None:
        name = arch or models.default_arch(inputs)
        loss = loss or "mse"
        out_units, activation = _output_layer(loss, targets, mask)
        model = models.build_arch(name, inputs, units=8 if units is None else units, seed=seed,
                                  pad_value=pad_value, out_units=out_units,
                                  out_activation=activation, verbose=verbose)
        model.compile(optimizer="adam", loss=loss, metrics=[DEFAULT_METRIC[loss]])
        return model, f"--arch {name}"
    if arch is not None:
        raise UsageError("--arch and --model both name a model: give one of them")
    if units is not None:
        raise UsageError("--units applies to the built-in --arch models only: drop it")
    label = f"model '{model.name}'"
    if getattr(model, "compiled", False) and getattr(model, "loss", None) is not None:
        if loss is not None:
            raise UsageError(f"{label} is compiled with its own loss, which is the one audited: "
                             "drop --loss, or save the model uncompiled")
    else:
        model.compile(optimizer="adam", loss=loss or "mse")
    return model, label


def _output_layer(loss: str, targets, mask) -> tuple[int, str | None]:
    """The output units and activation of a built-in model for ``loss``: one
    unit per target feature (or class), else 1 unit or SYNTHETIC_CLASSES."""
    per_step = targets is not None and targets.shape[:2] == mask.shape
    if loss == "sparse_categorical_crossentropy":
        classes = int(np.nanmax(targets[mask])) + 1 if per_step else SYNTHETIC_CLASSES
        return max(classes, 2), "softmax"
    features = targets.shape[-1] if per_step and targets.ndim == 3 else None
    if loss == "categorical_crossentropy":
        return features or SYNTHETIC_CLASSES, "softmax"
    return features or 1, "sigmoid" if loss == "binary_crossentropy" else None


class eager:
    """Run ``evaluate``/``fit`` eagerly (no graph tracing for one batch), and
    leave the model's own compiled functions as they were."""

    def __init__(self, model, function_name):
        self.model, self.function_name = model, function_name

    def __enter__(self):
        self.saved = (self.model.run_eagerly, getattr(self.model, self.function_name, None))
        self.model.run_eagerly = True

    def __exit__(self, *exc):
        self.model.run_eagerly = self.saved[0]
        if self.saved[1] is None:
            setattr(self.model, self.function_name, None)
