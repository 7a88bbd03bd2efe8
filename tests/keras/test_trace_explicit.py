"""trace-mask on models that mask explicitly through a mask input
(KerasHub's padding_mask): the verdict, the exit status, the table and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskcli.keras import trace
from tests.conftest import invoke
from tests.keras.transformers import bert_backbone, bert_batch, bert_tagger, explicit_lstm, keras

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]
layers = keras.layers
TOKENS = np.array([[3, 1, 4, 0, 0], [2, 7, 0, 0, 0], [5, 9, 2, 6, 0]], dtype="int32")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explicit")
    bert_tagger().save(folder / "tagger.keras")
    np.savez(folder / "batch.npz", **bert_batch())
    return folder


def trace_json(args, exit_code=0):
    result = invoke(["trace-mask", *args, "--format", "json"], exit_code=exit_code)
    return json.loads(result.stdout), result.stderr


def test_bert_tagger_masks_explicitly_and_is_no_leak(saved):
    report, stderr = trace_json(["--model", saved / "tagger.keras", saved / "batch.npz"])
    assert report["leak"] is None and report["ok"] is True
    assert report["mask_inputs"] == [{"name": "padding_mask", "layers": ["transformer_layer_0"]}]
    assert report["explicit_mask"].startswith(
        "the model masks explicitly through its input 'padding_mask' (received by layer "
        "'transformer_layer_0'): no Keras mask reaches the output, so the loss needs sample "
        "weights, 0 at padding")
    assert "explicit mask: the model masks explicitly" in stderr and "mask leak" not in stderr
    assert [item["name"] for item in report["inputs"]] == ["token_ids", "segment_ids",
                                                           "padding_mask"]
    assert report["padded"] is True and report["synthetic"] is False
    # without padding_mask's special meaning the same output is a leak
    rows = trace.trace_mask(keras.saving.load_model(saved / "tagger.keras"), bert_batch())
    assert trace.first_leak(rows).startswith("the model's output from layer 'tags' (Dense) "
                                             "carries no mask")


def test_bert_tagger_on_a_synthetic_batch(saved):
    report, _ = trace_json(["--model", saved / "tagger.keras"])
    assert report["synthetic"] is True and report["ok"] is True
    shapes = {item["name"]: item["shape"] for item in report["inputs"]}
    assert shapes == {"padding_mask": [3, 6], "segment_ids": [3, 6], "token_ids": [3, 6]}


def test_the_table_shows_which_layer_receives_the_mask_input(saved):
    result = invoke(["trace-mask", "--model", saved / "tagger.keras", saved / "batch.npz",
                     "--format", "table"], env={"COLUMNS": "160"})
    row = next(line for line in result.stdout.splitlines() if "transformer_layer_0" in line)
    assert "padding_mask" in row and "consumes" in row
    assert "mask input" in result.stdout


def test_classifier_with_a_nested_backbone_names_the_nested_layer():
    import keras_hub

    classifier = keras_hub.models.BertTextClassifier(bert_backbone(), num_classes=2,
                                                     preprocessor=None)
    found = trace.mask_inputs(classifier)
    assert found == [{"name": "padding_mask",
                      "layers": [f"{classifier.backbone.name}/transformer_layer_0"]}]


def test_a_pooled_classifier_that_masks_explicitly_needs_no_sample_weights(tmp_path):
    """Its output has no time axis: audit-loss refuses --sample-weight mask for it,
    so the trace must not recommend it."""
    import keras_hub

    classifier = keras_hub.models.BertTextClassifier(bert_backbone(), num_classes=2,
                                                     preprocessor=None)
    classifier.save(tmp_path / "classifier.keras")
    np.savez(tmp_path / "batch.npz", **bert_batch())
    report, stderr = trace_json(["--model", tmp_path / "classifier.keras", tmp_path / "batch.npz"])
    assert report["ok"] is True and report["leak"] is None
    assert report["explicit_mask"] == (
        "the model masks explicitly through its input 'padding_mask' (received by layer "
        f"'{classifier.backbone.name}/transformer_layer_0'): its output has no time axis, so "
        "the loss sees whole sequences, never a padded step, and needs no sample weights")
    assert "--sample-weight mask" not in stderr


def test_explicit_mask_through_an_operation_to_an_lstm():
    """padding_mask -> keras.ops.cast -> LSTM(mask=): the cast is an operation,
    the LSTM the layer that receives it."""
    model = explicit_lstm()
    lstm = next(layer.name for layer in model.layers if isinstance(layer, layers.LSTM))
    assert trace.mask_inputs(model) == [{"name": "padding_mask", "layers": [lstm]}]
    assert trace.mask_inputs(model, mask_input="token_ids")[0]["name"] == "token_ids"


def test_a_layer_that_drops_a_keras_mask_still_leaks(tmp_path):
    """A mask input and a Conv1D that drops the Keras mask of an embedding."""
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    x = layers.Embedding(10, 4, mask_zero=True)(tokens)
    x = layers.Conv1D(4, 3, padding="same", name="conv")(x)
    x = layers.LSTM(3, return_sequences=True)(x, mask=keras.ops.cast(mask, "bool"))
    keras.Model({"token_ids": tokens, "padding_mask": mask}, layers.Dense(1)(x)).save(
        tmp_path / "conv.keras")
    np.savez(tmp_path / "x.npz", token_ids=TOKENS, padding_mask=(TOKENS != 0).astype("int32"))
    report, stderr = trace_json(["--model", tmp_path / "conv.keras", tmp_path / "x.npz"],
                                exit_code=1)
    assert report["leak"] == "layer 'conv' (Conv1D) drops the mask"
    assert "mask leak" in stderr


def test_a_mask_input_that_no_layer_reads_is_a_leak(tmp_path):
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    out = layers.Dense(1)(layers.Embedding(10, 4)(tokens))
    model = keras.Model({"token_ids": tokens, "padding_mask": mask}, out)
    rows = trace.trace_mask(model, {"token_ids": TOKENS, "padding_mask": TOKENS != 0})
    report = trace.report(rows, model="m", inputs=[], input_names=[], synthetic=False,
                          padded=True, versions={}, mask_inputs=trace.mask_inputs(model))
    assert report["leak"] == "the model's mask input 'padding_mask' reaches no layer: nothing " \
                             "masks the padding"


def test_named_input_errors(saved, tmp_path):
    np.savez(tmp_path / "partial.npz", token_ids=bert_batch()["token_ids"])
    result = invoke(["trace-mask", "--model", saved / "tagger.keras", tmp_path / "partial.npz"],
                    exit_code=2)
    assert "the model's input 'segment_ids' has no data" in result.stderr
    arrays = bert_batch()
    np.savez(tmp_path / "bad.npz", **{**arrays, "padding_mask": arrays["padding_mask"] * 3})
    result = invoke(["trace-mask", "--model", saved / "tagger.keras", tmp_path / "bad.npz"],
                    exit_code=2)
    assert "mask input 'padding_mask' holds 3 at sequence 0, step 0" in result.stderr
    np.save(tmp_path / "segments.npy", arrays["segment_ids"])
    report, _ = trace_json(["--model", saved / "tagger.keras", tmp_path / "partial.npz",
                            "--input", f"segment_ids={tmp_path / 'segments.npy'}",
                            "--input", f"padding_mask={saved / 'batch.npz'}"])
    assert report["ok"] is True
    result = invoke(["trace-mask", "--arch", "embedding-lstm", "--input", "a=b.npy"], exit_code=2)
    assert "--input and --mask-input name the inputs of a --model" in result.stderr
