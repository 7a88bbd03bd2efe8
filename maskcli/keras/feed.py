"""What a model takes, and the arrays that feed it, input by input.

A Keras model names its inputs: each ``keras.Input(name=...)``, or the keys of
a dict input (KerasHub backbones take ``token_ids``, ``segment_ids`` and
``padding_mask``). maskcli feeds each input the array of the same name, from an
npz whose arrays are named after the inputs or from ``--input NAME=FILE``.

A *mask input* is an input that says which steps are real (1 or True) rather
than carrying data: ``padding_mask`` (KerasHub), ``attention_mask`` (Hugging
Face), any name ending in ``_padding_mask``, or the one the user names with
``--mask-input``. Attention reads it explicitly; no Keras mask rides on it.

Every model call of the audit goes through :func:`run_model`, on the
structure :meth:`ModelInputs.structure` builds (an array, a list or a dict).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskcli.core.errors import InputError, UsageError

MASK_INPUT_NAMES = ("padding_mask", "attention_mask")
MASK_INPUT_SUFFIX = "_padding_mask"
# Arrays of an npz that describe the data rather than feed a model input
# (unless an input has that very name): what ``maskcli pad`` writes beside
# its fields, and the targets and weights of an audit.
NOT_INPUTS = ("inputs", "mask", "lengths", "meta", "targets", "sample_weight")
NOT_INPUT_SUFFIXES = ("_mask", "_lengths")


def is_mask_input(name: str, mask_input: str | None = None) -> bool:
    """Whether input ``name`` is a padding mask (1 = real step), by its name."""
    return (name == mask_input or name in MASK_INPUT_NAMES
            or name.endswith(MASK_INPUT_SUFFIX))


class Places(str):
    """Where a batch came from (INPUT, as a str), and where each input given on
    its own came from: ``--input token_ids=ids.npy``. Errors about one input
    name its place (:func:`place_of`), not INPUT's."""

    def __new__(cls, source: str, places: dict[str, str]):
        made = super().__new__(cls, source)
        made.places = dict(places)
        return made


def place_of(source: str, name: str) -> str:
    """The place of input ``name``'s data: its ``--input`` option, else ``source``."""
    return getattr(source, "places", {}).get(name, str(source))


def check_mask_input(mask_input: str | None, names) -> None:
    """Refuse ``--mask-input NAME`` naming no input of the model (``names``;
    None: a model that takes one unnamed array, such as a built-in one)."""
    if mask_input is None:
        return
    if names is None:
        raise UsageError(f"--mask-input {mask_input}: the model takes one unnamed array, no "
                         "named inputs: drop --mask-input")
    if mask_input not in names:
        raise UsageError(f"--mask-input {mask_input}: the model has no input named "
                         f"{mask_input!r} (its inputs: {', '.join(names)}): name one of those")


def is_data_array(key: str) -> bool:
    """Whether an npz array named ``key`` can feed an input not named after it."""
    return key not in NOT_INPUTS and not key.endswith(NOT_INPUT_SUFFIXES)


def mask_input_padding(name: str, values: np.ndarray, source: str) -> np.ndarray:
    """A mask input's values as a mask (True = real step): 0/1 or booleans only."""
    if values.ndim != 2:
        raise InputError(f"{place_of(source, name)}: mask input '{name}' has shape {values.shape}: a padding "
                         "mask is (sequences, steps), 1 at real steps; if it is not one, name "
                         "the real mask input with --mask-input NAME")
    if values.dtype != bool:
        bad = np.argwhere(~np.isin(values, (0, 1)))
        if bad.size:
            seq, step = (int(i) for i in bad[0])
            raise InputError(
                f"{place_of(source, name)}: mask input '{name}' holds {values[seq, step]} at "
                f"sequence {seq}, "
                f"step {step}: a padding mask holds 1 (or True) at real steps and 0 at padding; "
                "fix the mask, or name the real mask input with --mask-input NAME")
    return values.astype(bool)


@dataclass
class InputSpec:
    """One model input: its name, declared shape (None = free) and dtype."""

    name: str
    shape: tuple
    dtype: str


@dataclass
class ModelInputs:
    """The inputs of a model and how it takes them: ``single`` (one tensor),
    ``list`` (in order) or ``dict`` (by key)."""

    specs: list[InputSpec]
    kind: str

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def structure(self, arrays: dict[str, np.ndarray]):
        """What ``model(...)`` takes, built from one array per input name."""
        if self.kind == "dict":
            return {name: arrays[name] for name in self.names}
        if self.kind == "list":
            return [arrays[name] for name in self.names]
        return arrays[self.names[0]]


