"""The accumulation check on a masked tagger compiled with
SGD(gradient_accumulation_steps=4): its numbers against Keras' own evaluate
on each micro-batch, equal lengths, --accumulation-steps on a model without
accumulation, replicas, the fix tried and applied, the saved model, errors."""

import json

import numpy as np
import pytest

from maskcli.core.errors import UsageError
from maskcli.keras import models
from maskcli.keras.audit import accumulation, audit_loss
from tests.conftest import invoke

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

keras = models.import_keras()
# 16 post-padded sequences; micro-batches of 2, accumulated 4 times: 2 windows.
LENGTHS = [1, 6, 2, 5, 1, 1, 6, 6, 3, 4, 2, 6, 1, 2, 5, 5]
SIZE, STEPS = 2, 4


def padded(lengths, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((len(lengths), 6), "int32")
    for i, length in enumerate(lengths):
        x[i, :length] = rng.integers(1, 8, length)
    return x, rng.integers(0, 3, x.shape)


X, Y = padded(LENGTHS)


def tagger(accumulation=STEPS, reduction="sum_over_batch_size"):
    keras.utils.set_random_seed(1)
    tokens = keras.Input((None,), dtype="int32")
    dense = keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(0, 2, seed=4))
    model = keras.Model(tokens, dense(keras.layers.Embedding(8, 4, mask_zero=True)(tokens)))
    model.compile(optimizer=keras.optimizers.SGD(0.1, gradient_accumulation_steps=accumulation),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  reduction=reduction))
    return model


@pytest.fixture(scope="module")
def model():
    return tagger()


@pytest.fixture(scope="module")
def report(model):
    return audit_loss(X, model=model, targets=Y, batch_size=SIZE)


def window_means(values):
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(-1, STEPS).mean(axis=1).mean()


def expected_spread(lengths):
    weights = []
    for start in range(0, len(lengths), SIZE * STEPS):
        micro = np.add.reduceat(lengths[start:start + SIZE * STEPS], range(0, SIZE * STEPS, SIZE))
        weights.extend(micro.sum() / (STEPS * micro))
    return max(weights) / min(weights)


def test_uneven_micro_batches_warn_with_keras_own_numbers(model, report):
    check = report.check("accumulation")
    assert check.status == "warn"
    micro = [model.evaluate(X[i:i + SIZE], Y[i:i + SIZE], verbose=0, return_dict=True)["loss"]
             for i in range(0, len(X), SIZE)]
    assert check.value == pytest.approx(window_means(micro), rel=1e-6)
    # The reference: each window's token losses over its real tokens, in numpy.
    logits = model.predict(X, verbose=0).astype(np.float64)
    log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    token = -np.take_along_axis(log_p, Y[..., None], axis=-1)[..., 0]
    real = X != 0
    windows = [slice(0, 8), slice(8, 16)]
    reference = np.mean([token[w][real[w]].sum() / real[w].sum() for w in windows])
    assert check.reference == pytest.approx(reference, rel=1e-6)
    assert abs(check.value - check.reference) > 0.01  # the mean of means is another number
    spread = expected_spread(np.array(LENGTHS))
    assert spread == pytest.approx(6.0)
    assert ("updates of 4 micro-batches of 2 (the optimizer's gradient_accumulation_steps=4), "
            "2 windows") in check.detail
    assert "a real token weighs 0.583 to 3.5 times its weight in one batch of the window's 8 " \
           "sequences: spread 6.0 (tolerance 1.5)" in check.detail
    assert "move the weights up to 6.0 times as much" in check.detail
    assert report.verdict == "ignored" and report.fixes == []  # a warning: nothing leaks


def test_equal_lengths_pass(model):
    x, y = padded([3] * 16, seed=1)
    check = audit_loss(x, model=model, targets=y, batch_size=SIZE).check("accumulation")
    assert check.status == "pass"
    assert check.value == pytest.approx(check.reference, rel=1e-6)
    assert "spread 1.0 " in check.detail


