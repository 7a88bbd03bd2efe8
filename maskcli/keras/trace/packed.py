"""Where the documents of a packed row mix: each layer's *document effect*.

A packed batch (``tokens``, ``tokens_segment_ids``, ``tokens_positions``; see
:mod:`maskcli.core.packed_diagnose`) runs twice: as given, and with every
document alone in a row of its own (at the row's start, positions 0..,
padding after it: segment 0, pad value 0, mask inputs 0). A layer's document
effect is the largest change of its output at a document's steps; documents
*mix* at the first layer whose effect exceeds the float32 tolerance while the
layers it reads are within it. The layers after it inherit the effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskcli.core.packed_diagnose import PackedNames, documents, packed_names
from maskcli.keras.feed import is_mask_input, run_model

RTOL = 1e-4  # float32 attention: the sums run over different numbers of keys
ADDITIVE_DROP = -1e4  # a float mask holding values this low is additive (0 keep, -1e9 drop)


@dataclass
class PackedBatch:
    """A packed batch: the model's arrays by input name, which of them are
    packed, and its documents as (row, segment id, start, end)."""

    arrays: dict
    names: PackedNames
    segment_ids: np.ndarray
    docs: list = field(default_factory=list)

    @property
    def steps(self) -> int:
        return self.segment_ids.shape[1]


def packed_batch(arrays: dict, input_names, segment_input: str | None = None):
    """The packed batch of ``arrays`` when the model's inputs (``input_names``)
    include segment ids, else None. KerasHub's ``segment_ids`` (token types)
    never count, unless named with ``segment_input``."""
    names = packed_names(list(input_names), segment_input)
    if names is None or names.segment_ids is None:
        return None
    segment_ids = np.asarray(arrays[names.segment_ids]).astype(np.int64)
    return PackedBatch(dict(arrays), names, segment_ids, documents(segment_ids))


def alone_arrays(batch: PackedBatch, arrays: dict | None = None) -> dict:
    """One row per document of ``batch``, the document alone at its start:
    its own values, positions 0.., then padding."""
    arrays = batch.arrays if arrays is None else arrays
    count, steps = len(batch.docs), batch.steps
    out = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        timed = array.ndim >= 2 and array.shape[1] == steps
        if not timed:
            out[name] = array[[doc[0] for doc in batch.docs]]
            continue
        if array.ndim == 3 and array.shape[2] == steps:  # a (rows, query, key) attention mask
            fill = array.min() if array.dtype.kind == "f" else 0
            alone = np.full((count, steps, steps), fill, dtype=array.dtype)
            for i, (row, _, start, end) in enumerate(batch.docs):
                alone[i, :end - start, :end - start] = array[row, start:end, start:end]
            out[name] = alone
            continue
        alone = np.zeros((count,) + array.shape[1:], dtype=array.dtype)
        for i, (row, segment, start, end) in enumerate(batch.docs):
            if name == batch.names.positions:
                alone[i, :end - start] = np.arange(end - start)
            elif name == batch.names.segment_ids:
                alone[i, :end - start] = segment
            elif is_mask_input(name) and array.ndim == 2:
                alone[i, :end - start] = 1
            else:
                alone[i, :end - start] = array[row, start:end]
        out[name] = alone
    return out


def document_changes(batch: PackedBatch, packed, alone) -> np.ndarray | None:
    """Per document, the largest change of an output between the packed run
    and the run alone, at the document's steps; None without a time axis."""
    packed, alone = np.asarray(packed, np.float64), np.asarray(alone, np.float64)
    if packed.ndim < 2 or packed.shape[1] != batch.steps or len(alone) != len(batch.docs):
        return None
    changes = np.zeros(len(batch.docs))
    for i, (row, _, start, end) in enumerate(batch.docs):
        diff = np.abs(packed[row, start:end] - alone[i, :end - start])
        changes[i] = np.nanmax(diff) if diff.size else 0.0
    return changes


def tolerance(*outputs) -> float:
    scale = max((float(np.nanmax(np.abs(o))) for o in outputs if np.size(o)), default=1.0)
    return RTOL * max(1.0, scale)


@dataclass
class LayerEffect:
    """One layer of the trace: its document effect (None: not measured), and
    whether documents mix there."""

    path: str
    kind: str  # the layer's class
    effect: float | None
    tolerance: float
    mixes: bool = False
    additive_mask: bool = False  # an attention layer handed an additive float mask

    def to_dict(self) -> dict:
        return {"path": self.path, "class": self.kind, "document_effect": self.effect,
                "tolerance": self.tolerance, "mixes": self.mixes,
                "additive_mask": self.additive_mask}


@dataclass
class DocumentTrace:
    rows: list[LayerEffect]
    measured: bool = True
    note: str | None = None
    synthetic: object = None  # the SyntheticRows traced when no data was given

    @property
    def mixes(self) -> LayerEffect | None:
        return next((row for row in self.rows if row.mixes), None)

    def to_dict(self) -> dict:
        first = self.mixes
        return {"packed": True, "measured": self.measured, "note": self.note,
                "layers": [row.to_dict() for row in self.rows],
                "mixes": first.path if first else None, "ok": first is None}


def call(model, spec, arrays: dict, size: int | None = None):
    """The model's output on ``arrays`` (by input name), as numpy; in batches
    of ``size`` rows when given (memory bounded by the batch)."""
    outputs = []
    for part in _row_slices(arrays, size):
        rows = {name: np.asarray(array)[part] for name, array in arrays.items()}
        structure = spec.structure(rows) if spec is not None else next(iter(rows.values()))
        outputs.append(np.asarray(run_model(model, structure)))
    return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)


