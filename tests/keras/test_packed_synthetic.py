"""A packed model run without data: trace-mask, audit-loss and their Python
API on synthetic packed rows, fed by the model's own input names.

Models are the tiny ones of tests/keras/packed_models.py, built once for the
module; the commands load the saved copies in sample_data/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maskcli.core.errors import UsageError
from maskcli.core.packed_synthetic import synthetic_rows
from maskcli.keras.audit import audit_loss
from maskcli.keras.trace.packed_synthetic import synthetic_packed
from tests.conftest import invoke
from tests.keras.packed_models import additive_input_model, keras, packed_model

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data"
ISOLATED, PADDING_ONLY = SAMPLES / "packed_isolated.keras", SAMPLES / "packed_padding_only.keras"
DEFAULT = synthetic_rows(16, seed=0)  # what a model of open length runs on with --seed 0


@pytest.fixture(scope="module")
def models():
    return {kind: packed_model(kind) for kind in ("isolated", "padding-only")}


def test_the_rows_feed_each_input_by_its_name(models):
    arrays, rows = synthetic_packed(models["isolated"], seed=0)
    assert list(arrays) == ["tokens", "tokens_segment_ids", "tokens_positions"]
    assert {a.shape for a in arrays.values()} == {(3, 16)}  # open length: 16 steps
    assert {str(a.dtype) for a in arrays.values()} == {"int32"}
    assert np.array_equal(arrays["tokens_segment_ids"], DEFAULT.segment_ids)
    assert np.array_equal(arrays["tokens_positions"], DEFAULT.positions)
    real = arrays["tokens_segment_ids"] > 0
    assert arrays["tokens"][real].min() >= 1 and arrays["tokens"][real].max() <= 9
    assert not arrays["tokens"][~real].any()
    again, _ = synthetic_packed(models["isolated"], seed=0)
    other, _ = synthetic_packed(models["isolated"], seed=1)
    assert all(np.array_equal(arrays[name], again[name]) for name in arrays)
    assert not np.array_equal(arrays["tokens"], other["tokens"])
    longer, rows = synthetic_packed(models["isolated"], seed=0, steps=24)
    assert longer["tokens"].shape == (3, 24) and rows.steps == 24


def test_a_fixed_length_a_second_field_and_mask_inputs_are_filled_consistently():
    tokens = keras.Input((12,), dtype="int32", name="tokens")
    tags = keras.Input((12,), dtype="int32", name="tags")
    segments = keras.Input((12,), dtype="int32", name="tokens_segment_ids")
    real = keras.Input((12,), dtype="bool", name="padding_mask")
    pairs = keras.Input((12, 12), dtype="float32", name="attention_mask")
    x = keras.layers.Add()([keras.layers.Embedding(50, 4)(tokens),
                            keras.layers.Embedding(3, 4)(tags)])
    x = keras.layers.MultiHeadAttention(1, 4)(x, x, attention_mask=pairs)
    model = keras.Model([tokens, tags, segments, real, pairs], x)
    arrays, rows = synthetic_packed(model, seed=2, steps=30)  # the model's 12 steps win
    segment_ids = arrays["tokens_segment_ids"]
    assert segment_ids.shape == (3, 12) and rows.steps == 12
    inside = segment_ids > 0
    assert np.array_equal(arrays["padding_mask"], inside) and arrays["padding_mask"].dtype == bool
    assert set(np.unique(arrays["tags"][inside])) <= {1, 2}  # below tags' Embedding(3)
    assert arrays["tokens"][inside].max() <= 9 and not arrays["tags"][~inside].any()
    same = (segment_ids[:, :, None] == segment_ids[:, None, :]) & inside[:, None, :]
    assert arrays["attention_mask"].dtype == np.float32
    assert np.array_equal(arrays["attention_mask"], same.astype("float32"))


def test_a_model_without_segment_ids_gets_no_packed_rows():
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    segments = keras.Input((None,), dtype="int32", name="segment_ids")  # KerasHub token types
    x = keras.layers.Add()([keras.layers.Embedding(20, 4)(tokens),
                            keras.layers.Embedding(2, 4)(segments)])
    model = keras.Model({"token_ids": tokens, "segment_ids": segments}, x)
    assert synthetic_packed(model) is None
    model.compile(loss="mse")
    with pytest.raises(UsageError, match="takes no packed rows"):
        audit_loss(model=model)


@pytest.mark.parametrize("kind, layer", [("isolated", None), ("padding-only", "attention")])
def test_python_trace_packed_without_data(models, kind, layer):
    import maskcli

    traced = maskcli.trace_packed(models[kind])
    assert (traced.mixes.path if traced.mixes else None) == layer
    assert traced.synthetic.documents == DEFAULT.documents and traced.synthetic.seed == 0


def test_an_attention_mask_input_is_the_block_diagonal_one_and_keeps_documents_apart():
    import maskcli

    traced = maskcli.trace_packed(additive_input_model(), seed=3)
    assert traced.mixes is None and traced.synthetic.seed == 3


def test_python_audit_without_data(models):
    import maskcli

    report = maskcli.audit_loss(model=models["isolated"])
    assert report.verdict == "ignored" and report.exit_code == 0
    checks = {check.id: check.status for check in report.checks}
    # synthetic targets at the padding after the last documents: Keras' loss counts them
    assert checks == {"segment-isolation": "pass", "boundary-targets": "skipped",
                      "loss-parity": "warn"}
    assert report.check("segment-isolation").detail == (
        f"all {DEFAULT.documents} documents give the same outputs and loss packed as alone")
    assert report.notes[0].startswith(f"no data given: audited on {DEFAULT.describe()}")
    assert report.targets == "synthetic" and set(report.inputs.values()) == {"synthetic"}
    leaking = audit_loss(model=models["padding-only"], seed=1)
    assert leaking.verdict == "leaks"
    assert leaking.cause.startswith("documents mix at layer 'attention' (MultiHeadAttention)")
    assert "seed 1" in leaking.notes[0]
    with pytest.raises(UsageError, match="targets belongs to data"):
        audit_loss(model=models["isolated"], targets=np.zeros((3, 16)))


@pytest.mark.parametrize("path, code, verdict", [(ISOLATED, 0, "documents isolated: "),
                                                 (PADDING_ONLY, 1, "documents mix: at layer "
                                                  "'attention' (MultiHeadAttention)")])
def test_trace_mask_command_without_input(path, code, verdict):
    result = invoke(["trace-mask", "--model", path, "--format", "json"], exit_code=code)
    report = json.loads(result.stdout)
    assert report["synthetic"] is True and report["seed"] == 0
    assert report["documents"] == DEFAULT.documents
    assert report["mixes"] == (None if code == 0 else "attention")
    assert {tuple(item["shape"]) for item in report["inputs"]} == {(3, 16)}
    assert f"note: no INPUT: traced on {DEFAULT.describe()} (--seed)" in result.stderr
    assert verdict in result.stderr
    if code:  # docs/packing.md shows these lines of standard error
        page = (SAMPLES.parent / "docs" / "packing.md").read_text()
        assert all(f"    {line}\n" in page for line in result.stderr.splitlines())


def test_trace_mask_command_takes_the_seed_and_maxlen():
    result = invoke(["trace-mask", "--model", PADDING_ONLY, "--seed", "5", "--maxlen", "10",
                     "--format", "json"], exit_code=1)
    report = json.loads(result.stdout)
    rows = synthetic_rows(10, seed=5)
    assert {tuple(item["shape"]) for item in report["inputs"]} == {(3, 10)}
    assert report["documents"] == rows.documents and report["seed"] == 5
    assert f"traced on {rows.describe()}" in result.stderr


@pytest.mark.parametrize("path, code, verdict", [(ISOLATED, 0, "ignored"),
                                                 (PADDING_ONLY, 1, "leaks")])
def test_audit_loss_command_without_input(path, code, verdict):
    result = invoke(["audit-loss", "--model", path, "--format", "json"], exit_code=code)
    report = json.loads(result.stdout)
    assert report["verdict"] == verdict and report["targets"] == "synthetic"
    assert [(c["id"], c["status"]) for c in report["checks"]] == [
        ("segment-isolation", "pass" if code == 0 else "fail"), ("boundary-targets", "skipped"),
        ("loss-parity", "warn")]
    assert report["notes"][0].startswith(f"no data given: audited on {DEFAULT.describe()}")
    assert report["model"] == f"--model {path}"


def test_audit_loss_command_without_input_refuses_what_describes_input(tmp_path):
    targets = tmp_path / "targets.npy"
    np.save(targets, np.zeros((3, 16), "int32"))
    result = invoke(["audit-loss", "--model", ISOLATED, "--targets", targets], exit_code=2)
    assert "--targets describes INPUT, and there is none (<stdin> is empty)" in result.stderr


def test_audit_loss_command_still_needs_input_for_a_padded_model(tmp_path):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    model = keras.Model(tokens, keras.layers.Embedding(20, 4, mask_zero=True)(tokens))
    model.compile(loss="mse")
    model.save(tmp_path / "padded.keras")
    result = invoke(["audit-loss", "--model", tmp_path / "padded.keras"], exit_code=2)
    assert "Error: <stdin> is empty: give INPUT, padded data" in result.stderr
