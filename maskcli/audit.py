"""Audit that a Keras model's loss ignores padding, or show where it leaks.

``audit_loss`` runs a real Keras model on a padded batch, in one process and
on the whole batch, and reports five checks (each pass, fail or skipped):

- ``loss-parity``: Keras' compiled loss (``evaluate``) equals the reference
  masked loss: the loss per step in numpy, averaged over real steps only (for
  a custom loss: the same loss on the real steps alone, padding removed).
- ``target-invariance``: changing the targets at padded steps does not change
  Keras' loss.
- ``padding-gradient``: d loss / d y_pred is exactly 0 at every padded step.
- ``forward-invariance``: a sequence run alone without its padding, or with
  more padding, gives the same outputs at its real steps.
- ``metric-parity``: each compiled metric equals the same metric on the real
  steps alone.

The reference mask says which steps are padding; it is True at REAL steps.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from maskcli import models, trace
from maskcli.arrays import check_mask, load_array, load_padded
from maskcli.errors import InputError, MaskcliError, ModelError, UsageError
from maskcli.masks import compute_mask, default_mode, parse_value, step_mask

LOSSES = ("mse", "mae", "binary_crossentropy", "categorical_crossentropy",
          "sparse_categorical_crossentropy")
CHECK_IDS = ("loss-parity", "target-invariance", "padding-gradient", "forward-invariance",
             "metric-parity")
# Checks that read the loss at padded steps: they need an output with a time axis.
TIME_AXIS_CHECKS = CHECK_IDS[:3]

# The metric compiled into a built-in model, so that metric-parity has one to check.
DEFAULT_METRIC = {"mse": "mae", "mae": "mse", "binary_crossentropy": "binary_accuracy",
                  "categorical_crossentropy": "categorical_accuracy",
                  "sparse_categorical_crossentropy": "sparse_categorical_accuracy"}
LARGE_TARGET = 1e6       # the padded targets of the target-invariance probe
EXTRA_PADDING = 4        # steps added on the padding side by forward-invariance
SYNTHETIC_CLASSES = 4    # classes of synthetic targets for the categorical losses
FORWARD_RTOL = 1e-5      # outputs run alone vs in the batch: float32 matmul blocking differs
_EPS32 = float(np.finfo(np.float32).eps)

_ALIASES = {
    "mse": "mse", "mean_squared_error": "mse", "MeanSquaredError": "mse",
    "mae": "mae", "mean_absolute_error": "mae", "MeanAbsoluteError": "mae",
    "binary_crossentropy": "binary_crossentropy", "BinaryCrossentropy": "binary_crossentropy",
    "categorical_crossentropy": "categorical_crossentropy",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
}
# Keyword arguments of Keras' built-in loss functions under which the numpy
# reference below is exact.
_DEFAULT_LOSS_KWARGS = {"from_logits": False, "label_smoothing": 0.0, "axis": -1,
                        "ignore_class": None}


@dataclass
class Check:
    """One check of the audit. ``status`` is pass, fail or skipped."""

    id: str
    status: str
    value: float | dict | None = None
    reference: float | dict | None = None
    detail: str = ""


@dataclass
class AuditReport:
    """What ``audit_loss`` found. ``verdict`` is "ignored" or "leaks"."""

    verdict: str
    loss: str
    keras_loss: float | None
    masked_loss: float | None
    unmasked_loss: float | None
    checks: list[Check]
    versions: dict
    model: str
    rtol: float
    sequences: int
    steps: int
    real_steps: int
    per_sample: list[dict] | None = None
    cause: str | None = None
    notes: list[str] = field(default_factory=list)
    # The padding-removed reference, also for built-in losses (where it must
    # equal masked_loss): the same loss on the real steps alone.
    removed_loss: float | None = None

    @property
    def failed(self) -> list[str]:
        return [check.id for check in self.checks if check.status == "fail"]

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "ignored" else 1

    def check(self, check_id: str) -> Check:
        return next(check for check in self.checks if check.id == check_id)

    def to_dict(self) -> dict:
        """The JSON report. NaN and infinities become null (JSON has neither)."""
        return _finite({
            "verdict": self.verdict,
            "loss": self.loss,
            "keras_loss": self.keras_loss,
            "masked_loss": self.masked_loss,
            "unmasked_loss": self.unmasked_loss,
            "checks": [{"id": c.id, "status": c.status, "value": c.value,
                        "reference": c.reference, "detail": c.detail} for c in self.checks],
            "per_sample": self.per_sample,
            "versions": self.versions,
            "cause": self.cause,
            "notes": self.notes,
            "model": self.model,
            "rtol": self.rtol,
            "sequences": self.sequences,
            "steps": self.steps,
            "real_steps": self.real_steps,
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


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
    inputs = _checked_inputs(inputs, source)
    if train_steps < 0:
        raise UsageError(f"--train-steps must be 0 or more, got {train_steps}")
    if targets is not None:
        targets = _checked_targets(targets, inputs, targets_label)
    reference_mask = _reference_mask(inputs, mask, targets, target_pad, pad_value, source,
                                     targets_label)

    keras = models.import_keras(verbose)
    keras.utils.set_random_seed(seed)
    model, label = _prepared_model(model, arch, loss, units, seed, inputs, targets,
                                   reference_mask, pad_value, verbose)
    label = model_label or label
    spec = _loss_spec(model.loss)
    with models.full_float32():
        audit = _Audit(model, label, spec, inputs, reference_mask, source,
                       target_pad is not None)
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


def parse_target_pad(text: str):
    """Parse ``--target-pad``: a number (``-100``, ``0``) or a JSON list of
    numbers (a one-hot padding class such as ``[0, 0, 1]``)."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise UsageError(f"--target-pad {text}: not a JSON list: "
                             "write it as [0, 0, 1]") from None
        if not value or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                for v in value):
            raise UsageError(f"--target-pad {text}: give a non-empty list of numbers, "
                             "e.g. [0, 0, 1]")
        return value
    return parse_value(text, "--target-pad")


