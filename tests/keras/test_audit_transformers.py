"""audit-loss on the models people train today: a KerasHub BERT tagger masked
by sample weights, a KerasHub classifier, a backbone's several outputs, and an
encoder-decoder with two padded inputs of different lengths.

Keras' values are checked against Keras' own ``evaluate``; the references
against numpy on the model's own predictions.
"""

import json

import numpy as np
import pytest

from maskcli.keras.audit import audit_loss
from tests.conftest import invoke
from tests.keras.transformers import (
    bert_backbone,
    bert_batch,
    bert_tagger,
    encoder_decoder,
    keras,
    token_batch,
)

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("transformers")


@pytest.fixture(scope="module")
def batch(folder):
    """Four post-padded sequences of 5, 3, 6 and 2 real steps of 8 (16 of 32
    real), saved as an npz whose arrays are named after BERT's inputs."""
    arrays = bert_batch()
    targets = np.random.default_rng(1).standard_normal((4, 8, 1)).astype("float32")
    np.savez(folder / "batch.npz", **arrays, targets=targets)
    return arrays, targets, folder / "batch.npz"


@pytest.fixture(scope="module")
def taggers(folder):
    """The tagger saved twice: with Keras' default reduction, and with
    mean_with_sample_weight (and a weighted metric)."""
    paths = {}
    for name, reduction in (("default", "sum_over_batch_size"),
                            ("weighted", "mean_with_sample_weight")):
        model = bert_tagger(reduction, weighted_metrics=["mae"])
        paths[name] = folder / f"tagger_{name}.keras"
        model.save(paths[name])
    return paths


def audit_json(args, exit_code=0):
    result = invoke(["audit-loss", *args, "--format", "json"], exit_code=exit_code)
    return json.loads(result.stdout)


def statuses(report):
    return {check["id"]: check["status"] for check in report["checks"]}


def weighted_mean(pred, y, weights):
    per_step = ((pred.astype(np.float64) - y) ** 2).mean(axis=-1)
    return float((per_step * weights).sum() / weights.sum()), per_step


