"""The trace core: one model per status, checked against Keras' own masks."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from maskcli.core.errors import InputError, ModelError
from maskcli.keras import trace
from maskcli.keras.models import import_keras, keras_mask

pytestmark = pytest.mark.filterwarnings("ignore:.*will therefore destroy the mask")

keras = import_keras()
layers = keras.layers
ops = keras.ops


class NoMaskScale(layers.Layer):
    """A custom layer that forgets ``supports_masking``: drops the mask."""

    def call(self, x):
        return x * 2.0


class MaskedScale(NoMaskScale):
    """The same layer with the fix applied: it propagates the mask."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True


class MaskedMeanPool(layers.Layer):
    """An attention-style pooling that takes ``mask=``: consumes the mask."""

    def call(self, x, mask=None):
        weights = ops.expand_dims(ops.cast(mask, x.dtype), -1)
        return ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


class MaskedZeroing(layers.Layer):
    """Uses the mask but forgets to pass it on, keeping the time axis."""

    def call(self, x, mask=None):
        return x * ops.expand_dims(ops.cast(mask, x.dtype), -1)


def tokens():
    return keras.Input(shape=(None,), dtype="int32", name="tokens")


def embed(x, name="embedding"):
    return layers.Embedding(12, 4, mask_zero=True, name=name)(x)


def functional(body):
    x = tokens()
    return keras.Model(x, body(x))


def nested_encoder(*inner):
    return keras.Sequential([keras.Input(shape=(None, 4)), *inner], name="encoder")


def two_input_attention():
    ids, query = tokens(), keras.Input(shape=(None, 4), name="query")
    out = layers.MultiHeadAttention(2, 4, name="mha")(query, embed(ids))
    return keras.Model([ids, query], layers.Dense(1, name="out")(out))


# case -> (model builder, [(row path, status)], the one-line cause or None)
CASES = {
    "custom-without-supports-masking": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(NoMaskScale(name="scale")(embed(x)))),
        [("embedding", "creates"), ("scale", "drops"), ("out", "none")],
        "layer 'scale' (NoMaskScale) drops the mask"),
    "custom-with-supports-masking": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(MaskedScale(name="scale")(embed(x)))),
        [("embedding", "creates"), ("scale", "propagates"), ("out", "propagates")],
        None),
    "operator-times-two": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(embed(x) * 2.0)),
        [("embedding", "creates"), ("multiply", "drops"), ("out", "none")],
        "operation 'multiply' (Multiply) drops the mask"),
    "conv1d": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(
            layers.Conv1D(3, 3, padding="same", name="conv1d")(embed(x)))),
        [("embedding", "creates"), ("conv1d", "drops"), ("out", "none")],
        "layer 'conv1d' (Conv1D) drops the mask"),
    "global-average-pooling": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(
            layers.GlobalAveragePooling1D(name="pool")(embed(x)))),
        [("embedding", "creates"), ("pool", "consumes"), ("out", "none")],
        None),
    "global-max-pooling": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(
            layers.GlobalMaxPooling1D(name="pool")(embed(x)))),
        [("embedding", "creates"), ("pool", "drops"), ("out", "none")],
        "layer 'pool' (GlobalMaxPooling1D) drops the mask"),
    "custom-masked-pooling": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(MaskedMeanPool(name="pool")(embed(x)))),
        [("embedding", "creates"), ("pool", "consumes"), ("out", "none")],
        None),
    "lstm-last-step": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(layers.LSTM(3, name="lstm")(embed(x)))),
        [("embedding", "creates"), ("lstm", "consumes"), ("out", "none")],
        None),
    "bidirectional-sequences": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(layers.Bidirectional(
            layers.LSTM(3, return_sequences=True), name="bilstm")(embed(x)))),
        [("embedding", "creates"), ("bilstm", "propagates"), ("out", "propagates")],
        None),
    "bidirectional-last-step": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(
            layers.Bidirectional(layers.LSTM(3), name="bilstm")(embed(x)))),
        [("embedding", "creates"), ("bilstm", "consumes"), ("out", "none")],
        None),
    "self-attention": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(
            layers.MultiHeadAttention(2, 4, name="mha")(embed(x), embed(x, "embedding_2")))),
        [("embedding", "creates"), ("embedding_2", "creates"), ("mha", "propagates"),
         ("out", "propagates")],
        None),
    "cross-attention-unmasked-query": (  # the value's mask is used; the query has none
        two_input_attention,
        [("embedding", "creates"), ("mha", "consumes"), ("out", "none")],
        "the model's output from layer 'out' (Dense) carries no mask: it ends at layer 'mha' "
        "(MultiHeadAttention), which consumes it"),
    "merge-layers": (
        lambda: functional(lambda x: layers.Concatenate(name="concat")([
            layers.Add(name="add")([embed(x), layers.Dense(4, name="dense")(embed(x, "embedding_2"))]),
            embed(x, "embedding_3")])),
        # Keras' own execution order: deepest nodes first
        [("embedding_2", "creates"), ("embedding", "creates"), ("dense", "propagates"),
         ("add", "propagates"), ("embedding_3", "creates"), ("concat", "propagates")],
        None),
    "nested-sequential-drops": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(nested_encoder(
            layers.Dense(4, name="inner_dense"), layers.Conv1D(4, 2, padding="same", name="inner_conv"))(
                embed(x)))),
        [("embedding", "creates"), ("encoder", "drops"), ("encoder/inner_dense", "propagates"),
         ("encoder/inner_conv", "drops"), ("out", "none")],
        "layer 'inner_conv' (Conv1D) inside 'encoder' drops the mask"),
    "nested-sequential-keeps": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(nested_encoder(
            layers.LSTM(4, return_sequences=True, name="inner_lstm"))(embed(x)))),
        [("embedding", "creates"), ("encoder", "propagates"), ("encoder/inner_lstm", "propagates"),
         ("out", "propagates")],
        None),
    "lambda-without-mask": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(
            layers.Lambda(lambda t: t * 2.0, name="double")(embed(x)))),
        [("embedding", "creates"), ("double", "drops"), ("out", "none")],
        "layer 'double' (Lambda) drops the mask"),
    "lambda-with-mask": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(layers.Lambda(
            lambda t: t * 2.0, mask=lambda inputs, mask: mask, name="double")(embed(x)))),
        [("embedding", "creates"), ("double", "propagates"), ("out", "propagates")],
        None),
    "no-mask-anywhere": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(
            layers.Embedding(12, 4, name="embedding")(x))),
        [("embedding", "none"), ("out", "none")],
        "the model's output from layer 'out' (Dense) carries no mask: no layer creates one; "
        "use Embedding(mask_zero=True) or a Masking layer"),
    "consumed-before-a-time-axis-output": (
        lambda: functional(lambda x: layers.Dense(1, name="out")(MaskedZeroing(name="zeroing")(embed(x)))),
        [("embedding", "creates"), ("zeroing", "consumes"), ("out", "none")],
        "the model's output from layer 'out' (Dense) carries no mask: it ends at layer 'zeroing' "
        "(MaskedZeroing), which consumes it"),
    "sequential-masking": (
        lambda: keras.Sequential([keras.Input(shape=(None, 3)), layers.Masking(-1.0, name="masking"),
                                  layers.LSTM(2, return_sequences=True, name="lstm"),
                                  layers.Dense(1, name="out")], name="seq"),
        [("masking", "creates"), ("lstm", "propagates"), ("out", "propagates")],
        None),
}