def test_the_flag_on_a_model_without_accumulation_gives_the_same_numbers(report):
    plain = tagger(accumulation=None)
    assert accumulation.model_steps(plain) is None  # no check unless asked for
    flagged = audit_loss(X, model=plain, targets=Y, batch_size=SIZE,
                         accumulation_steps=STEPS).check("accumulation")
    check = report.check("accumulation")
    assert (flagged.status, flagged.value, flagged.reference) == (
        check.status, pytest.approx(check.value, rel=1e-7),
        pytest.approx(check.reference, rel=1e-7))
    assert "(--accumulation-steps)" in flagged.detail
    assert flagged.detail.split("windows:")[1] == check.detail.split("windows:")[1]


def test_replicas_cut_the_same_units_as_smaller_micro_batches(model, report):
    # Batches of 4 on 2 replicas, accumulated twice: shares of 2 sequences, 4 per update.
    check = audit_loss(X, model=model, targets=Y, batch_size=4, accumulation_steps=2,
                       replicas=2).check("accumulation")
    assert check.value == pytest.approx(report.check("accumulation").value, rel=1e-7)
    assert "updates of 2 micro-batches of 4, each split over 2 replicas" in check.detail
    assert "spread 6.0" in check.detail


def test_the_fix_is_tried_and_makes_the_check_pass(model):
    strict = audit_loss(X, model=model, targets=Y, batch_size=SIZE, strict=True)
    assert strict.verdict == "leaks" and strict.check("accumulation").status == "fail"
    assert strict.cause.startswith("accumulating 4 micro-batches of 2 averages their "
                                   "per-micro-batch means")
    (fix,) = strict.fixes
    assert (fix.kind, fix.verified) == ("compile", True)
    assert 'reduction="sum"' in fix.text and "spread 1.0" in fix.tried
    # Applied by hand: reduction="sum" and sample weights 4 / (real tokens of the window).
    summing = tagger(reduction="sum")
    real = (X != 0).astype(np.float32)
    weights = np.concatenate([real[w] * STEPS / real[w].sum()
                              for w in (slice(0, 8), slice(8, 16))])
    fixed = audit_loss(X, model=summing, targets=Y, batch_size=SIZE, sample_weight=weights,
                       strict=True)
    check = fixed.check("accumulation")
    assert (fixed.verdict, check.status) == ("ignored", "pass")
    assert check.value == pytest.approx(strict.check("accumulation").reference, rel=1e-6)
    assert "a real token weighs 1 to 1 times" in check.detail


def test_errors_name_the_python_arguments():
    with pytest.raises(UsageError, match="accumulation_steps needs batch_size"):
        audit_loss(X, targets=Y, accumulation_steps=4)
    with pytest.raises(UsageError, match=r"give a multiple of replicas \(2\)"):
        audit_loss(X, targets=Y, batch_size=3, replicas=2)


def test_the_saved_model_carries_its_accumulation_steps(model, tmp_path):
    path = tmp_path / "tagger.keras"
    model.save(path)
    data = tmp_path / "batch.npz"
    np.savez(data, inputs=X, targets=Y)
    result = invoke(["audit-loss", data, "--model", path, "--batch-size", SIZE,
                     "--format", "json"])
    found = json.loads(result.stdout)
    check = next(c for c in found["checks"] if c["id"] == "accumulation")
    assert check["status"] == "warn" and "gradient_accumulation_steps=4" in check["detail"]
    assert "warning: accumulation: updates of 4 micro-batches" in result.stderr
    unbatched = json.loads(invoke(["audit-loss", data, "--model", path, "--format",
                                   "json"]).stdout)
    assert any("accumulates gradients over 4 steps" in note for note in unbatched["notes"])
    error = invoke(["audit-loss", data, "--model", path, "--accumulation-steps", "4"],
                   exit_code=2)
    assert "Error: --accumulation-steps needs --batch-size" in error.stderr
