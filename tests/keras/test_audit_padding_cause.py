"""audit-loss names the layer where padding enters: the four models of the
issue, built the way public Keras tutorials build them, and the built-in
transformers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskcli.keras.audit import audit_loss
from maskcli.keras.models import import_keras
from tests.conftest import invoke
from tests.keras.test_trace_effect import TutorialPositionEmbedding

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning")]

keras = import_keras()
layers = keras.layers
POST = np.array([[5, 3, 8, 1, 9, 2, 0, 0], [4, 4, 7, 2, 0, 0, 0, 0], [6, 1, 0, 0, 0, 0, 0, 0],
                 [3, 9, 2, 5, 7, 0, 0, 0]], "int32")
PRE = np.stack([np.concatenate([row[row == 0], row[row != 0]]) for row in POST])


class TutorialTransformerBlock(layers.Layer):
    """keras.io's TransformerBlock: self-attention with no mask, then a feed-forward part."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.att = layers.MultiHeadAttention(num_heads=2, key_dim=8)
        self.ffn = keras.Sequential([layers.Dense(16, activation="relu"), layers.Dense(8)])
        self.norm1, self.norm2 = layers.LayerNormalization(), layers.LayerNormalization()

    def call(self, x):
        out = self.norm1(x + self.att(x, x))
        return self.norm2(out + self.ffn(out))


class TutorialTagger(keras.Model):
    """A subclassed transformer tagger."""

    def __init__(self):
        super().__init__(name="tagger")
        self.embed = TutorialPositionEmbedding()
        self.block = TutorialTransformerBlock()
        self.tags = layers.Dense(3, activation="softmax")

    def call(self, ids):
        return self.tags(self.block(self.embed(ids)))


def tokens():
    return keras.Input(shape=(None,), dtype="int32")


def transformer_classifier():
    x = tokens()
    hidden = TutorialTransformerBlock(name="transformer_block")(
        TutorialPositionEmbedding(name="token_and_position_embedding")(x))
    out = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling1D()(hidden))
    return compiled(keras.Model(x, out), "binary_crossentropy")


def bilstm_classifier():
    x = tokens()
    hidden = layers.Bidirectional(layers.LSTM(4, return_sequences=True), name="bidirectional")(
        layers.Embedding(12, 8)(x))
    hidden = layers.Bidirectional(layers.LSTM(4), name="bidirectional_1")(hidden)
    return compiled(keras.Model(x, layers.Dense(1, activation="sigmoid")(hidden)),
                    "binary_crossentropy")


def gru_tagger():
    x = tokens()
    hidden = layers.GRU(8, return_sequences=True, name="gru")(layers.Embedding(12, 8)(x))
    return compiled(keras.Model(x, layers.Dense(3, activation="softmax")(hidden)),
                    "sparse_categorical_crossentropy")


def compiled(model, loss):
    model.compile(loss=loss)
    return model


# case -> (model builder, data, the failed checks, what the cause says)
TUTORIALS = {
    "position-and-transformer-block-pre": (
        transformer_classifier, PRE, ["forward-invariance"],
        "padding enters at layer 'token_and_position_embedding' (TutorialPositionEmbedding): "
        "inside your own layer: absolute position embeddings on pre-padded data"),
    "position-and-transformer-block-post": (
        transformer_classifier, POST, ["forward-invariance"],
        "padding enters at layer 'transformer_block' (TutorialTransformerBlock): inside your own "
        "layer: attention with no mask reaching it"),
    "bidirectional-lstm-pre": (
        bilstm_classifier, PRE, ["forward-invariance"],
        "padding enters at layer 'bidirectional' (Bidirectional): a bidirectional (or backward) "
        "RNN without a mask"),
    "subclassed-transformer-tagger-post": (
        lambda: compiled(TutorialTagger(), "sparse_categorical_crossentropy"), POST,
        ["loss-parity", "target-invariance", "padding-gradient", "forward-invariance"],
        "; padding enters at layer 'att' (MultiHeadAttention) inside 'block': attention with no "
        "mask reaching it"),
    "gru-tagger-pre": (
        gru_tagger, PRE,
        ["loss-parity", "target-invariance", "padding-gradient", "forward-invariance"],
        "carries no mask: no layer creates one; use Embedding(mask_zero=True) or a Masking "
        "layer; padding enters at layer 'gru' (GRU): an RNN without a mask on pre-padded data"),
}


@pytest.mark.parametrize("case", TUTORIALS)
def test_the_cause_names_the_layer_where_padding_enters(case):
    build, data, failed, says = TUTORIALS[case]
    keras.utils.set_random_seed(0)
    report = audit_loss(data, mask=data != 0, model=build())
    assert report.failed == failed
    assert says in report.cause, report.cause
    assert "a layer mixes padded steps into real ones" not in report.cause


