"""audit-loss in batches: the numpy token weights against Keras' own evaluate,
every check batch by batch, the batch-weighting check and its worked example,
--strict, the memory budget, and the progress bar."""

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maskcli.core.batching import token_weights
from maskcli.keras import models
from maskcli.keras.audit import audit_loss, batched, synthetic_targets
from tests.conftest import invoke, read_terminal

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

keras = models.import_keras()
ROOT = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).with_name("audit_custom_objects.py")
# Post-padded, lengths 1, 4, 2, 2, 4: in batches of 2, the batches hold 5, 4
# and 4 real steps in 2, 2 and 1 sequences, so their tokens weigh 1.04, 1.3 and 0.65.
UNEVEN = np.array([[3, 0, 0, 0], [1, 4, 2, 5], [2, 2, 0, 0], [5, 1, 0, 0], [4, 4, 4, 4]])
WORKED = np.array([[1, 0, 0, 0], [1, 2, 3, 4]])  # the worked example: lengths 1 and 4


def embedding_dense(seed=1, vocab=6, out=3):
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((None,), dtype="int32")
    model = keras.Model(tokens, keras.layers.Dense(out)(
        keras.layers.Embedding(vocab, 5, mask_zero=True)(tokens)))
    model.compile(loss="mse", metrics=["mae"])
    return model


def embedding_model(*middle, vocab=6, out=1, activation=None, seed=3):
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(vocab, 4, mask_zero=True)(tokens)
    for layer in middle:
        x = layer(x)
    return keras.Model(tokens, keras.layers.Dense(out, activation=activation)(x))


# -- the numpy weights are Keras' ------------------------------------------------

@pytest.mark.parametrize("inputs", [UNEVEN, np.array([[0, 0, 0], [2, 3, 0], [0, 0, 0],
                                                      [1, 0, 0], [0, 0, 0], [4, 4, 4]])],
                         ids=["uneven", "empty-rows-and-an-empty-batch"])
def test_token_weights_reproduce_keras_evaluate_at_every_batch_size(inputs):
    model = embedding_dense()
    y = np.random.default_rng(2).standard_normal(inputs.shape + (3,)).astype(np.float32)
    per_step = ((model.predict(inputs, verbose=0).astype(np.float64) - y) ** 2).mean(axis=-1)
    real = inputs != 0
    lengths = real.sum(axis=1)
    for size in range(1, len(inputs) + 1):
        keras_loss = model.evaluate(inputs, y, batch_size=size, verbose=0)[0]
        weights = np.nan_to_num(token_weights(lengths, size))
        predicted = (per_step * weights[:, None])[real].sum() / lengths.sum()
        assert keras_loss == pytest.approx(predicted, rel=2e-6), size


def test_the_worked_example_lengths_1_and_4_in_batches_of_1():
    model = embedding_dense()
    y = synthetic_targets(None, (2, 4, 3), 0)
    report = audit_loss(WORKED, model=model, targets=y, batch_size=1)
    keras_at_1 = model.evaluate(WORKED, y, batch_size=1, verbose=0)[0]
    keras_at_2 = model.evaluate(WORKED, y, batch_size=2, verbose=0)[0]
    assert report.keras_loss == pytest.approx(keras_at_1, rel=1e-6)
    check = report.check("batch-weighting")
    assert check.status == "warn"
    assert check.value == pytest.approx(keras_at_1, rel=1e-6)
    assert check.reference == pytest.approx(keras_at_2, rel=1e-6)  # the mean over real tokens
    assert "weighs a real token 0.625 to 2.5 times the token mean: spread 4.0 " in check.detail
    assert "global count of real tokens" in check.detail
    assert "leaves the spread at 4.0: a batch of short sequences" in check.detail
    assert report.verdict == "ignored" and report.exit_code == 0
    assert report.warned == ["batch-weighting"]
    assert report.check("loss-parity").status == "pass"  # Keras' loss is what the weights say


