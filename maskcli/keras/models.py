"""Keras models: the lazy TensorFlow import, safe loading of a user's model,
user code imports, and the small built-in architectures.

This is the only module that imports TensorFlow/Keras, and only inside
functions: ``maskcli --help``, ``pad`` and ``inspect-mask`` never load it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import re
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np

from maskcli.core.errors import ModelError, UsageError
from maskcli.core.limits import too_big
from maskcli.formats.model_files import check_model_file
from maskcli.keras import archs

# name -> (what it is, input rank it takes: 2 = token ids, 3 = feature vectors)
ARCHS = {
    "embedding-lstm": ("Embedding(mask_zero) -> LSTM(return_sequences) -> Dense", 2),
    "embedding-gru": ("Embedding(mask_zero) -> GRU(return_sequences) -> Dense", 2),
    "embedding-dense": ("Embedding(mask_zero) -> Dense(relu) -> Dense", 2),
    "embedding-conv": ("Embedding(mask_zero) -> Conv1D -> Dense; Conv1D drops the mask: "
                       "a deliberate leak, for demonstration", 2),
    "masking-lstm": ("Masking(pad value) -> LSTM(return_sequences) -> Dense", 3),
    **{name: (text, 2) for name, text in archs.TRANSFORMERS.items()},
}


def default_arch(inputs: np.ndarray) -> str:
    return "masking-lstm" if inputs.ndim >= 3 else "embedding-lstm"


def import_keras(verbose: bool = False):
    """Import TensorFlow and Keras once, silencing their log noise unless ``verbose``."""
    if "keras" not in sys.modules or "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # run-to-run identical sums
        if verbose:
            import tensorflow  # noqa: F401  (the backend Keras runs on)
        else:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            # TensorFlow's C++ side logs to fd 2 before any setting applies
            # ("All log messages before absl::InitializeLog()..."): mute the fd.
            with _stderr_fd_silenced():
                import tensorflow  # noqa: F401
    import keras

    if not verbose:
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module="keras")
        warnings.filterwarnings("ignore", module="tensorflow")
    return keras


def versions() -> dict:
    """Versions of keras and tensorflow (imports them)."""
    keras = import_keras()
    import tensorflow as tf

    return {"keras": keras.__version__, "tensorflow": tf.__version__}


def import_user_code(paths: list[str] | tuple[str, ...]) -> None:
    """Import each Python file or module named in ``paths``.

    This runs the user's own code, at the user's explicit request (``--import``),
    so that custom layers, losses and metrics are registered before loading.
    """
    for spec_text in paths:
        path = Path(spec_text)
        try:
            if path.suffix == ".py" or path.exists():
                if not path.is_file():
                    raise ModelError(f"--import {spec_text}: no such file: check the path")
                name = f"maskcli_user_{path.stem}"
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(spec_text)
        except ModelError:
            raise
        except ModuleNotFoundError as exc:
            raise ModelError(f"--import {spec_text}: module not found ({exc.name}): "
                             "give a .py file path or an importable module name") from None
        except Exception as exc:  # the user's code may raise anything
            raise ModelError(f"--import {spec_text}: importing it failed: "
                             f"{type(exc).__name__}: {exc}: fix the module") from None
        except SystemExit as exc:
            raise ModelError(f"--import {spec_text}: importing it called sys.exit({exc.code}): "
                             "fix the module, e.g. guard its script part with "
                             "if __name__ == '__main__'") from None


def load_model(path: str, unsafe: bool = False, verbose: bool = False):
    """Load a saved ``.keras`` model with Keras' safe mode.

    Safe mode refuses a model whose loading would run deserialized code (a
    Lambda layer's bytecode); ``unsafe=True`` loads it anyway, for trusted files.
    Before Keras reads a byte, the file is bounded (``check_model_file``): a
    file that would not fit in memory, or reaches outside itself, is refused.
    """
    p = Path(path)
    check_model_file(path)
    keras = import_keras(verbose)
    if p.suffix == ".keras" and _names_keras_hub(p):
        # KerasHub registers its layers and models when imported; it is a
        # test dependency of maskcli, not a runtime one.
        if importlib.util.find_spec("keras_hub") is None:
            raise ModelError(f"--model {path}: it is built from KerasHub classes and keras_hub is "
                             "not installed: pip install keras-hub")
        importlib.import_module("keras_hub")
    try:
        model = keras.saving.load_model(p, safe_mode=not unsafe)
        model.saved_compile_config = _saved_compile_config(p)  # KerasHub tasks recompile on load
        return model
    except Exception as exc:  # Keras raises many kinds for a bad file
        text, line = str(exc), first_line(exc, "unknown error")
        if "safe_mode" in text or "unsafe" in text.lower() and "deserializ" in text.lower():
            raise ModelError(
                f"--model {path}: refused: loading it would run code stored in the file "
                "(e.g. a Lambda layer's bytecode); if you trust the file, pass --unsafe") from None
        if "Could not locate" in text or "Unknown layer" in text or "custom_objects" in text:
            # Keras names the missing object deep inside a long message
            missing = re.search(r"Could not locate (\w+) '([^']+)'", text)
            what = f"{missing[1]} '{missing[2]}'" if missing else line
            raise ModelError(
                f"--model {path}: it uses a custom object Keras does not know ({what}): "
                "if it is your own code, pass --import FILE.py with the code that registers it "
                "(keras.saving.register_keras_serializable)") from None
        raise ModelError(f"--model {path}: not a loadable Keras model ({line}): "
                         "give a file saved with model.save('model.keras')") from None


def _saved_compile_config(path: Path) -> dict | None:
    """The compile_config in a .keras file, as it was saved."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json")).get("compile_config")
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return None


