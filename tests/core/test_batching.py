"""How batches weigh real tokens, from lengths alone (numpy), and inspect-mask
--batch-size. Parity with Keras' own evaluate is in tests/keras/test_audit_batches.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskcli import inspect_mask
from maskcli.core.batching import (
    batch_padded_fraction,
    batch_slices,
    batch_weighting,
    token_weights,
)
from maskcli.core.errors import UsageError
from tests.conftest import invoke, invoke_without_keras


def test_the_worked_example_lengths_1_and_4_in_batches_of_1():
    weighting = batch_weighting([1, 4], 1)
    assert token_weights([1, 4], 1).tolist() == [2.5, 0.625]
    assert (weighting.weight_min, weighting.weight_max, weighting.spread) == (0.625, 2.5, 4.0)
    assert weighting.batches == 2


def test_one_batch_weighs_every_real_token_the_same():
    assert token_weights([1, 4, 2], 3).tolist() == [1.0, 1.0, 1.0]
    assert batch_weighting([1, 4, 2], 8).spread == 1.0


def test_uneven_batches_weigh_by_sequences_per_batch_over_real_steps():
    # Batches [1, 4], [2, 3], [1]: R = 11 real steps, N = 5 sequences.
    # weight = R * n_b / (N * R_b): 11*2/(5*5), 11*2/(5*5), 11*1/(5*1).
    weights = token_weights([1, 4, 2, 3, 1], 2)
    np.testing.assert_allclose(weights, [0.88, 0.88, 0.88, 0.88, 2.2], rtol=1e-15)
    # The loss Keras reports is mean(weight * loss) over real tokens: with a
    # loss of 1 at every real token, sum(weights * lengths) / R is the share of
    # batches holding a real step: here all of them.
    assert np.dot(weights, [1, 4, 2, 3, 1]) / 11 == pytest.approx(1.0)


def test_an_empty_sequence_has_no_weight_and_an_empty_batch_still_counts():
    # Batches [0, 3] and [0, 0]: Keras gives the second batch a loss of 0 and
    # still counts its 2 sequences, so the 3 real tokens weigh 3*2/(4*3) = 0.5.
    weights = token_weights([0, 3, 0, 0], 2)
    assert np.isnan(weights[[0, 2, 3]]).all() and weights[1] == 0.5
    assert batch_weighting([0, 3, 0, 0], 2).spread == 1.0
    assert batch_weighting([0, 0], 1).spread is None


def test_padded_fraction_per_batch_in_order_and_sorted():
    # In order: batches [1, 4] (padded to 4) and [2] (to 2): 10 steps, 7 real.
    assert batch_padded_fraction([1, 4, 2], 2) == pytest.approx(3 / 10)
    weighting = batch_weighting([1, 4, 2], 2)
    assert weighting.padded_fraction_in_order == pytest.approx(0.3)
    # Sorted [1, 2, 4]: [1, 2] padded to 2, [4]: 8 steps, 1 padded. Sorting saves
    # padding, but the short batch's tokens now weigh 7*2/(3*3) against 7/(3*4).
    assert weighting.padded_fraction_sorted == pytest.approx(1 / 8)
    assert weighting.spread_sorted == pytest.approx((14 / 9) / (7 / 12))


def test_batch_slices_cover_every_row_once():
    assert batch_slices(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert batch_slices(5, None) == [slice(0, 5)]
    assert batch_slices(3, 10) == [slice(0, 3)]
    with pytest.raises(UsageError, match="--batch-size must be at least 1, got 0"):
        batch_slices(3, 0)
    with pytest.raises(UsageError):
        token_weights([1], 0)


def test_inspect_mask_reports_batch_weighting_only_when_asked():
    padded = np.array([[5, 0, 0, 0], [1, 2, 3, 4]])
    assert inspect_mask(padded).batch_weighting is None
    assert "batch_weighting" not in inspect_mask(padded).to_dict()
    report = inspect_mask(padded, batch_size=1).to_dict()
    assert report["batch_weighting"] == {
        "batch_size": 1, "batches": 2, "weight_min": 0.625, "weight_max": 2.5, "spread": 4.0,
        "padded_fraction_in_order": 0.0, "padded_fraction_sorted": 0.0, "spread_sorted": 4.0}
    assert list(report)[-2:] == ["batch_weighting", "lengths"]


def test_inspect_mask_cli_batch_size_json_and_table(tmp_path):
    path = tmp_path / "padded.jsonl"
    path.write_text("[5, 0, 0, 0]\n[1, 2, 3, 4]\n[1, 2, 0, 0]\n")
    report = json.loads(invoke(["inspect-mask", path, "--batch-size", 2, "--format", "json"]).stdout)
    weighting = report["batch_weighting"]
    assert weighting["spread"] == pytest.approx(1.25)
    assert weighting["weight_min"] == pytest.approx(14 / 15)
    table = invoke(["inspect-mask", path, "--batch-size", 2, "--format", "table"]).stdout
    assert "batches of 2" in table and "token weights 0.933 to 1.17 · spread 1.25" in table
    assert "padding 12.5% instead of 30.0% · spread 2.67" in table


@pytest.mark.parametrize("data, expected", [
    ("[5, 0, 0, 0]\n[1, 2, 3, 4]\n", "1 batch · token weights 1.0 to 1.0 · spread 1.0"),
    ("[0, 0]\n[0, 0]\n", "1 batch, no real token"),
])
def test_inspect_mask_table_with_one_batch(tmp_path, data, expected):
    """A batch size larger than the data: one batch, every token weighs the same."""
    path = tmp_path / "padded.jsonl"
    path.write_text(data)
    table = invoke(["inspect-mask", path, "--batch-size", 8, "--format", "table"]).stdout
    assert f"batches of 8      {expected}" in table


def test_inspect_mask_with_batch_size_never_imports_tensorflow(tmp_path):
    path = tmp_path / "padded.jsonl"
    path.write_text("[5, 0]\n[1, 2]\n")
    invoke_without_keras(["inspect-mask", path, "--batch-size", "1", "--format", "table"])
