"""maskcli.pack_arrow and pack_arrow_batches: `maskcli pack`'s arrays for the
documents of each batch, packed within the batch."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import maskcli
from maskcli import InputError, UsageError
from tests.conftest import invoke

IDS = [[101, 7, 102], [101, 102], [], [5, 6, 7, 8, 9], [3]]
LABELS = [[1, 2, 3], [4, 5], [], [6, 7, 8, 9, 10], [11]]
TABLE = pa.table({"doc": list("abcde"), "input_ids": IDS, "labels": LABELS})


def pack_cli(tmp_path, table: pa.Table, *args) -> dict:
    source = tmp_path / "docs.parquet"
    pq.write_table(table, source)
    result = invoke(["pack", source, *args, "--to", "npz"])
    with np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


@pytest.mark.parametrize("layout", ["seqio", "flatten"])
@pytest.mark.parametrize("overflow", ["split", "truncate"])
def test_a_batch_packs_like_maskcli_pack(tmp_path, layout, overflow):
    rows = maskcli.pack_arrow(TABLE, length=4, fields=["input_ids", "labels"], layout=layout,
                              overflow=overflow, values={"labels": -100}, cu_seqlens=True)
    npz = pack_cli(tmp_path, TABLE, "--field", "input_ids", "--field", "labels", "--length", "4",
                   "--layout", layout, "--overflow", overflow, "--value", "labels=-100",
                   "--cu-seqlens")
    assert set(rows.column_names) == set(npz) - {"meta"}
    for name in rows.column_names:
        got = rows.column(name).to_pylist()
        if name == "cu_seqlens":  # rows of the npz are filled out with their last offset
            assert got == [list(row[:len(mine)]) for row, mine in zip(npz[name].tolist(), got)]
            assert all(row[len(mine):].tolist() == [mine[-1]] * (len(row) - len(mine))
                       for row, mine in zip(npz[name], got))
        else:
            np.testing.assert_array_equal(np.array(got), npz[name])
            assert rows.schema.field(name).type == pa.list_(pa.int32(), 4)


def test_each_batch_is_packed_alone_and_errors_count_rows_across_batches():
    batches = TABLE.select(["input_ids"]).to_batches(max_chunksize=2)
    out = list(maskcli.pack_arrow_batches(batches, length=5))
    alone = [maskcli.pack_arrow(batch, length=5) for batch in batches]
    assert [batch.to_pydict() for batch in out] == [
        {name: table.column(name).to_pylist() for name in table.column_names} for table in alone]
    assert out[0].schema.field("input_ids").type == pa.list_(pa.int32())
    bad = [pa.record_batch({"ids": [[1], [2]]}), pa.record_batch({"ids": [[1], None]})]
    with pytest.raises(InputError, match=r"batch, column 'ids' \(row 3\): null instead"):
        list(maskcli.pack_arrow_batches(bad, length=2))


def test_no_documents_and_refusals():
    empty = maskcli.pack_arrow(TABLE.slice(0, 0), length=3, fields=["input_ids"])
    assert empty.num_rows == 0
    assert empty.schema == maskcli.pack_arrow(TABLE, length=3, fields=["input_ids"]).schema
    with pytest.raises(UsageError, match="length must be a whole number of at least 1"):
        maskcli.pack_arrow(TABLE, length=0, fields=["input_ids"])
    with pytest.raises(UsageError, match="'input_ids_segment_ids'|name of an array"):
        maskcli.pack_arrow(pa.table({"position_ids": IDS}), length=3)
    with pytest.raises(UsageError, match="pack_arrow takes a pyarrow Table"):
        maskcli.pack_arrow([[1, 2]], length=3)