def _row_slices(arrays: dict, size: int | None) -> list[slice]:
    count = len(next(iter(arrays.values())))
    if size is None or size >= count:
        return [slice(0, count)]
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def trace_documents(model, spec, batch: PackedBatch, size: int | None = None) -> DocumentTrace:
    """Every layer's document effect, for a Functional model; a subclassed
    model is one row (its output). ``size``: run in batches of that many rows."""
    import keras

    probes, owners = _probes(keras, model)
    if not probes:
        return DocumentTrace([], measured=False,
                             note=f"model '{model.name}' has no layer graph to probe: only its "
                                  "output is compared")
    probe = keras.Model(model.input, [tensor for tensor, _ in probes])
    packed, alone = (_probed(probe, spec, arrays, size)
                     for arrays in (batch.arrays, alone_arrays(batch)))
    effects: dict[int, float] = {}
    rows = []
    for index, (layer, parents, mask_probe) in owners.items():
        changes = document_changes(batch, packed[index], alone[index])
        tol = tolerance(packed[index])
        effect = None if changes is None else float(changes.max(initial=0.0))
        effects[id(layer)] = effect or 0.0
        clean_inputs = all(effects.get(id(parent), 0.0) <= tolerance(packed[index])
                           for parent in parents)
        row = LayerEffect(layer.name, type(layer).__name__, effect, tol,
                          mixes=effect is not None and effect > tol and clean_inputs)
        if mask_probe is not None:
            values = packed[mask_probe]
            row.additive_mask = bool(values.dtype.kind == "f" and values.size
                                     and values.min() <= ADDITIVE_DROP and values.max() <= 0)
        rows.append(row)
    return DocumentTrace(rows)


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _probed(probe, spec, arrays: dict, size: int | None) -> list[np.ndarray]:
    """Every probed tensor on ``arrays``, batch by batch, joined along the rows."""
    parts = [[np.asarray(out) for out in _as_list(probe(spec.structure(
        {name: np.asarray(array)[part] for name, array in arrays.items()}), training=False))]
        for part in _row_slices(arrays, size)]
    return [outs[0] if len(outs) == 1 else np.concatenate(outs) for outs in zip(*parts)]


def _probes(keras, model):
    """The tensors to read: each layer's output and, for attention layers, the
    attention_mask they are handed; and per layer (by its output's index),
    the layers it reads and the index of its mask."""
    probes, owners = [], {}
    operations = getattr(model, "operations", None) or []
    if not hasattr(model, "_inbound_nodes") or not getattr(model, "inputs", None):
        return [], {}
    for layer in operations:
        if isinstance(layer, keras.layers.InputLayer) or not isinstance(layer, keras.layers.Layer):
            continue
        nodes = [node for node in layer._inbound_nodes if node.output_tensors]
        if len(nodes) != 1 or len(nodes[0].output_tensors) != 1:
            continue  # a layer called twice, or with several outputs: read through its users
        node = nodes[0]
        parents = _parent_layers(keras, node)
        probes.append((node.output_tensors[0], layer))
        index = len(probes) - 1
        mask_index = None
        mask = node.arguments.kwargs.get("attention_mask") if node.arguments else None
        if mask is not None and hasattr(mask, "shape"):
            probes.append((mask, None))
            mask_index = len(probes) - 1
        owners[index] = (layer, parents, mask_index)
    return probes, owners


def _parent_layers(keras, node, depth: int = 0) -> list:
    """The layers a node reads, looking through plain operations (ops.equal, ...)."""
    found = []
    for parent in node.parent_nodes:
        operation = parent.operation
        if isinstance(operation, keras.layers.InputLayer):
            continue
        if isinstance(operation, keras.layers.Layer):
            found.append(operation)
        elif depth < 20:
            found.extend(_parent_layers(keras, parent, depth + 1))
    return found


def trace_packed(model, inputs: dict | None = None, segment_input: str | None = None, *,
                 seed: int = 0, steps: int | None = None) -> DocumentTrace:
    """Where the documents of packed ``inputs`` (a dict of arrays by model
    input name, the segment ids among them) start to mix in ``model``: each
    layer's document effect, and ``.mixes``, the first layer where they mix
    (None when every document runs as it does alone).

    ``maskcli.trace_packed(model, {"tokens": ..., "tokens_segment_ids": ...,
    "tokens_positions": ...}).mixes.path`` names that layer. Without
    ``inputs`` the model runs on synthetic packed rows drawn with ``seed``
    (:mod:`maskcli.keras.trace.packed_synthetic`; ``steps`` long when the
    model leaves its length open), described by ``.synthetic``.
    """
    from maskcli.core.errors import UsageError
    from maskcli.keras import models
    from maskcli.keras.feed import model_inputs

    spec = model_inputs(model)
    if spec is None:
        raise UsageError(f"model '{model.name}' has no named inputs: packed rows need its "
                         "segment ids as one of them")
    rows = None
    if inputs is None:
        from maskcli.keras.trace.packed_synthetic import synthetic_packed

        made = synthetic_packed(model, seed, segment_input, steps)
        inputs, rows = made if made is not None else ({}, None)
    batch = packed_batch({name: np.asarray(array) for name, array in inputs.items()},
                         spec.names, segment_input) if inputs else None
    if batch is None:
        raise UsageError(f"model '{model.name}' takes no segment ids (its inputs: "
                         f"{', '.join(spec.names)}): name the one that holds them with "
                         "segment_input")
    with models.full_float32():
        traced = trace_documents(model, spec, batch)
    traced.synthetic = rows
    return traced