def test_strict_turns_the_warning_into_a_failure(tmp_path):
    np.save(tmp_path / "worked.npy", WORKED)
    args = ["audit-loss", tmp_path / "worked.npy", "--arch", "embedding-dense", "--batch-size",
            1, "--format", "json"]
    relaxed = invoke(args)
    assert "warning: batch-weighting: Keras' loss in 2 batches of 1" in relaxed.stderr
    report = json.loads(relaxed.stdout)
    assert report["verdict"] == "ignored"
    assert report["batching"] == {"batch_size": 1, "batches": 2, "auto": False}
    strict = json.loads(invoke([*args, "--strict"], exit_code=1).stdout)
    assert strict["verdict"] == "leaks"
    assert [c["id"] for c in strict["checks"] if c["status"] == "fail"] == ["batch-weighting"]
    assert strict["cause"].startswith("per-batch normalization weighs real tokens unequally "
                                      "in batches of 1 (spread 4.0, tolerance 1.5)")


def test_batches_of_one_size_weigh_tokens_alike_and_pass():
    report = audit_loss(UNEVEN, batch_size=8)
    assert report.check("batch-weighting").status == "pass"
    assert "spread 1.0 " in report.check("batch-weighting").detail
    assert report.batches == 1


# -- every check holds batch by batch ---------------------------------------------

def sum_all_steps_loss(y_true, y_pred):
    """mse reduced to a scalar by the loss itself: Keras cannot mask it."""
    return keras.ops.sum(keras.ops.square(y_true - y_pred)) / keras.ops.cast(
        keras.ops.size(y_true), "float32")


SCENARIOS = {
    "built-in lstm": (lambda: None, []),
    "conv1d drops the mask": (
        lambda: embedding_model(keras.layers.Conv1D(3, 3, padding="same")),
        ["loss-parity", "target-invariance", "padding-gradient", "forward-invariance"]),
    "arithmetic drops the mask": (
        lambda: keras.Model(*_doubled()), ["loss-parity", "target-invariance", "padding-gradient"]),
    "global max pooling": (
        lambda: embedding_model(keras.layers.GlobalMaxPooling1D()), ["forward-invariance"]),
    "no time axis": (lambda: embedding_model(keras.layers.LSTM(3), out=2), []),
    "precision ignores masks": (lambda: _with_precision(), ["metric-parity"]),
}


def _doubled():
    keras.utils.set_random_seed(6)
    tokens = keras.Input((None,), dtype="int32")
    return tokens, keras.layers.Dense(1)(keras.layers.Embedding(6, 4, mask_zero=True)(tokens) * 2.0)


def _with_precision():
    model = embedding_model(keras.layers.LSTM(3, return_sequences=True), activation="sigmoid")
    model.compile(loss="binary_crossentropy",
                  metrics=["accuracy", keras.metrics.Precision(name="precision")])
    return model


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_check_gives_the_same_verdict_in_uneven_batches(name):
    build, failed = SCENARIOS[name]
    whole = audit_loss(UNEVEN, model=build(), seed=5)
    model = build()
    report = audit_loss(UNEVEN, model=model, seed=5, batch_size=2)
    assert whole.failed == failed
    assert [f for f in report.failed if f != "batch-weighting"] == failed
    assert report.batches == 3 and report.batch_size == 2
    if model is not None and report.check("loss-parity").status != "skipped":
        # Keras' value is evaluate at the same batch size, and for a mask-aware
        # loss the batch-by-batch reference matches it.
        y = synthetic_targets(None if model.loss == "mse" else "binary_crossentropy",
                              model.predict(UNEVEN, verbose=0).shape, 5)
        evaluated = model.evaluate(UNEVEN, y, batch_size=2, verbose=0, return_dict=True)
        assert report.keras_loss == pytest.approx(evaluated["loss"], rel=1e-6)
    weighting = report.check("batch-weighting")
    if report.masked_loss is None:
        assert weighting.status == "skipped" and "no time axis" in weighting.detail
    else:
        assert weighting.status == "warn" and "spread 2.0 " in weighting.detail
        # Sorted by length, batches [1, 2] [2, 4] [4] would weigh tokens 1.73 to 0.65.
        assert "saves padding (18.8% -> 18.8% here) but raises the spread to 2.67" in \
            weighting.detail


