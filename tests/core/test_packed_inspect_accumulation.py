"""inspect-mask on packed rows with --batch-size, --accumulation-steps and
--replicas: the token weights from each row's real steps (segment ids > 0),
the same as for padded rows of those lengths, without TensorFlow."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskcli.core.diagnose import inspect_mask
from maskcli.core.errors import UsageError
from maskcli.core.packed_diagnose import inspect_packed
from tests.conftest import invoke, invoke_without_keras

LENGTHS = [16, 3, 16, 2, 16, 16, 5, 16]


def packed(lengths=LENGTHS, steps=16):
    """Rows of ``steps`` holding ``lengths`` real steps: two documents in a
    full row, one in the others."""
    segments = np.zeros((len(lengths), steps), np.int64)
    positions = np.zeros_like(segments)
    for row, length in enumerate(lengths):
        half = length // 2 if length == steps else length
        segments[row, :half], positions[row, :half] = 1, np.arange(half)
        segments[row, half:length] = 2
        positions[row, half:length] = np.arange(length - half)
    tokens = np.where(segments > 0, 3, 0)
    return {"tokens": tokens, "tokens_segment_ids": segments, "tokens_positions": positions}


def test_the_weights_are_those_of_padded_rows_of_the_same_real_steps():
    report = inspect_packed(packed(), "rows", batch_size=2, accumulation_steps=4)
    assert report.lengths.tolist() == LENGTHS and report.diagnostics == []
    # Micro-batches of 19, 18, 32 and 21 real tokens, 90 in the update of 4.
    real = np.add.reduceat(LENGTHS, range(0, 8, 2))
    weight = real.sum() / (4 * real)
    found = report.to_dict()["accumulation"]
    assert found == {"batch_size": 2, "accumulation_steps": 4, "replicas": 1, "windows": 1,
                     "window_sequences": 8, "weight_min": pytest.approx(weight.min()),
                     "weight_max": pytest.approx(weight.max()),
                     "spread": pytest.approx(weight.max() / weight.min())}
    assert (found["weight_min"], found["weight_max"]) == (0.703125, 1.25)
    padded = np.zeros((8, 16), np.int64)
    for row, length in enumerate(LENGTHS):
        padded[row, :length] = 3
    same = inspect_mask(padded, batch_size=2, accumulation_steps=4)
    assert found == same.to_dict()["accumulation"]
    assert report.to_dict()["batch_weighting"] == same.to_dict()["batch_weighting"]
    shared = inspect_packed(packed(), "rows", batch_size=4, accumulation_steps=2, replicas=2)
    assert shared.accumulation.spread == pytest.approx(16 / 9)  # the same shares of 2 rows
    plain = inspect_packed(packed(), "rows")
    assert "accumulation" not in plain.to_dict() and "batch_weighting" not in plain.to_dict()
    with pytest.raises(UsageError, match="accumulation_steps needs batch_size"):
        inspect_packed(packed(), "rows", accumulation_steps=4)


def test_the_command_shows_them_without_tensorflow(tmp_path):
    path = tmp_path / "rows.npz"
    np.savez(path, **packed())
    table = invoke(["inspect-mask", path, "--batch-size", 2, "--accumulation-steps", 4,
                    "--format", "table", "--rows", 0])
    assert "batches of 2      4 batches · token weights 0.703 to 1.25 · spread 1.78" in table.stdout
    assert "updates of 4 × 2  1 update · token weights 0.703 to 1.25 · spread 1.78" in table.stdout
    found = json.loads(invoke(["inspect-mask", path, "--batch-size", 4, "--accumulation-steps",
                               2, "--replicas", 2, "--format", "json"]).stdout)
    assert found["packed"] is True
    assert (found["accumulation"]["windows"], found["accumulation"]["weight_max"]) == (1, 1.25)
    error = invoke(["inspect-mask", path, "--accumulation-steps", 4], exit_code=2)
    assert "Error: --accumulation-steps needs --batch-size" in error.stderr
    error = invoke(["inspect-mask", path, "--batch-size", 3, "--replicas", 2], exit_code=2)
    assert "give a multiple of --replicas (2)" in error.stderr
    output = invoke_without_keras(["inspect-mask", path, "--batch-size", "2",
                                   "--accumulation-steps", "4", "--format", "json"])
    assert json.loads(output)["accumulation"]["batch_size"] == 2
