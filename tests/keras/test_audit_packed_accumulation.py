"""audit-loss on packed rows with gradient accumulation and replicas: the
padded audit's ``accumulation`` check, run on the real steps (segment ids >
0), against Keras' own evaluate on each micro-batch and numpy.

Rows of 16 steps holding 16, 3, 16, 2, 16, 16, 5 and 16 real steps (a full
row holds two documents), micro-batches of 2, K = 4: the micro-batches hold
19, 18, 32 and 21 of the update's 90 real tokens, so a real token weighs
90 / (4 x D) of its weight in one batch of the 8 rows: 1.25 to 0.703, a
spread of 1.78. The models are this module's own (their logits scaled, so
that token losses differ), compiled as a packed model's loss should be: the
mask as sample weights, ``reduction="mean_with_sample_weight"``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskcli.core.errors import UsageError
from maskcli.keras.audit import accumulation, audit_loss
from tests.conftest import invoke
from tests.keras.packed_models import VOCAB, keras, packed_model, step_losses

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

LENGTHS = [16, 3, 16, 2, 16, 16, 5, 16]
SIZE, STEPS = 2, 4


def packed(lengths, seed=0):
    """Rows of 16 steps with ``lengths`` real steps (two documents in a full
    row), and next-token targets inside each document (0 after its last)."""
    rng = np.random.default_rng(seed)
    segments = np.zeros((len(lengths), 16), "int32")
    positions = np.zeros_like(segments)
    for row, length in enumerate(lengths):
        docs = [9, length - 9] if length > 9 else [length]
        start = 0
        for segment, size in enumerate(docs, 1):
            segments[row, start:start + size] = segment
            positions[row, start:start + size] = np.arange(size)
            start += size
    tokens = np.where(segments > 0, rng.integers(1, VOCAB, segments.shape), 0).astype("int32")
    targets = np.zeros_like(tokens)
    same = (segments[:, 1:] == segments[:, :-1]) & (segments[:, 1:] > 0)
    targets[:, :-1] = np.where(same, tokens[:, 1:], 0)
    return {"tokens": tokens, "tokens_segment_ids": segments,
            "tokens_positions": positions}, targets


ROWS, Y = packed(LENGTHS)
REAL = ROWS["tokens_segment_ids"] > 0
MASK_WEIGHTS = REAL.astype("float32")


def build(accumulation=STEPS, reduction="mean_with_sample_weight"):
    """The block-diagonal packed model, its logits scaled by 30 (token losses spread)."""
    model = packed_model("isolated")
    dense = model.get_layer("logits")
    dense.set_weights([weight * 30 for weight in dense.get_weights()])
    model.compile(optimizer=keras.optimizers.SGD(0.1, gradient_accumulation_steps=accumulation),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  reduction=reduction))
    return model


@pytest.fixture(scope="module")
def model():
    return build()


@pytest.fixture(scope="module")
def report(model):
    return audit_loss(ROWS, model=model, targets=Y, sample_weight="mask", batch_size=SIZE)


def micro_batches(rows, size=SIZE):
    return [slice(start, start + size) for start in range(0, len(rows["tokens"]), size)]


def test_uneven_packed_rows_warn_with_keras_own_numbers(model, report):
    check = report.check("accumulation")
    assert check.status == "warn"
    # value: the mean of Keras' evaluate on each micro-batch (one window of 4).
    evaluated = [model.evaluate({k: v[part] for k, v in ROWS.items()}, Y[part],
                                sample_weight=MASK_WEIGHTS[part], verbose=0)
                 for part in micro_batches(ROWS)]
    assert check.value == pytest.approx(np.mean(evaluated), rel=1e-6)
    # reference: the window's token losses over its real tokens, in numpy.
    losses = step_losses(model, ROWS, Y)
    assert check.reference == pytest.approx(losses[REAL].mean(), rel=1e-6)
    per_micro = [losses[part][REAL[part]].mean() for part in micro_batches(ROWS)]
    assert check.value == pytest.approx(np.mean(per_micro), rel=1e-6)  # a mean of means
    assert abs(check.value - check.reference) > 0.005  # 0.0096
    # Each micro-batch's real tokens, and a real token's weight relative to the big batch.
    real = np.array([REAL[part].sum() for part in micro_batches(ROWS)])
    assert real.tolist() == [19, 18, 32, 21]
    weight = real.sum() / (STEPS * real)
    # The mean of means is the token mean with those weights: value = sum(w x D x mean) / 90.
    assert np.dot(weight * real, per_micro) / real.sum() == pytest.approx(np.mean(per_micro))
    assert weight.min() == pytest.approx(0.703125) and weight.max() == pytest.approx(1.25)
    assert ("updates of 4 micro-batches of 2 (the optimizer's gradient_accumulation_steps=4), "
            "1 window") in check.detail
    assert (f"a real token weighs {weight.min():.3g} to {weight.max():.3g} times its weight in "
            f"one batch of the window's 8 sequences: spread {weight.max() / weight.min():.3g} "
            "(tolerance 1.5)") in check.detail
    assert "spread 1.78 " in check.detail
    assert [c.status for c in report.checks] == ["pass", "pass", "pass", "warn", "warn"]
    assert report.verdict == "ignored" and report.fixes == []


def test_strict_fails_and_a_model_compiled_with_the_fix_passes(model, report):
    strict = audit_loss(ROWS, model=model, targets=Y, sample_weight="mask", batch_size=SIZE,
                        strict=True)
    assert strict.verdict == "leaks" and strict.check("accumulation").status == "fail"
    assert strict.check("segment-isolation").status == "pass"
    assert strict.cause.startswith("accumulating 4 micro-batches of 2 averages their "
                                   "per-micro-batch means: real tokens weigh unequally (spread "
                                   "1.78, tolerance 1.5)")
    accumulated = [fix for fix in strict.fixes if 'reduction="sum"' in fix.text]
    assert [(fix.kind, fix.verified) for fix in accumulated] == [("compile", True)]
    assert "spread 1.0" in accumulated[0].tried
    # Applied for real: reduction="sum", each real token weighing 4 / 90 (the window's tokens).
    summing = build(reduction="sum")
    fixed = audit_loss(ROWS, model=summing, targets=Y, sample_weight=MASK_WEIGHTS * STEPS / 90,
                       batch_size=SIZE, strict=True)
    check = fixed.check("accumulation")
    assert check.status == "pass" and "a real token weighs 1 to 1 times" in check.detail
    assert check.value == pytest.approx(report.check("accumulation").reference, rel=1e-6)
    assert check.value == pytest.approx(np.mean([
        summing.evaluate({k: v[part] for k, v in ROWS.items()}, Y[part],
                         sample_weight=MASK_WEIGHTS[part] * STEPS / 90, verbose=0)
        for part in micro_batches(ROWS)]), rel=1e-6)
    assert fixed.check("batch-weighting").status == "skipped"  # a sum: no per-batch mean


def test_the_flag_on_a_plain_model_and_replicas_give_the_same_numbers(model, report):
    check = report.check("accumulation")
    plain = build(accumulation=None)
    assert accumulation.model_steps(plain) is None
    unflagged = audit_loss(ROWS, model=plain, targets=Y, sample_weight="mask", batch_size=SIZE)
    assert "accumulation" not in [c.id for c in unflagged.checks]
    flagged = audit_loss(ROWS, model=plain, targets=Y, sample_weight="mask", batch_size=SIZE,
                         accumulation_steps=STEPS).check("accumulation")
    assert (flagged.status, flagged.value, flagged.reference) == (
        "warn", pytest.approx(check.value, rel=1e-7), pytest.approx(check.reference, rel=1e-7))
    assert "(--accumulation-steps)" in flagged.detail
    assert flagged.detail.split("window:")[1] == check.detail.split("window:")[1]
    # Batches of 4 on 2 replicas, accumulated twice: the same shares of 2 rows.
    shared = audit_loss(ROWS, model=model, targets=Y, sample_weight="mask", batch_size=4,
                        accumulation_steps=2, replicas=2).check("accumulation")
    assert shared.value == pytest.approx(check.value, rel=1e-7)
    assert "updates of 2 micro-batches of 4, each split over 2 replicas" in shared.detail
    assert "spread 1.78 " in shared.detail


def test_evenly_packed_rows_pass(model):
    rows, targets = packed([16, 15, 16, 16, 14, 16, 16, 15], seed=1)
    check = audit_loss(rows, model=model, targets=targets, sample_weight="mask",
                       batch_size=SIZE).check("accumulation")
    # 31, 32, 30 and 31 real tokens: 124 / (4 x 30) / (124 / (4 x 32)) = 1.07.
    assert check.status == "pass" and "spread 1.07 " in check.detail


def test_never_silently_ignored(model):
    without = audit_loss(ROWS, model=model, targets=Y, sample_weight="mask")
    assert "accumulation" not in [c.id for c in without.checks]
    assert any("accumulates gradients over 4 steps: give the micro-batch size" in note
               for note in without.notes)
    with pytest.raises(UsageError, match="accumulation_steps needs batch_size"):
        audit_loss(ROWS, model=model, targets=Y, accumulation_steps=STEPS)
    # Labels of -100 that the loss reads as a class: no Keras loss, so the check says why.
    ignored = np.where(REAL, Y, -100)
    check = audit_loss(ROWS, model=model, targets=ignored, batch_size=SIZE).check("accumulation")
    assert check.status == "skipped"
    assert "Keras' loss of each micro-batch cannot be computed" in check.detail
    assert "ignore_class=-100" in check.detail


def test_the_command_python_and_synthetic_rows(model, report, tmp_path):
    import maskcli

    path, data = tmp_path / "accumulating.keras", tmp_path / "rows.npz"
    model.save(path)
    np.savez(data, **ROWS, targets=Y)
    result = invoke(["audit-loss", data, "--model", path, "--sample-weight", "mask",
                     "--batch-size", SIZE, "--format", "json"])
    found = next(c for c in json.loads(result.stdout)["checks"] if c["id"] == "accumulation")
    assert found["status"] == "warn" and "gradient_accumulation_steps=4" in found["detail"]
    assert found["value"] == pytest.approx(report.check("accumulation").value, rel=1e-6)
    assert "warning: accumulation: updates of 4 micro-batches" in result.stderr
    by_path = maskcli.audit_loss(data, model=path, sample_weight="mask", batch_size=4,
                                 accumulation_steps=2, replicas=2).check("accumulation")
    assert by_path.value == pytest.approx(found["value"], rel=1e-6)
    by_tuple = maskcli.audit_loss((ROWS, Y, MASK_WEIGHTS), model=model, batch_size=SIZE,
                                  accumulation_steps=2).check("accumulation")
    assert "updates of 2 micro-batches of 2 (--accumulation-steps), 2 windows" in by_tuple.detail
    synthetic = maskcli.audit_loss(model=model, batch_size=1)  # 3 synthetic rows, K = 4
    assert synthetic.check("accumulation").detail.startswith(
        "updates of 4 micro-batches of 1 (the optimizer's gradient_accumulation_steps=4), "
        "1 window")
