"""Follow the Keras mask through a model, layer by layer.

``trace_mask(model, inputs)`` runs a Functional or Sequential model on real
tensors one graph node at a time, in the order Keras' own ``Functional.call``
runs them, and reads the mask riding on every tensor before and after each
node. Nested models are entered, so their layers get rows of their own.

Each row gets one status (a mask is True at real steps):

- ``creates``: no mask came in, one goes out (``Embedding(mask_zero=True)``,
  ``Masking``);
- ``propagates``: a mask came in and one goes out;
- ``consumes``: a mask came in, Keras handed it to the layer's ``call()``, and
  by design none goes out (an RNN without ``return_sequences``,
  ``GlobalAveragePooling1D``, an attention pooling that takes ``mask=``);
- ``drops``: a mask came in, the layer never received it and none goes out:
  the leak (Conv1D, Flatten, GlobalMaxPooling1D, a custom layer without
  ``supports_masking``, an operator such as ``x * 2.0``);
- ``none``: no mask in sight.

Nothing is hard-coded per layer class except Lambda (see ``_call_receives_mask``):
whether a layer receives the mask is read from its ``call()`` signature the
way ``Layer.__call__`` reads it.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass

import numpy as np

from maskcli.core.errors import ModelError
from maskcli.keras.models import first_line, keras_mask
from maskcli.keras.trace.explicit import explicit_verdict
from maskcli.keras.trace.graph import as_list, inner_graph, keras_module, model_graph

STATUSES = ("creates", "propagates", "consumes", "drops", "none")
# How many sequences a trace runs (of INPUT, or of audit-loss' batch): the
# trace depends on the layers, not on the values, so a sample is enough.
SAMPLE_SIZE = 64


@dataclass
class TraceRow:
    """What one layer (or operation, or nested model) did to the mask."""

    name: str
    path: str  # the name inside nested models: "encoder/conv1d"
    cls: str  # the class name
    kind: str  # "layer", "operation" (a keras.ops call such as x * 2.0) or "model" (nested)
    depth: int  # 0 for the model's own layers, 1 inside a nested model, ...
    mask_in: bool  # a mask reached the layer (on an input tensor or passed as mask=)
    mask_out: bool  # its output carries a mask
    status: str = "none"
    fix: str | None = None  # for a "drops" row: the likely fix
    time_axis: bool = False  # its output still has the input's time axis
    is_output: bool = False  # it produces one of the model's outputs
    # The padding effect (``effect.trace_padding``): the largest change of the
    # output at real steps when every sequence gets more padding, or None when
    # not measured; ``padding`` is "enters", "inherited" (an input already
    # changes), "ignored" (within tolerance) or "contains" (a nested model
    # whose layer is where it enters); ``padding_fix`` for "enters".
    padding_effect: float | None = None
    padding: str | None = None
    padding_fix: str | None = None

    def as_dict(self) -> dict:
        """The JSON row: ``cls`` is written ``class``, right after the names."""
        row = asdict(self)
        return {"name": row.pop("name"), "path": row.pop("path"), "class": row.pop("cls"), **row}


def trace_mask(model, inputs, record=None) -> list[TraceRow]:
    """Run ``model`` on ``inputs`` (an array, a list with one per model input,
    or a dict by input name) node by node and return one row per layer, in
    execution order.

    ``record(row, refs, values, input_refs)``, when given, sees every tensor
    computed: the graph's inputs (row None), then each node's outputs after it
    runs (row None for mask bookkeeping), with the refs of the node's inputs."""
    keras = keras_module()
    graph = model_graph(model, inputs)
    rows: list[TraceRow] = []
    try:
        # in the model's own input structure (a tensor, a list, a dict)
        structured = (inputs if isinstance(inputs, dict) else
                      keras.tree.pack_sequence_as(graph._inputs_struct, as_list(inputs)))
        flat_inputs = graph._standardize_inputs(structured)
        steps = {int(x.shape[1]) for x in flat_inputs if len(x.shape) >= 2}
        _walk(keras, graph, flat_inputs, rows, steps, depth=0, prefix="", record=record)
    except Exception as exc:  # the model's own layers may raise anything
        at = f" at {_describe(rows[-1])}" if rows else ""
        raise ModelError(f"running model '{model.name}' failed{at} ({type(exc).__name__}: "
                         f"{first_line(exc, 'no message')}): check that the data fits the "
                         f"model's input {[tuple(ref.shape) for ref in graph.inputs]}") from None
    return rows


