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
# Keyword arguments of Keras' built-in loss functions under which the numpy
# reference below is exact.
_DEFAULT_LOSS_KWARGS = {"from_logits": False, "label_smoothing": 0.0, "axis": -1,
                        "ignore_class": None}


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


@dataclass
class LossSpec:
    name: str         # what the report calls it
    kind: str | None  # one of LOSSES when the numpy reference applies, else None


def loss_spec(loss) -> LossSpec:
    """Recognise the compiled loss: one of Keras' built-ins with default
    settings (the numpy reference applies), or a custom one."""
    keras = models.import_keras()
    if isinstance(loss, str):
        return LossSpec(loss, _ALIASES.get(loss))
    builtins = {getattr(keras.losses, name): _ALIASES[name] for name in
                ("mean_squared_error", "mean_absolute_error", "binary_crossentropy",
                 "categorical_crossentropy", "sparse_categorical_crossentropy")}
    fn = getattr(loss, "fn", loss)
    kwargs = getattr(loss, "_fn_kwargs", {})
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    default = (getattr(loss, "reduction", "sum_over_batch_size") == "sum_over_batch_size"
               and all(_DEFAULT_LOSS_KWARGS.get(k, object()) == v for k, v in kwargs.items()))
    kind = builtins.get(fn) if default and callable(fn) else None
    return LossSpec(kind or f"{name} (custom)", kind)
