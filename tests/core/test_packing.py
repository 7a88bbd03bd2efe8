"""The packer against a straightforward reference, and the layout's invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskcli.core.errors import InputError, UsageError
from maskcli.core.packed_layout import layout_arrays, rectangular, row_offsets
from maskcli.core.packing import (
    Packer,
    PackOptions,
    best_fit_decreasing,
    pack_sequences,
    seqio_arrays,
)
from maskcli.core.padding import Ragged


def reference_pack(documents, length, window, overflow):
    """Best-fit decreasing, one document at a time: rows of (document index, steps)."""
    rows = []
    for start in range(0, max(len(documents), 1), window):
        pieces = []
        for index in range(start, min(start + window, len(documents))):
            steps = list(documents[index])
            if overflow == "truncate":
                steps = steps[:length]
            parts = [steps[at:at + length] for at in range(0, len(steps), length)]
            pieces += [(index, part) for part in parts if part]
        bins = []  # [room, [piece numbers]]
        order = sorted(range(len(pieces)), key=lambda k: (-len(pieces[k][1]), k))
        for k in order:
            size = len(pieces[k][1])
            best = None
            for number, (room, _) in enumerate(bins):
                if room >= size and (best is None or room < bins[best][0]):
                    best = number
            if best is None:
                bins.append([length, []])
                best = len(bins) - 1
            bins[best][0] -= size
            bins[best][1].append(k)
        rows += [[pieces[k] for k in sorted(members)] for _, members in bins]
    return rows


def packed_rows(documents, length, window, overflow, chunk_sizes=None):
    lengths = np.array([len(document) for document in documents], dtype=np.int64)
    values = np.array([step for document in documents for step in document], dtype=np.int64)
    labels = values * 10 + 1
    cuts = np.cumsum(chunk_sizes or [len(documents)])[:-1]
    chunks, first = [], 0
    for part in np.split(np.arange(len(documents)), cuts):
        steps = slice(int(lengths[:first].sum()), int(lengths[:first + len(part)].sum()))
        chunks.append((Ragged(values[steps], lengths[part]), Ragged(labels[steps], lengths[part])))
        first += len(part)
    packer = Packer(("ids", "labels"), PackOptions(length, window, overflow), (0, -100))
    windows = list(packer.pack(chunks))
    return windows, seqio_arrays(windows), packer.report


documents_strategy = st.lists(st.lists(st.integers(1, 99), max_size=12), max_size=25)


@settings(max_examples=150, deadline=None)
@given(documents_strategy, st.integers(1, 10), st.integers(1, 8),
       st.sampled_from(["split", "truncate"]), st.data())
def test_packing_matches_the_reference_and_keeps_every_document(documents, length, window,
                                                                overflow, data):
    sizes = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=8))
    sizes = sizes + [max(len(documents) - sum(sizes), 0)]  # chunks as a reader gives them
    windows, arrays, report = packed_rows(documents, length, window, overflow, sizes)
    expected = reference_pack(documents, length, window, overflow)
    ids, segments, positions = (arrays["ids"], arrays["ids_segment_ids"],
                                arrays["ids_positions"])
    assert ids.shape == (len(expected), length)
    for row, members in enumerate(expected):
        steps = [step for _, piece in members for step in piece]
        segment = [k + 1 for k, (_, piece) in enumerate(members) for _ in piece]
        within = [p for _, piece in members for p in range(len(piece))]
        pad = length - len(steps)
        assert ids[row].tolist() == steps + [0] * pad
        assert arrays["labels"][row].tolist() == [s * 10 + 1 for s in steps] + [-100] * pad
        assert segments[row].tolist() == segment + [0] * pad
        assert positions[row].tolist() == within + [0] * pad
    assert np.array_equal(arrays["labels_segment_ids"], segments)
    # every document once: its steps, in order, across its pieces
    origin = np.concatenate([w.documents for w in windows])
    assert origin.tolist() == [index for members in expected for index, _ in members]
    rebuilt = {index: [] for index in range(len(documents))}
    for index, (_, piece) in zip(origin, [m for members in expected for m in members]):
        rebuilt[int(index)] += piece
    cut = length if overflow == "truncate" else None
    assert rebuilt == {index: list(doc[:cut]) for index, doc in enumerate(documents)}
    assert report.documents == len(documents)
    assert report.empty == sum(1 for doc in documents if not doc)
    assert report.real_steps == int((segments > 0).sum())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 30), max_size=60), st.integers(30, 40))
def test_best_fit_decreasing_never_overfills_and_matches_the_reference(lengths, capacity):
    rows, count = best_fit_decreasing(lengths, capacity)
    filled = np.bincount(rows, weights=lengths, minlength=count) if lengths else []
    assert all(0 < used <= capacity for used in filled)
    expected = reference_pack([[1] * n for n in lengths], capacity, max(len(lengths), 1), "split")
    assert count == len(expected)
    for row, members in enumerate(expected):
        assert sorted(np.flatnonzero(rows == row).tolist()) == [index for index, _ in members]


def test_rows_are_the_same_whatever_the_window_chunks():
    rng = np.random.default_rng(0)
    documents = [list(rng.integers(1, 50, n)) for n in rng.integers(0, 30, 200)]
    whole = packed_rows(documents, 32, 64, "split")[1]
    pieces = packed_rows(documents, 32, 64, "split", [7, 50, 1, 100, 42])[1]
    assert all(np.array_equal(whole[name], pieces[name]) for name in whole)


def test_a_big_window_fills_rows_nearly_full():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 100, 20_000)
    packer = Packer(("ids",), PackOptions(1024, 20_000), (0,))
    list(packer.pack([(Ragged(np.ones(int(lengths.sum()), np.int32), lengths),)]))
    assert packer.report.fill > 0.999
    assert packer.report.rows == -(-int(lengths.sum()) // 1024)  # the fewest rows possible


def test_pack_sequences_documents_its_layout():
    packed = pack_sequences([[1, 2, 3], [4, 5], [6]], 4)
    assert packed["inputs_positions"].tolist() == [[0, 1, 2, 0], [0, 1, 0, 0]]
    assert packed["inputs"].dtype == np.int32


def test_feature_vectors_travel_with_their_steps():
    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    packer = Packer(("x",), PackOptions(4), (-1.0,))
    (rows,) = packer.pack([(Ragged(values, np.array([3, 2, 1])),)])
    assert rows.fields["x"].shape == (2, 4, 2)
    assert rows.fields["x"][0].tolist() == [[0, 1], [2, 3], [4, 5], [10, 11]]
    assert rows.fields["x"][1].tolist() == [[6, 7], [8, 9], [-1, -1], [-1, -1]]


def test_fields_of_different_lengths_are_refused_naming_the_record():
    chunk = (Ragged(np.arange(5), np.array([2, 3])), Ragged(np.arange(4), np.array([2, 2]),
                                                             source="data.jsonl"))
    with pytest.raises(InputError, match=r"data.jsonl \(sequence 1\): field 'labels' has 2 "
                                         r"steps but 'ids' has 3"):
        list(Packer(("ids", "labels"), PackOptions(4), (0, 0)).pack([chunk]))


@pytest.mark.parametrize("options", [dict(length=0), dict(length=4, window=0),
                                     dict(length=4, overflow="wrap")])
def test_bad_options_are_refused(options):
    with pytest.raises(UsageError):
        PackOptions(**options)


def test_flatten_layout_ignores_each_documents_first_label():
    packer = Packer(("input_ids",), PackOptions(6), (0,))
    (rows,) = packer.pack([(Ragged(np.array([5, 6, 7, 8, 9]), np.array([3, 2])),)])
    arrays = layout_arrays(rows, "flatten", cu_seqlens=True)
    assert arrays["input_ids"].tolist() == [[5, 6, 7, 8, 9, 0]]
    assert arrays["labels"].tolist() == [[-100, 6, 7, -100, 9, -100]]
    assert arrays["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0]]
    offsets, sizes = arrays["cu_seqlens"]
    assert rectangular(offsets, sizes, 4).tolist() == [[0, 3, 5, 5]]


def test_row_offsets_of_several_rows():
    offsets, sizes = row_offsets(np.array([4, 1, 3, 2, 2]), np.array([2, 1, 2]))
    assert offsets.tolist() == [0, 4, 5, 0, 3, 0, 2, 4]
    assert sizes.tolist() == [3, 2, 3]


def test_windows_packed_in_threads_give_the_same_rows_in_order_and_the_same_counts():
    from maskcli.core.packing import Packer, PackOptions
    from maskcli.core.padding import Ragged

    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 30, 500)
    values = rng.integers(1, 100, int(lengths.sum())).astype(np.int32)
    chunks = [(Ragged(values[:int(lengths[:200].sum())], lengths[:200]),),
              (Ragged(values[int(lengths[:200].sum()):], lengths[200:]),)]
    results = []
    for workers in (1, 3):
        packer = Packer(("inputs",), PackOptions(16, window=37, overflow="split"), (0,),
                        workers=workers)
        windows = list(packer.pack(chunks))
        results.append(([w.fields["inputs"].tolist() for w in windows],
                        [w.documents.tolist() for w in windows], vars(packer.report)))
    assert results[0] == results[1]
    assert results[0][2]["documents"] == 500 and results[0][2]["empty"] > 0
