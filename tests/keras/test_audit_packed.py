"""audit-loss on packed rows: segment-isolation and boundary-targets, the
cause naming where documents mix, and the fixes tried on the data.

Each model is built once for the module (tests/keras/packed_models.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maskcli.keras.audit import audit_loss
from maskcli.keras.audit.batch import synthetic_targets
from tests.conftest import invoke
from tests.keras.packed_models import (
    KINDS,
    VOCAB,
    packed_model,
    packed_rows,
    rnn_model,
    rows_of_16,
)

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


@pytest.fixture(scope="module")
def models():
    return {**{kind: packed_model(kind) for kind in KINDS}, "rnn": rnn_model()}


def checks(report):
    return {check.id: check.status for check in report.checks}


def step_losses(model, rows, targets):
    """Sparse cross-entropy from logits at every step, in float64 numpy."""
    logits = np.asarray(model(rows, training=False), np.float64)
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    return -np.take_along_axis(log_p, targets[..., None].astype(np.int64), -1)[..., 0]


def next_token_targets(rows):
    tokens = rows["tokens"]
    return np.concatenate([tokens[:, 1:], np.zeros((len(tokens), 1), tokens.dtype)], axis=1)


def test_block_diagonal_causal_model_with_positions_from_the_input_is_ignored(models):
    # Judged as padded data, position 0 of every document would be padding and
    # this correct model a leak; packed, every document matches itself alone.
    rows = packed_rows()
    report = audit_loss(rows, model=models["isolated"])
    assert report.verdict == "ignored" and report.exit_code == 0
    # Keras' loss counts the 2 padded steps (no mask, no weight): a warning, not the verdict.
    assert checks(report) == {"segment-isolation": "pass", "boundary-targets": "skipped",
                              "loss-parity": "warn"}
    check = report.check("segment-isolation")
    assert check.value < 1e-6 and check.reference == 1e-4
    assert check.detail == "all 5 documents give the same outputs and loss packed as alone"
    assert "counts the 2 padded steps after the rows' last documents" in \
        report.check("loss-parity").detail
    targets = synthetic_targets("sparse_categorical_crossentropy", (2, 10, VOCAB), 0)
    losses, real = step_losses(models["isolated"], rows, targets), rows["tokens_segment_ids"] > 0
    assert report.keras_loss == pytest.approx(losses.mean(), rel=1e-5)
    assert report.masked_loss == pytest.approx(losses[real].mean(), rel=1e-6)
    assert report.fixes == [] and report.cause is None
    assert not any("does not apply" in note for note in report.notes)


@pytest.mark.parametrize("kind, layer, words", [
    ("padding-only", "'attention' (MultiHeadAttention)", "ignores the segments"),
    ("ignores-positions", "'position_embedding' (PositionEmbedding)",
     "does not read the positions input 'tokens_positions'"),
    ("conv", "'conv' (Conv1D)", "convolution runs across document boundaries"),
    ("additive-mask", "'attention' (MultiHeadAttention)", "additive float mask"),
])
def test_each_leak_is_named_at_its_layer(models, kind, layer, words):
    report = audit_loss(packed_rows(), model=models[kind])
    assert report.verdict == "leaks" and report.exit_code == 1
    assert checks(report)["segment-isolation"] == "fail"
    assert report.cause.startswith(f"documents mix at layer {layer}")
    assert words in report.cause
    assert [(fix.kind, fix.verified) for fix in report.fixes] == [("model", None)]
    check = report.check("segment-isolation")
    assert check.value > 1e-2 and check.detail.split(" of 5 documents")[0] in ("3", "5")


def test_positions_that_do_not_restart_are_a_data_leak_fixed_by_restarting_them(models):
    rows = packed_rows()
    rows["tokens_positions"] = np.tile(np.arange(10, dtype="int32"), (2, 1))
    report = audit_loss(rows, model=models["isolated"])
    assert report.verdict == "leaks"
    assert report.cause.startswith("the positions input 'tokens_positions' does not restart")
    (fix,) = report.fixes
    assert (fix.kind, fix.verified) == ("data", True)
    assert "all 5 documents give the same outputs" in fix.tried


def test_targets_crossing_a_boundary_leak_and_minus_100_there_fixes_them(models):
    rows = packed_rows()
    targets = next_token_targets(rows)
    report = audit_loss(rows, model=models["isolated"], targets=targets)
    assert checks(report) == {"segment-isolation": "pass", "boundary-targets": "fail",
                              "loss-parity": "warn"}
    assert report.check("boundary-targets").value == 3  # two boundaries in row 0, one in row 1
    assert "boundary" in report.cause
    (fix,) = report.fixes
    assert (fix.kind, fix.verified) == ("data", True) and "counted again: 0" in fix.tried
    targets[[0, 0, 1], [3, 6, 5]] = -100
    fixed = audit_loss(rows, model=models["isolated"], targets=targets)
    # Keras' sparse cross-entropy without ignore_class=-100 cannot take the -100 labels:
    # its loss is not computed, and the documents are compared without those steps.
    assert checks(fixed) == {"segment-isolation": "pass", "boundary-targets": "pass",
                             "loss-parity": "skipped"}
    assert fixed.keras_loss is None and "ignore_class=-100" in fixed.check("loss-parity").detail
    losses = step_losses(models["isolated"], rows, np.where(targets < 0, 0, targets))
    assert fixed.masked_loss == pytest.approx(
        losses[(rows["tokens_segment_ids"] > 0) & (targets >= 0)].mean(), rel=1e-6)


def test_command_with_a_saved_model(models, tmp_path):
    model_path = tmp_path / "padding_only.keras"
    models["padding-only"].save(model_path)
    data = tmp_path / "packed.npz"
    np.savez(data, **packed_rows())
    result = invoke(["audit-loss", data, "--model", model_path, "--format", "json"], exit_code=1)
    report = json.loads(result.stdout)
    assert report["verdict"] == "leaks"
    assert [c["id"] for c in report["checks"]] == ["segment-isolation", "boundary-targets",
                                                   "loss-parity"]
    assert "'attention' (MultiHeadAttention)" in report["cause"]
    assert report["fixes"][0]["kind"] == "model" and report["fixes"][0]["verified"] is None


def test_keras_hub_bert_segment_ids_are_token_types_audited_as_padding():
    from tests.keras.transformers import bert_batch, bert_tagger

    report = audit_loss(bert_batch(), model=bert_tagger())
    ids = {check.id for check in report.checks}
    assert "segment-isolation" not in ids and "forward-invariance" in ids
    assert report.verdict == "leaks"  # mse over every step: the padding counts (as today)


def test_trace_mask_command_names_the_layer_where_documents_mix(models, tmp_path):
    model_path = tmp_path / "conv.keras"
    models["conv"].save(model_path)
    data = tmp_path / "packed.npz"
    np.savez(data, **packed_rows())
    result = invoke(["trace-mask", "--model", model_path, data, "--format", "json"], exit_code=1)
    report = json.loads(result.stdout)
    assert report["packed"] and report["mixes"] == "conv" and report["documents"] == 5
    effects = {row["path"]: row["document_effect"] for row in report["layers"]}
    assert effects["add_positions"] < 1e-6 and effects["conv"] > 1e-2
    assert "documents mix: at layer 'conv' (Conv1D)" in result.stderr


@pytest.mark.parametrize("kind, layer", [("isolated", None), ("padding-only", "attention"),
                                         ("ignores-positions", "position_embedding"),
                                         ("additive-mask", "attention")])
def test_python_trace_packed(models, kind, layer):
    import maskcli

    traced = maskcli.trace_packed(models[kind], packed_rows())
    assert (traced.mixes.path if traced.mixes else None) == layer
    if kind == "additive-mask":
        assert traced.mixes.additive_mask


def test_an_additive_mask_given_as_input_is_named_and_made_boolean_by_the_data_fix():
    from tests.keras.packed_models import additive_input_model, additive_mask

    rows = packed_rows()
    rows["attention_mask"] = additive_mask(rows["tokens_segment_ids"])
    report = audit_loss(rows, model=additive_input_model())
    assert report.verdict == "leaks"
    assert "'attention_mask' is an additive float mask" in report.cause
    fix = report.fixes[0]
    assert (fix.kind, fix.verified) == ("data", True)
    assert fix.text.startswith("convert 'attention_mask' to a boolean mask")


def test_python_audit_of_packed_files():
    import maskcli

    samples = Path(__file__).resolve().parents[2] / "sample_data"
    report = maskcli.audit_loss(samples / "packed_rows.npz",
                                model=samples / "packed_isolated.keras")
    assert report.verdict == "ignored" and report.check("segment-isolation").status == "pass"



# -- the padded audit's options on packed rows ------------------------------------------


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


def test_an_lstm_across_document_boundaries_leaks_at_the_lstm(models):
    rows = rows_of_16()
    report = audit_loss(rows, model=models["rnn"], per_sample=True)
    assert report.verdict == "leaks" and report.check("segment-isolation").status == "fail"
    assert report.cause == ("documents mix at layer 'lstm' (LSTM): a recurrent layer carries "
                            "its state from one document into the next")
    assert [(fix.kind, fix.verified, fix.tried) for fix in report.fixes] == [("model", None, "")]
    assert report.fixes[0].text.startswith("reset the state at each document")
    # The first document of each row has no state to inherit; the 8 later ones do.
    assert report.check("segment-isolation").detail.startswith(
        "8 of 12 documents change when packed: first row 0, document 2 (steps 7-8)")
    firsts = [doc for doc in report.per_document if doc["segment"] == 1]
    assert len(firsts) == 4 and all(doc["packed_loss"] == pytest.approx(doc["alone_loss"],
                                                                        rel=1e-6)
                                    for doc in firsts)
    import maskcli

    assert maskcli.trace_packed(models["rnn"], rows).mixes.path == "lstm"


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