def _names_keras_hub(path: Path) -> bool:
    """Whether a .keras file's config names KerasHub classes."""
    try:
        with zipfile.ZipFile(path) as archive:
            return b'"keras_hub' in archive.read("config.json")
    except (KeyError, OSError, zipfile.BadZipFile):
        return False  # Keras itself says what is wrong with the file


def build_arch(name: str, inputs: np.ndarray, *, units: int = 8, seed: int = 0,
               pad_value=0, out_units: int = 1, out_activation: str | None = None,
               verbose: bool = False):
    """Build built-in model ``name`` for ``inputs``, with weights from ``seed``.

    The time axis is left free (shape ``(None, ...)``) so the same model can run
    a sequence alone or with extra padding. Embedding models take ids below
    ``max(inputs) + 1``; ``pad_value`` sets the Masking layer's mask_value.
    """
    if name not in ARCHS:
        raise UsageError(f"unknown --arch {name!r}: use one of {', '.join(ARCHS)}")
    rank = ARCHS[name][1]
    if inputs.ndim != rank:
        kind = "2-D token ids" if rank == 2 else "3-D feature vectors"
        other = "masking-lstm" if rank == 2 else "embedding-lstm"
        raise UsageError(f"--arch {name} takes {kind}, the data has shape {inputs.shape}: "
                         f"use --arch {other}")
    if units < 1:
        raise UsageError(f"--units must be at least 1, got {units}")
    if rank == 2:
        if inputs.dtype.kind not in "iu":
            raise UsageError(f"--arch {name} needs integer token ids, the data is {inputs.dtype}: "
                             "map tokens with 'maskcli pad --vocab', or use --arch masking-lstm")
        if inputs.size and inputs.min() < 0:
            raise UsageError(f"--arch {name} needs token ids >= 0, the data has {inputs.min()}")
        width = max(int(inputs.max()) + 1, 2) if inputs.size else 2  # the vocabulary
    else:
        width = inputs.shape[-1]
    if name in archs.TRANSFORMERS:
        weights = archs.weights_bytes(width, inputs.shape[1], units, out_units)
    else:
        weights = _weights_bytes(rank, width, units, out_units)
    over = too_big(weights)
    if over:
        raise UsageError(f"--arch {name} with --units {units}: its weights would take {over}: "
                         "give fewer --units" + (", or map tokens to small ids with "
                                                 "'maskcli pad --vocab'" if rank == 2 else ""))
    keras = import_keras(verbose)
    keras.utils.set_random_seed(seed)
    if name in archs.TRANSFORMERS:
        return archs.build_transformer(keras, name, width, inputs.shape[1], units, out_units,
                                       out_activation)
    layers = keras.layers
    if rank == 2:
        x_in = keras.Input(shape=(None,), dtype="int32", name="tokens")
        x = layers.Embedding(width, units, mask_zero=True, name="embedding")(x_in)
    else:
        x_in = keras.Input(shape=(None, inputs.shape[-1]), name="features")
        x = layers.Masking(mask_value=float(pad_value), name="masking")(x_in)
    if name in ("embedding-lstm", "masking-lstm"):
        x = layers.LSTM(units, return_sequences=True, name="lstm")(x)
    elif name == "embedding-gru":
        x = layers.GRU(units, return_sequences=True, name="gru")(x)
    elif name == "embedding-dense":
        x = layers.Dense(units, activation="relu", name="hidden")(x)
    elif name == "embedding-conv":
        x = layers.Conv1D(units, 3, padding="same", name="conv1d")(x)
    out = layers.Dense(out_units, activation=out_activation, name="output")(x)
    return keras.Model(x_in, out, name=name)


