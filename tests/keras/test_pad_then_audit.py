"""``maskcli pad`` with several fields, then ``audit-loss`` on the npz it wrote:
fields feed the model inputs of the same name, ``--mask-as padding_mask``
feeds the mask input, and ``--targets labels`` names the labels field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskcli.keras.audit.reference import per_step_loss
from maskcli.keras.models import import_keras
from tests.conftest import invoke

pytestmark = pytest.mark.keras
RECORDS = [{"input_ids": [101, 7, 9, 102], "labels": [-100, 1, 2, -100]},
           {"input_ids": [101, 5, 102], "labels": [-100, 0, -100]},
           {"input_ids": [101, 3, 4, 8, 6, 102], "labels": [-100, 2, 0, 1, 1, -100]}]


def tagger(path, masked: bool):
    """Token ids and a padding mask in; attention masked by it (or not); 3 classes."""
    keras = import_keras()
    keras.utils.set_random_seed(0)
    layers = keras.layers
    ids = keras.Input((None,), name="input_ids", dtype="int32")
    padding_mask = keras.Input((None,), name="padding_mask", dtype="int32")
    x = layers.Embedding(128, 8)(ids)
    real = keras.ops.cast(padding_mask, "bool")
    attention_mask = real[:, None, :] & real[:, :, None] if masked else None
    x = layers.MultiHeadAttention(2, 4)(x, x, attention_mask=attention_mask)
    model = keras.Model({"input_ids": ids, "padding_mask": padding_mask}, layers.Dense(3)(x))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  ignore_class=-100))
    model.save(path)
    return model


@pytest.fixture(scope="module")
def padded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pad_then_audit")
    (folder / "ner.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    invoke(["pad", folder / "ner.jsonl", "--field", "input_ids", "--field", "labels",
            "--value", "labels=-100", "--padding", "post", "--mask-as", "padding_mask",
            "-o", folder / "ner.npz"])
    return folder


def test_a_masked_tagger_on_pads_npz_ignores_padding(padded):
    model = tagger(padded / "masked.keras", masked=True)
    result = invoke(["audit-loss", padded / "ner.npz", "--model", padded / "masked.keras",
                     "--targets", "labels", "--format", "json"])
    report = json.loads(result.stdout)
    assert report["verdict"] == "ignored"
    # The reference by hand: the per-step loss over steps that are real and not -100.
    npz = np.load(padded / "ner.npz")
    logits = np.asarray(model({"input_ids": npz["input_ids"],
                               "padding_mask": npz["padding_mask"]}), dtype=np.float64)
    labels = npz["labels"]
    keep = npz["mask"] & (labels != -100)
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    expected = per_step_loss("sparse_categorical_crossentropy", np.where(keep, labels, 0),
                             probs)[keep].mean()
    assert report["masked_loss"] == pytest.approx(expected, rel=1e-5)
    assert report["keras_loss"] == pytest.approx(expected, rel=1e-5)


def test_attention_without_the_mask_leaks_on_the_same_npz(padded):
    tagger(padded / "unmasked.keras", masked=False)
    result = invoke(["audit-loss", padded / "ner.npz", "--model", padded / "unmasked.keras",
                     "--targets", "labels", "--format", "json"], exit_code=1)
    report = json.loads(result.stdout)
    forward = next(c for c in report["checks"] if c["id"] == "forward-invariance")
    assert forward["status"] == "fail"
    assert "multi_head_attention" in report["cause"]


def test_targets_naming_no_array_of_input_is_a_missing_file(padded):
    tagger(padded / "masked.keras", masked=True)
    result = invoke(["audit-loss", padded / "ner.npz", "--model", padded / "masked.keras",
                     "--targets", "tags"], exit_code=2)
    assert ("--targets tags: no such file, nor an array of" in result.stderr
            and "(it has: input_ids, labels, padding_mask)" in result.stderr)


def single_input_tagger(path):
    """A keras.io-style tagger: one unnamed token input, Embedding(mask_zero) -> LSTM."""
    keras = import_keras()
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32")  # named input_layer..., not after a field
    hidden = keras.layers.LSTM(4, return_sequences=True)(
        keras.layers.Embedding(128, 8, mask_zero=True)(ids))
    model = keras.Model(ids, keras.layers.Dense(3)(hidden))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  ignore_class=-100))
    model.save(path)
    return model


def test_a_model_of_one_input_reads_the_first_field_that_is_not_the_targets(padded):
    model = single_input_tagger(padded / "single.keras")
    result = invoke(["audit-loss", padded / "ner.npz", "--model", padded / "single.keras",
                     "--targets", "labels", "--format", "json"])
    report = json.loads(result.stdout)
    assert report["verdict"] == "ignored" and report["real_steps"] == 13
    npz = np.load(padded / "ner.npz")
    assert report["keras_loss"] == pytest.approx(
        model.evaluate(npz["input_ids"], npz["labels"], verbose=0), rel=1e-6)
    # the built-in models take one array alike
    report = json.loads(invoke(["audit-loss", padded / "ner.npz", "--targets", "labels",
                                "--format", "json"]).stdout)
    assert report["verdict"] == "ignored" and report["real_steps"] == 13
    # and so does the trace, as inspect-mask shows the first field
    trace = json.loads(invoke(["trace-mask", padded / "ner.npz", "--model",
                               padded / "single.keras", "--format", "json"]).stdout)
    assert trace["ok"] is True and trace["inputs"][0]["shape"] == [3, 6]
    trace = json.loads(invoke(["trace-mask", padded / "ner.npz", "--arch", "embedding-gru",
                               "--format", "json"]).stdout)
    assert trace["ok"] is True and trace["inputs"][0]["shape"] == [3, 6]
