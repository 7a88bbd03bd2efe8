"""Trace a subclassed model at the level of its sub-layers.

A subclassed model's ``call()`` is Python code with no graph to walk, so the
trace records it instead: during one call of the model, every sub-layer call
(found by descending the layers it holds, your own layers included, Keras'
built-in layers as one row each) is seen on its way in and out, with the
mask that reaches it and the mask that leaves. ``Layer.__call__`` is wrapped
for that one call and restored afterwards, on errors too.

Rows come in call order, a layer before the layers it calls; operations
between layers (``x + y`` in ``call()``) get no row.
"""

from __future__ import annotations

from maskcli.core.errors import ModelError
from maskcli.keras.models import first_line, keras_mask
from maskcli.keras.trace.graph import keras_module
from maskcli.keras.trace.walk import (
    TraceRow,
    _call_receives_mask,
    _fix,
    _mask_reaches,
    _status,
    _tensors,
    unmarked_fix,
    unmarking_inputs,
)


def record_calls(model, inputs, record=None) -> list[TraceRow]:
    """Call ``model`` on ``inputs`` once and return one row per sub-layer call.

    ``record(row, refs, values, input_refs, inputs=...)`` (see
    ``walk.trace_mask``) sees each call's outputs and the tensors it received.
    """
    keras = keras_module()
    paths = sublayer_paths(keras, model)
    rows: list[TraceRow] = []
    produced: list[tuple[TraceRow, set[int]]] = []
    original = keras.layers.Layer.__call__

    def producer(value_id: int) -> str | None:
        return next((row.path for row, ids in reversed(produced) if value_id in ids), None)

    def recording_call(layer, *args, **kwargs):
        place = paths.get(id(layer))
        if place is None or _symbolic(keras, args, kwargs):
            return original(layer, *args, **kwargs)
        path, depth = place
        kind = "model" if isinstance(layer, keras.Model) else "layer"
        row = TraceRow(name=path.rpartition("/")[2], path=path, cls=type(layer).__name__, kind=kind,
                       depth=depth, mask_in=_mask_reaches(keras, args, kwargs), mask_out=False)
        # Read before the call: MultiHeadAttention strips the masks off its inputs.
        received = kind == "layer" and _call_receives_mask(keras, layer, args, kwargs)
        received_values = _tensors(keras, (args, kwargs))
        rows.append(row)
        first_child = len(rows)
        outputs = original(layer, *args, **kwargs)
        flat = [t for t in keras.tree.flatten(outputs) if keras.ops.is_tensor(t)]
        row.mask_out = any(keras_mask(t) is not None for t in flat)
        row.time_axis = any(len(t.shape) >= 3 for t in flat)
        row.status = _status(row, received, rows[first_child:])
        if row.status == "drops":
            row.fix = _fix(row, layer, rows)
        elif row.status == "propagates" and kind == "layer" and len(rows) == first_child:
            unmasked = unmarking_inputs(keras, (args, kwargs), (args, kwargs), flat,
                                        name_of=lambda value: producer(id(value)))
            if unmasked is not None:  # a mask that no longer marks padding: as dropped
                row.status, row.fix = "drops", unmarked_fix(unmasked)
        produced.append((row, {id(t) for t in flat}))
        if record:
            record(row, [None] * len(flat), flat, [], inputs=received_values)
        return outputs

    keras.layers.Layer.__call__ = recording_call
    try:
        outputs = model(inputs, training=False)
    except Exception as exc:  # the model's own code may raise anything
        at = f" at layer '{rows[-1].path}'" if rows else ""
        raise ModelError(f"running model '{model.name}' failed{at} ({type(exc).__name__}: "
                         f"{first_line(exc, 'no message')}): check that the data fits the model"
                         ) from None
    finally:
        keras.layers.Layer.__call__ = original
    final = {id(t) for t in keras.tree.flatten(outputs)}
    for row, ids in produced:
        row.is_output = row.depth == 0 and bool(ids & final)
    return rows


def sublayer_paths(keras, model) -> dict[int, tuple[str, int]]:
    """id(layer) -> (path, depth) for every layer a trace records: the
    model's sub-layers, descending into your own layers and nested models,
    not into Keras' built-in layers (MultiHeadAttention is one row). A path
    is made of the attribute names the code uses (``block/att`` for
    ``self.block.att``), else of the layer names."""
    found: dict[int, tuple[str, int]] = {}

    def visit(layer, prefix: str, depth: int) -> None:
        attributes = {id(value): name for name, value in vars(layer).items()
                      if not name.startswith("_")}
        for child in layer._flatten_layers(include_self=False, recursive=False):
            if id(child) in found or isinstance(child, keras.layers.InputLayer):
                continue
            path = prefix + attributes.get(id(child), child.name)
            found[id(child)] = (path, depth)
            if _descends(keras, child):
                visit(child, path + "/", depth + 1)

    visit(model, "", 0)
    return found


def _descends(keras, layer) -> bool:
    if isinstance(layer, keras.Model):
        return True
    layers = keras.layers
    if isinstance(layer, (layers.MultiHeadAttention, layers.RNN, layers.Wrapper)):
        return False  # built-in blocks, whatever package subclasses them
    return not type(layer).__module__.startswith(("keras.", "tf_keras."))


def layer_at(keras, model, path: str):
    """The layer a recorded row's ``path`` names, or None."""
    by_id = {id(layer): layer for layer in model._flatten_layers(include_self=False)}
    return next((by_id.get(key) for key, (found, _) in sublayer_paths(keras, model).items()
                 if found == path), None)


def _symbolic(keras, args, kwargs) -> bool:
    """A symbolic call, not a run on the batch: on KerasTensors, or inside
    the graph TensorFlow traces when Keras builds a layer by running it."""
    if any(isinstance(t, keras.KerasTensor) for t in keras.tree.flatten((args, kwargs))):
        return True
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return not tf.executing_eagerly()
    return False
