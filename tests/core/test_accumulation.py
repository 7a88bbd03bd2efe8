"""How gradient accumulation and replicas weigh real tokens, from lengths
alone (numpy), and inspect-mask --accumulation-steps / --replicas. Parity with
Keras' own evaluate is in tests/keras/test_audit_accumulation.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskcli import inspect_mask
from maskcli.core.accumulation import (
    accumulation_weighting,
    fixed_weights,
    window_token_weights,
    windows,
)
from maskcli.core.errors import UsageError
from tests.conftest import invoke, invoke_without_keras


def test_the_worked_example_lengths_1_and_4_in_micro_batches_of_1_accumulated_twice():
    found = accumulation_weighting([1, 4], 1, 2)
    assert window_token_weights([1, 4], 1, 2).tolist() == [2.5, 0.625]
    assert (found.weight_min, found.weight_max, found.spread, found.windows) == (0.625, 2.5, 4.0, 1)


def test_each_window_is_weighed_against_its_own_real_tokens():
    # Windows of 2 micro-batches of 1: [1, 3] and [2, 2]: D_w = 4 and 4.
    # weight = D_w / (units * D_u): 4/2, 4/6, then 4/4 twice.
    np.testing.assert_allclose(window_token_weights([1, 3, 2, 2], 1, 2), [2, 2 / 3, 1, 1],
                               rtol=1e-15)
    assert accumulation_weighting([1, 3, 2, 2], 1, 2).spread == pytest.approx(3.0)


def test_equal_micro_batches_weigh_every_token_the_same():
    assert accumulation_weighting([3, 1, 2, 2, 1, 3], 2, 3).spread == 1.0


def test_replicas_split_each_micro_batch_into_consecutive_shares():
    # Batch 4 on 2 replicas accumulated twice: units [0,1] [2,3] [4,5] [6,7] in one window,
    # exactly micro-batches of 2 accumulated 4 times.
    lengths = [1, 1, 4, 4, 2, 3, 1, 6]
    assert windows(8, 4, 2, 2) == windows(8, 2, 4, 1)
    np.testing.assert_array_equal(window_token_weights(lengths, 4, 2, 2),
                                  window_token_weights(lengths, 2, 4))
    # Without accumulation, replicas alone: each batch of 4 is a window of 2 shares.
    np.testing.assert_allclose(window_token_weights([1, 1, 4, 4], 4, 1, 2),
                               [2.5, 2.5, 0.625, 0.625], rtol=1e-15)


def test_the_last_shorter_window_averages_the_micro_batches_it_has():
    assert [len(w) for w in windows(5, 1, 2)] == [2, 2, 1]
    assert window_token_weights([1, 3, 2, 2, 5], 1, 2)[-1] == 1.0


def test_a_sequence_without_real_steps_has_no_weight():
    weights = window_token_weights([0, 2, 2, 2], 2, 2)
    assert np.isnan(weights[0]) and weights[1] == pytest.approx(6 / (2 * 2))


def test_the_fix_weights_make_every_token_weigh_the_same():
    lengths = np.array([1, 3, 2, 2, 5])
    factors = fixed_weights(lengths, 1, 2)
    # The accumulated update, the mean over the window's units of sum(w * loss), gives a
    # token factor / units of weight, against 1 / D_w in the window's token mean.
    for window in windows(5, 1, 2):
        rows = slice(window[0].start, window[-1].stop)
        np.testing.assert_allclose(factors[rows] / len(window), 1 / lengths[rows].sum())


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": None, "steps": 4, "replicas": None},
     "accumulation_steps needs batch_size: give the micro-batch size with batch_size=B"),
    ({"batch_size": None, "steps": None, "replicas": 2}, "replicas needs batch_size"),
    ({"batch_size": 3, "steps": 2, "replicas": 2},
     "batch_size 3 does not split evenly over 2 replicas: give a multiple of replicas (2)"),
    ({"batch_size": 2, "steps": 0, "replicas": None}, "accumulation_steps must be at least 1"),
])
def test_settings_it_cannot_use_are_refused_in_python_names(kwargs, message):
    from maskcli.core.accumulation import check_accumulation

    with pytest.raises(UsageError) as error:
        check_accumulation(kwargs["batch_size"], kwargs["steps"], kwargs["replicas"])
    assert message in str(error.value)


def test_inspect_mask_reports_the_weights_from_the_lengths():
    x = np.array([[3, 0, 0], [1, 4, 2], [2, 0, 0], [5, 1, 0]])
    report = inspect_mask(x, batch_size=1, accumulation_steps=2)
    # Lengths 1, 3 | 1, 2: 4 / (2 * 1), 4 / (2 * 3) | 3 / (2 * 1), 3 / (2 * 2).
    assert report.to_dict()["accumulation"] == {
        "batch_size": 1, "accumulation_steps": 2, "replicas": 1, "windows": 2,
        "window_sequences": 2, "weight_min": pytest.approx(2 / 3), "weight_max": 2.0,
        "spread": pytest.approx(3.0)}
    with pytest.raises(UsageError, match="accumulation_steps needs batch_size"):
        inspect_mask(x, accumulation_steps=2)


def test_inspect_mask_command_shows_them_without_tensorflow(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.array([[3, 0, 0, 0], [1, 4, 2, 5], [2, 0, 0, 0], [5, 1, 0, 0]]))
    result = invoke(["inspect-mask", path, "--batch-size", "2", "--accumulation-steps", "1",
                     "--replicas", "2", "--format", "json"])
    found = json.loads(result.stdout)["accumulation"]
    assert (found["weight_min"], found["weight_max"], found["spread"]) == (0.625, 2.5, 4.0)
    table = invoke(["inspect-mask", path, "--batch-size", "1", "--accumulation-steps", "4",
                    "--format", "table"])
    assert "updates of 4 × 1" in table.stdout and "spread 4.0" in table.stdout
    error = invoke(["inspect-mask", path, "--accumulation-steps", "4"], exit_code=2)
    assert "Error: --accumulation-steps needs --batch-size" in error.stderr
    error = invoke(["inspect-mask", path, "--batch-size", "3", "--replicas", "2"], exit_code=2)
    assert "give a multiple of --replicas (2)" in error.stderr
    output = invoke_without_keras(["inspect-mask", path, "--batch-size", "1",
                                   "--accumulation-steps", "2", "--format", "json"])
    assert json.loads(output)["accumulation"]["batch_size"] == 1