def first_leak(rows: list[TraceRow], padded: bool = True) -> str | None:
    """The cause of the first mask leak in a trace, as one line, or None.

    A leak is a layer that drops the mask, or, when the inputs are padded, a
    model output with a time axis that carries no mask. For example
    ``layer 'conv1d' (Conv1D) drops the mask``.
    """
    for row in rows:
        if row.status == "drops" and row.kind != "model":
            if row.mask_out:
                return (f"{_describe(row)} turns every step real: its mask no longer marks "
                        "the padding")
            return f"{_describe(row)} drops the mask"
    if not padded:
        return None
    for row in rows:
        if row.is_output and row.time_axis and not row.mask_out:
            lost = [r for r in rows if r.status == "consumes" and r.kind != "model"]
            if lost:
                return (f"the model's output {_describe(row, 'from')} carries no mask: "
                        f"it ends at {_describe(lost[-1])}, which consumes it")
            return (f"the model's output {_describe(row, 'from')} carries no mask: no layer "
                    "creates one; use Embedding(mask_zero=True) or a Masking layer")
    return None


def report(rows: list[TraceRow], *, model: str, inputs: list[np.ndarray], input_names: list[str],
           synthetic: bool, padded: bool, versions: dict, padding: dict | None = None,
           mask_inputs: list[dict] | None = None) -> dict:
    """The trace as one JSON-ready dict (the ``--format json`` document).
    ``padding`` is how the padding effect was measured (``PaddingTrace.summary``).

    ``mask_inputs`` (see :func:`maskcli.keras.trace.explicit.mask_inputs`):
    a model that masks explicitly through one carries no Keras mask to its
    output by design, so only a layer that drops a Keras mask is a leak then.
    """
    leak = first_leak(rows, padded)
    explicit = explicit_verdict(mask_inputs or [],
                                any(row.is_output and row.time_axis for row in rows))
    dropped = any(row.status == "drops" and row.kind != "model" for row in rows)
    if explicit and not dropped and any(item["layers"] for item in mask_inputs):
        leak = None
    elif explicit and not dropped and padded:
        leak = explicit  # a mask input that no layer reads
    enters = next((row.path for row in rows if row.padding == "enters"), None)
    return {
        "model": model,
        "inputs": [{"name": name, "shape": list(array.shape), "dtype": str(array.dtype)}
                   for name, array in zip(input_names, inputs)],
        "synthetic": synthetic,
        "padded": padded,
        "mask_inputs": mask_inputs or [],
        "explicit_mask": explicit,
        "layers": [row.as_dict() for row in rows],
        "leak": leak,
        "enters": enters,
        "padding_check": padding,
        "ok": leak is None and enters is None,
        "versions": versions,
    }


def _walk(keras, graph, flat_inputs, rows, steps, depth, prefix, record=None) -> list:
    """Run ``graph`` node by node as ``Functional._run_through_graph`` does,
    appending a row per node; return the flat outputs."""
    values = {id(ref): x for ref, x in zip(graph.inputs, flat_inputs)}
    if record:
        record(None, graph.inputs, flat_inputs, [])
    output_ids = {id(t) for t in graph.outputs}
    mask_nodes = _mask_nodes(keras, graph)
    for level in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[level]:
            if not node.operation or node.is_input:
                continue
            if any(id(x) not in values for x in node.input_tensors):
                continue  # not reachable from these inputs, as in Keras
            op = node.operation
            args, kwargs = node.arguments.fill_in(values)
            if id(node) in mask_nodes:
                outputs = keras.tree.flatten(op(*args, **kwargs))
                for ref, value in zip(node.outputs, outputs):
                    values[id(ref)] = value
                if record:
                    record(None, node.outputs, outputs, node.input_tensors)
                continue
            row = TraceRow(name=op.name, path=prefix + op.name, cls=type(op).__name__,
                           kind=_kind(keras, op), depth=depth,
                           mask_in=_mask_reaches(keras, args, kwargs), mask_out=False,
                           is_output=depth == 0 and any(id(t) in output_ids for t in node.outputs))
            # Read before the call: some layers (MultiHeadAttention) strip the
            # masks off their input tensors while they run.
            received = row.kind == "layer" and _call_receives_mask(keras, op, args, kwargs)
            rows.append(row)
            inner = inner_graph(op)
            if inner is not None:
                # Walk the nested model instead of calling it, so its layers get
                # rows; a Functional model adds nothing to its layers' masks.
                first_child = len(rows)
                outputs = _walk(keras, inner, inner._standardize_inputs(args[0]), rows, steps,
                                depth + 1, row.path + "/", record)
                children = rows[first_child:]
            else:
                outputs = keras.tree.flatten(op(*args, **kwargs))
                children = []
            for ref, value in zip(node.outputs, outputs):
                values[id(ref)] = value
            row.mask_out = any(keras_mask(t) is not None for t in outputs if keras.ops.is_tensor(t))
            row.time_axis = any(_has_time_axis(ref, t, steps) for ref, t in zip(node.outputs, outputs))
            row.status = _status(row, received, children)
            if row.status == "drops":
                row.fix = _fix(row, op, rows)
            elif row.status == "propagates" and inner is None:
                unmasked = unmarking_inputs(keras, (node.arguments.args, node.arguments.kwargs),
                                            (args, kwargs), outputs)
                if unmasked is not None:  # a mask that no longer marks padding: as dropped
                    row.status, row.fix = "drops", unmarked_fix(unmasked)
            if record:
                record(row, node.outputs, outputs, node.input_tensors)
    return [values[id(ref)] for ref in graph.outputs]


