"""audit-loss with real Keras models: the acceptance examples of the issue,
leaks of every kind, the report formats and the error paths.

Expected values come from the models' own predictions, computed here in numpy.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskcli.keras import models
from maskcli.keras.audit import LOSSES, audit_loss, per_step_loss
from tests.conftest import invoke

# Keras warns when a layer drops a mask: these tests build such layers on purpose.
# Keras' own numpy conversions raise a numpy 2 DeprecationWarning.
pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

keras = models.import_keras()
HELPERS = Path(__file__).with_name("audit_custom_objects.py")
GUIDE = np.array([[711, 632, 71, 0, 0, 0], [73, 8, 3215, 55, 927, 0],
                  [83, 91, 1, 645, 1253, 927]])  # the Keras guide's example, padded post
SHORT = np.array([[3, 1, 0, 0], [2, 2, 5, 0], [1, 4, 4, 4]])


@pytest.fixture(scope="module")
def custom():
    """The test helper module, registered with Keras as --import would do it."""
    import sys

    models.import_user_code([str(HELPERS)])
    return sys.modules[f"maskcli_user_{HELPERS.stem}"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("audit")


def save(folder, name, array):
    path = folder / name
    np.save(path, array)
    return path


def audit_json(args, exit_code=0):
    result = invoke(["audit-loss", *args, "--format", "json"], exit_code=exit_code)
    return json.loads(result.stdout)


def statuses(report):
    return {check["id"]: check["status"] for check in report["checks"]}


def embedding_model(*middle, vocab=6, out=1, activation=None):
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(vocab, 4, mask_zero=True)(tokens)
    for layer in middle:
        x = layer(x)
    return keras.Model(tokens, keras.layers.Dense(out, activation=activation)(x))


# -- acceptance examples -----------------------------------------------------

@pytest.fixture(scope="module")
def example_one(workdir):
    keras.utils.set_random_seed(1)
    tokens = keras.Input((None,), dtype="int32")
    model = keras.Model(tokens, keras.layers.Dense(3)(
        keras.layers.Embedding(5, 5, mask_zero=True)(tokens)))
    model.save(workdir / "example_one.keras")
    return model, workdir / "example_one.keras"


def test_acceptance_embedding_dense_mse_is_the_mean_over_real_steps(workdir, example_one):
    model, path = example_one
    x, y = np.array([[1, 2, 0, 0]]), np.arange(12).reshape(1, 4, 3)
    report = audit_json([save(workdir, "x1.npy", x), "--model", path,
                         "--targets", save(workdir, "y1.npy", y), "--loss", "mse",
                         "--per-sample"])
    pred = model.predict(x, verbose=0).astype(np.float64)
    masked = np.mean((pred[0, :2] - y[0, :2]) ** 2)
    unmasked = np.mean((pred - y) ** 2)
    assert report["verdict"] == "ignored"
    assert report["loss"] == "mse"
    assert report["keras_loss"] == pytest.approx(masked, rel=1e-6)
    assert report["masked_loss"] == pytest.approx(masked, rel=1e-12)
    assert report["unmasked_loss"] == pytest.approx(unmasked, rel=1e-12)
    assert report["per_sample"] == [{"sequence": 0, "length": 2,
                                     "masked_loss": pytest.approx(masked, rel=1e-12),
                                     "unmasked_loss": pytest.approx(unmasked, rel=1e-12)}]
    assert set(statuses(report).values()) == {"pass", "skipped"}
    assert statuses(report)["metric-parity"] == "skipped"  # compiled by --loss, no metric
    assert set(report) >= {"verdict", "loss", "keras_loss", "masked_loss", "unmasked_loss",
                           "checks", "per_sample", "versions"}
    assert report["versions"] == models.versions()
    assert all(set(c) == {"id", "status", "value", "reference", "detail"}
               for c in report["checks"])


def test_targets_from_jsonl_and_npz_give_the_same_audit(workdir, example_one):
    x, y = np.array([[1, 2, 0, 0]]), np.arange(12).reshape(1, 4, 3)
    x_path = save(workdir, "x1.npy", x)
    jsonl = workdir / "y1.jsonl"
    jsonl.write_text(json.dumps(y[0].tolist()) + "\n")
    npz = workdir / "y1.npz"
    np.savez(npz, targets=y, other=np.zeros(3))
    from_jsonl = audit_json([x_path, "--model", example_one[1], "--targets", jsonl])
    from_npz = audit_json([x_path, "--model", example_one[1], "--targets", npz])
    assert from_jsonl == from_npz
    assert from_npz["keras_loss"] == pytest.approx(from_npz["masked_loss"], rel=1e-6)


def test_acceptance_masking_lstm_mae_is_the_mean_over_unmasked_steps(workdir):
    keras.utils.set_random_seed(2)
    features = keras.Input((None, 2))
    model = keras.Model(features, keras.layers.LSTM(3, return_sequences=True)(
        keras.layers.Masking(0.0)(features)))
    model.save(workdir / "example_two.keras")
    x = np.array([[[0, 0], [0, 0], [1, 0], [0, 1], [0, 1]],
                  [[0, 0], [0, 1], [1, 0], [0, 1], [0, 1]]], dtype=np.float32)
    y = np.ones((2, 5, 3))
    report = audit_json([save(workdir, "x2.npy", x), "--model", workdir / "example_two.keras",
                         "--targets", save(workdir, "y2.npy", y), "--loss", "mae"])
    real = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]], dtype=bool)
    pred = model.predict(x, verbose=0).astype(np.float64)
    assert report["keras_loss"] == pytest.approx(np.abs(1 - pred[real]).mean(), rel=1e-6)
    assert report["unmasked_loss"] == pytest.approx(np.abs(1 - pred).mean(), rel=1e-6)
    assert report["verdict"] == "ignored"


@pytest.fixture(scope="module")
def guide_jsonl():
    return "".join(json.dumps(row) + "\n" for row in GUIDE.tolist())


def test_acceptance_embedding_conv_leaks_and_embedding_lstm_does_not(guide_jsonl):
    conv = invoke(["audit-loss", "--arch", "embedding-conv", "--format", "json"],
                  input=guide_jsonl, exit_code=1)
    report = json.loads(conv.stdout)
    assert report["verdict"] == "leaks"
    assert statuses(report)["loss-parity"] == "fail"
    assert statuses(report)["target-invariance"] == "fail"
    assert "layer 'conv1d' (Conv1D) drops the mask" in report["cause"]
    # Conv1D drops the mask: Keras averages over all steps, padding included.
    assert report["keras_loss"] == pytest.approx(report["unmasked_loss"], rel=1e-5)

    lstm = json.loads(invoke(["audit-loss", "--arch", "embedding-lstm", "--format", "json"],
                             input=guide_jsonl).stdout)
    assert lstm["verdict"] == "ignored"
    assert set(statuses(lstm).values()) == {"pass"}
    assert lstm["cause"] is None


def test_acceptance_custom_layer_without_supports_masking_leaks(workdir, custom):
    keras.utils.set_random_seed(3)
    embedding_model(custom.Doubler()).save(workdir / "doubler.keras")
    report = audit_json([save(workdir, "short.npy", SHORT), "--model", workdir / "doubler.keras",
                         "--import", HELPERS], exit_code=1)
    assert statuses(report)["loss-parity"] == "fail"
    assert "layer 'doubler' (Doubler) drops the mask" in report["cause"]


def test_custom_layer_needs_its_import(workdir, custom, monkeypatch):
    keras.utils.set_random_seed(3)
    embedding_model(custom.Doubler()).save(workdir / "doubler_alone.keras")
    monkeypatch.delitem(keras.saving.get_custom_objects(), "maskcli_tests>Doubler")
    result = invoke(["audit-loss", save(workdir, "short.npy", SHORT),
                     "--model", workdir / "doubler_alone.keras"], exit_code=2)
    assert "pass --import FILE.py" in result.stderr


def test_acceptance_nan_targets_at_padded_steps_leak(workdir):
    y = np.random.default_rng(0).standard_normal((3, 4, 1))
    y[~(SHORT != 0)] = np.nan
    report = audit_json([save(workdir, "short.npy", SHORT),
                         "--targets", save(workdir, "y_nan.npy", y)], exit_code=1)
    assert statuses(report)["target-invariance"] == "fail"
    assert report["keras_loss"] is None  # NaN, written as null
    assert report["masked_loss"] == pytest.approx(report["checks"][1]["value"], rel=1e-5)
    assert report["cause"].startswith("the targets hold NaN or inf at 3 padded steps")


# -- custom masked losses, padding defined by the targets ---------------------

@pytest.fixture(scope="module")
def tagging(workdir):
    """Tokens and one-hot tags whose last class (3) pads the labels; the
    model carries no Keras mask."""
    rng = np.random.default_rng(1)
    tags = np.zeros((3, 4, 4), dtype=np.float32)
    for row, length in enumerate([2, 3, 4]):
        tags[row, :length, :3] = np.eye(3)[rng.integers(0, 3, length)]
        tags[row, length:, 3] = 1
    return save(workdir, "tokens.npy", SHORT), save(workdir, "tags.npy", tags)


def tagger(custom, loss_name, path):
    keras.utils.set_random_seed(4)
    tokens = keras.Input((None,), dtype="int32")
    model = keras.Model(tokens, keras.layers.Dense(4, activation="softmax")(
        keras.layers.Embedding(6, 4)(tokens)))
    model.compile(loss=getattr(custom, loss_name))
    model.save(path)
    return path


def test_custom_loss_dividing_by_real_steps_is_ignored(workdir, custom, tagging):
    model = tagger(custom, "masked_cce_real_steps", workdir / "tagger_real.keras")
    report = audit_json([tagging[0], "--model", model, "--import", HELPERS,
                         "--targets", tagging[1], "--target-pad", "[0, 0, 0, 1]"])
    assert report["loss"] == "masked_cce_real_steps (custom)"
    assert report["verdict"] == "ignored"
    assert statuses(report)["target-invariance"] == "skipped"
    assert report["keras_loss"] == pytest.approx(report["masked_loss"], rel=1e-6)


def test_custom_loss_dividing_by_all_steps_leaks(workdir, custom, tagging):
    model = tagger(custom, "masked_cce_all_steps", workdir / "tagger_all.keras")
    report = audit_json([tagging[0], "--model", model, "--import", HELPERS,
                         "--targets", tagging[1], "--target-pad", "[0, 0, 0, 1]"], exit_code=1)
    assert [c["id"] for c in report["checks"] if c["status"] == "fail"] == ["loss-parity"]
    # 9 real steps of 12: Keras' value is the masked mean scaled by 9/12.
    assert report["keras_loss"] == pytest.approx(report["masked_loss"] * 9 / 12, rel=1e-6)
    assert report["cause"].startswith("the loss divides by all steps, padding included")


# -- the two references, and the numpy losses, against Keras ------------------

@given(data=st.data())
@settings(max_examples=25, deadline=None, derandomize=True)
def test_numpy_per_step_losses_equal_keras(data):
    kind = data.draw(st.sampled_from(LOSSES))
    seed = data.draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(2, 5, 3)).astype(np.float32)
    y_pred = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    y_true = {"mse": rng.normal(size=(2, 5, 3)), "mae": rng.normal(size=(2, 5, 3)),
              "binary_crossentropy": rng.integers(0, 2, (2, 5, 3)),
              "categorical_crossentropy": np.eye(3)[rng.integers(0, 3, (2, 5))],
              "sparse_categorical_crossentropy": rng.integers(0, 3, (2, 5))}[kind]
    expected = np.asarray(keras.losses.get(kind)(y_true.astype(np.float32), y_pred))
    np.testing.assert_allclose(per_step_loss(kind, y_true, y_pred), expected, rtol=2e-6)


@given(lengths=st.lists(st.integers(0, 5), min_size=1, max_size=4),
       pre=st.booleans(), loss=st.sampled_from(LOSSES), seed=st.integers(0, 1000))
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
def test_both_references_agree_for_builtin_losses(lengths, pre, loss, seed):
    steps = 5
    rng = np.random.default_rng(seed)
    x = np.zeros((len(lengths), steps), dtype=np.int64)
    for row, length in enumerate(lengths):
        span = slice(steps - length, steps) if pre else slice(0, length)
        x[row, span] = rng.integers(1, 9, length)
    if (x != 0).all() or not (x != 0).any():
        x[0, 0], x[-1, -1] = 0, 3  # at least one padded and one real step
    report = audit_loss(x, arch="embedding-dense", loss=loss, seed=seed)
    assert report.removed_loss == pytest.approx(report.masked_loss, rel=report.rtol)
    assert report.keras_loss == pytest.approx(report.masked_loss, rel=report.rtol)
    assert report.verdict == "ignored", report.checks


# -- other leaks, and what the verdict names ----------------------------------

def test_masking_value_that_is_not_the_pad_value_leaks():
    keras.utils.set_random_seed(5)
    features = keras.Input((None, 2))
    model = keras.Model(features, keras.layers.Dense(1)(keras.layers.LSTM(3, return_sequences=True)(
        keras.layers.Masking(0.0)(features))))
    x = np.array([[[1, 2], [3, 4], [-1, -1]], [[1, 1], [-1, -1], [-1, -1]]], dtype=np.float32)
    report = audit_loss(x, model=model, pad_value=-1)
    assert report.exit_code == 1
    assert report.cause.startswith("the model's mask keeps 3 padded steps: "
                                   "Masking(mask_value=0) does not match the pad value -1")


def test_arithmetic_on_a_symbolic_tensor_drops_the_mask():
    keras.utils.set_random_seed(6)
    tokens = keras.Input((None,), dtype="int32")
    doubled = keras.layers.Embedding(6, 4, mask_zero=True)(tokens) * 2.0
    report = audit_loss(SHORT, model=keras.Model(tokens, keras.layers.Dense(1)(doubled)))
    assert report.failed == ["loss-parity", "target-invariance", "padding-gradient"]
    # Keras numbers auto names per process: 'multiply', 'multiply_1', ...
    assert re.match(r"the model's output carries no mask: operation 'multiply(_\d+)?' "
                    r"\(Multiply\) drops the mask", report.cause), report.cause


def test_output_without_time_axis_runs_only_two_checks():
    keras.utils.set_random_seed(7)
    report = audit_loss(SHORT, model=embedding_model(keras.layers.LSTM(3), out=2))
    assert [c.status for c in report.checks] == ["skipped"] * 3 + ["pass", "skipped"]
    assert "no time axis" in report.check("loss-parity").detail
    assert "only forward-invariance and metric-parity apply" in report.notes[0]
    assert report.verdict == "ignored" and report.masked_loss is None


def test_global_max_pooling_mixes_padding_into_the_result():
    keras.utils.set_random_seed(8)
    report = audit_loss(SHORT, model=embedding_model(keras.layers.GlobalMaxPooling1D()))
    assert report.failed == ["forward-invariance"]
    assert report.cause.startswith("padding changes what the model computes at real steps")


def test_fixed_length_model_is_rebuilt_with_a_free_length():
    keras.utils.set_random_seed(9)
    tokens = keras.Input((4,), dtype="int32")
    hidden = keras.layers.LSTM(3, return_sequences=True)(
        keras.layers.Embedding(6, 4, mask_zero=True)(tokens))
    report = audit_loss(SHORT, model=keras.Model(tokens, keras.layers.Dense(1)(hidden)))
    check = report.check("forward-invariance")
    assert check.status == "pass"
    assert "fixed length of 4 steps: rebuilt with a free length" in check.detail


def test_fixed_length_model_that_cannot_be_rebuilt_is_skipped():
    keras.utils.set_random_seed(10)
    tokens = keras.Input((4,), dtype="int32")
    flat = keras.layers.Flatten()(keras.layers.Embedding(6, 4, mask_zero=True)(tokens))
    report = audit_loss(SHORT, model=keras.Model(tokens, keras.layers.Dense(1)(flat)))
    check = report.check("forward-invariance")
    assert check.status == "skipped"
    assert check.detail.startswith("the model takes a fixed length of 4 steps and cannot run "
                                   "on another length")


def test_metrics_that_ignore_masks_are_named():
    keras.utils.set_random_seed(11)
    model = embedding_model(keras.layers.LSTM(3, return_sequences=True), activation="sigmoid")
    model.compile(loss="binary_crossentropy",
                  metrics=["accuracy", keras.metrics.Precision(name="precision")])
    report = audit_loss(SHORT, model=model)
    check = report.check("metric-parity")
    assert report.failed == ["metric-parity"]
    assert set(check.value) == {"accuracy", "precision"}
    assert check.value["accuracy"] == pytest.approx(check.reference["accuracy"])
    assert "precision: differs (ignores masks" in check.detail
    assert report.cause.startswith("metric precision ignores the mask")


def test_compiled_loss_is_named_and_explicit_loss_refused(workdir):
    keras.utils.set_random_seed(12)
    model = embedding_model(keras.layers.GRU(3, return_sequences=True))
    model.compile(loss=keras.losses.MeanAbsoluteError(), metrics=["mse"])
    model.save(workdir / "compiled.keras")
    x_path = save(workdir, "short.npy", SHORT)
    report = audit_json([x_path, "--model", workdir / "compiled.keras"])
    assert report["loss"] == "mae"
    assert report["checks"][-1]["value"].keys() == {"mse"}
    result = invoke(["audit-loss", x_path, "--model", workdir / "compiled.keras", "--loss", "mse"],
                    exit_code=2)
    assert "compiled with its own loss" in result.stderr


# -- safe mode ----------------------------------------------------------------

@pytest.fixture(scope="module")
def lambda_model(workdir):
    keras.utils.set_random_seed(13)
    embedding_model(keras.layers.Lambda(lambda t: t * 2.0)).save(workdir / "lambda.keras")
    return workdir / "lambda.keras"


def test_lambda_model_is_refused_in_safe_mode(workdir, lambda_model):
    result = invoke(["audit-loss", save(workdir, "short.npy", SHORT), "--model", lambda_model],
                    exit_code=2)
    assert "refused" in result.stderr and "--unsafe" in result.stderr


def test_lambda_model_loads_with_unsafe_and_a_warning(workdir, lambda_model):
    result = invoke(["audit-loss", save(workdir, "short.npy", SHORT), "--model", lambda_model,
                     "--unsafe", "--format", "json"], exit_code=1)
    assert result.stderr.startswith("Warning: --unsafe: loading")
    assert "layer 'lambda' (Lambda) drops the mask" in json.loads(result.stdout)["cause"]


# -- inputs, report formats, training ----------------------------------------

def test_npz_from_pad_with_feature_vectors_and_its_pad_value(workdir):
    x = np.full((2, 4, 2), -1.0, dtype=np.float32)
    x[0, :3], x[1, :1] = [[0.5, 0], [0, 1], [1, 1]], [[2, 0]]
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=bool)
    meta = json.dumps({"padding": "post", "truncating": "pre", "value": -1, "maxlen": 4,
                       "dtype": "float32"})
    path = workdir / "vectors.npz"
    np.savez(path, inputs=x, mask=mask, lengths=np.array([3, 1]), meta=np.array(meta))
    result = invoke(["audit-loss", "--format", "json"], input=path.read_bytes())  # stdin
    report = json.loads(result.stdout)
    assert report["model"] == "--arch masking-lstm"
    assert report["verdict"] == "ignored"
    assert "4 padded steps" in report["checks"][2]["detail"]


def test_mask_value_derives_the_reference_mask(workdir):
    # 7 pads these rows, but Embedding(mask_zero) only masks 0: the model keeps the padding.
    x = np.array([[3, 1, 7, 7], [2, 7, 7, 7]])
    report = audit_json([save(workdir, "sevens.npy", x), "--mask-value", "7"], exit_code=1)
    assert report["real_steps"] == 3
    assert report["cause"].startswith("the model's mask keeps 5 padded steps")


def test_mask_file_overrides_the_derived_mask(workdir):
    # Token 0 at step 1 is real here: the model's mask_zero hides it, which the audit reports.
    x = np.array([[5, 0, 2, 0], [1, 2, 3, 0]])
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 0]], dtype=bool)
    report = audit_json([save(workdir, "holes.npy", x), "--mask", save(workdir, "m.npy", mask)],
                        exit_code=1)
    assert report["cause"].startswith("the model's mask hides 1 real steps")


def test_table_report_with_per_sample_rows(workdir):
    result = invoke(["audit-loss", save(workdir, "short.npy", SHORT), "--arch", "embedding-gru",
                     "--format", "table", "--per-sample"])
    text = result.stdout
    for word in ("loss-parity", "metric-parity (mae)", "padding ignored", "per sequence",
                 "masked loss", "unmasked loss"):
        assert word in text
    assert result.stderr == ""


def test_training_steps_are_reproducible(workdir):
    args = [save(workdir, "short.npy", SHORT), "--train-steps", "3", "--seed", "5",
            "--arch", "embedding-dense", "--loss", "sparse_categorical_crossentropy"]
    first, second = audit_json(args), audit_json(args)
    assert first == second
    assert first["notes"] == ["audited after 3 training steps on the whole batch"]
    untrained = audit_json(args[:1] + args[3:])
    assert untrained["keras_loss"] != first["keras_loss"]


def test_training_a_saved_model_with_dropout_is_reproducible(workdir):
    """A saved model's Dropout layers draw their seeds when the model loads: each
    run is a fresh process, whose random state before --seed applies differs."""
    import random

    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32")
    hidden = keras.layers.LSTM(4, return_sequences=True, dropout=0.3)(
        keras.layers.Dropout(0.3)(keras.layers.Embedding(6, 4, mask_zero=True)(tokens)))
    model = keras.Model(tokens, keras.layers.Dense(1)(hidden))
    model.compile(loss="mse")
    model.save(workdir / "dropout.keras")
    args = [save(workdir, "short.npy", SHORT), "--model", workdir / "dropout.keras",
            "--train-steps", "3"]
    reports = []
    for state in (1, 2):
        random.seed(state)  # what a fresh process would hold
        reports.append(audit_json(args))
    assert reports[0] == reports[1]
    assert reports[0]["verdict"] == "ignored"


def test_targets_of_the_wrong_shape(workdir, example_one):
    x = np.array([[1, 2, 0, 0], [3, 4, 1, 0], [1, 1, 1, 1]])  # ids below its vocabulary of 5
    result = invoke(["audit-loss", save(workdir, "x_vocab5.npy", x),
                     "--targets", save(workdir, "y_bad.npy", np.zeros((3, 4, 2))),
                     "--model", example_one[1]], exit_code=2)
    assert "do not fit the model's output of shape (3, 4, 3)" in result.stderr


def test_nan_target_at_a_real_step(workdir):
    y = np.zeros((3, 4))
    y[1, 2] = np.nan
    result = invoke(["audit-loss", save(workdir, "short.npy", SHORT),
                     "--targets", save(workdir, "y_real_nan.npy", y)], exit_code=2)
    assert "NaN or inf at a real step (sequence 1, step 2)" in result.stderr


def test_sparse_targets_padded_with_minus_100(workdir):
    y = np.where(SHORT != 0, 1, -100)
    result = invoke(["audit-loss", save(workdir, "short.npy", SHORT),
                     "--loss", "sparse_categorical_crossentropy",
                     "--targets", save(workdir, "y_hf.npy", y)], exit_code=2)
    assert "class id -100 at a padded step (sequence 0, step 2)" in result.stderr


def test_model_that_does_not_take_the_inputs(workdir, example_one):
    vectors = np.ones((2, 3, 2))
    vectors[0, 2] = 0
    result = invoke(["audit-loss", save(workdir, "vectors.npy", vectors),
                     "--model", example_one[1]], exit_code=2)
    assert "cannot run on" in result.stderr
