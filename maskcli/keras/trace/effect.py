"""Where padding enters: the padding effect of every layer, and the first
layer that mixes padded steps into real ones.

``trace_padding(model, inputs)`` runs the model twice, recording every
layer's output: on the batch as given, and with ``EXTRA_PADDING`` more padding
steps per sequence on its padding side (extended exactly as audit-loss'
forward-invariance extends it, mask inputs with 0). A layer's *padding effect*
is the largest change of its output at real steps; outputs without the time
axis (after pooling) are compared whole. Padding *enters* at a layer whose
effect exceeds the float32-aware tolerance while every input's is within it;
the layers after it inherit the effect and are not blamed, and a nested model
(or your own layer recorded with its sub-layers) *contains* the entry.

Functional and Sequential models run node by node (``walk``), nested models
included; a subclassed model is recorded sub-layer by sub-layer during one
call (``record``), and its sub-layers' inputs are compared the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskcli.core.errors import InputError, ModelError
from maskcli.core.extend import extend_padding, pad_fill, pre_padded_rows
from maskcli.core.masks import compute_mask, default_mode
from maskcli.keras.feed import is_mask_input  # an input that is a padding mask, by its name
from maskcli.keras.trace import fixes, record
from maskcli.keras.trace.graph import keras_module, walkable
from maskcli.keras.trace.walk import TraceRow, first_leak, trace_mask
from maskcli.keras.trace.walk import _describe as describe

EXTRA_PADDING = 4        # steps added on each sequence's padding side (as forward-invariance)
FORWARD_RTOL = 1e-5      # float32: matmul blocking differs between batch shapes


@dataclass
class PaddingTrace:
    """The rows of a trace with their padding effects, and how it was measured."""

    rows: list[TraceRow]
    extra_steps: int
    sides: list[str]  # "pre" and/or "post": where the extra padding went
    note: str | None = None  # why the effect was not measured, or how it was read
    measured: bool = True
    tolerances: dict = field(default_factory=dict, repr=False)

    @property
    def enters(self) -> TraceRow | None:
        """The first row where padding enters real steps."""
        return next((row for row in self.rows if row.padding == "enters"), None)

    @property
    def summary(self) -> dict:
        """How the effect was measured, for the JSON report."""
        return {"measured": self.measured, "extra_steps": self.extra_steps, "sides": self.sides,
                "rtol": FORWARD_RTOL, "note": self.note}


def trace_padding(model, inputs, masks=None, *, pad_values=None,
                  extra: int = EXTRA_PADDING) -> PaddingTrace:
    """Trace ``model`` on ``inputs`` (an array, a list with one per model
    input, or a dict by input name) and measure each layer's padding effect.

    ``masks`` (True = real step; same structure, or one array for every input
    of its shape) says which steps are padding; by default each input's mask
    is derived as Keras would build it (``pad_values``, default 0), and an
    input named ``padding_mask``/``attention_mask`` is the mask of every input
    of its length. Raises ModelError when the model cannot run on ``inputs``.
    """
    keras = keras_module()
    flat, names = _flat_inputs(keras, model, inputs)
    masks = input_masks(flat, names, masks, pad_values)
    extended, pad = _extended(flat, names, masks, extra, pad_values)
    graph_model = walkable(model)

    def run(arrays, recorder):
        if graph_model:
            return trace_mask(model, arrays if len(arrays) > 1 else arrays[0], record=recorder)
        return record.record_calls(model, keras.tree.pack_sequence_as(inputs, arrays), recorder)

    first = _Recorder(keras, pad)
    rows = run(flat, first)
    sides = sorted({"pre" if p else "post" for m in pad.pre for p in m})
    result = PaddingTrace(rows, extra, sides)
    if not graph_model:
        result.note = ("a subclassed model: its sub-layers are compared in the order they were "
                       "called, each with the inputs it received")
        if not first.records:
            result.measured = False
            result.note = (f"model '{model.name}' calls no sub-layer that can be recorded: its "
                           "padding effect cannot be traced layer by layer")
            return result
    second = _Recorder(keras, pad, reference=first.records)
    try:
        run(extended, second)
    except ModelError as exc:  # a fixed length, or a layer that insists on the original one
        why = str(exc).split(": check that")[0]
        second.unpaired = f"the model cannot run on {extra} more padding steps ({why})"
    if second.unpaired or len(second.records) != len(first.records):
        for row in rows:
            row.padding_effect = row.padding = None
        result.measured = False
        result.note = (f"{second.unpaired or 'the longer batch runs fewer layers'}: "
                       "padding effects not measured")
    else:
        def layer_at(path):
            return _layer_at(model, path) if graph_model else record.layer_at(keras, model, path)

        _choose_fixes(layer_at, rows, any(p.any() for p in pad.pre), second.positions)
    return result


def padding_cause(trace: PaddingTrace, with_drop: bool = True) -> str | None:
    """Where padding enters, as one line with its fix, or None. For example
    ``padding enters at layer 'conv1d' (Conv1D): a convolution ...``; with
    ``with_drop`` a layer that also drops the Keras mask is named too."""
    row = trace.enters
    if row is None:
        return None
    cause = f"padding enters at {describe(row)}: {row.padding_fix}"
    drop = next((r for r in trace.rows if r.status == "drops" and r.kind != "model"), None)
    if with_drop and drop is not None:
        leak = "it also drops the Keras mask" if drop is row else first_leak(trace.rows, False)
        cause += f"; {leak}: {drop.fix}"
    return cause


def input_masks(flat: list[np.ndarray], names: list[str], masks=None, pad_values=None) -> list:
    """One mask (True = real step, shape (sequences, steps)) per input."""
    given = _per_input(masks, flat, names)
    values = _per_input(pad_values, flat, names)
    result = []
    for array, name, mask, value in zip(flat, names, given, values):
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            mask = mask.any(axis=-1) if mask.ndim == 3 else mask
            if mask.shape != array.shape[:2]:
                raise InputError(f"the mask of input '{name}' has shape {mask.shape}, the input "
                                 f"{array.shape}: give one mask value per step "
                                 f"{array.shape[:2]}, True = real step")
            result.append(mask)
        elif array.ndim < 2 or array.dtype.kind not in "biuf":
            result.append(None)  # no time axis: nothing to pad
        elif is_mask_input(name) and array.ndim == 2:
            result.append(array != 0)
        else:
            result.append(compute_mask(array, default_mode(array), 0 if value is None else value))
    # An explicit mask input is the padding of every input of its length
    # (token_ids, segment_ids beside padding_mask).
    for array, name, mask in zip(flat, names, result):
        if mask is not None and is_mask_input(name):
            for i, other in enumerate(flat):
                if given[i] is None and other.shape[:2] == array.shape[:2]:
                    result[i] = mask
    return result


# -- extending the inputs ---------------------------------------------------------


@dataclass
class _Geometry:
    """How the extended batch lines up with the original one."""

    extra: int
    batch: int
    lengths: list  # per input: its steps, or None without a time axis
    masks: list
    offsets: list
    pre: list
    real_rows: np.ndarray  # sequences with at least one real step

    def real_steps(self, steps: int):
        """(sequence, step, extended step) index arrays of the real steps of
        a tensor with ``steps`` steps: the mask of the input of that length."""
        found = [i for i, length in enumerate(self.lengths) if length == steps]
        if not found:
            return None
        mask = self.masks[found[0]].copy()
        offsets = self.offsets[found[0]]
        for i in found[1:]:  # inputs of one length: the steps real in all of them
            if np.array_equal(self.offsets[i], offsets):
                mask &= self.masks[i]
        seq, step = np.nonzero(mask)
        return seq, step, step + offsets[seq]


def _extended(flat, names, masks, extra, pad_values):
    """Each input with ``extra`` more padding steps, and how they line up."""
    values = _per_input(pad_values, flat, names)
    extended, offsets, pres, lengths = [], [], [], []
    batch = len(flat[0]) if flat and np.ndim(flat[0]) else 0
    for array, name, mask, value in zip(flat, names, masks, values):
        longer, offset, pre, length = array, None, np.zeros(0, bool), None
        if mask is not None:
            pre = pre_padded_rows(mask)
            fill = 0 if is_mask_input(name) else pad_fill(array, mask)
            if fill is None:  # no padded step to copy: the pad value, else 0
                fill = 0 if value is None else value
            longer, offset = extend_padding(array, mask, extra, fill, pre)
            length = array.shape[1]
        extended.append(longer)
        offsets.append(offset)
        pres.append(pre)
        lengths.append(length)
    real = [m.any(axis=1) for m in masks if m is not None and len(m) == batch]
    real_rows = np.flatnonzero(np.any(real, axis=0)) if real else np.arange(batch)
    return extended, _Geometry(extra, batch, lengths, masks, offsets, pres, real_rows)


def _flat_inputs(keras, model, inputs) -> tuple[list[np.ndarray], list[str]]:
    if isinstance(inputs, dict):
        names = sorted(inputs)  # keras.tree's order, as Functional models flatten dicts
        return [np.asarray(inputs[name]) for name in names], names
    flat = [np.asarray(x) for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
    refs = getattr(model, "inputs", None) if walkable(model) else None
    try:
        names = [ref.name for ref in refs] if refs and len(refs) == len(flat) else None
    except (AttributeError, ValueError):
        names = None
    return flat, names or [f"input_{i}" for i in range(len(flat))]


def _per_input(values, flat, names) -> list:
    """``values`` (None, one value or array for all, a list, or a dict by
    input name) per input."""
    if values is None:
        return [None] * len(flat)
    if isinstance(values, dict):
        return [values.get(name) for name in names]
    if isinstance(values, (list, tuple)) and len(values) == len(flat):
        return list(values)
    if isinstance(values, np.ndarray) and values.ndim >= 2:
        return [values if np.ndim(x) >= 2 and x.shape[:2] == values.shape[:2] else None
                for x in flat]
    return [values] * len(flat)


# -- comparing the two runs -------------------------------------------------------


@dataclass
class _Effect:
    value: float | None  # max |change| at real steps; inf for a NaN that appears
    tolerance: float
    positions: bool = False  # a per-position tensor (no batch axis) that grows with the steps

    @property
    def over(self) -> bool:
        return self.value is not None and self.value > self.tolerance


class _Recorder:
    """The ``record`` callback of both runs: the first keeps every tensor,
    the second compares each with the first's as it comes, and marks rows."""

    def __init__(self, keras, pad: _Geometry, reference=None):
        self.keras, self.pad, self.reference = keras, pad, reference
        self.records: list = []
        self.effects: dict = {}
        self.positions: set[int] = set()  # rows fed a per-position tensor (absolute positions)
        self.unpaired: str | None = None  # the second run recorded other layers than the first

    def __call__(self, row, refs, values, input_refs, inputs=None):
        """``inputs``: values of the inputs (subclassed models, whose input
        tensors have no refs); else ``input_refs`` name tensors recorded before."""
        outputs = [(None if ref is None else id(ref), self._numpy(v)) for ref, v in zip(refs, values)]
        given = [self._numpy(v) for v in inputs] if inputs is not None else None
        if self.reference is None:
            self.records.append((row, outputs, [id(r) for r in input_refs], given))
            return
        index = len(self.records)
        self.records.append(None)
        if self.unpaired:
            return
        if index >= len(self.reference):
            self.unpaired = "the longer batch runs more layers"
            return
        first_row, first_outputs, first_inputs, first_given = self.reference[index]
        if (row is None) != (first_row is None) or (row and row.path != first_row.path):
            self.unpaired = (f"the longer batch runs {describe(row) if row else 'a tensor'} where "
                             f"the batch as given ran "
                             f"{describe(first_row) if first_row else 'another tensor'}")
            return
        out = []
        for (key, a), (_, b) in zip(first_outputs, outputs):
            out.append(_compare(a, b, self.pad))
            if key is not None:
                self.effects[key] = out[-1]
        if first_given is not None:
            ins = [_compare(a, b, self.pad) for a, b in zip(first_given, given)]
        else:
            ins = [self.effects[key] for key in first_inputs if key in self.effects]
        if first_row is not None:
            _mark(first_row, out, ins)
            if first_row.padding == "enters" and any(e.positions for e in ins if e is not None):
                self.positions.add(id(first_row))

    def _numpy(self, value):
        if value is None or not (self.keras.ops.is_tensor(value) or isinstance(value, np.ndarray)):
            return None
        return np.asarray(self.keras.ops.convert_to_numpy(value))