def _mask_nodes(keras, graph) -> set[int]:
    """The operation nodes that only compute masks handed to a layer as
    ``mask=`` (or ``query_mask=``...): the NotEqual behind
    ``Embedding(mask_zero=True)`` or the NotEqual/Any behind ``Masking``, which
    Keras records in the graph when it hands the mask to a layer's call().
    They run like any node, but get no row."""
    nodes = [node for level in sorted(graph._nodes_by_depth)  # consumers first
             for node in graph._nodes_by_depth[level]]
    as_mask: dict[int, set[int]] = {}  # node id -> ids of the tensors it takes as a mask
    as_data: dict[int, set[int]] = {}  # node id -> ids of the tensors it takes otherwise
    consumers: dict[int, list] = {}  # tensor id -> the nodes taking it
    for node in nodes:
        masks = [value for name, value in node.arguments.kwargs.items() if _is_mask_name(name)]
        others = [node.arguments.args] + [value for name, value in node.arguments.kwargs.items()
                                          if not _is_mask_name(name)]
        as_mask[id(node)] = {id(t) for t in keras.tree.flatten(masks)}
        as_data[id(node)] = {id(t) for t in keras.tree.flatten(others)}
        for ref in node.input_tensors:
            consumers.setdefault(id(ref), []).append(node)
    outputs = {id(t) for t in graph.outputs}
    hidden: set[int] = set()
    for node in nodes:
        if node.is_input or isinstance(node.operation, keras.layers.Layer):
            continue
        if all(id(ref) not in outputs and consumers.get(id(ref)) and all(
                id(user) in hidden or (id(ref) in as_mask[id(user)]
                                       and id(ref) not in as_data[id(user)])
                for user in consumers[id(ref)])
               for ref in node.outputs):
            hidden.add(id(node))
    return hidden


def _status(row: TraceRow, received: bool, children: list[TraceRow]) -> str:
    if row.mask_out:
        return "propagates" if row.mask_in else "creates"
    if not row.mask_in:
        return "none"
    if row.kind == "model":
        return "drops" if any(child.status == "drops" for child in children) else "consumes"
    return "consumes" if received else "drops"


def _fix(row: TraceRow, op, rows: list[TraceRow]) -> str:
    """The likely fix for a layer that drops the mask."""
    if row.kind == "model":
        return "see the layers inside it, below"
    custom = row.kind == "layer" and not type(op).__module__.startswith(("keras.", "tf_keras."))
    creators = [r.path for r in rows if r.status == "creates"]
    source = f"layer '{creators[-1]}'" if creators else "the layer that creates it"
    if isinstance(op, keras_module().layers.Lambda):
        return ("give the Lambda an output mask: Lambda(fn, mask=lambda inputs, mask: mask) "
                "passes on the mask it receives")
    if row.time_axis:  # the steps are still there: the mask can travel on
        if custom:
            return ("set self.supports_masking = True in its __init__: it keeps the time axis, "
                    "so Keras can pass the mask on")
        if row.kind == "operation":
            return ("do this inside a layer that keeps the mask (a small custom Layer with "
                    "self.supports_masking = True), so the mask travels on")
        return ("use a mask-aware layer instead (an RNN, attention), or pass mask= explicitly "
                f"to the next one (compute_mask() of {source} gives it)")
    if custom:
        return ("accept mask=None in its call() and use it (e.g. a mean over the real steps "
                "only): it removes the time axis, so the mask ends here")
    return ("use a mask-aware layer instead: GlobalAveragePooling1D or an RNN with "
            "return_sequences=False use the mask when they remove the time axis")


