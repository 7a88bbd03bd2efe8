"""The layer graph of a Functional or Sequential model, and the layers on it."""

from __future__ import annotations

import sys

from maskcli.core.errors import ModelError
from maskcli.keras.models import first_line, import_keras


def model_graph(model, inputs=None):
    """The functional graph to walk: the model itself, or a Sequential's own."""
    graph = inner_graph(model)
    if graph is None and inputs is not None and hasattr(model, "_functional"):
        try:
            model(as_list(inputs)[0])  # a Sequential without an Input builds on first call
        except Exception as exc:  # the model's own layers may raise anything
            raise ModelError(f"running model '{model.name}' failed ({type(exc).__name__}: "
                             f"{first_line(exc, 'no message')}): check that the data fits its "
                             "first layer") from None
        graph = inner_graph(model)
    if graph is None:
        raise ModelError(
            f"model '{getattr(model, 'name', model)}' ({type(model).__name__}) has no layer graph "
            "to follow: trace-mask needs a Functional or Sequential model (a subclassed Model's "
            "call() cannot be inspected); build it with keras.Input(...) and the functional API")
    return graph


def walkable(model) -> bool:
    """Whether ``model`` has a layer graph to walk (Functional, or a Sequential
    even before its first call); a subclassed model has none."""
    return hasattr(model, "_functional") or inner_graph(model) is not None


def inner_graph(op):
    """The functional graph of a model (a Sequential's internal one), else None."""
    if hasattr(op, "_functional"):  # Sequential
        return op._functional
    return op if hasattr(op, "_nodes_by_depth") and hasattr(op, "_standardize_inputs") else None


def as_list(inputs) -> list:
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    return [inputs]


def reached(graph, ref, cls) -> list:
    """Layers of class ``cls`` that take ``ref`` directly (entering nested models)."""
    found = []
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            refs = [id(t) for t in node.input_tensors]
            if id(ref) not in refs or node.is_input:
                continue
            op = node.operation
            inner = inner_graph(op)
            if inner is not None:
                position = refs.index(id(ref))
                if position < len(inner.inputs):
                    found += reached(inner, inner.inputs[position], cls)
            elif isinstance(op, cls):
                found.append(op)
    return found


def all_layers(model, cls) -> list:
    """Layers of class ``cls`` anywhere in ``model``, nested models included."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, cls):
            found.append(layer)
        elif inner_graph(layer) is not None:
            found += all_layers(layer, cls)
    return found


def keras_module():
    """Keras, imported once through ``import_keras``; once loaded it is taken
    as is, so a later call does not undo the log settings of ``--verbose``."""
    return sys.modules.get("keras") or import_keras()


def is_int_dtype(dtype) -> bool:
    return str(dtype).startswith(("int", "uint"))
