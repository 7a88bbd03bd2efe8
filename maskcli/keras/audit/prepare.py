"""The model an audit runs: a built-in one, or the user's, compiled, with the
one output to audit when it has several."""

from __future__ import annotations

import numpy as np

from maskcli.core.errors import UsageError, option
from maskcli.keras import models
from maskcli.keras.audit.batch import SYNTHETIC_CLASSES
from maskcli.keras.audit.reference import LOSSES

# The metric compiled into a built-in model, so that metric-parity has one to check.
DEFAULT_METRIC = {"mse": "mae", "mae": "mse", "binary_crossentropy": "binary_accuracy",
                  "categorical_crossentropy": "categorical_accuracy",
                  "sparse_categorical_crossentropy": "sparse_categorical_accuracy"}


def built_in_model(arch, loss, units, seed, inputs, targets, mask, pad_value, verbose):
    """Built-in model ``arch`` for ``inputs``, compiled with ``loss``, and its label."""
    _check_loss_name(loss)
    name = arch or models.default_arch(inputs)
    loss = loss or "mse"
    out_units, activation = _output_layer(loss, targets, mask)
    model = models.build_arch(name, inputs, units=8 if units is None else units, seed=seed,
                              pad_value=pad_value, out_units=out_units,
                              out_activation=activation, verbose=verbose)
    model.compile(optimizer="adam", loss=loss, metrics=[DEFAULT_METRIC[loss]])
    return model, f"--arch {name}"


def user_model(model, loss, units, output=None):
    """The user's ``model`` (or, with several outputs, a model over the same
    layers and weights with the one to audit), compiled, and its label."""
    _check_loss_name(loss)
    if units is not None:
        raise UsageError(f"{option('--units')} applies to the built-in {option('--arch')} models "
                         "only: drop it")
    label = f"model '{model.name}'"
    model, label = select_output(model, output, label)
    if getattr(model, "compiled", False) and getattr(model, "loss", None) is not None:
        if loss is not None:
            raise UsageError(f"{label} is compiled with its own loss, which is the one audited: "
                             f"drop {option('--loss')}, or save the model uncompiled")
    else:
        model.compile(optimizer="adam", loss=loss or "mse")
    return model, label


def select_output(model, output: str | None, label: str):
    """``model`` when it has one output; else a model over the same layers with
    output ``output``, by default the only one with a compiled loss, compiled
    with that loss (and that output's metrics)."""
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict):
        tensors = dict(struct)
    elif isinstance(struct, (list, tuple)):
        names = list(getattr(model, "output_names", None) or [])
        if len(names) != len(struct):
            names = [tensor.name for tensor in struct]
        tensors = dict(zip(names, struct))
    else:
        if output is not None and output != getattr(struct, "name", output):
            raise UsageError(f"--output {output}: {label} has a single output: drop --output")
        return model, label
    names = list(tensors)
    losses = _losses_by_output(model, names)
    if output is None:
        candidates = [name for name in names if losses.get(name) is not None] or names
        if len(candidates) != 1:
            raise UsageError(f"{label} has {len(names)} outputs ({', '.join(names)}): choose the "
                             "one to audit with --output NAME")
        output = candidates[0]
    if output not in tensors:
        raise UsageError(f"--output {output}: {label} has no output of that name (its outputs: "
                         f"{', '.join(names)}): name one of those")
    keras = models.import_keras()
    chosen = keras.Model(model.input, tensors[output], name=model.name)
    if losses.get(output) is not None:
        metrics = _metrics_of(model, output, names)
        chosen.compile(optimizer="adam", loss=losses[output], metrics=metrics or None)
    return chosen, f"{label}, output '{output}'"


def _losses_by_output(model, names: list[str]) -> dict:
    """The compiled loss of each output: from a dict or a list of losses, or
    the one loss Keras applies to every output."""
    if not getattr(model, "compiled", False) or getattr(model, "loss", None) is None:
        return {}
    loss = model.loss
    if isinstance(loss, dict):
        return dict(loss)
    if isinstance(loss, (list, tuple)):
        return dict(zip(names, loss))
    return dict.fromkeys(names, loss)


def _metrics_of(model, output: str, names: list[str]) -> list:
    config = getattr(getattr(model, "_compile_config", None), "config", {}) or {}
    metrics = config.get("metrics")
    if isinstance(metrics, dict):
        found = metrics.get(output) or []
    elif isinstance(metrics, (list, tuple)) and len(metrics) == len(names) and all(
            isinstance(item, (list, tuple)) or item is None for item in metrics):
        found = metrics[names.index(output)] or []
    else:
        found = metrics or []
    return list(found) if isinstance(found, (list, tuple)) else [found]


def _check_loss_name(loss) -> None:
    if loss is not None and loss not in LOSSES:
        raise UsageError(f"unknown --loss {loss!r}: use one of {', '.join(LOSSES)}")


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