def target_padding_mask(targets: np.ndarray, target_pad, source: str = "targets") -> np.ndarray:
    """The reference mask from the targets: a step is padding (False) where its
    target equals ``target_pad`` (a number, or a list: the whole target vector)."""
    pad = np.asarray(target_pad, dtype=float)
    if targets.ndim < 2:
        raise InputError(f"{source}: targets of shape {targets.shape} have no time axis: "
                         "--target-pad needs per-step targets (sequences, steps[, classes])")
    if pad.ndim == 1:
        if targets.ndim != 3 or targets.shape[-1] != pad.size:
            raise InputError(
                f"{source}: --target-pad gives {pad.size} values but the targets have shape "
                f"{targets.shape}: a list pad needs one-hot targets with {pad.size} classes")
        return ~np.all(_equal(targets, pad), axis=-1)
    equal = _equal(targets, pad)
    return ~equal.reshape(equal.shape[:2] + (-1,)).all(axis=-1)


def loss_rtol(count: int) -> float:
    """Relative tolerance for a float32 mean of ``count`` values, compared with
    a float64 reference: rounding grows like sqrt(count) ulps."""
    return max(1e-5, 4 * _EPS32 * math.sqrt(max(count, 1)))


def per_step_loss(kind: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Keras' built-in loss ``kind`` at every step, in float64 numpy.

    ``y_pred`` is (..., classes); the result has its shape without the last axis.
    Probabilities are clipped to [eps, 1 - eps] as Keras does.
    """
    y_pred = np.asarray(y_pred, dtype=np.float64)
    eps = 1e-7  # keras.backend.epsilon()
    if kind == "sparse_categorical_crossentropy":
        labels = np.asarray(y_true).astype(np.int64)
        p = np.clip(y_pred, eps, 1 - eps)
        p = p / p.sum(axis=-1, keepdims=True)  # log_softmax of log(p), as Keras computes it
        return -np.log(np.take_along_axis(p, labels[..., None], axis=-1)[..., 0])
    y_true = np.asarray(y_true, dtype=np.float64)
    if kind == "mse":
        return np.mean((y_pred - y_true) ** 2, axis=-1)
    if kind == "mae":
        return np.mean(np.abs(y_pred - y_true), axis=-1)
    if kind == "binary_crossentropy":
        p = np.clip(y_pred, eps, 1 - eps)
        return np.mean(-(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)), axis=-1)
    if kind == "categorical_crossentropy":
        p = np.clip(y_pred / y_pred.sum(axis=-1, keepdims=True), eps, 1 - eps)
        return -np.sum(y_true * np.log(p), axis=-1)
    raise ValueError(f"no numpy reference for loss {kind!r}")


def likely_cause(audit: "_Audit", failed: list[str]) -> str:
    """Name the likely cause of the failed checks: the one place where it is
    decided (a layer-by-layer mask trace can refine the "no mask" case here)."""
    padded = ~audit.mask
    if "target-invariance" in failed and audit.nonfinite_padded_targets:
        return (f"the targets hold NaN or inf at {audit.nonfinite_padded_targets} padded steps, "
                "and Keras applies the mask by multiplication (NaN x 0 = NaN): "
                "fill padded targets with 0 or any finite value")
    if audit.time_axis and not audit.target_padded:
        if audit.out_mask is None:
            return f"the model's output carries no mask: {_where_mask_dies(audit)}"
        kept = int((audit.out_mask & padded).sum())
        if kept:
            values = models.masking_values(audit.model)
            pad = audit.pad_step
            if values and np.ndim(pad) <= 1 and not any(np.all(_equal(np.asarray(pad), v))
                                                        for v in values):
                return (f"the model's mask keeps {kept} padded steps: Masking(mask_value="
                        f"{values[0]:g}) does not match the pad value {_show(pad)}: "
                        "set mask_value to the pad value")
            return (f"the model's mask keeps {kept} padded steps: it does not match the padding "
                    "(check mask_zero / mask_value against the pad value)")
        hidden = int((~audit.out_mask & audit.mask).sum())
        if hidden and "loss-parity" in failed:
            return (f"the model's mask hides {hidden} real steps (e.g. a real token equal to the "
                    "pad value): the loss skips them")
    if "loss-parity" in failed and audit.time_axis:
        share = audit.mask.sum() / audit.mask.size
        keras_loss, masked = audit.keras_loss, audit.masked_loss
        if _close(keras_loss, masked * share, audit.rtol):
            return (f"the loss divides by all steps, padding included (Keras' loss = masked loss x "
                    f"real share {share:.3f}): divide by the number of real steps instead")
        if _close(keras_loss, audit.unmasked_loss, audit.rtol):
            return "the loss averages over all steps: it ignores the mask"
    if "forward-invariance" in failed:
        return ("padding changes what the model computes at real steps: a layer mixes padded "
                "steps into real ones (convolution, pooling, attention or a bidirectional RNN "
                "without the mask)")
    if failed == ["metric-parity"] and audit.mask_blind_metrics:
        blind = audit.mask_blind_metrics
        return (f"{'metric' if len(blind) == 1 else 'metrics'} {', '.join(blind)} "
                f"{'ignores' if len(blind) == 1 else 'ignore'} the mask (Keras masks only "
                "mean-style metrics such as accuracy or mae): compute them on real steps only")
    return "the loss depends on padded steps: " + ", ".join(failed) + " failed"


def _where_mask_dies(audit: "_Audit") -> str:
    """The first layer that drops the mask, from a layer-by-layer trace, with its fix."""
    try:
        rows = trace.trace_mask(audit.model, audit.inputs[:trace.SAMPLE_SIZE])
    except MaskcliError:  # e.g. a subclassed model, whose call() cannot be walked
        rows = []
    leak = trace.first_leak(rows)
    fix = next((row.fix for row in rows if row.status == "drops" and row.fix), None)
    if leak:
        return f"{leak}: {fix}" if fix else leak
    return ("a layer or a tensor operation drops it (plain arithmetic such as x * 2.0 on a "
            "symbolic tensor does so silently): set supports_masking = True, pass mask= "
            "explicitly, or use a mask-aware layer")


class _Audit:
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
        self.y = _fitted_targets(targets, self.out.shape, self.spec, label)
        if self.time_axis:
            real_values = self.y[self.mask]
            if not np.isfinite(real_values.astype(float)).all():
                seq, step = np.argwhere(self.mask & ~_finite_steps(self.y))[0]
                raise InputError(f"targets hold NaN or inf at a real step (sequence {seq}, "
                                 f"step {step}): the loss is NaN whatever the padding: "
                                 "fix the targets")
            self.nonfinite_padded_targets = int((~self.mask & ~_finite_steps(self.y)).sum())
            if self.spec.kind == "sparse_categorical_crossentropy":
                self._check_class_ids()

    def _check_class_ids(self) -> None:
        classes = self.out.shape[-1]
        bad = (self.y < 0) | (self.y >= classes) | (self.y != np.round(self.y))
        if bad.any():
            seq, step = np.argwhere(bad)[0]
            where = "real" if self.mask[seq, step] else "padded"
            raise InputError(
                f"targets hold class id {_show(self.y[seq, step])} at a {where} step (sequence "
                f"{seq}, step {step}), outside 0..{classes - 1}: Keras' "
                "sparse_categorical_crossentropy cannot take it: pad targets with a valid "
                "class, or audit a custom masked loss (--model with --target-pad)")

    def train(self, steps: int) -> None:
        if not steps:
            return
        with _eager(self.model, "train_function"):
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
        metric_check = self.metric_parity()  # first: it reads the metrics evaluate() left
        if self.time_axis:
            self._references()
            loss_checks = [self.loss_parity(), self.target_invariance(), self.padding_gradient()]
        else:
            reason = (f"the output (shape {self.out.shape}) has no time axis: the loss sees "
                      "whole sequences, never a padded step")
            self.notes.append("the output has no time axis: only forward-invariance and "
                              "metric-parity apply")
            loss_checks = [Check(cid, "skipped", detail=reason) for cid in TIME_AXIS_CHECKS]
        checks = loss_checks + [self.forward_invariance(), metric_check]
        failed = [check.id for check in checks if check.status == "fail"]
        return AuditReport(
            verdict="leaks" if failed else "ignored",
            loss=self.spec.name, keras_loss=self.keras_loss, masked_loss=self.masked_loss,
            unmasked_loss=self.unmasked_loss, checks=checks, versions=models.versions(),
            model=self.label, rtol=self.rtol, sequences=int(self.mask.shape[0]),
            steps=int(self.mask.size), real_steps=int(self.mask.sum()),
            per_sample=self._per_sample() if per_sample else None,
            cause=likely_cause(self, failed) if failed else None,
            notes=self.notes, removed_loss=self.removed_loss)

    def _evaluate(self) -> dict:
        # Eager evaluate: Keras' own compiled loss and metrics, without tracing a graph.
        with _eager(self.model, "test_function"):
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

    def loss_parity(self) -> Check:
        real, total = int(self.mask.sum()), self.mask.size
        if self.spec.kind is None:
            how = f"custom loss: reference = the same loss on the {real} real steps alone"
        else:
            how = (f"reference = {self.spec.name} per step in numpy, mean over {real} real "
                   f"of {total} steps")
        detail = (f"{how}; unmasked mean over all steps: {_show(self.unmasked_loss)}; "
                  f"rtol {self.rtol:.1e}")
        if self.regularization:
            detail += f"; both include {self.regularization:.6g} of regularization losses"
        ok = _close(self.keras_loss, self.masked_loss, self.rtol)
        return Check("loss-parity", "pass" if ok else "fail", self.keras_loss,
                     self.masked_loss, detail)

    def target_invariance(self) -> Check:
        if self.target_padded:
            return Check("target-invariance", "skipped", detail=(
                "--target-pad defines the padding by the targets themselves"))
        padded = ~self.mask
        base = self._loss_with(self.y)
        if self.spec.kind == "sparse_categorical_crossentropy":
            changed = self.y.copy()
            changed[padded] = (changed[padded] + 1) % self.out.shape[-1]
            probe = "another class"
        else:
            changed = self.y.astype(np.float32)
            changed[padded] = LARGE_TARGET
            probe = f"{LARGE_TARGET:g}"
        large = self._loss_with(changed)
        ok = _close(large, base, self.rtol)
        detail = f"padded targets set to {probe}: {_show(large)} (as given: {_show(base)})"
        if self.nonfinite_padded_targets:
            ok = False
            detail += (f"; the targets hold NaN or inf at {self.nonfinite_padded_targets} "
                       "padded steps, which make Keras' loss NaN")
        elif self.spec.kind != "sparse_categorical_crossentropy":
            nan_targets = self.y.astype(np.float32)
            nan_targets[padded] = np.nan
            nan_loss = self._loss_with(nan_targets)
            detail += f"; set to NaN: {_show(nan_loss)}"
            if not _close(nan_loss, base, self.rtol):
                # Keras' own behaviour (the mask multiplies), not a leak of these targets.
                detail += " (Keras masks by multiplying: keep padded targets finite)"
        return Check("target-invariance", "pass" if ok else "fail", large, base, detail)

    def _loss_with(self, y) -> float:
        """Keras' compiled loss for targets ``y`` on the model's output and its mask."""
        try:
            return models.compiled_loss(self.model, y, self.out, self.out_mask)
        except Exception as exc:  # a custom loss may refuse odd targets
            raise ModelError(f"the loss of {self.label} failed on probe targets: "
                             f"{models.first_line(exc)}") from None

    def padding_gradient(self) -> Check:
        grad = models.compiled_loss_gradient(self.model, self.y, self.out, self.out_mask)
        grad = np.abs(grad.reshape(self.mask.shape + (-1,)))
        at_padded = float(grad[~self.mask].max())
        at_real = float(grad[self.mask].max())
        ok = at_padded == 0.0  # a mask multiplies: anything but an exact 0 is a leak
        detail = (f"max |d loss / d y_pred| over {int((~self.mask).sum())} padded steps "
                  f"(at real steps: {at_real:.3g})")
        return Check("padding-gradient", "pass" if ok else "fail", at_padded, 0.0, detail)

    def forward_invariance(self) -> Check:
        model, reason = models.free_length_model(self.model)
        if model is None:
            return Check("forward-invariance", "skipped", detail=reason)
        lengths = self.mask.sum(axis=1)
        rows = np.flatnonzero(lengths)
        try:
            if model is not self.model and not self._same(_run(model, self.inputs), self.out):
                return Check("forward-invariance", "skipped", detail=(
                    f"{reason}, but the rebuilt model's outputs differ from the original's"))
            alone = self._trimmed_alone_diff(model, rows, lengths)
            extended, sides = self._extra_padding_diff(model, rows)
        except Exception as exc:  # a layer may insist on the original length
            fixed = f"{reason.split(':')[0]} and" if reason else "the model"
            return Check("forward-invariance", "skipped", detail=(
                f"{fixed} cannot run on another length ({models.first_line(exc)})"))
        tolerance = FORWARD_RTOL * max(1.0, float(np.nanmax(np.abs(self.out))))
        worst = max(alone, extended)
        ok = worst <= tolerance
        where = "real steps" if self.time_axis else "sequence outputs"
        detail = (f"max |diff| at {where}: alone without padding {alone:.3g} "
                  f"({len(rows)} sequences), with {EXTRA_PADDING} extra padding steps "
                  f"({sides}) {extended:.3g}; tolerance {tolerance:.1e}")
        if len(rows) < len(lengths):
            detail += f"; {len(lengths) - len(rows)} all-padding sequences skipped"
        if reason:
            detail += f"; {reason}"
        return Check("forward-invariance", "pass" if ok else "fail", worst, 0.0, detail)

    def _same(self, a, b) -> bool:
        return a.shape == b.shape and np.allclose(a, b, rtol=FORWARD_RTOL,
                                                  atol=FORWARD_RTOL, equal_nan=True)

    def _trimmed_alone_diff(self, model, rows, lengths) -> float:
        worst = 0.0
        for length in np.unique(lengths[rows]):  # one call per distinct length
            group = rows[lengths[rows] == length]
            alone = _run(model, np.stack([self.inputs[i][self.mask[i]] for i in group]))
            for out, i in zip(alone, group):
                batch = self.out[i][self.mask[i]] if self.time_axis else self.out[i]
                worst = max(worst, _max_diff(out, batch))
        return worst

    def _extra_padding_diff(self, model, rows) -> tuple[float, str]:
        n, steps = self.mask.shape
        pre = ~self.mask[:, 0] & self.mask[:, -1]
        padded_rows = ~self.mask.all(axis=1)
        # A row without padding gets the side most padded rows use.
        batch_pre = pre.sum() > (padded_rows & ~pre).sum()
        pre = np.where(padded_rows, pre, batch_pre)
        extended = np.empty((n, steps + EXTRA_PADDING) + self.inputs.shape[2:],
                            dtype=self.inputs.dtype)
        extended[...] = self.pad_step
        offsets = np.where(pre, EXTRA_PADDING, 0)
        for i in range(n):
            extended[i, offsets[i]:offsets[i] + steps] = self.inputs[i]
        out = _run(model, extended)
        worst = 0.0
        for i in rows:
            if self.time_axis:
                real_steps = np.flatnonzero(self.mask[i]) + offsets[i]
                worst = max(worst, _max_diff(out[i][real_steps], self.out[i][self.mask[i]]))
            else:
                worst = max(worst, _max_diff(out[i], self.out[i]))
        sides = sorted({"pre" if p else "post" for p in pre})
        return worst, "/".join(sides)

    def metric_parity(self) -> Check:
        metrics = models.compiled_metrics(self.model)
        if not metrics:
            return Check("metric-parity", "skipped", detail="the model has no compiled metric")
        if self.time_axis:
            y_ref, p_ref = self.y[self.mask][None], self.out[self.mask][None]
        else:
            y_ref, p_ref = self.y, self.out
        values, references, parts, ok = {}, {}, [], True
        for metric in metrics:
            keras_value = _metric_value(metric.result())
            metric.reset_state()
            metric.update_state(y_ref, p_ref)
            reference = _metric_value(metric.result())
            values[metric.name], references[metric.name] = keras_value, reference
            same = np.allclose(keras_value, reference, rtol=self.rtol, atol=0, equal_nan=False)
            ok = ok and same
            blind = self.time_axis and not models.is_mask_aware_metric(metric)
            if blind:
                self.mask_blind_metrics.append(metric.name)
            parts.append(f"{metric.name}: {'equal' if same else 'differs'}"
                         + (" (ignores masks, as Keras' confusion-matrix metrics do)"
                            if blind else ""))
        scope = "the real steps alone" if self.time_axis else "the whole batch"
        detail = f"reference = the same metric on {scope}; " + "; ".join(parts)
        return Check("metric-parity", "pass" if ok else "fail", values, references, detail)

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


@dataclass
class _LossSpec:
    name: str         # what the report calls it
    kind: str | None  # one of LOSSES when the numpy reference applies, else None


def _loss_spec(loss) -> _LossSpec:
    """Recognise the compiled loss: one of Keras' built-ins with default
    settings (the numpy reference applies), or a custom one."""
    keras = models.import_keras()
    if isinstance(loss, str):
        return _LossSpec(loss, _ALIASES.get(loss))
    builtins = {getattr(keras.losses, name): _ALIASES[name] for name in
                ("mean_squared_error", "mean_absolute_error", "binary_crossentropy",
                 "categorical_crossentropy", "sparse_categorical_crossentropy")}
    fn = getattr(loss, "fn", loss)
    kwargs = getattr(loss, "_fn_kwargs", {})
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    default = (getattr(loss, "reduction", "sum_over_batch_size") == "sum_over_batch_size"
               and all(_DEFAULT_LOSS_KWARGS.get(k, object()) == v for k, v in kwargs.items()))
    kind = builtins.get(fn) if default and callable(fn) else None
    return _LossSpec(kind or f"{name} (custom)", kind)


def synthetic_targets(kind: str | None, shape: tuple, seed: int) -> np.ndarray:
    """Deterministic targets for an output of ``shape``, drawn from ``seed``:
    binary labels for binary crossentropy, one-hot or integer classes for the
    categorical losses, standard normal values otherwise."""
    rng = np.random.default_rng(seed)
    if kind == "binary_crossentropy":
        return rng.integers(0, 2, size=shape).astype(np.float32)
    if kind == "categorical_crossentropy":
        return np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], size=shape[:-1])]
    if kind == "sparse_categorical_crossentropy":
        return rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int32)
    return rng.standard_normal(size=shape).astype(np.float32)


def _fitted_targets(targets: np.ndarray, out_shape: tuple, spec: _LossSpec,
                    label: str = "targets") -> np.ndarray:
    """Targets shaped as the loss takes them for an output of ``out_shape``."""
    shape = targets.shape
    if spec.kind == "sparse_categorical_crossentropy":
        if shape == out_shape[:-1] + (1,):
            targets = targets[..., 0]
        if targets.shape == out_shape[:-1]:
            return targets
        expected = out_shape[:-1]
    elif spec.kind is not None:
        if len(out_shape) > 1 and out_shape[-1] == 1 and shape == out_shape[:-1]:
            targets = targets[..., None]
        if targets.shape == out_shape:
            return targets.astype(np.float32)
        expected = out_shape
    else:  # a custom loss takes what it takes: check sequences (and steps)
        if shape[:2] == out_shape[:2] or (len(out_shape) == 2 and shape[:1] == out_shape[:1]):
            return targets
        expected = out_shape[:2]
    raise InputError(f"{label} of shape {shape} do not fit the model's output of shape "
                     f"{out_shape} under {spec.name}: give targets of shape {expected}")


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


def _checked_inputs(inputs, source: str) -> np.ndarray:
    inputs = np.asarray(inputs)
    if inputs.ndim not in (2, 3):
        raise InputError(f"{source}: inputs of shape {inputs.shape}: expected padded sequences "
                         "of shape (sequences, steps) or (sequences, steps, features)")
    if inputs.shape[0] == 0 or inputs.shape[1] == 0:
        raise InputError(f"{source} holds no step (shape {inputs.shape}): give padded data")
    if inputs.dtype.kind not in "biuf":
        raise InputError(f"{source}: inputs are {inputs.dtype}, not numbers: map tokens to ids "
                         "first with 'maskcli pad --vocab'")
    return inputs


def _checked_targets(targets, inputs, label: str = "targets") -> np.ndarray:
    targets = np.asarray(targets)
    if targets.dtype.kind not in "biuf":
        raise InputError(f"{label} are {targets.dtype}, not numbers: give numeric targets")
    if targets.ndim == 0 or targets.shape[0] != inputs.shape[0]:
        raise InputError(f"{label} of shape {targets.shape} do not fit the {inputs.shape[0]} "
                         "input sequences: give one target row per sequence")
    return targets


def _reference_mask(inputs, mask, targets, target_pad, pad_value, source,
                    targets_label: str = "targets") -> np.ndarray:
    if target_pad is not None:
        if mask is not None:
            raise UsageError("--mask and --target-pad both define the padding: give one of them")
        if targets is None:
            raise UsageError("--target-pad needs the targets: give --targets FILE")
        if targets.shape[:2] != inputs.shape[:2]:
            raise InputError(f"{targets_label} of shape {targets.shape} do not fit the inputs' "
                             f"{inputs.shape[:2]} (sequences, steps): give per-step targets")
        reference = target_padding_mask(targets, target_pad, targets_label)
        what = f"no target equals --target-pad {target_pad}"
    elif mask is not None:
        reference = step_mask(np.asarray(mask))
        if reference.shape != inputs.shape[:2]:
            raise InputError(f"the mask of shape {np.shape(mask)} does not fit the inputs' "
                             f"{inputs.shape[:2]}: give a (sequences, steps) mask, True = real")
        if reference.dtype != bool:
            if not np.isin(reference, (0, 1)).all():
                raise InputError("the mask holds values other than 0/1 or True/False: "
                                 "give a boolean mask with True = real step")
            reference = reference.astype(bool)
        what = "the mask marks every step real"
    else:
        reference = step_mask(compute_mask(inputs, default_mode(inputs), pad_value))
        what = f"no step equals the pad value {_show(pad_value)}"
    if reference.all():
        raise InputError(f"{source}: no padded step to audit ({what}): give padded data, "
                         "or the right --mask-value / --mask / --target-pad")
    return reference


class _eager:
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


def _run(model, inputs) -> np.ndarray:
    return np.asarray(model(inputs, training=False))


def _max_diff(a, b) -> float:
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float("inf") if np.isnan(diff).any() else float(diff.max(initial=0.0))


def _metric_value(result):
    value = np.asarray(result, dtype=np.float64)
    return float(value) if value.ndim == 0 else value.tolist()


def _close(a, b, rtol: float) -> bool:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-6)


def _equal(values: np.ndarray, pad) -> np.ndarray:
    pad = np.asarray(pad, dtype=float)
    values = values.astype(float)
    return np.where(np.isnan(pad), np.isnan(values), values == pad)


def _finite_steps(y: np.ndarray) -> np.ndarray:
    finite = np.isfinite(y.astype(float))
    return finite.reshape(finite.shape[:2] + (-1,)).all(axis=-1)


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _show(value) -> str:
    if value is None:
        return "n/a"
    if np.ndim(value) == 1 and np.all(np.asarray(value) == np.ravel(value)[0]):
        value = np.ravel(value)[0]  # a pad step of equal features reads as one value
    if np.ndim(value) == 0:
        return f"{float(value):.6g}"
    return "[" + ", ".join(f"{float(v):g}" for v in np.ravel(value)) + "]"