def test_a_loss_that_reduces_itself_leaks_in_each_batch():
    model = embedding_model(keras.layers.LSTM(3, return_sequences=True))
    model.compile(loss=sum_all_steps_loss)
    report = audit_loss(UNEVEN, model=model, batch_size=2)
    assert report.failed == ["loss-parity", "target-invariance", "padding-gradient"]
    # Keras' batched value is the batches' unmasked means, averaged as evaluate does.
    assert report.keras_loss == pytest.approx(report.unmasked_loss, rel=1e-6)
    assert report.keras_loss != pytest.approx(report.masked_loss, rel=1e-3)


def test_ignored_labels_sparse_targets_and_training_in_batches():
    model = embedding_model(keras.layers.GRU(3, return_sequences=True), out=4,
                            activation="softmax")
    model.compile(optimizer="adam", metrics=["sparse_categorical_accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=-100))
    labels = np.where(UNEVEN != 0, UNEVEN % 4, -100)
    first = audit_loss(UNEVEN, model=model, targets=labels, target_pad=-100, batch_size=2,
                       train_steps=4, seed=2)
    assert first.verdict == "ignored"
    assert first.loss == "sparse_categorical_crossentropy (ignore_class=-100)"
    assert "audited after 4 training steps on batches of 2" in first.notes
    assert first.keras_loss == pytest.approx(first.masked_loss, rel=first.rtol)


def test_activity_regularizer_and_a_traced_model_leave_eager_losses():
    keras.utils.set_random_seed(12)
    tokens = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Dense(3, activity_regularizer="l2")(
        keras.layers.Embedding(6, 4, mask_zero=True, embeddings_regularizer="l2")(tokens))
    model = keras.Model(tokens, keras.layers.Dense(1)(hidden))
    model.compile(loss="mse")
    report = audit_loss(UNEVEN, model=model, batch_size=2)
    assert report.check("loss-parity").status == "pass"
    assert "regularization losses" in report.check("loss-parity").detail
    assert all(isinstance(float(loss), float) for loss in model.losses)  # eager values, no graph


def test_the_model_s_compiled_functions_are_left_as_they_were():
    model = embedding_dense()
    audit_loss(UNEVEN, model=model, batch_size=2, train_steps=1)
    assert model.test_function is None and model.train_function is None
    assert model.run_eagerly is False


# -- the memory budget ---------------------------------------------------------------

def test_above_the_memory_budget_the_audit_batches_by_itself(monkeypatch):
    monkeypatch.setattr(batched, "AUTO_BATCH_STEPS", 8)  # 2 sequences of 4 steps per call
    report = audit_loss(UNEVEN)
    assert (report.batch_size, report.batches, report.batch_size_auto) == (2, 3, True)
    assert "batch-weighting" not in [c.id for c in report.checks]
    assert report.verdict == "ignored"
    assert any("exceed the memory budget of one model call: the audit ran in batches of 2"
               in note for note in report.notes)
    assert report.to_dict()["batching"] == {"batch_size": 2, "batches": 3, "auto": True}


def test_below_the_budget_nothing_changes():
    report = audit_loss(UNEVEN)
    assert report.batch_size is None and "batching" not in report.to_dict()
    assert [c.id for c in report.checks] == ["loss-parity", "target-invariance",
                                             "padding-gradient", "forward-invariance",
                                             "metric-parity"]


# -- samples through the CLI ------------------------------------------------------------

def test_limit_and_sample_audit_exactly_the_chosen_sequences(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, 40)
    inputs = np.where(np.arange(8) < lengths[:, None], rng.integers(1, 20, (40, 8)), 0)
    np.save(tmp_path / "x.npy", inputs)
    run = ["audit-loss", tmp_path / "x.npy", "--format", "json", "--seed", 3]
    sample = json.loads(invoke([*run, "--sample", 10]).stdout)
    again = json.loads(invoke([*run, "--sample", 10]).stdout)
    assert sample == again
    rows = np.sort(np.random.default_rng(3).choice(40, 10, replace=False))
    direct = audit_loss(inputs[rows], seed=3).to_dict()
    assert sample["keras_loss"] == direct["keras_loss"]
    assert sample["selection"] == {"method": "sample", "sequences": 10, "total": 40, "seed": 3,
                                   "text": "a random sample of 10 of 40 sequences (--seed 3)"}
    first = json.loads(invoke([*run, "--limit", 7]).stdout)
    assert first["keras_loss"] == audit_loss(inputs[:7], seed=3).to_dict()["keras_loss"]
    assert first["sequences"] == 7 and first["selection"]["total"] == 40
    table = invoke([*run[:-2], "--limit", 7, "--format", "table"]).stdout
    assert "audited the first 7 of 40 sequences" in table


# -- progress ---------------------------------------------------------------------------------

def test_batch_bar_follows_the_stages():
    import io

    from rich.console import Console

    from maskcli.render.progress import BatchBar

    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    bar = BatchBar(delay=0, console=console)
    bar("forward pass", 1, 3)
    bar("evaluate", 2, 3)
    bar.close()
    assert bar.progress.tasks[0].description == "audit-loss: evaluate"
    assert bar.progress.tasks[0].completed == 2 and bar.progress.tasks[0].total == 3


def _on_a_terminal(*args) -> str:
    """Run audit-loss with standard error on a pseudo-terminal; return what it showed."""
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "maskcli", "audit-loss", *map(str, args)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=child_fd,
                            stdin=subprocess.DEVNULL,
                            env={**os.environ, "COLUMNS": "80", "NO_COLOR": "1"})
    os.close(child_fd)
    shown = read_terminal(main_fd)
    stdout = proc.stdout.read()
    assert proc.wait(timeout=120) == 0
    json.loads(stdout)  # standard output is the report, untouched by the bar
    return shown


def test_progress_bar_on_a_terminal_and_not_with_quiet(tmp_path):
    np.save(tmp_path / "x.npy", np.tile(UNEVEN, (40, 1)))
    shown = _on_a_terminal(tmp_path / "x.npy", "--batch-size", 4, "--format", "json")
    assert "audit-loss: " in shown and "batches" in shown
    quiet = _on_a_terminal(tmp_path / "x.npy", "--batch-size", 4, "--format", "json", "--quiet")
    assert "audit-loss: " not in quiet


def test_no_progress_bar_on_a_pipe(tmp_path):
    np.save(tmp_path / "x.npy", UNEVEN)
    result = invoke(["audit-loss", tmp_path / "x.npy", "--batch-size", 2, "--format", "json"])
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("warning: batch-weighting: ") for line in lines)


