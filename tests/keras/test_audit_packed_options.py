"""audit-loss on packed rows with the options of a training run: sample
weights (per step, per row, "mask"), --batch-size, --train-steps and
--per-sample, each against numpy and Keras' own evaluate/fit.

The models are the session's (tests/keras/conftest.py); a test that trains
builds its own."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskcli.keras.audit import audit_loss
from maskcli.keras.audit.batch import synthetic_targets
from tests.conftest import invoke
from tests.keras.packed_models import (
    VOCAB,
    next_token_targets,
    packed_model,
    packed_rows,
    rows_of_16,
    step_losses,
)

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


@pytest.fixture(scope="module")
def models(packed_models):
    return packed_models


def alone_losses(model, rows, targets):
    """Each document run alone (its own row from step 0, positions 0..): its
    numpy step losses against its own targets."""
    from maskcli.core.packed_diagnose import documents
    from maskcli.keras.trace.packed import alone_arrays, packed_batch

    docs = documents(rows["tokens_segment_ids"])
    alone_targets = np.zeros((len(docs), targets.shape[1]), targets.dtype)
    for i, (row, _, start, end) in enumerate(docs):
        alone_targets[i, :end - start] = targets[row, start:end]
    return docs, step_losses(model, alone_arrays(packed_batch(rows, list(rows))), alone_targets)


def test_per_step_sample_weights_weigh_keras_loss_and_each_document_packed_and_alone(models):
    rows = packed_rows()
    rng = np.random.default_rng(1)
    real = rows["tokens_segment_ids"] > 0
    targets = rng.integers(0, VOCAB, real.shape).astype("int32")
    weights = (rng.uniform(0.5, 2.0, real.shape) * real).astype("float32")  # 0 at padding
    model = models["padding-only"]  # documents mix: packed and alone differ
    report = audit_loss(rows, model=model, targets=targets, sample_weight=weights,
                        per_sample=True)
    losses = step_losses(model, rows, targets)
    # Keras' loss is evaluate's, and its default reduction divides by all 20 steps.
    assert report.keras_loss == pytest.approx(
        model.evaluate(rows, targets, sample_weight=weights, batch_size=2, verbose=0), rel=1e-5)
    assert report.keras_loss == pytest.approx((weights * losses).sum() / 20, rel=1e-5)
    assert report.masked_loss == pytest.approx((weights * losses)[real].sum() / 18, rel=1e-6)
    parity = report.check("loss-parity")
    assert parity.status == "warn" and "divides the weighted sum by all 20 steps" in parity.detail
    # Each document's weights travel with it when it runs alone.
    docs, alone = alone_losses(model, rows, targets)
    rows_shown = report.to_dict()["per_document"]
    assert [(d["row"], d["segment"], d["start"], d["length"]) for d in rows_shown] == [
        (0, 1, 0, 4), (0, 2, 4, 3), (0, 3, 7, 2), (1, 1, 0, 6), (1, 2, 6, 3)]
    for i, (shown, (row, _, start, end)) in enumerate(zip(rows_shown, docs)):
        w = weights[row, start:end].astype(np.float64)
        assert shown["packed_loss"] == pytest.approx(
            (w * losses[row, start:end]).sum() / (end - start), rel=1e-6)
        assert shown["alone_loss"] == pytest.approx(
            (w * alone[i, :end - start]).sum() / (end - start), rel=1e-6)
    assert report.verdict == "leaks" and report.check("segment-isolation").status == "fail"
    assert "weighted by its sample weights" in report.check("segment-isolation").detail
    assert not any("does not apply" in note for note in report.notes)


def test_sample_weight_mask_is_the_real_steps_and_strict_tries_the_reduction_fix(models):
    rows = packed_rows()
    real = rows["tokens_segment_ids"] > 0
    targets = next_token_targets(rows)
    targets[~real] = 0
    by_name = audit_loss(rows, model=models["isolated"], targets=targets, sample_weight="mask")
    by_array = audit_loss(rows, model=models["isolated"], targets=targets,
                          sample_weight=real.astype("float32"))
    assert by_name.keras_loss == pytest.approx(by_array.keras_loss, rel=1e-7)
    assert by_name.keras_loss == pytest.approx(by_name.masked_loss * 18 / 20, rel=1e-5)
    assert by_name.verdict == "leaks"  # the targets cross boundaries
    # per-row weights: each document gets its row's
    per_row = audit_loss(rows, model=models["isolated"], targets=targets,
                         sample_weight=np.array([1.0, 3.0], "float32"), per_sample=True)
    losses = step_losses(models["isolated"], rows, targets)
    assert per_row.keras_loss == pytest.approx(
        (losses * np.array([[1.0], [3.0]])).mean(), rel=1e-5)
    assert per_row.per_document[3]["packed_loss"] == pytest.approx(3 * losses[1, :6].mean(),
                                                                   rel=1e-6)
    strict = audit_loss(rows, model=models["isolated"], sample_weight="mask", strict=True)
    assert strict.verdict == "leaks" and strict.failed == ["loss-parity"]
    assert strict.cause.startswith("the loss divides the weighted sum by all 20 steps")
    (fix,) = strict.fixes
    assert (fix.kind, fix.verified) == ("compile", True)
    assert "mean_with_sample_weight" in fix.text and "loss-parity then passes" in fix.tried


def test_batch_size_runs_every_call_in_batches_and_checks_batch_weighting(models, monkeypatch):
    from maskcli.keras.trace import packed as trace_packed

    rows = rows_of_16()  # rows of 16, 16, 16 and 2 real steps
    real = rows["tokens_segment_ids"] > 0
    targets = np.where(real, np.random.default_rng(2).integers(0, VOCAB, real.shape), 0)
    model = models["isolated"]
    called = []
    run_model = trace_packed.run_model
    monkeypatch.setattr(trace_packed, "run_model", lambda m, x: (
        called.append(len(x["tokens"])), run_model(m, x))[1])
    report = audit_loss(rows, model=model, targets=targets, sample_weight="mask", batch_size=2)
    assert called and max(called) <= 2  # the documents alone too: 12 rows in 6 calls
    assert (report.batch_size, report.batches) == (2, 2)
    assert report.keras_loss == pytest.approx(model.evaluate(
        rows, targets, sample_weight=real.astype("float32"), batch_size=2, verbose=0), rel=1e-5)
    losses = step_losses(model, rows, targets)
    lengths = real.sum(axis=1)  # 16, 16, 16, 2: a real token of the short last row weighs more
    weight = np.repeat([50 * 2 / (4 * 32), 50 * 2 / (4 * 18)], 2)  # R n_b / (N R_b)
    check = report.check("batch-weighting")
    assert check.status == "warn" and check.value == report.keras_loss
    assert check.reference == pytest.approx(losses[real].mean(), rel=1e-6)
    spread = weight.max() / weight.min()
    assert f"{weight.min():.3g} to {weight.max():.3g} times" in check.detail
    assert f"spread {spread:.3g} (tolerance 1.5)" in check.detail and lengths.tolist() == [
        16, 16, 16, 2]
    assert report.check("segment-isolation").status == "pass" and report.verdict == "ignored"


def test_train_steps_train_on_the_packed_batch_before_the_audit(models):
    rows = packed_rows()
    real = rows["tokens_segment_ids"] > 0
    targets = np.where(real, np.random.default_rng(3).integers(0, VOCAB, real.shape), 0)
    untrained = models["isolated"].get_weights()  # built from the same seed, never trained
    model, reference = packed_model("isolated"), packed_model("isolated")
    reference.run_eagerly = True  # as the audit trains: one batch, no graph to trace
    report = audit_loss(rows, model=model, targets=targets, sample_weight="mask",
                        train_steps=3)
    assert any(not np.allclose(a, b) for a, b in zip(untrained, model.get_weights()))
    # what fit trains, step for step, from the same seed
    from maskcli.keras.models import import_keras

    import_keras().utils.set_random_seed(0)
    reference.fit(rows, targets, sample_weight=real.astype("float32"), batch_size=2, epochs=3,
                  shuffle=False, verbose=0)
    for ours, fits in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(ours, fits, rtol=1e-5, atol=1e-6)
    assert report.verdict == "ignored" and report.check("segment-isolation").status == "pass"
    assert report.keras_loss == pytest.approx(model.evaluate(
        rows, targets, sample_weight=real.astype("float32"), batch_size=2, verbose=0), rel=1e-5)
    assert "audited after 3 training steps on the whole batch" in report.notes


def test_command_options_on_packed_rows(models, tmp_path):
    model_path = tmp_path / "isolated.keras"
    models["isolated"].save(model_path)
    rows = packed_rows()
    data = tmp_path / "packed.npz"
    np.savez(data, **rows)
    weights = np.where(rows["tokens_segment_ids"] > 0, 2.0, 0.0).astype("float32")
    np.save(tmp_path / "w.npy", weights)
    args = ["audit-loss", data, "--model", model_path, "--sample-weight", tmp_path / "w.npy",
            "--batch-size", "1", "--per-sample"]
    result = invoke(args + ["--format", "json"])
    report = json.loads(result.stdout)
    assert [c["id"] for c in report["checks"]] == ["segment-isolation", "boundary-targets",
                                                   "loss-parity", "batch-weighting"]
    assert report["batching"] == {"batch_size": 1, "batches": 2, "auto": False}
    assert len(report["per_document"]) == 5 and report["per_sample"] is None
    assert "warning: loss-parity:" in result.stderr
    targets = synthetic_targets("sparse_categorical_crossentropy", (2, 10, VOCAB), 0)
    assert report["keras_loss"] == pytest.approx(models["isolated"].evaluate(
        rows, targets, sample_weight=weights, batch_size=1, verbose=0), rel=1e-5)
    import io

    from rich.console import Console

    from maskcli.render.audit import render_report

    out = io.StringIO()
    render_report(audit_loss(rows, model=models["isolated"], per_sample=True),
                  Console(file=out, width=150))
    assert "per document" in out.getvalue() and "alone loss" in out.getvalue()


def test_python_audit_loss_takes_the_options_as_the_command_does(models):
    import maskcli

    rows = packed_rows()
    targets = next_token_targets(rows)
    weights = (rows["tokens_segment_ids"] > 0).astype("float32")
    by_tuple = maskcli.audit_loss((rows, targets, weights), model=models["isolated"],
                                  batch_size=1, per_sample=True)
    direct = audit_loss(rows, model=models["isolated"], targets=targets, sample_weight=weights,
                        batch_size=1, per_sample=True)
    assert by_tuple.to_dict() == direct.to_dict()
    assert by_tuple.check("batch-weighting").status == "pass"
    assert by_tuple.per_document and by_tuple.keras_loss is not None
