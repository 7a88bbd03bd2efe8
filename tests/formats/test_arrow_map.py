"""maskcli.pad_arrow and pad_arrow_batches: the values and errors of `maskcli pad`
on the same rows, one output row per input row, for every batch of a dataset."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import maskcli
from maskcli import InputError, UsageError
from tests.conftest import invoke

IDS = [[101, 7, 102], [101, 102], [], [5, 6, 7, 8, 9]]
LABELS = [[1, 2, 3], [4, 5], [], [6, 7, 8, 9, 10]]
TABLE = pa.table({"doc": ["a", "b", "c", "d"], "input_ids": IDS, "labels": LABELS})


def pad_cli(tmp_path, table: pa.Table, *args) -> dict:
    """`maskcli pad` of ``table`` written as Parquet, read back from its npz."""
    source = tmp_path / "rows.parquet"
    pq.write_table(table, source)
    result = invoke(["pad", source, *args, "--to", "npz"])
    with np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def column(table: pa.Table, name: str) -> np.ndarray:
    return np.array(table.column(name).to_pylist())


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_several_fields_equal_maskcli_pad(tmp_path, padding, truncating):
    table = maskcli.pad_arrow(TABLE, fields=["input_ids", "labels"], maxlen=4, padding=padding,
                              truncating=truncating, values={"labels": -100},
                              mask_as="padding_mask")
    npz = pad_cli(tmp_path, TABLE, "--field", "input_ids", "--field", "labels", "--maxlen", "4",
                  "--padding", padding, "--truncating", truncating, "--value", "labels=-100",
                  "--mask-as", "padding_mask")
    assert table.column_names == ["doc", "input_ids", "labels", "padding_mask",
                                  "input_ids_lengths", "labels_mask", "labels_lengths"]
    assert table.schema.field("input_ids").type == pa.list_(pa.int32(), 4)
    assert table.schema.field("padding_mask").type == pa.list_(pa.int32(), 4)
    assert table.schema.field("labels_mask").type == pa.list_(pa.bool_(), 4)
    for name in ("input_ids", "labels", "padding_mask"):
        np.testing.assert_array_equal(column(table, name), npz[name])
    np.testing.assert_array_equal(column(table, "labels_mask"), npz["mask"])
    np.testing.assert_array_equal(column(table, "input_ids_lengths"), npz["lengths"])
    np.testing.assert_array_equal(column(table, "labels_lengths"), npz["lengths"])
    assert table.column("doc").to_pylist() == ["a", "b", "c", "d"]  # other columns kept, in order


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.lists(st.integers(-2**31, 2**31 - 1), max_size=7), max_size=12),
       maxlen=st.integers(1, 6), padding=st.sampled_from(["pre", "post"]),
       truncating=st.sampled_from(["pre", "post"]), multiple=st.sampled_from([None, 4]),
       chunk=st.integers(1, 5))
def test_any_rows_any_batching_equal_pad_sequences(rows, maxlen, padding, truncating, multiple,
                                                   chunk):
    table = pa.table({"ids": pa.array(rows, pa.list_(pa.int64()))})
    batches = table.to_batches(max_chunksize=chunk)
    expected = maskcli.pad_sequences(rows, maxlen=maxlen, padding=padding, truncating=truncating,
                                     pad_to_multiple_of=multiple)
    got = maskcli.pad_arrow(pa.Table.from_batches(batches, table.schema), maxlen=maxlen,
                            padding=padding, truncating=truncating, pad_to_multiple_of=multiple)
    streamed = list(maskcli.pad_arrow_batches(batches, maxlen=maxlen, padding=padding,
                                              truncating=truncating, pad_to_multiple_of=multiple))
    assert [batch.num_rows for batch in streamed] == [batch.num_rows for batch in batches]
    for padded in (got, pa.Table.from_batches(streamed) if streamed else got):
        assert padded.num_rows == len(rows)
        np.testing.assert_array_equal(
            np.array(padded.column("ids").to_pylist(), np.int32).reshape(expected.shape), expected)
        assert padded.column("ids_lengths").to_pylist() == [len(row) for row in rows]
        mask = np.array(padded.column("ids_mask").to_pylist(), bool).reshape(expected.shape)
        assert (mask.sum(axis=1) == np.minimum([len(row) for row in rows], maxlen)).all()


def test_feature_vectors_strings_and_floats(tmp_path):
    table = pa.table({"frames": [[[1.5, 2.0]], [[3.0, 4.0], [5.0, 6.0]]],
                      "tokens": [["a", "bb"], ["c"]]})
    frames = maskcli.pad_arrow(table, fields=["frames"], maxlen=2, dtype="float32",
                               value=float("nan"), keep_columns=False)
    assert frames.column_names == ["frames", "frames_mask", "frames_lengths"]
    assert frames.schema.field("frames").type == pa.list_(pa.list_(pa.float32(), 2), 2)
    expected = pad_cli(tmp_path, table, "--field", "frames", "--maxlen", "2", "--dtype",
                       "float32", "--value", "nan")["inputs"]
    np.testing.assert_array_equal(np.array(frames.column("frames").to_pylist(), np.float32),
                                  expected)
    tokens = maskcli.pad_arrow(table, fields="tokens", maxlen=3, dtype="str", value="<pad>",
                               padding="post")
    assert tokens.column("tokens").to_pylist() == [["a", "bb", "<pad>"], ["c", "<pad>", "<pad>"]]


def test_plain_lists_for_spark_and_record_batches_in():
    batches = TABLE.to_batches(max_chunksize=3)
    out = list(maskcli.pad_arrow_batches(iter(batches), fields=["input_ids"], maxlen=2,
                                         keep_columns=False))
    assert [batch.num_rows for batch in out] == [3, 1]
    assert all(isinstance(batch, pa.RecordBatch) for batch in out)
    assert out[0].schema.field("input_ids").type == pa.list_(pa.int32())
    assert out[0].schema.field("input_ids_mask").type == pa.list_(pa.bool_())
    assert out[1].column(0).to_pylist() == [[8, 9]]
    single = maskcli.pad_arrow(batches[1], fields=["input_ids"], maxlen=2)
    assert single.column("input_ids").to_pylist() == [[8, 9]]


def test_no_rows_keeps_the_schema():
    empty = maskcli.pad_arrow(TABLE.slice(0, 0), fields=["input_ids"], maxlen=3)
    full = maskcli.pad_arrow(TABLE, fields=["input_ids"], maxlen=3)
    assert empty.num_rows == 0 and empty.schema == full.schema
    no_batches = pa.Table.from_batches([], TABLE.schema)
    assert maskcli.pad_arrow(no_batches, fields=["input_ids"], maxlen=3).schema == full.schema


def test_errors_are_maskcli_pads(tmp_path):
    bad = pa.table({"ids": [[1], [2], None]})
    source = tmp_path / "bad.parquet"
    pq.write_table(bad, source)
    cli_error = invoke(["pad", source, "--maxlen", "2"], exit_code=2).stderr
    with pytest.raises(InputError) as caught:
        maskcli.pad_arrow(bad, maxlen=2)
    assert str(caught.value).startswith("batch, column 'ids' (row 2): null instead")
    assert str(caught.value).split("batch", 1)[1] in cli_error
    with pytest.raises(InputError, match=r"row 3, step 0\): 1.5 is not a whole number"):
        list(maskcli.pad_arrow_batches([pa.record_batch({"ids": [[1], [2]]}),
                                        pa.record_batch({"ids": [[1.0], [1.5]]})], maxlen=2))
    with pytest.raises(UsageError, match="--field nope: batch has no column 'nope'"):
        maskcli.pad_arrow(TABLE, fields=["nope"], maxlen=2)
    with pytest.raises(UsageError, match="several list columns"):
        maskcli.pad_arrow(TABLE, maxlen=2)
    with pytest.raises(UsageError, match="'labels' is not a padded field"):
        maskcli.pad_arrow(TABLE, fields=["input_ids"], maxlen=2, values={"labels": -100})
    with pytest.raises(UsageError, match="out of range for int8"):
        maskcli.pad_arrow(TABLE, fields=["input_ids"], maxlen=2, dtype="int8", value=300)


@pytest.mark.parametrize(("options", "message"), [
    ({}, "needs maxlen"),
    ({"maxlen": 0}, "maxlen=1 or more"),
    ({"maxlen": 2, "mask_as": " "}, "mask_as needs the name"),
    ({"maxlen": 2, "padding": "middle"}, "padding 'middle' is not understood"),
])
def test_options_are_refused_before_any_batch(options, message):
    with pytest.raises(UsageError, match=message):
        maskcli.pad_arrow_batches(iter([]), **options).__next__()


def test_column_name_collisions_and_inputs_that_are_not_arrow():
    padded = maskcli.pad_arrow(TABLE, fields=["input_ids"], maxlen=2)
    with pytest.raises(UsageError, match="already has a column 'input_ids_mask'"):
        maskcli.pad_arrow(padded.drop_columns(["input_ids"]).append_column(
            "input_ids", TABLE.column("input_ids")), fields=["input_ids"], maxlen=2)
    with pytest.raises(UsageError, match="already has a column 'doc'"):
        maskcli.pad_arrow(TABLE, fields=["input_ids"], maxlen=2, mask_as="doc")
    again = maskcli.pad_arrow(TABLE, fields=["input_ids"], maxlen=2, mask_as="doc",
                              keep_columns=False)
    assert again.column_names == ["input_ids", "doc", "input_ids_lengths"]
    with pytest.raises(UsageError, match=r"with_format\('arrow'\)"):
        maskcli.pad_arrow({"input_ids": IDS}, maxlen=2)


def test_pyarrow_loads_with_pad_arrow_only():
    code = ("import sys, maskcli; assert 'pyarrow' not in sys.modules; maskcli.pad_arrow; "
            "assert 'pyarrow' in sys.modules and 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