def _mark(row: TraceRow, outputs: list[_Effect], inputs: list[_Effect]) -> None:
    measured = [e.value for e in outputs if e is not None and e.value is not None]
    worst = max(measured) if measured else None
    row.padding_effect = worst if worst is not None and np.isfinite(worst) else None
    inherited = any(e.over for e in inputs if e is not None)
    if inherited:
        row.padding = "inherited"
    elif worst is None:
        row.padding = None  # no output to compare (a shape that depends on both lengths)
    elif any(e.over for e in outputs if e is not None):
        row.padding = "enters"
    else:
        row.padding = "ignored"


def _compare(a, b, pad: _Geometry) -> _Effect | None:
    """The padding effect of one tensor: ``a`` from the batch as given, ``b``
    from the extended one."""
    if a is None or b is None or a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
        return None
    if a.shape == b.shape:
        if a.ndim and a.shape[0] == pad.batch:
            a, b = a[pad.real_rows], b[pad.real_rows]
        return _difference(a, b)
    grows = a.ndim == b.ndim and a.ndim >= 1
    if grows and a.ndim >= 2 and a.shape[0] == b.shape[0] == pad.batch \
            and b.shape[1] == a.shape[1] + pad.extra and a.shape[2:] == b.shape[2:]:
        steps = pad.real_steps(a.shape[1])
        if steps is not None:
            seq, step, longer = steps
            return _difference(a[seq, step], b[seq, longer])
    positions = grows and any(
        a.shape[axis] in pad.lengths and b.shape[axis] == a.shape[axis] + pad.extra
        and all(a.shape[i] == 1 for i in range(axis))
        for axis in range(min(a.ndim, 2)))
    return _Effect(None, 0.0, positions=positions)


