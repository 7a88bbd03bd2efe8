"""The fix for the layer where padding enters, chosen from what the layer does.

A layer's kind is read from its class (and, for your own layer, from the
layers it holds): attention, position embedding, RNN, convolution, pooling.
Each kind gets the remedy that keeps padded steps out of real ones.
"""

from __future__ import annotations

import inspect

from maskcli.keras.trace.graph import keras_module
from maskcli.keras.trace.walk import TraceRow

PAD_POST = "pad post (maskcli pad --padding post)"
ATTENTION_NO_MASK = (
    "attention with no mask reaching it attends to the padded steps: pass attention_mask "
    "(True where a query may attend a key), or let a Keras mask reach it "
    "(Embedding(mask_zero=True) before it)")
ATTENTION_SCORES = (
    "it receives the mask and still lets padded keys in: a mask applied to the attention "
    "scores by multiplication leaves a score of 0, and exp(0) = 1 after the softmax: add a "
    "bias instead, scores + (1 - mask) * -1e9 (or where(mask, scores, -1e9)) before the softmax")
NO_MASK_ARGUMENT = (
    "its call() takes no mask, so Keras never hands it one: add mask=None to call() and use it "
    "(pool or attend over the real steps only: weigh padded steps 0 and divide by the real "
    "count, or a -1e9 bias on padded scores before a softmax)")
ATTENTION_MASKED = (
    "attention that gets a mask still attends to padded steps: make sure the mask reaches its "
    "keys (value_mask, or attention_mask), not only its queries")
POSITION = (
    "absolute position embeddings on pre-padded data: the real tokens' positions move with "
    f"the amount of padding: {PAD_POST}, or compute positions from "
    "the mask (the cumulative sum of the mask, minus 1)")
RNN_PRE = (
    "an RNN without a mask on pre-padded data runs over the padding before the real steps: "
    f"Embedding(mask_zero=True) (or Masking) so that the mask reaches it, or {PAD_POST}")
RNN_PRE_LAST = (
    "an RNN without a mask returns its last state after running over the padding: "
    "Embedding(mask_zero=True) (or Masking) so that the mask reaches it; padding post does "
    "not help: its last state would then be read after the padding")
RNN_BACKWARD = (
    "a bidirectional (or backward) RNN without a mask runs over the padding before it reaches "
    "the real steps: Embedding(mask_zero=True) (or Masking) so that the mask reaches it; "
    "padding post does not help the backward direction")
RNN_LAST = (
    "an RNN without a mask runs over the padding after the real steps before it returns its "
    "state: Embedding(mask_zero=True) (or Masking) so that the mask reaches it")
RNN_MASKED = ("an RNN that gets a mask still changes at real steps: check that the mask "
              "matches the padding (mask_zero / mask_value against the pad value)")
CONVOLUTION = (
    "a convolution over time reads the padded steps next to real ones: zero the padded steps "
    "before it (multiply by the mask) and again after each convolution, or use "
    "padding='causal' on post-padded data")
CAUSAL_PRE = (
    "a causal convolution on pre-padded data reads the padding before the real steps: it is "
    f"already causal, so {PAD_POST} puts the padding after them, where it cannot reach")
POOLING = (
    "pooling over time takes padded steps into the pool: pool over the real steps only "
    "(GlobalAveragePooling1D with the mask reaching it, or set padded steps to -inf before a "
    "max pool)")
OWN_LAYER = (
    "your own layer mixes padded steps into real ones: take mask=None in its call() and use it "
    "(sum, pool or attend over real steps only), and set supports_masking = True if it keeps "
    "the time axis")
OPERATION = (
    "this operation works across steps (a sum, mean, max or product over the time axis): "
    "compute it over real steps only (multiply by the mask first), or in a layer that takes "
    "mask=")
OTHER = "it mixes steps: let the mask reach it, or zero the padded steps before it"
BUILT_IN = ("keras.", "tf_keras.")  # Keras' own layers: their class says what they do
LIBRARIES = ("keras_hub.", "keras_nlp.", "maskcli.")  # blocks of Keras layers, not your code