# -- several inputs and sample weights, in batches ---------------------------------------

def test_bert_tagger_with_sample_weights_in_batches_matches_keras_evaluate():
    from tests.keras.transformers import bert_batch, bert_tagger

    arrays = bert_batch(lengths=(5, 3, 6, 2, 8))  # batches of 2: 8, 8 and 8 real steps
    targets = np.random.default_rng(1).standard_normal((5, 8, 1)).astype("float32")
    weights = arrays["padding_mask"].astype("float32")
    model = bert_tagger("mean_with_sample_weight", weighted_metrics=["mae"])
    whole = audit_loss(arrays, model=model, targets=targets, sample_weight="mask")
    report = audit_loss(arrays, model=model, targets=targets, sample_weight="mask",
                        batch_size=2)
    expected = model.evaluate(arrays, targets, sample_weight=weights, batch_size=2, verbose=0,
                              return_dict=True)
    assert whole.verdict == report.verdict == "ignored", report.cause
    assert report.keras_loss == pytest.approx(expected["loss"], rel=1e-6)
    assert report.check("loss-parity").status == "pass"
    assert report.check("metric-parity").value == {"mae": pytest.approx(expected["mae"],
                                                                        rel=1e-6)}
    # Each batch divides by its weights, 8, 8 and 8, over 2, 2 and 1 sequences:
    # 24 x 2 / (5 x 8) = 1.2 for the first two, 24 x 1 / (5 x 8) = 0.6 for the last.
    weighting = report.check("batch-weighting")
    assert weighting.status == "warn"
    assert "0.6 to 1.2 times the token mean: spread 2.0" in weighting.detail
    assert "(its sample weight aside)" in weighting.detail