def _difference(a: np.ndarray, b: np.ndarray) -> _Effect:
    a, b = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.abs(a - b))
    finite = np.abs(a[np.isfinite(a)])
    tolerance = FORWARD_RTOL * max(1.0, float(finite.max(initial=0.0)))
    value = float("inf") if np.isnan(diff).any() else float(diff.max(initial=0.0))
    return _Effect(value, tolerance)


def _choose_fixes(layer_at, rows: list[TraceRow], pre_padded: bool, positions: set[int]) -> None:
    for i, row in enumerate(rows):
        if row.padding != "enters":
            continue
        inside = [r for r in rows[i + 1:] if r.path.startswith(row.path + "/")]
        if row.kind == "model" or any(r.padding == "enters" for r in inside):
            row.padding = "contains"  # padding enters at one of its layers, below
            continue
        row.padding_fix = fixes.entry_fix(layer_at(row.path), row, pre_padded=pre_padded,
                                          positions=id(row) in positions)


def _layer_at(model, path: str):
    """The layer at ``path`` ("encoder/conv1d") inside ``model``, or None (an operation)."""
    layer = model
    for name in path.split("/"):
        children = {child.name: child for child in _children(layer)}
        if name not in children:
            return None
        layer = children[name]
    return layer


def _children(layer) -> list:
    graph_model = getattr(layer, "_functional", None) or layer
    try:
        return list(graph_model._flatten_layers(include_self=False, recursive=False))
    except AttributeError:
        return []