def test_bert_tagger_with_sample_weights_and_mean_with_sample_weight_is_ignored(batch, taggers):
    arrays, targets, path = batch
    report = audit_json([path, "--model", taggers["weighted"], "--sample-weight", "mask"])
    model = keras.saving.load_model(taggers["weighted"])
    weights = arrays["padding_mask"].astype("float32")
    expected = model.evaluate(arrays, targets, sample_weight=weights, verbose=0,
                              return_dict=True)
    reference, _ = weighted_mean(model.predict(arrays, verbose=0), targets, weights)
    assert report["verdict"] == "ignored", report["cause"]
    assert set(statuses(report).values()) == {"pass"}
    assert report["loss"] == "mse (reduction='mean_with_sample_weight')"
    assert report["keras_loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert report["masked_loss"] == pytest.approx(reference, rel=1e-6)
    assert report["real_steps"] == 16 and report["steps"] == 32
    assert report["checks"][-1]["value"] == {"mae": pytest.approx(expected["mae"], rel=1e-6)}
    assert "weighted by --sample-weight mask" in report["notes"][0]


def test_bert_tagger_with_the_default_reduction_leaks_and_the_cause_names_it(batch, taggers):
    arrays, targets, path = batch
    report = audit_json([path, "--model", taggers["default"], "--sample-weight", "mask"],
                        exit_code=1)
    model = keras.saving.load_model(taggers["default"])
    weights = arrays["padding_mask"].astype("float32")
    pred = model.predict(arrays, verbose=0)
    reference, per_step = weighted_mean(pred, targets, weights)
    assert statuses(report) == {"loss-parity": "fail", "target-invariance": "pass",
                                "padding-gradient": "pass", "forward-invariance": "pass",
                                "metric-parity": "pass"}
    # Keras divides the weighted sum by all 32 steps: half of them padding.
    assert report["keras_loss"] == pytest.approx((per_step * weights).sum() / 32, rel=1e-5)
    assert report["masked_loss"] == pytest.approx(reference, rel=1e-6)
    assert report["keras_loss"] == pytest.approx(report["masked_loss"] / 2, rel=1e-5)
    assert "divides the weighted sum by all 32 steps" in report["cause"]
    assert 'reduction="mean_with_sample_weight"' in report["cause"]


def test_more_padding_moves_the_default_reduction_but_not_the_weighted_mean(taggers):
    """The measurement behind the cause: 4 more padding steps of weight 0."""
    model = keras.saving.load_model(taggers["default"])
    weighted = keras.saving.load_model(taggers["weighted"])
    targets = np.random.default_rng(1).standard_normal((4, 12, 1)).astype("float32")
    losses = {}
    for steps in (8, 12):
        arrays = bert_batch(steps=steps)
        w = arrays["padding_mask"].astype("float32")
        losses[steps] = [audit_loss(arrays, model=m, targets=targets[:, :steps],
                                    sample_weight=w).keras_loss for m in (model, weighted)]
    assert losses[12][0] == pytest.approx(losses[8][0] * 8 / 12, rel=1e-5)
    assert losses[12][1] == pytest.approx(losses[8][1], rel=1e-5)


def test_bert_tagger_without_weights_leaks_and_the_cause_names_sample_weights(batch, taggers):
    _, _, path = batch
    report = audit_json([path, "--model", taggers["weighted"]], exit_code=1)
    assert statuses(report)["loss-parity"] == "fail"
    assert statuses(report)["padding-gradient"] == "fail"
    assert statuses(report)["forward-invariance"] == "pass"  # attention is masked by padding_mask
    assert report["cause"].startswith("the loss averages over padded steps: pass sample_weight "
                                      "(0 at padding), e.g. --sample-weight mask")
    assert "'padding_mask'" in report["cause"]


def test_weights_that_are_not_zero_at_padding_leak(batch, taggers, folder):
    arrays, _, path = batch
    weights = np.ones((4, 8), dtype="float32")  # 16 padded steps weigh 1
    weights[0, 6:] = 0
    np.save(folder / "w.npy", weights)
    report = audit_json([path, "--model", taggers["weighted"], "--sample-weight",
                         folder / "w.npy"], exit_code=1)
    assert report["cause"].startswith("sample_weight is non-zero at 14 padded steps")


def test_per_sequence_weights_are_spread_over_the_steps(batch, taggers):
    arrays, targets, _ = batch
    model = keras.saving.load_model(taggers["weighted"])
    per_sequence = np.array([1.0, 2.0, 0.5, 3.0], dtype="float32")
    report = audit_loss(arrays, model=model, targets=targets, sample_weight=per_sequence)
    expected = model.evaluate(arrays, targets, sample_weight=per_sequence[:, None], verbose=0)
    assert report.keras_loss == pytest.approx(expected[0], rel=1e-6)
    # the weights reach the padding too: Keras' loss counts it
    assert report.cause.startswith("sample_weight is non-zero at 16 padded steps")


def test_sample_weight_array_of_the_input_npz_is_used(batch, taggers, folder):
    arrays, targets, _ = batch
    path = folder / "weighted_batch.npz"
    np.savez(path, **arrays, targets=targets,
             sample_weight=arrays["padding_mask"].astype("float32"))
    report = audit_json([path, "--model", taggers["weighted"]])
    assert report["verdict"] == "ignored"
    assert report["notes"][0] == f"the loss and the metrics are weighted by the sample_weight in {path}"


def test_inputs_from_separate_files(batch, taggers, folder):
    arrays, targets, _ = batch
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    # the targets npz holds the weights too, as KerasHub's (x, y, sample_weight) triple does
    np.savez(folder / "y.npz", labels=targets,
             sample_weight=arrays["padding_mask"].astype("float32"))
    args = [f"--input={name}={folder / name}.npy" for name in arrays]
    report = audit_json([*args, "--model", taggers["weighted"], "--targets",
                         f"{folder / 'y.npz'}:labels"])
    from_npz = audit_json([batch[2], "--model", taggers["weighted"], "--sample-weight", "mask"])
    assert report["keras_loss"] == from_npz["keras_loss"]
    assert report["verdict"] == "ignored"
    assert report["notes"] == [f"the loss and the metrics are weighted by the sample_weight in "
                               f"{folder / 'y.npz'}"]


def test_bert_classifier_pooled_output_is_ignored(folder):
    import keras_hub

    classifier = keras_hub.models.BertTextClassifier(bert_backbone(), num_classes=3,
                                                     preprocessor=None)
    classifier.compile()  # KerasHub's defaults: sparse crossentropy from logits
    arrays = bert_batch()
    report = audit_loss(arrays, model=classifier, targets=np.array([0, 2, 1, 1]))
    assert report.verdict == "ignored", report.cause
    assert report.loss == "sparse_categorical_crossentropy (from_logits=True)"
    assert [c.status for c in report.checks][:3] == ["skipped"] * 3
    assert report.check("forward-invariance").status == "pass"
    assert report.keras_loss == pytest.approx(
        classifier.evaluate(arrays, np.array([0, 2, 1, 1]), verbose=0, return_dict=True)["loss"],
        rel=1e-6)


def test_a_backbone_has_two_outputs_and_output_picks_one(folder):
    backbone = bert_backbone()
    arrays = bert_batch()
    with pytest.raises(Exception, match=r"has 2 outputs \(sequence_output, pooled_output\): "
                                        r"choose the one to audit with --output NAME"):
        audit_loss(arrays, model=backbone)
    pooled = audit_loss(arrays, model=backbone, output="pooled_output")
    assert pooled.verdict == "ignored"
    assert pooled.model == f"model '{backbone.name}', output 'pooled_output'"
    sequence = audit_loss(arrays, model=backbone, output="sequence_output",
                          sample_weight="mask")
    assert sequence.failed == ["loss-parity"]  # compiled by maskcli with mse, the default reduction
    with pytest.raises(Exception, match=r"--output logits: .* has no output of that name"):
        audit_loss(arrays, model=backbone, output="logits")


@pytest.fixture(scope="module")
def translator():
    return encoder_decoder()


def test_encoder_decoder_post_padded_is_ignored(translator):
    encoder = token_batch([6, 3, 7], 7, seed=0)
    decoder = token_batch([4, 2, 5], 5, seed=1)
    labels = np.where(decoder != 0, token_batch([5, 5, 5], 5, seed=2), 0)
    report = audit_loss({"encoder_tokens": encoder, "decoder_tokens": decoder},
                        model=translator, targets=labels)
    assert report.verdict == "ignored", report.cause
    assert report.real_steps == 11 and report.steps == 15  # the decoder's padding
    assert report.loss == "sparse_categorical_crossentropy (from_logits=True)"
    assert report.keras_loss == pytest.approx(
        translator.evaluate([encoder, decoder], labels, verbose=0), rel=1e-6)
    assert "every per-step input of 2" in report.check("forward-invariance").detail


def test_encoder_decoder_with_the_decoder_pre_padded_leaks(translator):
    encoder = token_batch([6, 3, 7], 7, seed=0)
    decoder = token_batch([4, 2, 5], 5, seed=1, pre=True)
    labels = np.where(decoder != 0, 3, 0)
    report = audit_loss([encoder, decoder], model=translator, targets=labels)
    assert report.failed == ["forward-invariance"]
    assert "(post/pre)" in report.check("forward-invariance").detail
    # the padding-effect trace, fed every input with its own padding, names the layer
    assert report.cause.startswith("padding enters at layer 'decoder_embedding' "
                                   "(TokenAndPositionEmbedding): absolute position embeddings")


def test_encoder_decoder_of_equal_lengths_needs_mask_when_paddings_differ(translator):
    encoder = token_batch([4, 3, 5], 5, seed=0)
    decoder = token_batch([4, 2, 5], 5, seed=1)
    with pytest.raises(Exception, match=r"the output's 5 steps match inputs 'encoder_tokens' and "
                                        r"'decoder_tokens', whose padding differs: .*--mask FILE"):
        audit_loss([encoder, decoder], model=translator)
    report = audit_loss([encoder, decoder], model=translator, mask=decoder != 0)
    assert report.verdict == "ignored"


def test_output_option_on_a_saved_backbone(folder):
    bert_backbone().save(folder / "backbone.keras")
    np.savez(folder / "plain.npz", **bert_batch())
    args = [folder / "plain.npz", "--model", folder / "backbone.keras"]
    result = invoke(["audit-loss", *args], exit_code=2)
    assert "has 2 outputs (sequence_output, pooled_output): choose the one to audit with " \
           "--output NAME" in result.stderr
    pooled = audit_json([*args, "--output", "pooled_output"])
    assert pooled["verdict"] == "ignored"
    assert pooled["model"] == f"--model {folder / 'backbone.keras'}, output 'pooled_output'"
    result = invoke(["audit-loss", *args, "--output", "pooled_output", "--sample-weight", "mask"],
                    exit_code=2)
    assert "--sample-weight mask weighs steps, and the model's output (shape (4, 8)) has no " \
           "time axis" in result.stderr


def test_keras_hub_models_load_and_need_keras_hub(folder, taggers, monkeypatch):
    import importlib.util

    from maskcli.core.errors import ModelError
    from maskcli.keras import models

    assert models._names_keras_hub(taggers["default"])
    original = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "keras_hub" else original(name, *a))
    with pytest.raises(ModelError, match="built from KerasHub classes and keras_hub is not "
                                         "installed: pip install keras-hub"):
        models.load_model(str(taggers["default"]))