@pytest.fixture(scope="module")
def traced():
    """Each case's model, its synthetic inputs and its trace, built once."""
    # Auto names ("multiply") count up per process: start from a clean count
    # whatever other test modules built first.
    keras.backend.clear_session()
    results = {}
    for case, (build, _, _) in CASES.items():
        model = build()
        inputs = trace.synthetic_inputs(model, seed=0)
        results[case] = (model, inputs, trace.trace_mask(model, inputs))
    return results


@pytest.mark.parametrize("case", CASES)
def test_each_row_gets_its_status(traced, case):
    _, _, rows = traced[case]
    assert [(row.path, row.status) for row in rows] == CASES[case][1]


@pytest.mark.parametrize("case", CASES)
def test_first_leak_names_the_cause(traced, case):
    _, _, rows = traced[case]
    assert trace.first_leak(rows) == CASES[case][2]


@pytest.mark.parametrize("case", CASES)
def test_trace_matches_keras_own_run(traced, case):
    """Parity with ``model(inputs)``: the output carries a mask exactly when
    the trace says so, and Keras warns "will destroy the mask" for exactly the
    layers that drop it, plus those that consume it without supports_masking,
    plus every nested model a mask reaches (models do not support masking
    themselves, so Keras warns even when their layers carry the mask through)."""
    model, inputs, rows = traced[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        output = model(inputs if len(inputs) > 1 else inputs[0])
    (last,) = [row for row in rows if row.is_output]
    assert last.mask_out == (keras_mask(output) is not None)
    warned = {match.group(1) for w in caught
              if (match := re.match(r"Layer '(\w+)'.*destroy the mask", str(w.message)))}
    layers_by_name = {layer.name: layer for layer in _all_layers(model)}
    expected = {row.name for row in rows if row.kind == "model" and row.mask_in
                or row.kind == "layer" and (row.status == "drops" or (
                    row.status == "consumes" and not layers_by_name[row.name].supports_masking))}
    assert warned == expected


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def test_every_status_is_covered():
    seen = {status for _, expected, _ in CASES.values() for _, status in expected}
    assert seen == set(trace.STATUSES)


def test_drop_rows_carry_a_fix_that_fits_the_layer(traced):
    def fix(case, path):
        return next(row.fix for row in traced[case][2] if row.path == path)

    assert "supports_masking = True" in fix("custom-without-supports-masking", "scale")
    assert "supports_masking = True" in fix("operator-times-two", "multiply")
    assert "mask=" in fix("conv1d", "conv1d") and "layer 'embedding'" in fix("conv1d", "conv1d")
    assert "GlobalAveragePooling1D" in fix("global-max-pooling", "pool")
    assert "Lambda(fn, mask=" in fix("lambda-without-mask", "double")
    assert fix("nested-sequential-drops", "encoder") == "see the layers inside it, below"
    kept = [row for rows in (t[2] for t in traced.values()) for row in rows if row.status != "drops"]
    assert all(row.fix is None for row in kept)


def test_nested_rows_are_indented_under_their_model(traced):
    rows = traced["nested-sequential-drops"][2]
    assert [(row.path, row.depth, row.kind) for row in rows] == [
        ("embedding", 0, "layer"), ("encoder", 0, "model"), ("encoder/inner_dense", 1, "layer"),
        ("encoder/inner_conv", 1, "layer"), ("out", 0, "layer")]
    assert [row.mask_in for row in rows] == [False, True, True, True, False]


def test_keras_mask_bookkeeping_ops_run_but_get_no_row(traced):
    """Keras records the NotEqual behind Embedding(mask_zero) in the graph when
    it hands the mask to an LSTM; it is not the user's operation."""
    model = traced["lstm-last-step"][0]
    graph_ops = {type(node.operation).__name__ for nodes in model._nodes_by_depth.values()
                 for node in nodes}
    assert "NotEqual" in graph_ops
    assert "NotEqual" not in {row.cls for row in traced["lstm-last-step"][2]}


def test_rows_flag_the_time_axis_and_the_output(traced):
    rows = traced["lstm-last-step"][2]
    assert [(row.path, row.time_axis, row.is_output) for row in rows] == [
        ("embedding", True, False), ("lstm", False, False), ("out", False, True)]


def test_a_mask_passed_by_hand_counts_as_received():
    x = tokens()
    features = embed(x)
    mask = layers.Embedding(12, 4, mask_zero=True).compute_mask(x)
    conv = layers.Conv1D(4, 3, padding="same", name="conv1d")(features)
    out = layers.LSTM(2, return_sequences=True, name="lstm")(conv, mask=mask)
    rows = trace.trace_mask(keras.Model(x, out), trace.padded_batch(vocab=12))
    statuses = {row.path: (row.mask_in, row.status) for row in rows}
    assert statuses["conv1d"] == (True, "drops")  # the layer still drops it, and mixes steps
    assert statuses["lstm"] == (True, "propagates")


def test_a_sequential_built_on_first_call_is_traced():
    model = keras.Sequential([layers.Embedding(12, 4, mask_zero=True, name="embedding"),
                              layers.GlobalMaxPooling1D(name="pool")])
    rows = trace.trace_mask(model, trace.padded_batch(vocab=12))
    assert [(row.path, row.status) for row in rows] == [("embedding", "creates"), ("pool", "drops")]


def test_a_subclassed_model_is_refused():
    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ModelError, match="Functional or Sequential"):
        trace.trace_mask(Sub(), np.zeros((1, 2), "float32"))


