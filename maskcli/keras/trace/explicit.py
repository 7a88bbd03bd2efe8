"""Explicit masks: the mask inputs of a model and the layers that receive them.

Transformers mask attention with an input tensor (KerasHub's ``padding_mask``,
Hugging Face's ``attention_mask``) instead of a Keras mask riding on the
tensors. Such a model carries no Keras mask to its output by design: that is
not a leak in the model, but its loss then needs sample weights (0 at
padding), as KerasHub's preprocessors hand them to ``fit``.
"""

from __future__ import annotations

from maskcli.keras.feed import is_mask_input, model_inputs
from maskcli.keras.trace.graph import inner_graph, keras_module, model_graph


def mask_inputs(model, mask_input: str | None = None) -> list[dict]:
    """The model's mask inputs, each ``{"name", "layers"}`` with the paths of
    the layers that receive it (through operations such as a cast), in the
    order Keras runs them; a nested model's layers are ``outer/inner``."""
    spec = model_inputs(model)
    if spec is None:
        return []
    graph = model_graph(model)
    tensors = _input_tensors(graph)
    found = []
    for name in spec.names:
        if is_mask_input(name, mask_input) and name in tensors:
            found.append({"name": name, "layers": _receivers(graph, {id(tensors[name])}, "")})
    return found


def explicit_verdict(found: list[dict], per_step_output: bool = True) -> str | None:
    """One line on how the model masks explicitly, or None without a mask input.
    ``per_step_output``: an output of the model keeps the time axis, so its loss
    sees padded steps (a pooled classifier's does not, and needs no weights)."""
    if not found:
        return None
    received = [item for item in found if item["layers"]]
    if not received:
        names = ", ".join(f"'{item['name']}'" for item in found)
        return f"the model's mask input {names} reaches no layer: nothing masks the padding"
    parts = [f"input '{item['name']}' (received by {_listed(item['layers'])})" for item in received]
    through = "the model masks explicitly through its " + " and ".join(parts)
    if not per_step_output:
        return (f"{through}: its output has no time axis, so the loss sees whole sequences, "
                "never a padded step, and needs no sample weights")
    return (f"{through}: no Keras mask reaches the output, so the loss needs sample weights, "
            "0 at padding (KerasHub's preprocessors give them; maskcli audit-loss "
            "--sample-weight mask)")


def _listed(paths: list[str]) -> str:
    shown = ", ".join(f"'{path}'" for path in paths[:3])
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return ("layer " if len(paths) == 1 else "layers ") + shown + more


def _input_tensors(graph) -> dict:
    """The graph's input tensors by the name the user feeds them under."""
    struct = getattr(graph, "_inputs_struct", None)
    if isinstance(struct, dict):
        return dict(struct)
    return {tensor.name: tensor for tensor in graph.inputs}


def _receivers(graph, tensor_ids: set[int], prefix: str) -> list[str]:
    """Paths of the layers that take one of ``tensor_ids``, or a tensor an
    operation (not a layer) computed from one, entering nested models."""
    keras = keras_module()
    carrying = set(tensor_ids)
    found = []
    for level in sorted(graph._nodes_by_depth, reverse=True):  # the order Keras runs them
        for node in graph._nodes_by_depth[level]:
            if node.is_input or not node.operation:
                continue
            positions = [k for k, tensor in enumerate(node.input_tensors)
                         if id(tensor) in carrying]
            if not positions:
                continue
            op = node.operation
            inner = inner_graph(op)
            if inner is not None:
                inner_ids = {id(inner.inputs[k]) for k in positions if k < len(inner.inputs)}
                found += _receivers(inner, inner_ids, prefix + op.name + "/")
            elif isinstance(op, keras.layers.Layer):
                found.append(prefix + op.name)
            else:  # keras.ops.cast(padding_mask), expand_dims...: the mask travels on
                carrying.update(id(tensor) for tensor in node.outputs)
    return found
