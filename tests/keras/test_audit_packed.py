"""audit-loss on packed rows: segment-isolation and boundary-targets, the
cause naming where documents mix, and the fixes tried on the data.

Each model is built once for the session (tests/keras/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maskcli.keras.audit import audit_loss
from maskcli.keras.audit.batch import synthetic_targets
from tests.conftest import invoke
from tests.keras.packed_models import (
    VOCAB,
    next_token_targets,
    packed_rows,
    rows_of_16,
    step_losses,
)

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


@pytest.fixture(scope="module")
def models(packed_models):
    return packed_models


def checks(report):
    return {check.id: check.status for check in report.checks}


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
