"""Sample weights on a model whose output carries a Keras mask: the padding is
ignored, whatever the weights, and the reference is the same loss on the real
steps alone. Keras' default reduction then divides the weighted sum by the
real steps (not by the weights), mean_with_sample_weight by the weights."""

from __future__ import annotations

import numpy as np
import pytest

from maskcli.core.batching import token_weights
from maskcli.keras.audit import audit_loss
from maskcli.keras.models import import_keras

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning")]
keras = import_keras()
TOKENS = np.array([[5, 3, 8, 1, 9, 0], [4, 4, 0, 0, 0, 0], [6, 1, 2, 0, 0, 0],
                   [3, 9, 2, 5, 7, 1]], "int32")
MASK = TOKENS != 0
# per sequence, as class weights are given; and per step, 0 at padding
PER_SEQUENCE = np.array([1.0, 3.0, 0.5, 2.0], "float32")
PER_STEP = (np.random.default_rng(2).uniform(0.5, 2.0, TOKENS.shape) * MASK).astype("float32")


def masked_tagger(reduction: str = "sum_over_batch_size"):
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32")
    hidden = keras.layers.LSTM(4, return_sequences=True)(
        keras.layers.Embedding(10, 4, mask_zero=True)(tokens))
    model = keras.Model(tokens, keras.layers.Dense(1)(hidden))
    model.compile(loss=keras.losses.MeanSquaredError(reduction=reduction))
    return model


@pytest.fixture(scope="module")
def targets():
    return np.random.default_rng(1).standard_normal(TOKENS.shape + (1,)).astype("float32")


def squared_errors(model, targets):
    pred = np.asarray(model.predict(TOKENS, verbose=0), np.float64)
    return ((pred - targets) ** 2)[..., 0]


@pytest.mark.parametrize("weights", [PER_SEQUENCE, PER_STEP], ids=["per-sequence", "per-step"])
def test_a_masked_model_with_weights_and_the_default_reduction_ignores_padding(weights, targets):
    model = masked_tagger()
    report = audit_loss(TOKENS, model=model, targets=targets, sample_weight=weights)
    assert report.verdict == "ignored", report.cause
    keras_weights = weights[:, None] if weights.ndim == 1 else weights
    evaluated = model.evaluate(TOKENS, targets, sample_weight=keras_weights, verbose=0)
    errors = squared_errors(model, targets)
    step_weights = np.broadcast_to(keras_weights, MASK.shape)
    by_real_steps = float((step_weights * errors)[MASK].sum() / MASK.sum())  # 16 real steps
    assert report.keras_loss == pytest.approx(evaluated, rel=1e-6)
    assert report.masked_loss == pytest.approx(by_real_steps, rel=1e-6)
    assert report.removed_loss == pytest.approx(by_real_steps, rel=1e-5)  # the two references
    assert "mean of weight x loss over 16 real of 24 steps" in report.check("loss-parity").detail


def test_mean_with_sample_weight_divides_by_the_weights(targets):
    model = masked_tagger("mean_with_sample_weight")
    report = audit_loss(TOKENS, model=model, targets=targets, sample_weight=PER_STEP)
    assert report.verdict == "ignored", report.cause
    errors = squared_errors(model, targets)
    assert report.masked_loss == pytest.approx(
        float((PER_STEP * errors).sum() / PER_STEP.sum()), rel=1e-6)
    assert "weighted mean over 16 real of 24 steps" in report.check("loss-parity").detail


def test_in_batches_the_default_reduction_weighs_tokens_by_the_real_steps(targets):
    """R_b of weight = R n_b / (N R_b) is the batch's real steps for the default
    reduction, its sum of weights for mean_with_sample_weight."""
    lengths = MASK.sum(axis=1)  # 5, 2, 3, 6
    sums = PER_STEP.sum(axis=1)
    for reduction, divisors in (("sum_over_batch_size", lengths),
                                ("mean_with_sample_weight", sums)):
        model = masked_tagger(reduction)
        report = audit_loss(TOKENS, model=model, targets=targets, sample_weight=PER_STEP,
                            batch_size=2)
        assert report.check("loss-parity").status == "pass", reduction
        assert report.keras_loss == pytest.approx(
            model.evaluate(TOKENS, targets, sample_weight=PER_STEP, batch_size=2, verbose=0),
            rel=1e-6)
        expected = token_weights(divisors, 2)
        detail = report.check("batch-weighting").detail
        assert f"{expected.min():.3g} to {expected.max():.3g} times the token mean" in detail
    assert token_weights(lengths, 2).tolist() == pytest.approx([16 / 14] * 2 + [16 / 18] * 2)