def test_encoder_decoder_in_batches_feeds_every_input_alike():
    from tests.keras.transformers import encoder_decoder, token_batch

    translator = encoder_decoder()
    encoder = token_batch([6, 3, 7, 2, 5], 7, seed=0)
    decoder = token_batch([4, 2, 5, 1, 3], 5, seed=1)
    labels = np.where(decoder != 0, token_batch([5] * 5, 5, seed=2), 0)
    inputs = {"encoder_tokens": encoder, "decoder_tokens": decoder}
    report = audit_loss(inputs, model=translator, targets=labels, batch_size=2)
    assert report.verdict == "ignored", report.cause
    assert report.keras_loss == pytest.approx(
        translator.evaluate([encoder, decoder], labels, batch_size=2, verbose=0), rel=1e-6)
    assert "every per-step input of 2" in report.check("forward-invariance").detail
    pre = audit_loss([encoder, token_batch([4, 2, 5, 1, 3], 5, seed=1, pre=True)],
                     model=translator, targets=labels, batch_size=2)
    assert "forward-invariance" in pre.failed


def test_a_sum_reduction_skips_batch_weighting():
    model = embedding_model(keras.layers.LSTM(3, return_sequences=True))
    model.compile(loss=keras.losses.MeanSquaredError(reduction="sum"))
    report = audit_loss(UNEVEN, model=model, batch_size=2)
    assert report.check("loss-parity").status == "pass"
    assert report.check("batch-weighting").status == "skipped"
    assert "a sum reduction does not divide" in report.check("batch-weighting").detail


def test_named_npz_and_input_files_are_read_in_part(tmp_path):
    from tests.keras.transformers import bert_batch, bert_tagger

    arrays = bert_batch(lengths=(5, 3, 6, 2, 8, 4, 7, 1))
    targets = np.random.default_rng(1).standard_normal((8, 8, 1)).astype("float32")
    np.savez(tmp_path / "batch.npz", **arrays, targets=targets)
    np.save(tmp_path / "segments.npy", arrays["segment_ids"])
    model = bert_tagger("mean_with_sample_weight")
    model.save(tmp_path / "tagger.keras")
    run = ["audit-loss", tmp_path / "batch.npz", "--model", tmp_path / "tagger.keras",
           "--sample-weight", "mask", "--format", "json", "--seed", 4]
    sampled = json.loads(invoke([*run, "--sample", 3, "--batch-size", 2]).stdout)
    rows = np.sort(np.random.default_rng(4).choice(8, 3, replace=False))
    direct = audit_loss({k: v[rows] for k, v in arrays.items()}, model=model,
                        targets=targets[rows], sample_weight="mask", batch_size=2)
    assert sampled["keras_loss"] == pytest.approx(direct.keras_loss, rel=1e-6)
    assert sampled["selection"]["total"] == 8 and sampled["sequences"] == 3
    assert sampled["verdict"] == "ignored"
    # an --input file is cut to the same rows as INPUT
    files = json.loads(invoke([*run, "--limit", 4, "--input",
                               f"segment_ids={tmp_path / 'segments.npy'}"]).stdout)
    assert files["sequences"] == 4 and files["verdict"] == "ignored"


def test_a_custom_masked_loss_in_batches_is_its_value_on_each_batch_s_real_steps():
    import sys

    models.import_user_code([str(HELPERS)])
    custom = sys.modules[f"maskcli_user_{HELPERS.stem}"]
    rng = np.random.default_rng(1)
    lengths = [1, 4, 2, 2, 4]
    tags = np.zeros((5, 4, 4), dtype=np.float32)
    for row, length in enumerate(lengths):
        tags[row, :length, :3] = np.eye(3)[rng.integers(0, 3, length)]
        tags[row, length:, 3] = 1
    keras.utils.set_random_seed(4)
    tokens = keras.Input((None,), dtype="int32")
    model = keras.Model(tokens, keras.layers.Dense(4, activation="softmax")(
        keras.layers.Embedding(6, 4)(tokens)))
    model.compile(loss=custom.masked_cce_real_steps)
    report = audit_loss(UNEVEN, model=model, targets=tags, target_pad=[0, 0, 0, 1],
                        batch_size=2)
    assert report.loss == "masked_cce_real_steps (custom)" and report.verdict == "ignored"
    assert report.keras_loss == pytest.approx(model.evaluate(UNEVEN, tags, batch_size=2,
                                                             verbose=0), rel=1e-6)
    assert report.keras_loss == pytest.approx(report.masked_loss, rel=1e-6)
    assert "spread 2.0 " in report.check("batch-weighting").detail