def _weights_bytes(rank: int, width: int, units: int, out_units: int) -> int:
    """An upper bound of the bytes a built-in model's float32 weights take
    while Keras builds them (each initial value is made, then copied in).
    ``width`` is the vocabulary (rank 2) or the features per step (rank 3)."""
    embedding = width * units if rank == 2 else 0
    step_width = units if rank == 2 else width
    recurrent = 4 * units * (step_width + units + 1)  # 4 gates: kernel, recurrent kernel, bias
    return 2 * 4 * (embedding + recurrent + units * out_units + out_units)


def keras_mask(tensor):
    """The Keras mask riding on ``tensor``, or None.

    Keras 3 keeps it in a private attribute (or, for tensors that cannot hold
    one, a side table); its backend helper is the one reader that knows both.
    """
    from keras.src.backend import get_keras_mask  # not public API; stable since Keras 3.0

    return get_keras_mask(tensor)


@contextlib.contextmanager
def full_float32():
    """Run with full float32 matmuls: GPUs since Ampere otherwise use TF32
    (about 3 significant digits), which would blur comparisons at float32
    precision. The previous setting is restored afterwards."""
    import tensorflow as tf

    enabled = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    try:
        yield
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(enabled)


def output_mask(tensor) -> np.ndarray | None:
    """The Keras mask riding on ``tensor`` (True = real step), as numpy, or None."""
    mask = keras_mask(tensor)
    return None if mask is None else np.asarray(mask).astype(bool)


def compiled_loss(model, y, y_pred, mask: np.ndarray | None = None,
                  sample_weight: np.ndarray | None = None) -> float:
    """The model's compiled loss (plus its regularization losses) on ``y_pred``.

    ``mask`` is attached to ``y_pred`` as Keras' own mask, so the loss treats
    it exactly as it treats the mask of the model's output; ``sample_weight``
    goes to the loss as ``evaluate`` hands it over.
    """
    keras = import_keras()
    y_pred = keras.ops.convert_to_tensor(y_pred)
    if mask is not None:
        _attach_mask(y_pred, mask)
    loss = model.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
    # reduction="none" leaves one loss per step, which evaluate() averages
    return float(np.mean(np.asarray(loss)))


def compiled_loss_gradient(model, y, y_pred, mask: np.ndarray | None,
                           sample_weight: np.ndarray | None = None) -> np.ndarray:
    """d(compiled loss) / d(y_pred), with ``mask`` attached to ``y_pred`` as Keras' mask."""
    import tensorflow as tf

    y_pred = tf.identity(y_pred)
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        if mask is not None:
            _attach_mask(y_pred, mask)
        loss = model.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight,
                                  training=False)
    return tape.gradient(loss, y_pred).numpy()