def unmarking_inputs(keras, refs, values, outputs, name_of=None) -> list[str] | None:
    """The inputs without a mask of a layer whose output mask marks every step
    real although an input's mask marks padding (Keras ORs the masks of a
    merge: an input without one counts as all real); None when it keeps it.
    ``name_of(value)``: the name of an input's producer where ``refs`` carry
    no Keras history (a recorded call of a subclassed model)."""
    out_masks = [keras_mask(t) for t in outputs if keras.ops.is_tensor(t)]
    out_masks = [m for m in out_masks if m is not None]
    if not out_masks or not all(bool(np.all(keras.ops.convert_to_numpy(m))) for m in out_masks):
        return None
    flat_refs, flat = keras.tree.flatten(refs), keras.tree.flatten(values)
    padded, unmasked = False, []
    for ref, value in zip(flat_refs, flat):
        if not keras.ops.is_tensor(value):
            continue
        mask = keras_mask(value)
        if mask is None:
            history = getattr(ref, "_keras_history", None)
            name = getattr(history[0], "name", None) if history else None
            unmasked.append(name or (name_of and name_of(value)) or "an input")
        elif not np.all(keras.ops.convert_to_numpy(mask)):
            padded = True
    return unmasked if padded else None


def unmarked_fix(unmasked: list[str]) -> str:
    names = " and ".join(f"'{name}'" for name in unmasked) or "an input"
    return (f"it merges a masked input with {names}, which carries no mask, and Keras ORs "
            "their masks (an input without one counts as all real), so every step turns real: "
            f"give {names} the same mask (a Masking layer, or Lambda/custom layer returning the "
            "embedding's mask), or pass sample_weight = the mask with "
            "reduction=\"mean_with_sample_weight\"")


def _mask_reaches(keras, args, kwargs) -> bool:
    """A mask rides on an input tensor, or one is passed explicitly (mask=, query_mask=...)."""
    if any(keras_mask(t) is not None for t in keras.tree.flatten((args, kwargs))
           if keras.ops.is_tensor(t)):
        return True
    return any(_is_mask_name(name) and _tensors(keras, value) for name, value in kwargs.items())


def _call_receives_mask(keras, layer, args, kwargs) -> bool:
    """Whether Keras hands a mask to ``layer.call()``, as ``Layer.__call__``
    does: one passed explicitly; ``mask=`` when call() takes exactly one tensor
    argument; ``<name>_mask=`` for each tensor argument ``<name>`` otherwise.

    The one exception, kept by hand: ``Lambda.call`` takes ``mask=`` but only
    hands it on when the wrapped function itself takes ``mask``.
    """
    if isinstance(layer, keras.layers.Lambda) and not getattr(layer, "_fn_expects_mask_arg", True):
        return False
    signature = inspect.signature(layer.call)
    try:
        bound = signature.bind(*args, **kwargs).arguments
    except TypeError:
        return False
    params = signature.parameters
    if any(_is_mask_name(name) and name in params and _tensors(keras, value)
           for name, value in bound.items()):
        return True
    tensor_args = {name: value for name, value in bound.items() if _tensors(keras, value)}

    def masked(value):
        return any(keras_mask(t) is not None for t in _tensors(keras, value))

    if len(tensor_args) == 1:
        (value,) = tensor_args.values()
        return "mask" in params and masked(value)
    return any(f"{name}_mask" in params and masked(value) for name, value in tensor_args.items())


def _is_mask_name(name: str) -> bool:
    return name == "mask" or (name.endswith("_mask") and not name.startswith("use_"))


def _tensors(keras, value) -> list:
    return [t for t in keras.tree.flatten(value) if keras.ops.is_tensor(t)]


def _has_time_axis(ref, tensor, steps: set[int]) -> bool:
    """The output still runs over the input's steps: (batch, steps, ...), or a
    (batch, steps) output whose step axis is as free as the input's."""
    shape = getattr(tensor, "shape", ())
    if len(shape) < 2 or shape[1] not in steps:
        return False
    return len(shape) >= 3 or ref.shape[1] is None


def _kind(keras, op) -> str:
    if inner_graph(op) is not None:
        return "model"
    return "layer" if isinstance(op, keras.layers.Layer) else "operation"


def _describe(row: TraceRow, preposition: str | None = None) -> str:
    """``layer 'conv1d' (Conv1D)``, with the enclosing model for nested layers."""
    inside = row.path.rpartition("/")[0]
    where_ = f" inside '{inside}'" if inside else ""
    if preposition:
        return f"{preposition} {row.kind} '{row.name}' ({row.cls}){where_}"
    return f"{row.kind} '{row.name}' ({row.cls}){where_}"
