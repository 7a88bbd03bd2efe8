"""The synthetic packed rows a packed model runs on when no data is given,
fed to it by its input names.

The rows themselves (documents packed by ``maskcli pack``'s packer, segment
ids, positions) come from :mod:`maskcli.core.packed_synthetic`; this module
reads what the model takes: its inputs' names, shapes and dtypes, the length
of its rows, and the vocabulary of the Embedding each input feeds.
"""

from __future__ import annotations

import numpy as np

from maskcli.core.packed_diagnose import attention_mask, packed_names
from maskcli.core.packed_synthetic import (
    SYNTHETIC_STEPS,
    SYNTHETIC_VOCAB,
    FieldSpec,
    SyntheticRows,
    synthetic_rows,
)
from maskcli.keras.feed import is_mask_input, model_inputs
from maskcli.keras.trace.graph import all_layers, is_int_dtype, keras_module, model_graph, reached

SYNTHETIC_FEATURES = 4  # features per step of an input that leaves them open


def synthetic_packed(model, seed: int = 0, segment_input: str | None = None,
                     steps: int | None = None, mask_input: str | None = None):
    """Synthetic packed rows for ``model``, as ``(arrays, rows)``: one array per
    model input name, and the :class:`SyntheticRows` they hold; None when the
    model takes no segment ids (no input ``*_segment_ids``, nor
    ``segment_input``).

    Rows have the model's length, else ``steps``, else 16 steps. The segment
    ids input gets 1..k per row (0 at padding), the positions input 0.. per
    document, a padding mask input (``padding_mask``, ``mask_input``) 1 at
    real steps, a (rows, steps, steps) ``attention_mask`` input the
    block-diagonal mask of the documents; every other input holds the
    documents' own values: token ids below the ``input_dim`` of the
    Embedding it feeds (never 0, the pad id), or features."""
    spec = model_inputs(model)
    if spec is None:
        return None
    names = packed_names(spec.names, segment_input, flatten=False)
    if names is None or names.segment_ids is None:
        return None
    shapes = {item.name: tuple(item.shape) for item in spec.specs}
    dtypes = {item.name: item.dtype for item in spec.specs}
    length = _row_length(shapes, names.segment_ids) or steps or SYNTHETIC_STEPS
    roles = {name: _role(name, shapes[name], names, mask_input) for name in spec.names}
    fields = {name: _field(model, name, shapes[name], dtypes[name])
              for name, role in roles.items() if role == "field"}
    rows = synthetic_rows(length, seed=seed, fields=fields or None)
    arrays = {}
    for name in spec.names:
        role, dtype = roles[name], dtypes[name]
        if role == "field":
            arrays[name] = rows.fields[name]
        elif role == "segment_ids":
            arrays[name] = rows.segment_ids.astype(dtype)
        elif role == "positions":
            arrays[name] = rows.positions.astype(dtype)
        elif role == "padding_mask":
            arrays[name] = (rows.segment_ids > 0).astype(dtype)
        elif role == "attention_mask":
            arrays[name] = attention_mask(rows.segment_ids, causal=False).astype(dtype)
        else:  # no time axis: one value per row
            arrays[name] = np.zeros((rows.rows, *(d or 1 for d in shapes[name][1:])), dtype)
    return arrays, rows


def takes_packed_rows(model, segment_input: str | None = None) -> bool:
    """Whether ``model``'s inputs include segment ids (``*_segment_ids``, or
    ``segment_input``): KerasHub's plain ``segment_ids`` are token types."""
    spec = model_inputs(model)
    names = packed_names(spec.names, segment_input, flatten=False) if spec else None
    return names is not None and names.segment_ids is not None


def _row_length(shapes: dict, segment_input: str) -> int | None:
    """The rows' length when the model fixes it: the segment ids input's, else
    another input's with a time axis."""
    lengths = [shape[1] for name, shape in shapes.items() if len(shape) >= 2 and shape[1]]
    fixed = shapes[segment_input][1] if len(shapes[segment_input]) >= 2 else None
    return fixed or (lengths[0] if lengths else None)


def _role(name: str, shape: tuple, names, mask_input: str | None) -> str:
    if name == names.segment_ids:
        return "segment_ids"
    if name == names.positions:
        return "positions"
    if len(shape) < 2:
        return "per_row"
    if len(shape) == 2 and is_mask_input(name, mask_input):
        return "padding_mask"
    if len(shape) == 3 and (is_mask_input(name, mask_input) or "mask" in name) \
            and (shape[2] is None or shape[2] == shape[1]):
        return "attention_mask"  # (rows, query, key)
    return "field"


def _field(model, name: str, shape: tuple, dtype: str) -> FieldSpec:
    """What input ``name`` holds at a real step: token ids below the smallest
    ``input_dim`` of the Embedding it feeds, else features."""
    embedding = keras_module().layers.Embedding
    graph = model_graph(model)
    tensors = graph._inputs_struct if isinstance(graph._inputs_struct, dict) else {
        ref.name: ref for ref in graph.inputs}
    ref = tensors.get(name)
    embeddings = (reached(graph, ref, embedding) if ref is not None else []) or \
        all_layers(model, embedding)
    step_shape = tuple(d or SYNTHETIC_FEATURES for d in shape[2:])
    if is_int_dtype(dtype) or (len(shape) == 2 and embeddings):
        vocab = min([SYNTHETIC_VOCAB] + [layer.input_dim for layer in embeddings])
        return FieldSpec(vocab=vocab, step_shape=step_shape, dtype=dtype)
    return FieldSpec(vocab=None, step_shape=step_shape, dtype=dtype)


__all__ = ["SyntheticRows", "synthetic_packed", "takes_packed_rows"]