def entry_fix(layer, row: TraceRow, *, pre_padded: bool, positions: bool = False) -> str:
    """The fix for ``layer`` (None for an operation), where padding enters.

    ``positions``: one of its inputs is a per-position tensor without the
    batch axis (``ops.arange`` over the steps), i.e. absolute positions.
    """
    if layer is None:
        return POSITION if positions and pre_padded else OPERATION
    found = [(kind, layer) for kind in _kinds(layer)]
    module = type(layer).__module__
    own = not module.startswith(BUILT_IN + LIBRARIES)
    if not module.startswith(BUILT_IN):  # what it holds tells what it does
        found += [(kind, inner) for inner in layer._flatten_layers(include_self=False)
                  for kind in _kinds(inner)]
    if positions or any(word in f"{type(layer).__name__} {layer.name}".lower()
                        for word in ("position", "rotary", "sinusoid")):
        found.insert(0, ("position", layer))
    if own and row.mask_in and not _takes_mask(layer):  # a mask is there, Keras cannot hand it
        return "inside your own layer: " + NO_MASK_ARGUMENT
    fixes = list(dict.fromkeys(fix for kind, inner in found
                               if (fix := _fix(kind, inner, row, pre_padded))))
    if own and row.mask_in and any(kind == "attention" for kind, _ in found):
        fixes = [ATTENTION_SCORES if fix == ATTENTION_MASKED else fix for fix in fixes]
    if not fixes:
        return (NO_MASK_ARGUMENT if not _takes_mask(layer) else OWN_LAYER) if own else OTHER
    return ("inside your own layer: " if own else "") + "; ".join(fixes)


def _takes_mask(layer) -> bool:
    """Whether Keras can hand ``layer.call()`` a mask (``mask=`` or ``*_mask=``)."""
    try:
        names = inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return True
    return any(name == "mask" or name.endswith("_mask") for name in names)


def _calls_softmax(layer) -> bool:
    """Your own layer whose call() computes a softmax: it attends (or pools by scores)."""
    if type(layer).__module__.startswith(BUILT_IN + LIBRARIES):
        return False
    try:
        return "softmax" in inspect.getsource(type(layer).call)
    except (OSError, TypeError):
        return False


def _kinds(layer) -> list[str]:
    layers = keras_module().layers
    name = type(layer).__name__
    if isinstance(layer, (layers.MultiHeadAttention, layers.Attention,
                          layers.AdditiveAttention, layers.GroupQueryAttention)) \
            or "Attention" in name or _calls_softmax(layer):
        return ["attention"]
    if isinstance(layer, (layers.RNN, layers.Bidirectional)):
        return ["rnn"]
    if isinstance(layer, (layers.Conv1D, layers.SeparableConv1D, layers.DepthwiseConv1D,
                          layers.Conv1DTranspose)):
        return ["convolution"]
    if isinstance(layer, (layers.MaxPooling1D, layers.AveragePooling1D,
                          layers.GlobalMaxPooling1D, layers.GlobalAveragePooling1D)) \
            or "Pool" in name:
        return ["pooling"]
    return []


def _fix(kind: str, layer, row: TraceRow, pre_padded: bool) -> str | None:
    if kind == "position":
        return POSITION if pre_padded else None
    if kind == "attention":
        return ATTENTION_MASKED if row.mask_in else ATTENTION_NO_MASK
    if kind == "rnn":
        if row.mask_in:
            return RNN_MASKED
        backward = isinstance(layer, keras_module().layers.Bidirectional) or getattr(
            layer, "go_backwards", False)
        if backward:
            return RNN_BACKWARD
        if not pre_padded:
            return RNN_LAST
        inner = getattr(layer, "forward_layer", layer)
        return RNN_PRE if getattr(inner, "return_sequences", True) else RNN_PRE_LAST
    if kind == "convolution" and getattr(layer, "padding", None) == "causal" and pre_padded:
        return CAUSAL_PRE
    return {"convolution": CONVOLUTION, "pooling": POOLING}.get(kind)
