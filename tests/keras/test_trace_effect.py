"""Where padding enters: one model per kind of entry point, models where it
never enters, each checked against sub-models built by hand."""

from __future__ import annotations

import numpy as np
import pytest

from maskcli.core.errors import InputError, ModelError
from maskcli.core.extend import extend_padding
from maskcli.keras import trace
from maskcli.keras.models import full_float32, import_keras

pytestmark = pytest.mark.filterwarnings("ignore:.*will therefore destroy the mask")

keras = import_keras()
layers = keras.layers
ops = keras.ops
EXTRA = trace.EXTRA_PADDING
VOCAB = 12


class TutorialPositionEmbedding(layers.Layer):
    """keras.io's TokenAndPositionEmbedding: positions 0..T-1, whatever the padding."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = layers.Embedding(VOCAB, 8)
        self.pos_emb = layers.Embedding(32, 8)

    def call(self, x):
        positions = self.pos_emb(ops.arange(0, ops.shape(x)[-1], 1))
        return self.token_emb(x) + positions


class Positions(layers.Layer):
    """The position table alone, (1, steps, 8): added to the tokens by an operation."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.table = layers.Embedding(32, 8)

    def call(self, ids):
        return self.table(ops.expand_dims(ops.arange(ops.shape(ids)[1]), 0))


