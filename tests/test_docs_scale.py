"""docs/scale.md, run as it stands: its commands on shards made here, its datasets
snippet, and its Spark snippet through a stand-in for Spark's mapInArrow (no JVM).
Its Ray snippet runs in tests/engines/test_ray_data.py."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import maskcli
from tests.conftest import invoke

PAGE = Path(__file__).resolve().parents[1] / "docs" / "scale.md"
IDS = [[101, 7, 102], [101, 102], [5, 6, 7, 8, 9, 10, 11, 12, 13]]
LABELS = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10, 11, 12, 13, 14]]


def blocks(language: str, heading: str | None = None) -> list[str]:
    text = PAGE.read_text()
    if heading is not None:
        text = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def run_python(code: str, **names) -> tuple[dict, str]:
    namespace, printed = dict(names), io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, namespace)
    return namespace, printed.getvalue()


def test_the_commands_pad_each_shard(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("shards").mkdir()
    for index in range(2):
        pq.write_table(pa.table({"input_ids": IDS[index:], "labels": LABELS[index:]}),
                       f"shards/part-{index}.parquet")
    pq.write_table(pa.table({"input_ids": IDS}), "train.parquet")
    (commands,) = blocks("sh")
    for line in commands.strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "maskcli"
        invoke(args[1:])
    for index in range(2):
        expected = maskcli.pad_sequences(IDS[index:], maxlen=8, padding="post")
        for folder in ("padded", "padded_hf"):
            table = pq.read_table(f"{folder}/part-{index}.parquet")
            np.testing.assert_array_equal(np.array(table.column("input_ids").to_pylist()),
                                          expected)
        labels = pq.read_table(f"padded_hf/part-{index}.parquet").column("labels").to_pylist()
        assert labels == maskcli.pad_sequences(LABELS[index:], maxlen=8, padding="post",
                                               value=-100).tolist()
        with np.load(f"padded_npz/part-{index}.npz") as npz:
            np.testing.assert_array_equal(npz["inputs"], maskcli.pad_sequences(IDS[index:],
                                                                               maxlen=8))
    packed = pq.read_table("packed/part-1.parquet")
    alone = maskcli.pack_arrow(pa.table({"input_ids": IDS[1:]}), length=8)
    assert packed.column("input_ids_segment_ids").to_pylist() == [[1] * 8, [1, 1, 2, 0, 0, 0, 0, 0]]
    assert packed.to_pydict() == alone.to_pydict()
    train = pq.read_table("train_padded.parquet")
    assert train.column("input_ids_lengths").to_pylist() == [3, 2, 9]


def test_the_datasets_snippet():
    pytest.importorskip("datasets")
    (code,) = blocks("python", "Hugging Face datasets")
    namespace, printed = run_python(code)
    table = namespace["padded"].data.table
    assert table.column("labels").to_pylist() == [[1, 2, 3, -100], [4, 5, -100, -100],
                                                  [7, 8, 9, 10]]  # cut at the front
    assert table.column("attention_mask").to_pylist()[1] == [1, 1, 0, 0]
    assert "length=4" in printed and "[[1 1 1 0]\n [1 1 0 0]]" in printed


def test_the_packing_snippet():
    pytest.importorskip("datasets")
    (code,) = blocks("python", "Packing in an engine")
    namespace, printed = run_python(code)
    table = namespace["packed"].data.table
    rows = maskcli.pack_arrow(pa.table({"input_ids": [[101, 7, 102], [101, 102], [5, 6, 7]]}),
                              length=5)
    assert table.to_pydict() == rows.to_pydict()
    assert table.column("input_ids").to_pylist() == [[101, 7, 102, 101, 102], [5, 6, 7, 0, 0]]
    assert "[[1 1 1 2 2]\n [1 1 1 0 0]]" in printed


class SparkFrame:
    """What mapInArrow does with its function: one call per partition, with an
    iterator of the partition's record batches; the result must be record batches
    whose columns are those of the schema, in order."""

    def __init__(self, partitions: list[pa.Table]):
        self.partitions = partitions

    def mapInArrow(self, function, schema: str):  # noqa: N802 (Spark's name)
        names = [part.split()[0] for part in schema.split(",")]
        batches = []
        for partition in self.partitions:
            for batch in function(iter(partition.to_batches(max_chunksize=2))):
                assert isinstance(batch, pa.RecordBatch) and batch.schema.names == names
                batches.append(batch)
        return pa.Table.from_batches(batches)


def test_the_spark_snippet():
    (code,) = blocks("python", "Spark")
    table = pa.table({"doc": ["a", "b", "c"], "input_ids": IDS})
    namespace, _ = run_python(code, df=SparkFrame([table, table.slice(1)]))
    padded = namespace["padded"]
    assert padded.schema.field("input_ids").type == pa.list_(pa.int32())
    assert padded.column("input_ids").to_pylist() == (
        maskcli.pad_sequences(IDS + IDS[1:], maxlen=4, padding="post").tolist())