def model_inputs(model) -> ModelInputs | None:
    """The named inputs of a Functional or Sequential model, or None for a
    model without symbolic inputs (a subclassed model takes one array)."""
    from maskcli.keras.trace.graph import inner_graph

    graph = inner_graph(model)
    struct = getattr(graph, "_inputs_struct", None) if graph is not None else None
    if struct is None:
        return None
    if isinstance(struct, dict):
        pairs, kind = list(struct.items()), "dict"
    elif isinstance(struct, (list, tuple)):
        pairs, kind = [(tensor.name, tensor) for tensor in struct], "list"
    else:
        pairs, kind = [(struct.name, struct)], "single"
    if any(isinstance(tensor, (dict, list, tuple)) for _, tensor in pairs):
        return None  # nested input structures: fed as one array, as before
    specs = [InputSpec(str(name), tuple(tensor.shape), str(tensor.dtype)) for name, tensor in pairs]
    return ModelInputs(specs, "single" if len(specs) == 1 and kind == "single" else kind)


def match_inputs(spec: ModelInputs, found: dict[str, np.ndarray], given: dict[str, np.ndarray],
                 single: np.ndarray | None, source: str,
                 fed_from: dict | None = None) -> dict[str, np.ndarray]:
    """One array per model input: ``given`` (``--input NAME=FILE``) first, then
    the arrays ``found`` in INPUT by name, then by the Hugging Face name of a
    KerasHub input (``token_ids`` <- ``input_ids``: ``HF_NAMES``); ``single``
    (an npy, or an npz's ``inputs``) feeds a model with one input. A model
    input without data is an error that names it and the arrays found.
    ``fed_from``, if given, is filled with each input's array of INPUT."""
    from maskcli.core.names import HF_NAMES

    fed_from = {} if fed_from is None else fed_from
    unknown = sorted(set(given) - set(spec.names))
    if unknown:
        raise UsageError(f"--input {unknown[0]}=...: the model has no input named "
                         f"'{unknown[0]}' (its inputs: {', '.join(spec.names)}): "
                         "name one of those")
    arrays = {}
    for name in spec.names:
        if name in given:
            arrays[name] = given[name]
        elif name in found:
            arrays[name], fed_from[name] = found[name], name
        elif HF_NAMES.get(name) in found:
            arrays[name], fed_from[name] = found[HF_NAMES[name]], HF_NAMES[name]
        elif single is not None and len(spec.names) == 1:
            arrays[name] = single
    missing = [name for name in spec.names if name not in arrays]
    if missing:
        if single is not None and not found:
            what = f"{source} holds one unnamed array"
        elif found or single is not None:
            held = sorted(found) + (["inputs"] if single is not None else [])
            what = f"{source} holds {', '.join(held)}"
        else:
            what = "no INPUT was given"
        raise InputError(
            f"the model's input '{missing[0]}' has no data ({what}; the model takes "
            f"{', '.join(spec.names)}): name an npz array '{missing[0]}', or give "
            f"--input {missing[0]}=FILE")
    return arrays


def shape_mismatch(array: np.ndarray, declared: tuple) -> str | None:
    """None if ``array`` fits an input of ``declared`` shape (its rank, and every
    fixed size past the batch axis); else the declared shape as text, ``(n, 16)``."""
    fits = array.ndim == len(declared) and all(
        size is None or size == got for size, got in zip(declared[1:], array.shape[1:]))
    return None if fits else "(" + ", ".join("n" if d is None else str(d) for d in declared) + ")"


def check_shapes(spec: ModelInputs, arrays: dict[str, np.ndarray], source: str) -> None:
    """Each array must fit its input's declared rank and fixed sizes, and every
    input must hold the same number of sequences."""
    counts = {}
    for item in spec.specs:
        array = arrays[item.name]
        wanted = shape_mismatch(array, item.shape)
        if wanted:
            raise InputError(f"{place_of(source, item.name)}: input '{item.name}' of shape "
                             f"{array.shape} does not fit "
                             f"the model's input of shape {wanted}: give '{item.name}' that shape "
                             "(the same padded length as the model takes)")
        if array.dtype.kind not in "biuf":
            raise InputError(f"{place_of(source, item.name)}: input '{item.name}' holds "
                             f"{array.dtype}, not numbers: "
                             "map tokens to ids first with 'maskcli pad --vocab'")
        counts[item.name] = array.shape[0]
    if len(set(counts.values())) > 1:
        first = spec.names[0]
        other = next(name for name in spec.names if counts[name] != counts[first])
        raise InputError(f"{place_of(source, other)}: input '{other}' holds {counts[other]} "
                         "sequences and "
                         f"'{first}' {counts[first]}: give every input one row per sequence")


def run_model(model, inputs):
    """The model's output on ``inputs`` (an array, list or dict), not training."""
    return model(inputs, training=False)


def sliced(inputs, rows):
    """``inputs`` (an array, list or dict) for the sequences ``rows`` (a slice or indices)."""
    if isinstance(inputs, dict):
        return {name: array[rows] for name, array in inputs.items()}
    if isinstance(inputs, (list, tuple)):
        return [array[rows] for array in inputs]
    return inputs[rows]
