"""The batch a trace runs on: the user's data, checked to fit the model, or a
small seeded synthetic padded batch shaped for each model input."""

from __future__ import annotations

import math

import numpy as np

from maskcli.core.errors import InputError, ModelError, where
from maskcli.core.masks import compute_mask, default_mode
from maskcli.keras.feed import is_mask_input, place_of, shape_mismatch
from maskcli.keras.models import ARCHS
from maskcli.keras.trace.graph import all_layers, is_int_dtype, keras_module, model_graph, reached

# The synthetic batch used when no INPUT is given: three sequences of 6, 4
# and 2 real steps (post-padded), ids below 10 or 4 features per step.
SYNTHETIC_STEPS = 6
SYNTHETIC_FEATURES = 4
SYNTHETIC_VOCAB = 10



def arch_inputs(arch: str, pad_value=0.0, seed: int = 0) -> np.ndarray:
    """The synthetic batch for built-in model ``arch``: ids, or features padded with ``pad_value``."""
    if ARCHS[arch][1] == 2:
        return padded_batch((), integer=True, seed=seed)
    return padded_batch((SYNTHETIC_FEATURES,), integer=False, pad_value=pad_value, seed=seed)


def model_inputs(model) -> list:
    """The model's symbolic inputs (KerasTensors with ``shape``, ``dtype``, ``name``)."""
    return list(model_graph(model).inputs)


def padded_batch(step_shape: tuple = (), *, integer: bool = True, steps: int = SYNTHETIC_STEPS,
                 vocab: int = SYNTHETIC_VOCAB, pad_value=0, seed: int = 0) -> np.ndarray:
    """A small seeded post-padded batch: 3 sequences of ``steps``, 2/3 and 1/3
    of it real steps. Ids are drawn from 1..vocab-1 and padded with 0 (what
    ``Embedding(mask_zero=True)`` masks); features are normal draws, padded
    with ``pad_value`` at every feature (what ``Masking`` masks)."""
    rng = np.random.default_rng(seed)
    lengths = synthetic_lengths(steps)
    shape = (len(lengths), steps, *step_shape)
    if integer:
        batch = rng.integers(1, max(vocab, 2), size=shape).astype("int32")
        pad = 0
    else:
        batch = rng.standard_normal(shape).astype("float32")
        pad = pad_value
    for row, length in enumerate(lengths):
        batch[row, length:] = pad
    return batch