def test_the_subclassed_tagger_on_pre_padding_is_blamed_on_its_positions():
    keras.utils.set_random_seed(0)
    model = compiled(TutorialTagger(), "sparse_categorical_crossentropy")
    report = audit_loss(PRE, mask=PRE != 0, model=model)
    assert "padding enters at layer 'embed' (TutorialPositionEmbedding)" in report.cause
    assert "inside 'block'" not in report.cause  # the attention inherits it


def test_a_layer_that_drops_the_mask_and_lets_padding_in_is_said_once_for_both():
    keras.utils.set_random_seed(0)
    x = tokens()
    pooled = layers.GlobalMaxPooling1D(name="pool")(layers.Embedding(12, 16, mask_zero=True)(x))
    model = compiled(keras.Model(x, layers.Dense(1)(pooled)), "mse")
    # A max over all steps reacts to whether a sequence has padding, not to how
    # much: only a sequence with none of its own (the first) shows it.
    data = POST[:, :6]
    report = audit_loss(data, mask=data != 0, model=model)
    assert report.failed == ["forward-invariance"]
    assert report.cause.startswith("padding enters at layer 'pool' (GlobalMaxPooling1D): pooling "
                                   "over time takes padded steps into the pool")
    assert "; it also drops the Keras mask: use a mask-aware layer instead" in report.cause


@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    """The demo's sample (sample_data/keras_guide.jsonl), padded post and pre."""
    folder = tmp_path_factory.mktemp("guide")
    paths = {}
    for side in ("post", "pre"):
        paths[side] = folder / f"guide_{side}.npz"
        invoke(["pad", "sample_data/keras_guide.jsonl", "--padding", side, "-o", paths[side]])
    return paths


@pytest.mark.parametrize("side", ["post", "pre"])
def test_builtin_transformer_ignores_padding(guide, side):
    result = invoke(["audit-loss", guide[side], "--arch", "transformer", "--format", "json"])
    report = json.loads(result.stdout)
    assert report["verdict"] == "ignored" and report["cause"] is None
    assert {check["status"] for check in report["checks"]} == {"pass"}


def test_builtin_transformer_unmasked_leaks_at_its_attention(guide):
    result = invoke(["audit-loss", guide["post"], "--arch", "transformer-unmasked", "--format",
                     "json"], exit_code=1)
    cause = json.loads(result.stdout)["cause"]
    assert "padding enters at layer 'attention' (MultiHeadAttention)" in cause


def conv_text_classifier():
    """keras.io's text classification from scratch: two 'valid' convolutions and
    a max pool over time, no mask."""
    x = tokens()
    hidden = layers.Conv1D(8, 3, padding="valid", activation="relu")(layers.Embedding(12, 8)(x))
    hidden = layers.Conv1D(8, 3, padding="valid", activation="relu")(hidden)
    hidden = layers.Dense(8, activation="relu")(layers.GlobalMaxPooling1D(name="pool")(hidden))
    return compiled(keras.Model(x, layers.Dense(1, activation="sigmoid")(hidden)),
                    "binary_crossentropy")


def test_sequences_too_short_to_run_alone_leave_forward_invariance_to_the_extended_batch():
    # Two of the four sequences (4 and 2 real steps) are shorter than the two
    # convolutions' 5 steps: alone they cannot run, in the padded batch they do.
    keras.utils.set_random_seed(0)
    report = audit_loss(POST, mask=POST != 0, model=conv_text_classifier())
    assert report.verdict == "leaks" and report.failed == ["forward-invariance"]
    check = next(check for check in report.checks if check.id == "forward-invariance")
    assert check.value > 1e-4  # tolerance 1e-5
    assert "alone without padding 0.000786 (2 sequences)" in check.detail
    assert "; 2 sequences cannot run alone without their padding (The convolution operation " \
           "resulted in an empty output" in check.detail
    assert report.cause.startswith("padding enters at layer 'pool' (GlobalMaxPooling1D)")


def test_an_output_whose_length_follows_the_padding_leaks():
    """A 'valid' convolution tagger: 8 padded steps give 6 output steps, a
    sequence of 2 alone gives none of them. Every loss check is skipped (which
    output steps are padding is unknown), and forward-invariance fails."""
    keras.utils.set_random_seed(0)
    x = tokens()
    hidden = layers.Conv1D(4, 3, padding="valid")(layers.Embedding(12, 8)(x))
    model = compiled(keras.Model(x, layers.Dense(1)(hidden)), "mse")
    report = audit_loss(POST, mask=POST != 0, model=model)
    assert report.verdict == "leaks" and report.failed == ["forward-invariance"]
    assert report.check("forward-invariance").detail.startswith(
        "the output's shape follows the padded length: a sequence alone without its padding "
        "gives (4, 1), in the batch (6, 1): padding changes the output")
    assert report.check("loss-parity").detail == (
        "the output (shape (4, 6, 1)) has no axis of the inputs' 8 steps: which of its steps "
        "are padding is unknown")
    assert "has no time axis" not in " ".join(report.notes)
