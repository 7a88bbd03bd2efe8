"""The inputs of an audit, input by input, and which of their steps are padding.

Every input with a time axis has its own padding (True = real step):

- a *mask input* (``padding_mask``, ``attention_mask``, ``*_padding_mask`` or
  ``--mask-input NAME``) is its own padding: 1 (or True) marks a real step;
- an input of the same (sequences, steps) as a mask input takes its padding:
  the ``token_ids`` and ``segment_ids`` beside a ``padding_mask``;
- any other input takes the mask ``maskcli pad`` recorded for it (the npz
  ``NAME_mask``, or ``mask`` for the fields of the first field's lengths),
  else the mask its pad value gives, as Embedding(mask_zero) or Masking build
  it. An encoder's and a decoder's inputs of different lengths thus keep
  their own padding.

The reference mask of the loss is the padding of the output's time axis: the
one given (``--mask``, the npz ``mask``, ``--target-pad``), else that of the
inputs whose length is the output's (see :func:`reference_for_output`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskcli.core.errors import InputError
from maskcli.core.extend import extend_padding, pad_fill, pre_padded_rows, real_part
from maskcli.core.masks import compute_mask, default_mode, step_mask
from maskcli.keras.feed import ModelInputs, is_mask_input, mask_input_padding, place_of


@dataclass
class Batch:
    """The arrays that feed a model, one per input, with each input's padding
    (None for an input without a time axis, such as one value per sequence)."""

    spec: ModelInputs | None  # None: a model that takes one array
    arrays: dict[str, np.ndarray]
    paddings: dict[str, np.ndarray | None]
    mask_inputs: list[str] = field(default_factory=list)
    pad_values: dict[str, object] = field(default_factory=dict)

    @classmethod
    def single(cls, inputs: np.ndarray, mask: np.ndarray, spec: ModelInputs | None = None):
        """One array whose padding is the reference mask itself, as audits of
        single-input models have always worked."""
        name = spec.names[0] if spec is not None and len(spec.names) == 1 else "inputs"
        return cls(spec if spec is not None and len(spec.names) == 1 else None,
                   {name: inputs}, {name: mask})

    @property
    def names(self) -> list[str]:
        return list(self.arrays)

    @property
    def sequences(self) -> int:
        return len(next(iter(self.arrays.values())))

    def model_inputs(self, arrays: dict[str, np.ndarray] | None = None):
        """What the model takes (an array, a list or a dict), from ``arrays``
        (default: the batch's own)."""
        arrays = self.arrays if arrays is None else arrays
        if self.spec is None:
            return arrays[self.names[0]]
        return self.spec.structure(arrays)

    def describe(self) -> str:
        """``token_ids (2, 8), padding_mask (2, 8)``, or the one array's shape."""
        if len(self.arrays) == 1:
            return f"shape {next(iter(self.arrays.values())).shape}"
        return "inputs " + ", ".join(f"{name} {array.shape}" for name, array in self.arrays.items())

    @property
    def per_step(self) -> dict[str, np.ndarray]:
        return {name: pad for name, pad in self.paddings.items() if pad is not None}

    def driver(self, steps: int, mask: np.ndarray) -> str | None:
        """The input whose time axis the output's follows: of ``steps`` steps,
        its padding equal to the reference ``mask`` if one's is."""
        same = [name for name, pad in self.per_step.items() if pad.shape[1] == steps]
        equal = [name for name in same if np.array_equal(self.paddings[name], mask)]
        return (equal or same or [None])[0]

    def fill(self, name: str):
        """What extra padding steps of input ``name`` hold: 0 for a mask input,
        else what its padded steps hold (token ids: the pad value; segment or
        position ids: the value they hold at padding), else its pad value."""
        array = self.arrays[name]
        if name in self.mask_inputs:
            return np.zeros((), dtype=array.dtype)
        value = pad_fill(array, self.paddings[name])
        return self.pad_values.get(name, 0) if value is None else value

    def pad_step(self, name: str | None):
        """What one padded step of input ``name`` holds (for the likely cause)."""
        if name is None:
            return None
        return pad_fill(self.arrays[name], self.paddings[name])

    def trimmed_groups(self, rows: np.ndarray):
        """Each sequence of ``rows`` alone, every per-step input trimmed to its
        own real steps: yields (sequences, arrays), one group per distinct set
        of lengths, so that each group runs as one batch."""
        keys = {}
        for i in rows:
            key = tuple(int(pad[i].sum()) for pad in self.per_step.values())
            keys.setdefault(key, []).append(i)
        for group in keys.values():
            arrays = {}
            for name, array in self.arrays.items():
                pad = self.paddings[name]
                parts = [real_part(array, pad, i) if pad is not None else array[i] for i in group]
                arrays[name] = np.stack(parts)
            yield np.array(group), arrays

    def extended(self, extra: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Every per-step input with ``extra`` more padding steps on its own
        padding side; returns the arrays and, per input, the offsets of its
        original steps (see :func:`maskcli.core.extend.extend_padding`)."""
        arrays, offsets = {}, {}
        for name, array in self.arrays.items():
            pad = self.paddings[name]
            if pad is None:
                arrays[name] = array
                continue
            arrays[name], offsets[name] = extend_padding(array, pad, extra, self.fill(name),
                                                         pre_padded_rows(pad))
        return arrays, offsets


def named_batch(spec: ModelInputs, arrays: dict[str, np.ndarray], *, source: str,
                mask_input: str | None = None, pad_values: dict | None = None,
                recorded_masks: dict[str, np.ndarray] | None = None,
                file_mask: np.ndarray | None = None) -> Batch:
    """The batch of a model with named inputs, each input's padding found as
    the module docstring says. ``pad_values``: per input; ``recorded_masks``:
    the masks ``maskcli pad`` wrote per field (``NAME_mask``); ``file_mask``:
    the npz ``mask``."""
    pad_values = pad_values or {}
    recorded_masks = recorded_masks or {}
    mask_inputs = [name for name in spec.names if is_mask_input(name, mask_input)]
    paddings: dict[str, np.ndarray | None] = {}
    for name in mask_inputs:
        paddings[name] = mask_input_padding(name, arrays[name], source)
    for name in spec.names:
        if name in paddings:
            continue
        array = arrays[name]
        if array.ndim < 2:
            paddings[name] = None
            continue
        shape = array.shape[:2]
        # Of several mask inputs of this shape (an encoder's and a decoder's of
        # one length), the one whose prefix the input shares: decoder_padding_mask
        # for decoder_token_ids.
        partners = sorted((mask for mask in mask_inputs if paddings[mask].shape == shape
                           and name.startswith(_prefix(mask))), key=lambda m: -len(_prefix(m)))
        if partners:
            paddings[name] = paddings[partners[0]]
        elif name in recorded_masks and recorded_masks[name].shape == shape:
            paddings[name] = step_mask(recorded_masks[name].astype(bool))
        elif file_mask is not None and file_mask.shape[:2] == shape:
            paddings[name] = step_mask(file_mask.astype(bool))
        else:
            value = pad_values.get(name, 0)
            paddings[name] = step_mask(compute_mask(array, default_mode(array), value))
    for name in mask_inputs:  # a mask input masks inputs of its own length
        others = {other: arrays[other].shape[1] for other in spec.names
                  if other not in mask_inputs and arrays[other].ndim >= 2}
        if others and paddings[name].shape[1] not in others.values():
            lengths = ", ".join(f"'{other}' {steps}" for other, steps in others.items())
            raise InputError(f"{place_of(source, name)}: mask input '{name}' has "
                             f"{paddings[name].shape[1]} steps, "
                             f"and no input it could mask has ({lengths} steps): give it the "
                             "padded length of the inputs it masks")
    if not any(pad is not None for pad in paddings.values()):
        raise InputError(f"{source}: no input of the model has a time axis (shapes "
                         f"{', '.join(f'{n} {a.shape}' for n, a in arrays.items())}): "
                         "audit-loss audits padded sequences (sequences, steps, ...)")
    return Batch(spec, {name: arrays[name] for name in spec.names},
                 {name: paddings[name] for name in spec.names}, mask_inputs,
                 {name: pad_values.get(name, 0) for name in spec.names})


def _prefix(mask_name: str) -> str:
    for suffix in ("padding_mask", "attention_mask"):
        if mask_name.endswith(suffix):
            return mask_name[:-len(suffix)]
    return ""


def reference_for_output(batch: Batch, out_shape: tuple, source: str, *,
                         given: np.ndarray | None = None, given_label: str = "the mask",
                         file_mask: np.ndarray | None = None) -> np.ndarray:
    """The reference mask of a named batch for an output of ``out_shape``:
    ``given`` (``--mask``, or the targets' padding), else the npz ``mask`` when
    it fits the output, else the padding of the inputs of the output's length.
    For an output without a time axis: the first mask input's padding, else
    the first per-step input's (it only counts the real steps then)."""
    n = batch.sequences
    steps = out_shape[1] if len(out_shape) >= 3 else None
    if given is not None:
        if steps is not None and given.shape != (n, steps):
            raise InputError(f"{given_label} of shape {given.shape} does not fit the model's "
                             f"output of shape {tuple(out_shape)}: give a ({n}, {steps}) mask, "
                             "True = real step")
        return given
    if steps is not None and file_mask is not None and file_mask.shape[:2] == (n, steps):
        return step_mask(file_mask.astype(bool))
    per_step = batch.per_step
    if steps is None:
        name = next(iter(batch.mask_inputs), None) or next(iter(per_step))
        return per_step[name]
    same = [name for name, pad in per_step.items() if pad.shape[1] == steps]
    if not same:
        lengths = ", ".join(f"'{name}' {pad.shape[1]}" for name, pad in per_step.items())
        raise InputError(f"{source}: the model's output has {steps} steps, and no input has "
                         f"({lengths}): give the padding of the output with --mask FILE "
                         f"({n}, {steps}), True = real step")
    first = per_step[same[0]]
    other = next((name for name in same if not np.array_equal(per_step[name], first)), None)
    if other is not None:
        raise InputError(f"{source}: the output's {steps} steps match inputs '{same[0]}' and "
                         f"'{other}', whose padding differs: say which steps of the output are "
                         "real with --mask FILE (True = real step)")
    return first
