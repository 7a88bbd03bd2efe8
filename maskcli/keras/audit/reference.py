"""The numpy reference losses: Keras' built-in losses, per step, in float64,
and how closely a float32 mean can match them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from maskcli.keras import models

LOSSES = ("mse", "mae", "binary_crossentropy", "categorical_crossentropy",
          "sparse_categorical_crossentropy")
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
# The keyword arguments of Keras' built-in loss functions that the numpy
# reference below knows, with their defaults.
_DEFAULT_LOSS_KWARGS = {"from_logits": False, "label_smoothing": 0.0, "axis": -1,
                        "ignore_class": None}


def loss_rtol(count: int) -> float:
    """Relative tolerance for a float32 mean of ``count`` values, compared with
    a float64 reference: rounding grows like sqrt(count) ulps."""
    return max(1e-5, 4 * _EPS32 * math.sqrt(max(count, 1)))


def per_step_loss(kind: str, y_true: np.ndarray, y_pred: np.ndarray, *, from_logits: bool = False,
                  label_smoothing: float = 0.0, ignore_class: int | None = None) -> np.ndarray:
    """Keras' built-in loss ``kind`` at every step, in float64 numpy.

    ``y_pred`` is (..., classes); the result has its shape without the last axis.
    Probabilities are clipped to [eps, 1 - eps] as Keras does; logits
    (``from_logits``) go through a float64 log-softmax (or log-sigmoid).
    ``label_smoothing`` smooths the labels as Keras does: y (1 - ls) + ls / classes
    for categorical, y (1 - ls) + ls / 2 for binary crossentropy. At a step
    whose label is ``ignore_class`` the loss is 0, as in Keras.
    """
    y_pred = np.asarray(y_pred, dtype=np.float64)
    eps = 1e-7  # keras.backend.epsilon()
    if kind == "sparse_categorical_crossentropy":
        labels = np.asarray(y_true).astype(np.int64)
        ignored = labels == ignore_class if ignore_class is not None else np.zeros(labels.shape, bool)
        labels = np.where(ignored, 0, labels)
        if from_logits:
            log_p = _log_softmax(y_pred)
        else:
            p = np.clip(y_pred, eps, 1 - eps)
            log_p = np.log(p / p.sum(axis=-1, keepdims=True))  # log_softmax of log(p), as Keras
        loss = -np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
        return np.where(ignored, 0.0, loss)
    y_true = np.asarray(y_true, dtype=np.float64)
    if kind == "mse":
        return np.mean((y_pred - y_true) ** 2, axis=-1)
    if kind == "mae":
        return np.mean(np.abs(y_pred - y_true), axis=-1)
    if kind == "binary_crossentropy":
        y_true = y_true * (1 - label_smoothing) + 0.5 * label_smoothing
        if from_logits:  # tf.nn.sigmoid_cross_entropy_with_logits
            x = y_pred
            return np.mean(np.maximum(x, 0) - x * y_true + np.log1p(np.exp(-np.abs(x))), axis=-1)
        p = np.clip(y_pred, eps, 1 - eps)
        return np.mean(-(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)), axis=-1)
    if kind == "categorical_crossentropy":
        y_true = y_true * (1 - label_smoothing) + label_smoothing / y_true.shape[-1]
        if from_logits:
            return -np.sum(y_true * _log_softmax(y_pred), axis=-1)
        p = np.clip(y_pred / y_pred.sum(axis=-1, keepdims=True), eps, 1 - eps)
        return -np.sum(y_true * np.log(p), axis=-1)
    raise ValueError(f"no numpy reference for loss {kind!r}")


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def spec_per_step(spec: LossSpec, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The loss of ``spec`` at every step, with its compiled settings."""
    return per_step_loss(spec.kind, y_true, y_pred, from_logits=spec.from_logits,
                         label_smoothing=spec.label_smoothing, ignore_class=spec.ignore_class)


def reduced(spec: LossSpec, losses: np.ndarray, weights: np.ndarray,
            counted: np.ndarray | None = None) -> float | None:
    """What a correctly masked loss reduces ``losses`` to, with per-step
    ``weights`` that are 0 at every step it leaves out (padding, ignore_class):
    the weighted mean sum(w * loss) / sum(w), or with reduction "sum" the
    weighted sum. ``counted`` (True at the steps a masked loss counts: real,
    label not ignored) gives Keras' default reduction its divisor: it divides
    the weighted sum by the number of those steps, whatever their weights, as
    the same loss on the real steps alone does. None when no step counts."""
    if counted is not None and spec.reduction == "sum_over_batch_size":
        counted = np.asarray(counted, dtype=bool)  # indexing: NaN at a padded step stays out
        count = int(counted.sum())
        return float((weights[counted] * losses[counted]).sum() / count) if count else None
    if np.all(weights == 1):
        return float(losses.sum() if spec.reduction == "sum" else losses.mean())
    if np.isin(weights, (0, 1)).all():  # a mask: the mean (or sum) over the steps it keeps
        kept = losses[weights.astype(bool)]
        if spec.reduction == "sum":
            return float(kept.sum())
        return float(kept.mean()) if kept.size else None
    total = float((weights * losses).sum())
    if spec.reduction == "sum":
        return total
    weight = float(weights.sum())
    return total / weight if weight else None


@dataclass
class LossSpec:
    name: str         # what the report calls it
    kind: str | None  # one of LOSSES when the numpy reference applies, else None
    from_logits: bool = False
    label_smoothing: float = 0.0
    ignore_class: int | None = None
    reduction: str | None = "sum_over_batch_size"


# The reductions of keras.losses.Loss; "mean" is "sum_over_batch_size" by another name.
REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight", "sum", "none", None)


def loss_spec(loss) -> LossSpec:
    """Recognise the compiled loss: one of Keras' built-ins (the numpy
    reference applies, with its from_logits, label_smoothing, ignore_class and
    reduction), or a custom one."""
    keras = models.import_keras()
    if isinstance(loss, str):
        return LossSpec(loss, _ALIASES.get(loss))
    builtins = {getattr(keras.losses, name): _ALIASES[name] for name in
                ("mean_squared_error", "mean_absolute_error", "binary_crossentropy",
                 "categorical_crossentropy", "sparse_categorical_crossentropy")}
    fn = getattr(loss, "fn", loss)
    kwargs = dict(getattr(loss, "_fn_kwargs", {}))
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    reduction = getattr(loss, "reduction", "sum_over_batch_size")
    kind = builtins.get(fn) if callable(fn) else None
    known = (reduction in REDUCTIONS and kwargs.get("axis", -1) == -1
             and set(kwargs) <= set(_DEFAULT_LOSS_KWARGS))
    if kind is None or not known:
        return LossSpec(f"{name} (custom)", None)
    settings = {key: value for key, value in kwargs.items()
                if key != "axis" and value != _DEFAULT_LOSS_KWARGS[key]}
    if reduction != "sum_over_batch_size":
        settings["reduction"] = reduction
    shown = ", ".join(f"{key}={value!r}" for key, value in settings.items())
    return LossSpec(f"{kind} ({shown})" if shown else kind, kind,
                    from_logits=bool(kwargs.get("from_logits", False)),
                    label_smoothing=float(kwargs.get("label_smoothing", 0.0)),
                    ignore_class=kwargs.get("ignore_class"),
                    reduction="sum_over_batch_size" if reduction == "mean" else reduction)