def test_a_failing_run_names_the_layer():
    model = CASES["conv1d"][0]()
    with pytest.raises(ModelError, match=r"at layer 'embedding' \(Embedding\).*check that the data"):
        trace.trace_mask(model, np.full((2, 5), 99, "int32"))


def test_a_failing_run_names_the_cause_keras_wraps():
    # Keras wraps a layer's error in "Exception encountered when calling ...":
    # the message gives the line below it, the cause.
    model = CASES["conv1d"][0]()
    with pytest.raises(ModelError) as failure:
        trace.trace_mask(model, np.full((2, 5), 99, "int32"))
    assert "Exception encountered" not in str(failure.value)
    assert re.search(r"\(InvalidArgumentError: .*99 is not in \[0, \d+\)", str(failure.value))


def test_padded_batch_is_seeded_and_post_padded():
    ids = trace.padded_batch(vocab=5, seed=3)
    assert ids.shape == (3, 6) and ids.dtype == np.int32
    assert (ids[:, :2] > 0).all() and (ids < 5).all()
    assert (ids != 0).sum(axis=1).tolist() == [6, 4, 2]
    assert (ids[1, 4:] == 0).all() and (ids[2, 2:] == 0).all()
    np.testing.assert_array_equal(ids, trace.padded_batch(vocab=5, seed=3))
    assert not np.array_equal(ids, trace.padded_batch(vocab=5, seed=4))
    features = trace.padded_batch((2,), integer=False, steps=3, pad_value=-1.0)
    assert features.shape == (3, 3, 2) and features.dtype == np.float32
    assert (features[1, 2:] == -1.0).all() and (features[2, 1:] == -1.0).all()
    assert (features[0] != -1.0).all()


