"""Small numeric helpers shared by the audit's modules."""

from __future__ import annotations

import math

import numpy as np


def close(a, b, rtol: float) -> bool:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-6)


def equal(values: np.ndarray, pad) -> np.ndarray:
    pad = np.asarray(pad, dtype=float)
    values = values.astype(float)
    return np.where(np.isnan(pad), np.isnan(values), values == pad)


def finite_steps(y: np.ndarray) -> np.ndarray:
    finite = np.isfinite(y.astype(float))
    return finite.reshape(finite.shape[:2] + (-1,)).all(axis=-1)


def max_diff(a, b) -> float:
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float("inf") if np.isnan(diff).any() else float(diff.max(initial=0.0))


def metric_value(result):
    value = np.asarray(result, dtype=np.float64)
    return float(value) if value.ndim == 0 else value.tolist()


def finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def show(value) -> str:
    if value is None:
        return "n/a"
    if np.ndim(value) == 1 and np.all(np.asarray(value) == np.ravel(value)[0]):
        value = np.ravel(value)[0]  # a pad step of equal features reads as one value
    if np.ndim(value) == 0:
        return f"{float(value):.6g}"
    return "[" + ", ".join(f"{float(v):g}" for v in np.ravel(value)) + "]"
