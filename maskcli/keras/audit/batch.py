"""The padded batch an audit runs on: inputs, targets, and the reference
mask that says which steps are padding (True at REAL steps)."""

from __future__ import annotations

import json

import numpy as np

from maskcli.core.errors import InputError, UsageError
from maskcli.core.masks import compute_mask, default_mode, parse_value, step_mask
from maskcli.keras.audit.reference import LossSpec
from maskcli.keras.audit.values import equal, show

SYNTHETIC_CLASSES = 4    # classes of synthetic targets for the categorical losses


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
        return ~np.all(equal(targets, pad), axis=-1)
    same = equal(targets, pad)
    return ~same.reshape(same.shape[:2] + (-1,)).all(axis=-1)


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


def fitted_targets(targets: np.ndarray, out_shape: tuple, spec: LossSpec,
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


def checked_inputs(inputs, source: str) -> np.ndarray:
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


def checked_targets(targets, sequences: int, label: str = "targets") -> np.ndarray:
    targets = np.asarray(targets)
    if targets.dtype.kind not in "biuf":
        raise InputError(f"{label} are {targets.dtype}, not numbers: give numeric targets")
    if targets.ndim == 0 or targets.shape[0] != sequences:
        raise InputError(f"{label} of shape {targets.shape} do not fit the {sequences} "
                         "input sequences: give one target row per sequence")
    return targets


def boolean_mask(mask, label: str = "the mask") -> np.ndarray:
    """A given reference mask as booleans, one per step: 0/1 or True/False only."""
    reference = step_mask(np.asarray(mask))
    if reference.ndim != 2:
        raise InputError(f"{label} of shape {np.shape(mask)} is not a (sequences, steps) mask: "
                         "give one, True = real step")
    if reference.dtype != bool:
        if not np.isin(reference, (0, 1)).all():
            raise InputError(f"{label} holds values other than 0/1 or True/False: "
                             "give a boolean mask with True = real step")
        reference = reference.astype(bool)
    return reference


def reference_mask(inputs, mask, targets, target_pad, pad_value, source,
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
        reference = boolean_mask(reference)
        what = "the mask marks every step real"
    else:
        reference = step_mask(compute_mask(inputs, default_mode(inputs), pad_value))
        what = f"no step equals the pad value {show(pad_value)}"
    if reference.all():
        raise InputError(f"{source}: no padded step to audit ({what}): give padded data, "
                         "or the right --mask-value / --mask / --target-pad")
    return reference