def compiled_metrics(model) -> list:
    """The metric objects given to ``compile`` (built by a first ``evaluate``)."""
    found = []
    for metric in model.metrics:
        if metric is getattr(model, "_loss_tracker", None):
            continue
        inner = getattr(metric, "metrics", None)  # compile() groups them in one container
        found.extend(inner if isinstance(inner, list) else [metric])
    return found


def weighted_metric_ids(model) -> set[int]:
    """The ids of the metrics compiled as ``weighted_metrics=``: Keras hands
    the sample weights to those only, never to plain ``metrics=``."""
    ids = set()
    for container in model.metrics:
        for group in getattr(container, "_flat_weighted_metrics", None) or []:
            members = getattr(group, "metrics", None)
            ids.update(id(m) for m in (members if isinstance(members, list) else [group])
                       if m is not None)
    return ids


def is_mask_aware_metric(metric) -> bool:
    """Whether Keras applies the output's mask to ``metric``: only mean-style
    metrics read it; confusion-matrix metrics (Precision, Recall, AUC) do not."""
    keras = import_keras()
    return isinstance(metric, (keras.metrics.MeanMetricWrapper, keras.metrics.Mean,
                               keras.metrics.Sum))


def free_length_model(model):
    """Return ``(model, reason)``: ``model`` itself when its time axis is free,
    else a copy rebuilt with a free time axis and the same weights; ``(None,
    reason)`` when that cannot be done."""
    shape = _input_shape(model)
    if shape is None or len(shape) < 2 or shape[1] is None:
        return model, None
    length = shape[1]
    try:
        config = model.get_config()
        inputs = [layer for layer in config.get("layers", [])
                  if layer.get("class_name") == "InputLayer"]
        if len(inputs) != 1:
            return None, f"the model takes a fixed length of {length} steps and is not a " \
                         "single-input functional or Sequential model that can be rebuilt"
        batch_shape = list(inputs[0]["config"]["batch_shape"])
        batch_shape[1] = None
        inputs[0]["config"]["batch_shape"] = batch_shape
        rebuilt = type(model).from_config(config)
        rebuilt.set_weights(model.get_weights())
    except Exception as exc:  # any layer may refuse a free length (Flatten -> Dense)
        return None, (f"the model takes a fixed length of {length} steps and cannot be rebuilt "
                      f"with a free length ({type(exc).__name__}: "
                      f"{first_line(exc, 'unknown error')})")
    return rebuilt, f"the model takes a fixed length of {length} steps: rebuilt with a free length"


def masking_values(model) -> list[float]:
    """The ``mask_value`` of every Masking layer in ``model``."""
    keras = import_keras()
    return [float(layer.mask_value) for layer in flat_layers(model)
            if isinstance(layer, keras.layers.Masking)]


def flat_layers(model):
    """Every layer of ``model``, nested models' layers included."""
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from flat_layers(layer)


def _input_shape(model):
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # a subclassed model has no symbolic inputs
        return None
    if not inputs or len(inputs) != 1:
        return None
    return tuple(inputs[0].shape)


def _attach_mask(tensor, mask) -> None:
    from keras.src.backend import set_keras_mask  # not public API; stable since Keras 3.0

    set_keras_mask(tensor, import_keras().ops.convert_to_tensor(np.asarray(mask, dtype=bool)))


@contextlib.contextmanager
def _stderr_fd_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# What TensorFlow wraps an op's error in: "{{function_node __wrapped__AddV2_device_/job:
# localhost/...}} Incompatible shapes ... [Op:AddV2] name:". Only the middle says anything.
_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\].*$")


def first_line(error: BaseException | str, empty: str | None = None) -> str:
    """The informative line of an error's message, at most 200 characters.

    Keras wraps a layer's error in a generic first line ("Exception
    encountered when calling ...") and terminal colour codes: the cause is
    the line below. ``empty`` (default: the exception's class name) stands in
    for a message with no line.
    """
    lines = [_TF_NOISE.sub("", re.sub(r"\x1b\[[0-9;]*m", "", line)).strip()
             for line in str(error).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception encountered")]
    if lines:
        return lines[0][:200]
    return empty if empty is not None else type(error).__name__
