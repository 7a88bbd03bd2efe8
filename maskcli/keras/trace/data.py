"""What a trace runs on: a sample of the user's data (one array, or one per
named input), or a synthetic padded batch, and whether it is padded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskcli.core.errors import InputError, MaskcliError
from maskcli.core.masks import compute_mask, default_mode, parse_value, step_mask
from maskcli.core.padded import Padded
from maskcli.keras.feed import (
    Places,
    check_mask_input,
    check_shapes,
    is_mask_input,
    mask_input_padding,
    match_inputs,
    model_inputs,
)
from maskcli.keras.trace.batches import (
    check_fits,
    check_named_fits,
    has_padding,
    masking_value,
    synthetic_inputs,
    synthetic_mask,
)
from maskcli.keras.trace.graph import model_graph, walkable
from maskcli.keras.trace.walk import SAMPLE_SIZE


@dataclass
class TracedBatch:
    """The batch of a trace: ``inputs`` as ``trace_mask``/``trace_padding`` take
    them, their ``masks`` and ``pad_values`` (None: derived), and the
    ``names``/``arrays`` the report lists."""

    inputs: object
    names: list[str]
    arrays: list[np.ndarray]
    synthetic: bool
    padded: bool
    masks: object = None
    pad_values: object = None
    note: str | None = None  # a message for standard error


def traced_batch(model, padded: Padded | None, given: dict[str, np.ndarray], pad_value, seed: int,
                 mask_input: str | None = None, synthetic: list | None = None,
                 places: dict[str, str] | None = None) -> TracedBatch:
    """The batch to trace ``model`` on: ``given`` (``--input``) and INPUT's
    arrays by input name, or INPUT's one array, or ``synthetic`` (default: a
    synthetic batch that fits the model). ``places``: where each ``--input``
    came from, for messages (``--input token_ids=ids.npy``)."""
    graph_model = walkable(model)
    check_mask_input(mask_input, [ref.name for ref in model_graph(model).inputs]
                     if graph_model else None)
    if padded is None and not given:
        batches = synthetic or synthetic_inputs(model, seed, mask_input)
        names = [ref.name for ref in model_graph(model).inputs]
        # the synthetic batch pads its shorter sequences whenever it has 2 steps or more
        return TracedBatch(batches if len(batches) > 1 else batches[0], names, batches, True,
                           min(batch.shape[1] for batch in batches) > 1,
                           masks=[synthetic_mask(batch) for batch in batches],
                           pad_values=pad_value)
    if not given and padded.inputs is not None:
        if graph_model:
            check_fits(model, padded.inputs, padded.source)
        if pad_value is None:
            pad_value = (masking_value(model) if graph_model else None) or 0
        is_padded = has_padding(padded.inputs, padded.mask, pad_value)
        note = None if is_padded else (
            f"note: {padded.source} has no padded step: only dropped masks are checked, and "
            "padding effects with padding added after the last step")
        names = [ref.name for ref in model_graph(model).inputs] if graph_model else ["inputs"]
        if graph_model and is_mask_input(names[0], mask_input):
            mask_input_padding(names[0], padded.inputs, padded.source)  # 0/1 only, as with several
        sample = padded.inputs[:SAMPLE_SIZE]
        masks = None if padded.mask is None else padded.mask[:SAMPLE_SIZE]
        return TracedBatch(sample, names, [sample], False, is_padded, masks, pad_value, note)
    source = Places(padded.source if padded is not None else "the --input files", places or {})
    spec = model_inputs(model)
    if spec is None:
        raise InputError(f"{source}: named inputs need a model with named inputs (a Functional "
                         "model): give one array instead")
    found = dict(padded.extra) if padded is not None else {}
    arrays = match_inputs(spec, found, given, padded.inputs if padded is not None else None,
                          source)
    check_shapes(spec, arrays, source)
    check_named_fits(model, arrays, source)
    masks, values = _named_masks(arrays, padded, pad_value, mask_input, source)
    is_padded = any(not mask.all() for mask in masks.values())
    sample = {name: array[:SAMPLE_SIZE] for name, array in arrays.items()}
    note = None if is_padded else (f"note: {source} has no padded step: only dropped masks "
                                   "are checked")
    return TracedBatch(spec.structure(sample), spec.names, [sample[n] for n in spec.names], False,
                       is_padded, {name: mask[:SAMPLE_SIZE] for name, mask in masks.items()},
                       values, note)


def _named_masks(arrays: dict[str, np.ndarray], padded: Padded | None, pad_value,
                 mask_input: str | None, source: str) -> tuple[dict, dict]:
    """Each per-step input's mask (True = real step) and pad value: a mask
    input's own values (and the inputs of its shape), else the npz mask of its
    shape, else its pad value (``--pad-value``, the npz meta, 0)."""
    masks, values = {}, {}
    for name, array in arrays.items():
        if is_mask_input(name, mask_input):
            masks[name] = mask_input_padding(name, array, source)
    by_shape = {mask.shape: mask for mask in masks.values()}
    file_mask = padded.mask if padded is not None else None
    for name, array in arrays.items():
        value = pad_value
        if value is None and padded is not None:
            value = _number(padded.pad_value_of(name))
        values[name] = 0 if value is None else value
        if name in masks or array.ndim < 2:
            continue
        if array.shape[:2] in by_shape:
            masks[name] = by_shape[array.shape[:2]]
        elif file_mask is not None and file_mask.shape[:2] == array.shape[:2]:
            masks[name] = np.asarray(file_mask, bool)
        else:
            masks[name] = step_mask(compute_mask(array, default_mode(array), values[name]))
    return masks, values


def _number(value):
    try:
        return parse_value(value) if value is not None else None
    except MaskcliError:
        return None