class MixSteps(layers.Layer):
    """Keeps the mask (supports_masking) but adds the mean over ALL steps to each one."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x):
        return x + ops.mean(x, axis=1, keepdims=True)


class SubclassedTagger(keras.Model):
    """A subclassed tagger whose attention gets no mask."""

    def __init__(self):
        super().__init__(name="tagger")
        self.embed = layers.Embedding(VOCAB, 8)
        self.att = layers.MultiHeadAttention(2, 4)
        self.tags = layers.Dense(3)

    def call(self, ids):
        x = self.embed(ids)
        return self.tags(self.att(x, x))


def tokens():
    return keras.Input(shape=(None,), dtype="int32", name="tokens")


def functional(body, name="model"):
    x = tokens()
    return keras.Model(x, layers.Dense(2, name="out")(body(x)), name=name)


def embed(x, mask_zero=False, dim=8):
    return layers.Embedding(VOCAB, dim, mask_zero=mask_zero, name="embedding")(x)


def self_attention(x):
    return layers.MultiHeadAttention(2, 4, name="mha")(x, x)


def position_op(x):
    return embed(x) + Positions(name="positions")(x)


def batch(side: str) -> np.ndarray:
    """The synthetic batch (6, 4 and 2 real steps), post- or pre-padded."""
    ids = trace.padded_batch(vocab=VOCAB)
    if side == "pre":
        ids = np.stack([np.concatenate([row[row == 0], row[row != 0]]) for row in ids])
    return ids


# case -> (builder, padding side, the row where padding enters, words of its fix)
ENTERS = {
    "attention-without-a-mask": (lambda: functional(lambda x: self_attention(embed(x))), "post",
                                 "mha", "pass attention_mask"),
    "position-embedding-on-pre-padding": (
        lambda: functional(lambda x: TutorialPositionEmbedding(name="tok_pos")(x)), "pre",
        "tok_pos", "absolute position embeddings on pre-padded data"),
    "positions-added-by-an-operation": (lambda: functional(position_op), "pre", "add",
                                        "compute positions from the mask"),
    "bidirectional-rnn-without-a-mask": (
        lambda: functional(lambda x: layers.Bidirectional(
            layers.LSTM(4, return_sequences=True), name="bidirectional")(embed(x))), "pre",
        "bidirectional", "mask_zero=True"),
    "conv1d": (lambda: functional(lambda x: layers.Conv1D(4, 3, padding="same", name="conv1d")(
        embed(x, mask_zero=True))), "post", "conv1d", "a convolution over time"),
    "global-max-pooling": (lambda: functional(lambda x: layers.GlobalMaxPooling1D(name="pool")(
        embed(x, mask_zero=True, dim=16))), "post", "pool", "pooling over time"),
    "custom-layer": (lambda: functional(lambda x: MixSteps(name="mix")(embed(x, mask_zero=True))),
                     "post", "mix", "your own layer"),
    "rnn-without-a-mask-on-pre-padding": (
        lambda: functional(lambda x: layers.GRU(4, return_sequences=True, name="gru")(embed(x))),
        "pre", "gru", "or pad post"),
}
# case -> (builder, padding side): padding never enters
IGNORED = {
    "masked-lstm-post": (lambda: functional(lambda x: layers.LSTM(
        4, return_sequences=True, name="lstm")(embed(x, mask_zero=True))), "post"),
    "masked-lstm-pre": (lambda: functional(lambda x: layers.LSTM(
        4, return_sequences=True, name="lstm")(embed(x, mask_zero=True))), "pre"),
    "masked-attention-post": (lambda: functional(lambda x: self_attention(embed(x, True))), "post"),
    "masked-attention-pre": (lambda: functional(lambda x: self_attention(embed(x, True))), "pre"),
    "causal-gru-without-a-mask-post": (lambda: functional(lambda x: layers.GRU(
        4, return_sequences=True, name="gru")(embed(x))), "post"),
}


@pytest.fixture(scope="module")
def traced():
    keras.backend.clear_session()  # auto names ("add") count from a clean start
    keras.utils.set_random_seed(0)
    results = {}
    for case, (build, side, *_) in {**ENTERS, **IGNORED}.items():
        model, ids = build(), batch(side)
        with full_float32():
            results[case] = (model, ids, trace.trace_padding(model, ids))
    return results


def real_change(function, ids: np.ndarray) -> tuple[float, float]:
    """By direct extension: the largest change of ``function``'s output at
    real steps (whole outputs without the time axis), and the tolerance."""
    mask = ids != 0
    longer, offsets = extend_padding(ids, mask, EXTRA)
    short, long = np.asarray(function(ids)), np.asarray(function(longer))
    if short.shape == long.shape:
        diff, scale = np.abs(short - long).max(), np.abs(short).max()
    else:
        seq, step = np.nonzero(mask)
        diff = np.abs(short[seq, step] - long[seq, step + offsets[seq]]).max()
        scale = np.abs(short[seq, step]).max()
    return float(diff), trace.FORWARD_RTOL * max(1.0, float(scale))


def sub_model(model, tensors):
    return keras.Model(model.input, tensors)


@pytest.mark.parametrize("case", ENTERS)
def test_padding_enters_at_the_named_layer(traced, case):
    _, _, result = traced[case]
    path, words = ENTERS[case][2:]
    assert result.measured and result.enters is not None
    assert result.enters.path == path
    assert words in result.enters.padding_fix
    entered = [row.path for row in result.rows if row.padding == "enters"]
    assert entered == [path]
    after = result.rows[[row.path for row in result.rows].index(path) + 1:]
    assert after and all(row.padding == "inherited" for row in after)  # not blamed


@pytest.mark.parametrize("case", ENTERS)
def test_the_named_layer_changes_and_its_inputs_do_not(traced, case):
    """Built by hand: keras.Model(model.input, layer.output) for the named
    layer (or operation) and for each of its inputs."""
    model, ids, result = traced[case]
    node = next(node for nodes in model._nodes_by_depth.values() for node in nodes
                if node.operation is not None and node.operation.name == result.enters.path)
    changed, tolerance = real_change(sub_model(model, node.outputs[0]), ids)
    assert changed > tolerance
    assert result.enters.padding_effect == pytest.approx(changed, rel=1e-3, abs=tolerance)
    for ref in node.input_tensors:
        if ref.shape[0] is None and not any(ref is x for x in model.inputs):  # batch-first
            unchanged, tolerance = real_change(sub_model(model, ref), ids)
            assert unchanged <= tolerance, ref


@pytest.mark.parametrize("case", IGNORED)
def test_padding_never_enters(traced, case):
    model, ids, result = traced[case]
    assert result.measured and result.enters is None
    assert {row.padding for row in result.rows} == {"ignored"}
    assert all(row.padding_fix is None for row in result.rows)
    changed, tolerance = real_change(model, ids)  # the whole model, by hand
    assert changed <= tolerance


def test_float32_noise_stays_within_the_tolerance(traced):
    """Masked attention sums over 6 keys, then 10: float32 rounding differs
    by about 1e-8, which the tolerance absorbs."""
    result = traced["masked-attention-post"][2]
    mha = next(row for row in result.rows if row.path == "mha")
    assert 0 < mha.padding_effect < 1e-6


def test_a_layer_that_keeps_the_mask_can_still_let_padding_in(traced):
    rows = {row.path: row for row in traced["custom-layer"][2].rows}
    assert rows["mix"].status == "propagates" and rows["mix"].padding == "enters"
    assert traced["custom-layer"][2].enters.path == "mix"


def test_a_subclassed_model_is_traced_sub_layer_by_sub_layer():
    keras.utils.set_random_seed(0)
    model, ids = SubclassedTagger(), batch("post")
    result = trace.trace_padding(model, ids)
    assert [(row.path, row.padding) for row in result.rows] == [
        ("embed", "ignored"), ("att", "enters"), ("tags", "inherited")]
    assert "pass attention_mask" in result.enters.padding_fix
    assert "subclassed model" in result.note and result.measured
    assert [row.is_output for row in result.rows] == [False, False, True]
    # by hand: the embedding does not change at real steps, the attention does
    unchanged, tolerance = real_change(model.embed, ids)
    assert unchanged <= tolerance
    changed, tolerance = real_change(lambda x: model.att(model.embed(x), model.embed(x)), ids)
    assert changed > tolerance
    assert result.enters.padding_effect == pytest.approx(changed, rel=1e-3)


def test_recording_restores_layer_call_even_when_the_model_fails():
    class Failing(keras.Model):
        def __init__(self):
            super().__init__(name="failing")
            self.embed = layers.Embedding(VOCAB, 4)

        def call(self, ids):
            raise RuntimeError("boom")

    original = layers.Layer.__call__
    with pytest.raises(ModelError, match=r"running model 'failing' failed \(RuntimeError: boom\)"):
        trace.trace_padding(Failing(), batch("post"))
    assert layers.Layer.__call__ is original


def test_a_subclassed_model_without_sub_layers_says_why():
    class Bare(keras.Model):
        def call(self, ids):
            return ops.cast(ids, "float32") * 2.0

    result = trace.trace_padding(Bare(name="bare"), batch("post"))
    assert result.rows == [] and not result.measured
    assert "calls no sub-layer" in result.note


def test_a_fixed_length_model_says_why_nothing_was_measured():
    x = keras.Input(shape=(6,), dtype="int32", name="tokens")
    model = keras.Model(x, layers.Dense(1, name="out")(layers.Flatten(name="flat")(embed(x))))
    result = trace.trace_padding(model, batch("post"))
    assert not result.measured and result.enters is None
    assert "cannot run on 4 more padding steps" in result.note
    assert all(row.padding_effect is None and row.padding is None for row in result.rows)
    assert [row.status for row in result.rows] == ["none", "none", "none"]  # the mask trace stands


def test_mask_inputs_are_extended_with_zero():
    """Explicit masking (attention_mask from a padding_mask input), the way
    transformers mask: no Keras mask anywhere, and padding never enters."""
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    pad = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
    x = embed(ids)
    attend = ops.expand_dims(ops.cast(pad, "bool"), 1)
    out = layers.MultiHeadAttention(2, 4, name="mha")(x, x, attention_mask=attend)
    model = keras.Model({"token_ids": ids, "padding_mask": pad}, layers.Dense(2, name="out")(out))
    for side in ("post", "pre"):
        data = batch(side)
        inputs = {"token_ids": data, "padding_mask": (data != 0).astype("int32")}
        result = trace.trace_padding(model, inputs)
        assert result.measured and result.enters is None, side
        assert result.sides == [side]
    # the same data with the mask input ignored: padding enters at the attention
    model = keras.Model({"token_ids": ids, "padding_mask": pad}, layers.Dense(2)(
        layers.MultiHeadAttention(2, 4, name="blind")(x, x)))
    assert trace.trace_padding(model, inputs).enters.path == "blind"


def test_a_keras_hub_backbone_is_descended():
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=16, name="backbone")
    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
              for name in ("token_ids", "segment_ids", "padding_mask")}
    model = keras.Model(inputs, layers.Dense(3, name="tags")(backbone(inputs)["sequence_output"]))
    found = {}
    for side in ("post", "pre"):
        ids = batch(side)
        data = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
                "padding_mask": (ids != 0).astype("int32")}
        found[side] = trace.trace_padding(model, data)
    assert found["post"].enters is None and found["post"].measured
    pre = found["pre"]
    assert pre.enters.path == "backbone/position_embedding"
    assert "pad post" in pre.enters.padding_fix
    assert "your own layer" not in pre.enters.padding_fix  # a KerasHub layer
    assert {row.path: row.padding for row in pre.rows}["backbone"] == "contains"


def test_input_masks_follow_explicit_mask_inputs():
    ids = np.array([[5, 3, 0], [4, 0, 0]])
    segments = np.zeros_like(ids)
    pad = (ids != 0).astype("int32")
    masks = trace.input_masks([ids, pad, segments], ["token_ids", "padding_mask", "segment_ids"])
    for mask in masks:  # segment ids of 0 are real where the padding mask says so
        np.testing.assert_array_equal(mask, ids != 0)
    features = np.ones((2, 3, 2), "float32")
    features[1, 2:] = -1.0
    (mask,) = trace.input_masks([features], ["x"], pad_values=-1.0)
    assert mask.tolist() == [[True, True, True], [True, True, False]]
    assert trace.is_mask_input("decoder_padding_mask") and not trace.is_mask_input("token_ids")
    with pytest.raises(InputError, match=r"the mask of input 'x' has shape \(2, 2\), the input "
                                         r"\(2, 3, 2\): give one mask value per step \(2, 3\)"):
        trace.input_masks([features], ["x"], [np.ones((2, 2), bool)])


def test_padding_cause_names_the_layer_and_a_dropped_mask(traced):
    cause = trace.padding_cause(traced["conv1d"][2])
    assert cause.startswith("padding enters at layer 'conv1d' (Conv1D): a convolution over time")
    assert "; it also drops the Keras mask: use a mask-aware layer" in cause
    assert "drops" not in trace.padding_cause(traced["conv1d"][2], with_drop=False)
    assert trace.padding_cause(traced["masked-lstm-pre"][2]) is None
