"""The synthetic packed rows of a packed model run without data: the layout
``maskcli pack`` writes, seeded, with a boundary, a one-step document and
padding at a row's end."""

from __future__ import annotations

import numpy as np
import pytest

from maskcli.core.errors import UsageError
from maskcli.core.packed_diagnose import inspect_packed
from maskcli.core.packed_synthetic import FieldSpec, synthetic_rows


def runs(ids):
    """The (value, length) runs of one row."""
    bounds = np.flatnonzero(np.diff(ids)) + 1
    return [(int(part[0]), len(part)) for part in np.split(ids, bounds)]


@pytest.mark.parametrize("steps", [4, 5, 10, 16, 37, 128])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_rows_hold_the_seqio_layout_with_every_property_promised(steps, seed):
    rows = synthetic_rows(steps, seed=seed, fields={"tokens": FieldSpec(vocab=20)})
    tokens, segments, positions = rows.fields["tokens"], rows.segment_ids, rows.positions
    assert tokens.shape == segments.shape == positions.shape == (3, steps)
    lengths = []
    for row in range(3):
        parts = runs(segments[row])
        real = [part for part in parts if part[0] > 0]
        # segments contiguous, numbered 1..k in order; padding (0) only at the row's end
        assert [value for value, _ in real] == list(range(1, len(real) + 1))
        assert all(value == 0 for value, _ in parts[len(real):]) and len(parts) - len(real) <= 1
        assert len(real) >= 2  # several documents, so a boundary to cross
        start = 0
        for _, length in real:  # positions restart at 0 at each document
            assert positions[row, start:start + length].tolist() == list(range(length))
            start += length
        assert not positions[row, start:].any() and not tokens[row, start:].any()
        assert tokens[row, :start].min() >= 1 and tokens[row, :start].max() <= 19  # never 0
        lengths += [length for _, length in real]
    assert lengths == rows.lengths and 1 in lengths and len(set(lengths)) >= 2
    assert segments[-1, -1] == 0  # the last row ends in padding
    assert int((segments > 0).sum()) == sum(lengths)
    # and maskcli's own packed diagnostics find nothing wrong with them
    report = inspect_packed({"tokens": tokens, "tokens_segment_ids": segments,
                             "tokens_positions": positions}, "synthetic")
    assert report.diagnostics == [] and report.summary["documents"] == rows.documents


def test_the_same_seed_gives_the_same_rows_and_another_seed_others():
    first, again, other = (synthetic_rows(16, seed=seed) for seed in (0, 0, 1))
    for name in ("segment_ids", "positions"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    assert np.array_equal(first.fields["inputs"], again.fields["inputs"])
    assert first.lengths == again.lengths
    assert not np.array_equal(first.fields["inputs"], other.fields["inputs"])
    assert first.lengths != other.lengths


def test_fields_travel_together_ids_below_their_vocabulary_and_features():
    rows = synthetic_rows(12, seed=3, fields={
        "tokens": FieldSpec(vocab=3, dtype="int64"),
        "tags": FieldSpec(vocab=50),
        "frames": FieldSpec(vocab=None, step_shape=(2,), dtype="float32")})
    real = rows.segment_ids > 0
    assert rows.fields["tokens"].dtype == np.int64 and rows.fields["frames"].dtype == np.float32
    assert set(np.unique(rows.fields["tokens"][real])) <= {1, 2}
    assert rows.fields["tags"][real].max() > 9  # its own vocabulary, not the default
    assert rows.fields["frames"].shape == (3, 12, 2)
    assert np.all(rows.fields["frames"][~real] == 0) and np.all(rows.fields["frames"][real] != 0)
    assert rows.describe() == (f"{rows.documents} synthetic documents of 1 to "
                               f"{max(rows.lengths)} steps, packed into 3 rows of 12 steps, "
                               "seed 3")


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_short_rows_still_pack(steps):
    rows = synthetic_rows(steps, seed=0, rows=2)
    assert rows.segment_ids.shape == (2, steps) and 1 in rows.lengths
    assert (steps == 1) or rows.segment_ids[-1, -1] == 0


def test_a_length_below_one_step_is_refused():
    with pytest.raises(UsageError, match="at least 1 step"):
        synthetic_rows(0)