def synthetic_lengths(steps: int = SYNTHETIC_STEPS) -> list[int]:
    """The real steps of the synthetic batch's three sequences (post-padded)."""
    return [steps, math.ceil(2 * steps / 3), max(1, steps // 3)]


def synthetic_mask(batch: np.ndarray) -> np.ndarray:
    """The mask (True = real step) of a batch made by ``padded_batch``."""
    steps = batch.shape[1]
    return np.arange(steps) < np.array(synthetic_lengths(steps))[:, None]


def synthetic_inputs(model, seed: int = 0, mask_input: str | None = None) -> list[np.ndarray]:
    """One padded batch per model input, shaped and typed to fit it: token ids
    below the smallest ``input_dim`` of the Embedding it feeds, or features
    padded with the ``mask_value`` of the Masking layer it feeds; a mask input
    (``padding_mask``) holds 1 at the real steps of the others."""
    embedding = keras_module().layers.Embedding
    graph = model_graph(model)
    batches = []
    for ref in graph.inputs:
        shape = tuple(ref.shape)
        if len(shape) < 2:
            raise ModelError(f"the model's input '{ref.name}' has shape {shape}, with no time "
                             "axis: trace-mask follows masks over sequences (batch, steps, ...)")
        steps = shape[1] or SYNTHETIC_STEPS
        step_shape = tuple(d or SYNTHETIC_FEATURES for d in shape[2:])
        embeddings = reached(graph, ref, embedding) or all_layers(model, embedding)
        integer = is_int_dtype(ref.dtype) or (len(shape) == 2 and bool(embeddings))
        if is_mask_input(ref.name, mask_input) and len(shape) == 2:
            # every batch is padded after the same lengths: 1 where the ids are real
            real = padded_batch(step_shape, integer=True, steps=steps, seed=seed) != 0
            batch = real.astype(str(ref.dtype) if integer else "bool")
        elif integer:
            vocab = min([SYNTHETIC_VOCAB] + [layer.input_dim for layer in embeddings])
            batch = padded_batch(step_shape, integer=True, steps=steps, vocab=vocab, seed=seed)
        else:
            pad_value = masking_value(model, ref)
            batch = padded_batch(step_shape, integer=False, steps=steps,
                                 pad_value=0.0 if pad_value is None else pad_value, seed=seed)
        batches.append(batch)
    return batches


def masking_value(model, ref=None):
    """The ``mask_value`` of the Masking layer fed by input ``ref`` (else of
    any Masking layer in the model), or None when there is none."""
    masking = keras_module().layers.Masking
    graph = model_graph(model)
    found = reached(graph, ref if ref is not None else graph.inputs[0], masking)
    found = found or all_layers(model, masking)
    return float(found[0].mask_value) if found else None


def check_fits(model, inputs: np.ndarray, source: str) -> None:
    """Raise InputError, naming the place and the fix, when ``inputs`` cannot
    feed the model: several model inputs, another rank or step size, token
    ids that are not integers or lie outside an Embedding's range."""
    graph = model_graph(model)
    refs = graph.inputs
    if len(refs) != 1:
        names = ", ".join(repr(ref.name) for ref in refs)
        raise InputError(f"{source}: the model takes {len(refs)} inputs ({names}) but INPUT holds "
                         "one array: give an npz whose arrays are named after them, or "
                         "--input NAME=FILE for each; or omit INPUT to trace on a synthetic batch")
    _check_input(graph, refs[0], inputs, source)


def check_named_fits(model, arrays: dict[str, np.ndarray], source: str) -> None:
    """``check_fits`` for a model with named inputs, each fed ``arrays[name]``."""
    graph = model_graph(model)
    tensors = graph._inputs_struct if isinstance(graph._inputs_struct, dict) else {
        ref.name: ref for ref in graph.inputs}
    for name, array in arrays.items():
        _check_input(graph, tensors[name], array, f"{place_of(source, name)}, input '{name}'")


def _check_input(graph, ref, inputs: np.ndarray, source: str) -> None:
    wanted = shape_mismatch(inputs, tuple(ref.shape))
    if wanted:
        raise InputError(f"{source}: data of shape {inputs.shape} does not fit the model's input "
                         f"'{ref.name}' of shape {wanted}: give data of that shape, or omit INPUT "
                         "to trace on a synthetic batch")
    if inputs.dtype.kind not in "biuf":
        raise InputError(f"{source}: the data is {inputs.dtype}, not numbers: "
                         "map tokens to ids first with 'maskcli pad --vocab'")
    for layer in reached(graph, ref, keras_module().layers.Embedding):
        if inputs.dtype.kind == "f" and not np.all(np.isfinite(inputs) & (inputs == np.round(inputs))):
            raise InputError(f"{source}: Embedding '{layer.name}' takes integer token ids, the data "
                             f"holds fractional or non-finite values: give integer ids")
        bad = np.argwhere((inputs < 0) | (inputs >= layer.input_dim))
        if bad.size:
            seq, step = (int(i) for i in bad[0][:2])
            raise InputError(
                f"{where(source, sequence=seq, step=step)}: id {inputs[seq, step]} is outside "
                f"Embedding '{layer.name}' (input_dim {layer.input_dim}): ids must lie in "
                f"0..{layer.input_dim - 1}; map tokens with the vocabulary the model was built with")


def has_padding(inputs: np.ndarray, mask: np.ndarray | None = None, pad_value=0) -> bool:
    """Whether the batch has a padded step: by its own ``mask`` when it has
    one, else by the mask Keras would build with ``pad_value``."""
    if inputs.ndim < 2:
        return False  # no time axis, so nothing to pad
    if mask is None:
        mask = compute_mask(inputs, default_mode(inputs), pad_value)
    return not bool(np.all(mask))