def test_synthetic_inputs_fit_the_model():
    x = keras.Input(shape=(5,), name="ids")  # float dtype, fixed length, feeding an Embedding
    model = keras.Model(x, layers.Embedding(3, 2, mask_zero=True)(x))
    (ids,) = trace.synthetic_inputs(model, seed=1)
    assert ids.shape == (3, 5) and ids.dtype.kind == "i" and ids.max() < 3
    (features,) = trace.synthetic_inputs(CASES["sequential-masking"][0](), seed=1)
    assert features.shape == (3, 6, 3)
    assert (features[2, 2:] == -1.0).all()  # padded with the Masking layer's mask_value
    assert [batch.shape for batch in trace.synthetic_inputs(two_input_attention())] == [
        (3, 6), (3, 6, 4)]


def test_synthetic_inputs_need_a_time_axis():
    x = keras.Input(shape=(), name="scalar")
    with pytest.raises(ModelError, match="no time axis"):
        trace.synthetic_inputs(keras.Model(x, x * 2.0))


def test_check_fits_accepts_fitting_data():
    model = CASES["conv1d"][0]()
    trace.check_fits(model, np.array([[1, 11, 0]]), "ids.npy")


@pytest.mark.parametrize("data, message", [
    (np.zeros((2, 3, 4)), r"ids\.npy: data of shape \(2, 3, 4\) does not fit the model's input "
                          r"'tokens' of shape \(n, n\)"),
    (np.array([[1, 12, 0]]), r"ids\.npy \(sequence 0, step 1\): id 12 is outside Embedding "
                             r"'embedding' \(input_dim 12\): ids must lie in 0\.\.11"),
    (np.array([[1, -1]]), r"ids\.npy \(sequence 0, step 1\): id -1 is outside"),
    (np.array([[1.5, 0.0]]), r"takes integer token ids"),
    (np.array([["a", "b"]]), r"not numbers"),
])
def test_check_fits_names_the_place_and_the_fix(data, message):
    with pytest.raises(InputError, match=message):
        trace.check_fits(CASES["conv1d"][0](), data, "ids.npy")


def test_check_fits_refuses_one_array_for_a_model_with_two_inputs():
    with pytest.raises(InputError, match=r"takes 2 inputs \('tokens', 'query'\).*omit INPUT"):
        trace.check_fits(two_input_attention(), np.zeros((1, 2)), "x.npy")


def test_check_fits_wants_fixed_steps():
    x = keras.Input(shape=(4,), dtype="int32", name="ids")
    model = keras.Model(x, layers.Embedding(5, 2, mask_zero=True)(x))
    with pytest.raises(InputError, match=r"shape \(1, 3\) does not fit .* of shape \(n, 4\)"):
        trace.check_fits(model, np.zeros((1, 3), "int32"), "x.npy")


def test_has_padding():
    assert trace.has_padding(np.array([[1, 2, 0]]))
    assert not trace.has_padding(np.array([[1, 2, 3]]))
    assert not trace.has_padding(np.array([[1, 2, 0]]), mask=np.array([[True, True, True]]))
    assert trace.has_padding(np.array([[[1.0], [-1.0]]]), pad_value=-1.0)


def test_report_is_json_ready(traced):
    import json

    model, inputs, rows = traced["conv1d"]
    result = trace.report(rows, model=model.name, inputs=inputs, input_names=["tokens"],
                          synthetic=True, padded=True, versions={"keras": keras.__version__})
    assert json.loads(json.dumps(result)) == result
    assert result["leak"] == "layer 'conv1d' (Conv1D) drops the mask" and result["ok"] is False
    assert result["inputs"] == [{"name": "tokens", "shape": [3, 6], "dtype": "int32"}]
    assert list(result["layers"][1]) == ["name", "path", "class", "kind", "depth", "mask_in",
                                         "mask_out", "status", "fix", "time_axis", "is_output",
                                         "padding_effect", "padding", "padding_fix"]
    # a mask trace alone measures no padding effect: nothing enters, nothing is said
    assert result["enters"] is None and result["padding_check"] is None
    assert all(row["padding_effect"] is None for row in result["layers"])
