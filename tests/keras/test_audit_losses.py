"""Built-in losses compiled with from_logits, label_smoothing, ignore_class or
another reduction: an exact numpy reference, checked against Keras itself."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskcli.keras.audit import audit_loss, per_step_loss
from maskcli.keras.audit.reference import loss_spec
from maskcli.keras.models import import_keras

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

keras = import_keras()
layers, losses = keras.layers, keras.losses
TOKENS = np.array([[3, 1, 4, 0, 0], [2, 7, 0, 0, 0], [5, 9, 2, 6, 8]], dtype="int32")
REAL = TOKENS != 0


@given(data=st.data())
@settings(max_examples=30, deadline=None, derandomize=True)
def test_numpy_losses_with_settings_equal_keras(data):
    kind = data.draw(st.sampled_from(["binary_crossentropy", "categorical_crossentropy",
                                      "sparse_categorical_crossentropy"]))
    from_logits = data.draw(st.booleans())
    smoothing = 0.0 if kind.startswith("sparse") else data.draw(st.sampled_from([0.0, 0.1, 0.3]))
    ignore = data.draw(st.sampled_from([None, 0, 2, -100])) if kind.startswith("sparse") else None
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    logits = rng.normal(scale=2.0, size=(2, 5, 3)).astype(np.float32)
    if from_logits:
        y_pred = logits
    elif kind == "binary_crossentropy":
        y_pred = 1 / (1 + np.exp(-logits))
    else:
        y_pred = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, 3, (2, 5))
    if ignore == -100:
        labels[:, -2:] = -100
    y_true = {"binary_crossentropy": rng.integers(0, 2, (2, 5, 3)),
              "categorical_crossentropy": np.eye(3)[labels.clip(0)],
              "sparse_categorical_crossentropy": labels}[kind]
    settings_ = {"from_logits": from_logits, "reduction": None}
    if ignore is not None:
        settings_["ignore_class"] = ignore
    if smoothing:
        settings_["label_smoothing"] = smoothing
    loss = {"binary_crossentropy": losses.BinaryCrossentropy,
            "categorical_crossentropy": losses.CategoricalCrossentropy,
            "sparse_categorical_crossentropy": losses.SparseCategoricalCrossentropy}[kind]
    expected = np.asarray(loss(**settings_)(y_true.astype(np.float32), y_pred))
    spec = loss_spec(loss(**{**settings_, "reduction": "sum_over_batch_size"}))
    got = per_step_loss(kind, y_true, y_pred, from_logits=from_logits,
                        label_smoothing=spec.label_smoothing, ignore_class=spec.ignore_class)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)


def test_loss_spec_names_the_settings_and_keeps_unknown_ones_custom():
    assert loss_spec("mse").name == "mse"
    spec = loss_spec(losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-100))
    assert spec.name == "sparse_categorical_crossentropy (from_logits=True, ignore_class=-100)"
    assert (spec.kind, spec.from_logits, spec.ignore_class) == (
        "sparse_categorical_crossentropy", True, -100)
    spec = loss_spec(losses.CategoricalCrossentropy(label_smoothing=0.1, reduction="sum"))
    assert spec.name == "categorical_crossentropy (label_smoothing=0.1, reduction='sum')"
    assert spec.reduction == "sum" and spec.label_smoothing == 0.1
    assert loss_spec(losses.MeanSquaredError(reduction="mean")).reduction == "sum_over_batch_size"
    assert loss_spec(losses.CategoricalCrossentropy(axis=1)).kind is None  # no reference for it


def tagger(loss, activation=None, mask_zero=False, classes=4, seed=0):
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((None,), dtype="int32")
    x = layers.Embedding(10, 4, mask_zero=mask_zero)(tokens)
    x = layers.GRU(4, return_sequences=True)(x)
    model = keras.Model(tokens, layers.Dense(classes, activation=activation)(x))
    model.compile(loss=loss)
    return model


def numpy_mean(model, kind, y, keep, **settings):
    per_step = per_step_loss(kind, y, model.predict(TOKENS, verbose=0), **settings)
    return float(per_step[keep].mean())


@pytest.mark.parametrize("ignore", [0, -100])
def test_ignore_class_defines_the_label_padding_with_exact_parity(ignore):
    """A GRU tagger without a Keras mask, its loss masked by ignore_class only
    (post-padding: the GRU's real steps never see the padding)."""
    labels = np.where(REAL, np.array([[1, 2, 3, 1, 2]]), ignore)
    model = tagger(losses.SparseCategoricalCrossentropy(ignore_class=ignore), "softmax")
    report = audit_loss(TOKENS, model=model, targets=labels)
    assert report.verdict == "ignored", report.cause
    assert report.keras_loss == pytest.approx(model.evaluate(TOKENS, labels, verbose=0), rel=1e-6)
    assert report.masked_loss == pytest.approx(
        numpy_mean(model, "sparse_categorical_crossentropy", labels, REAL, ignore_class=ignore),
        rel=1e-6)
    assert report.check("loss-parity").status == "pass"
    assert report.check("target-invariance").detail == (
        f"ignore_class={ignore} defines the padding by the targets themselves")


def test_ignore_class_steps_inside_the_padding_mask_are_left_out():
    """The padding from the inputs, and a real [CLS]-like step labelled -100:
    Keras leaves it out, so the reference does too."""
    labels = np.where(REAL, 2, -100)
    labels[:, 0] = -100
    model = tagger(losses.SparseCategoricalCrossentropy(ignore_class=-100), "softmax",
                   mask_zero=True)
    report = audit_loss(TOKENS, model=model, targets=labels, mask=REAL)
    assert report.check("loss-parity").status == "pass"
    assert "less 3 whose label is ignore_class=-100" in report.check("loss-parity").detail
    assert report.check("target-invariance").status == "skipped"  # padded labels are all -100


def test_ignore_class_with_synthetic_targets():
    model = tagger(losses.SparseCategoricalCrossentropy(ignore_class=0), "softmax")
    report = audit_loss(TOKENS, model=model)
    assert report.verdict == "ignored", report.cause  # padded labels are 0, real ones never


def test_from_logits_tagger_has_exact_parity():
    labels = np.where(REAL, 1, 0)
    model = tagger(losses.SparseCategoricalCrossentropy(from_logits=True), mask_zero=True)
    report = audit_loss(TOKENS, model=model, targets=labels)
    assert report.verdict == "ignored", report.cause
    assert report.loss == "sparse_categorical_crossentropy (from_logits=True)"
    assert report.masked_loss == pytest.approx(
        numpy_mean(model, "sparse_categorical_crossentropy", labels, REAL, from_logits=True),
        rel=1e-6)
    assert report.keras_loss == pytest.approx(report.masked_loss, rel=report.rtol)


def test_label_smoothing_and_binary_logits_have_exact_parity():
    y = np.eye(4)[np.where(REAL, 2, 0)]
    smooth = tagger(losses.CategoricalCrossentropy(label_smoothing=0.2), "softmax", True)
    assert audit_loss(TOKENS, model=smooth, targets=y).check("loss-parity").status == "pass"
    binary = tagger(losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
                    mask_zero=True, classes=1)
    report = audit_loss(TOKENS, model=binary, targets=REAL[..., None].astype("float32"))
    assert report.check("loss-parity").status == "pass", report.check("loss-parity")


def test_sum_reduction_is_the_sum_over_real_steps():
    model = tagger(losses.MeanSquaredError(reduction="sum"), mask_zero=True, classes=1)
    y = np.ones((3, 5, 1), dtype="float32")
    report = audit_loss(TOKENS, model=model, targets=y)
    pred = model.predict(TOKENS, verbose=0).astype(np.float64)
    assert report.masked_loss == pytest.approx(((pred - 1) ** 2)[REAL].sum(), rel=1e-6)
    assert report.verdict == "ignored", report.cause


@pytest.mark.parametrize("batch_size", [None, 2])
def test_no_reduction_averages_over_every_step(batch_size):
    """reduction='none' hands evaluate the masked per-step losses, which it
    averages over all steps, padding included."""
    model = tagger(losses.MeanSquaredError(reduction="none"), mask_zero=True, classes=1)
    report = audit_loss(TOKENS, model=model, batch_size=batch_size)
    assert report.failed == ["loss-parity"]
    # In batches too: each batch's masked sum over all of that batch's steps.
    assert report.cause.startswith("the loss divides by all steps, padding included")
