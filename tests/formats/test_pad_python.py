"""Padding from Python: pad_sequences on Arrow list arrays and numpy object
arrays, and pad_fields on a file, an Arrow table, a datasets.Dataset or a dict,
giving what 'maskcli pad --field ... --value NAME=V' writes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

import maskcli
from tests.conftest import invoke
from tests.formats.arrow_tables import parquet

TAGGED = [{"input_ids": [101, 7, 102], "labels": [-1, 3, -1]},
          {"input_ids": [101, 102], "labels": [-1, -1]},
          {"input_ids": [101, 5, 6, 9, 102], "labels": [-1, 1, 1, 2, -1]}]
OPTIONS = {"padding": "post", "values": {"labels": -100}}


def command_npz(tmp_path, source) -> dict:
    out = tmp_path / "out.npz"
    invoke(["pad", source, "-o", out, "--field", "input_ids", "--field", "labels",
            "--value", "labels=-100", "--padding", "post"])
    with np.load(out, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "tagged.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in TAGGED))
    return path


def test_arrow_list_arrays_pad_as_their_python_lists(tmp_path):
    ids = [record["input_ids"] for record in TAGGED]
    for given in (pa.array(ids), pa.array(ids, pa.large_list(pa.int64())),
                  pa.chunked_array([pa.array(ids[:1]), pa.array(ids[1:])])):
        for padding in ("pre", "post"):
            assert np.array_equal(maskcli.pad_sequences(given, padding=padding, maxlen=4),
                                  maskcli.pad_sequences(ids, padding=padding, maxlen=4))
    tokens = pa.array([["the", "cat"], ["a"]])
    assert maskcli.pad_sequences(tokens, dtype=str, value="<pad>",
                                 padding="post").tolist() == [["the", "cat"], ["a", "<pad>"]]


def test_numpy_object_arrays_of_sequences():
    sequences = np.empty(3, dtype=object)
    sequences[:] = [np.array([1, 2]), [3], []]
    assert maskcli.pad_sequences(sequences, padding="post").tolist() == [[1, 2], [3, 0], [0, 0]]


def test_arrow_columns_that_are_not_lists_are_refused():
    with pytest.raises(maskcli.InputError, match="an Arrow int64, not a list array"):
        maskcli.pad_sequences(pa.array([1, 2]))
    with pytest.raises(maskcli.InputError, match="null instead of a sequence"):
        maskcli.pad_sequences(pa.array([[1], None]))


def test_pad_fields_of_a_file_equals_the_command(tmp_path, jsonl):
    command = command_npz(tmp_path, jsonl)
    padded = maskcli.pad_fields(jsonl, ["input_ids", "labels"], **OPTIONS)
    assert list(padded) == ["input_ids", "labels"]
    for name in padded:
        assert np.array_equal(padded[name].values, command[name])
        assert np.array_equal(padded[name].mask, command["mask"])
        assert np.array_equal(padded[name].lengths, command["lengths"])
    assert padded["labels"].values[1].tolist() == [-1, -1, -100, -100, -100]


def test_pad_fields_of_a_parquet_file_a_table_a_dataset_and_a_dict_agree(tmp_path, jsonl):
    expected = maskcli.pad_fields(jsonl, ["input_ids", "labels"], **OPTIONS)
    table = pa.Table.from_pylist(TAGGED)
    path = tmp_path / "tagged.parquet"
    path.write_bytes(parquet(table))
    datasets = pytest.importorskip("datasets")
    columns = {name: [record[name] for record in TAGGED] for name in ("input_ids", "labels")}
    objects = {name: np.array([np.array(s) for s in seqs] + [None], dtype=object)[:-1]
               for name, seqs in columns.items()}
    for given in (path, table, datasets.Dataset.from_list(TAGGED), columns, objects):
        # a file of several list columns needs their names, as 'maskcli pad' does
        fields = ["input_ids", "labels"] if given is path else None
        padded = maskcli.pad_fields(given, fields, **OPTIONS)
        assert list(padded) == ["input_ids", "labels"], type(given)
        for name, field in padded.items():
            assert all(np.array_equal(a, b) for a, b in zip(field, expected[name])), name


def test_each_field_keeps_its_own_lengths_and_maxlen_cuts_them_all():
    padded = maskcli.pad_fields({"source": [[5, 6, 7], [9]], "target": [[1, 8], [1, 2, 3, 4]]},
                                maxlen=3)
    assert padded["source"].values.tolist() == [[5, 6, 7], [0, 0, 9]]
    assert padded["target"].values.tolist() == [[0, 1, 8], [2, 3, 4]]
    assert padded["target"].lengths.tolist() == [2, 4]  # before truncation
    ids, mask, lengths = padded["source"]
    assert mask.tolist() == [[True, True, True], [False, False, True]]


def test_pad_fields_refuses_what_it_cannot_pad_by_the_arguments_name():
    with pytest.raises(maskcli.InputError, match="no field 'labels'"):
        maskcli.pad_fields({"ids": [[1]]}, ["labels"])
    with pytest.raises(maskcli.UsageError, match="labels"):
        maskcli.pad_fields({"ids": [[1]]}, values={"labels": -100})
    with pytest.raises(maskcli.UsageError, match="data is a int"):
        maskcli.pad_fields(3)
    with pytest.raises(maskcli.InputError, match="field 'ids', sequence 1"):
        maskcli.pad_fields({"ids": [[1], 2]})