def test_an_input_of_another_length_fails_in_one_clean_line():
    from maskcli.core.errors import ModelError

    arrays = bert_batch()
    arrays["segment_ids"] = arrays["segment_ids"][:, :5]
    with pytest.raises(ModelError) as error:
        audit_loss(arrays, model=bert_tagger())
    message = str(error.value)
    # TensorFlow's wrapping ({{function_node __wrapped__AddV2_device_/job:...}} ... [Op:AddV2]
    # name:) is cut off: what is left says what does not fit, then the fix
    assert "inputs token_ids (4, 8), segment_ids (4, 5), padding_mask (4, 8)): Incompatible " \
           "shapes: [4,8,8] vs. [4,5,8]: give inputs that fit the model" in message
    assert "function_node" not in message and "[Op:" not in message


def test_a_metric_the_weights_never_reach_is_named_beside_the_reduction(batch):
    arrays, targets, _ = batch
    model = bert_tagger(metrics=["mae"])  # metrics=, not weighted_metrics=
    report = audit_loss(arrays, model=model, targets=targets, sample_weight="mask")
    assert report.failed == ["loss-parity", "metric-parity"]
    assert report.cause.startswith("the loss divides the weighted sum by all 32 steps")
    assert report.cause.endswith("; also the sample weights never reach metric mae: Keras "
                                 "weighs only the metrics compiled as weighted_metrics=, so it "
                                 "counts padded steps: compile it as weighted_metrics=[...] "
                                 "instead of metrics=[...]")
