"""`maskcli pad SHARDS -o FOLDER/`: one padded shard per input shard, equal to `maskcli
pad` of that shard alone; and `--to parquet` for one file, equal to the npz."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import maskcli
from maskcli.render.progress import ProgressBar
from tests.conftest import invoke
from tests.formats.arrow_tables import arrow_stream

ROWS = [[1, 2, 3], [4], [], [5, 6, 7, 8, 9], [10, 11]]
LABELS = [[1, 1, 1], [2], [], [3, 3, 3, 3, 3], [4, 4]]


def npz_of(result) -> dict:
    with np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def column(table: pa.Table, name: str) -> np.ndarray:
    return np.array(table.column(name).to_pylist())


@pytest.fixture
def saved(tmp_path):
    """A save_to_disk directory of three Arrow stream shards, listed out of name order."""
    folder = tmp_path / "saved"
    folder.mkdir()
    names = ["data-00002.arrow", "data-00000.arrow", "data-00001.arrow"]
    for index, name in enumerate(names):
        rows = ROWS[index * 2:index * 2 + 2]
        table = pa.table({"input_ids": rows, "labels": LABELS[index * 2:index * 2 + 2],
                          "doc": [f"{index}-{row}" for row in range(len(rows))]})
        (folder / name).write_bytes(arrow_stream(table))
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": name}
                                                                   for name in names]}))
    return folder


def test_each_shard_equals_pad_of_that_shard(saved, tmp_path):
    out = tmp_path / "out"
    result = invoke(["pad", saved, "--field", "input_ids", "--field", "labels", "--maxlen", "3",
                     "--padding", "post", "--value", "labels=-100", "--mask-as", "attention_mask",
                     "-o", f"{out}/"])
    assert result.stdout == ""
    assert "padded 5 sequences of 3 shards" in result.stderr
    assert "input_ids: 1 of 5 sequences were longer than --maxlen 3" in result.stderr
    assert sorted(path.name for path in out.iterdir()) == [
        "data-00000.parquet", "data-00001.parquet", "data-00002.parquet"]
    for shard in ("data-00000", "data-00001", "data-00002"):
        table = pq.read_table(out / f"{shard}.parquet")
        alone = npz_of(invoke(["pad", saved / f"{shard}.arrow", "--field", "input_ids", "--field",
                               "labels", "--maxlen", "3", "--padding", "post", "--value",
                               "labels=-100", "--mask-as", "attention_mask", "--to", "npz"]))
        assert table.schema.field("input_ids").type == pa.list_(pa.int32(), 3)
        for name in ("input_ids", "labels", "attention_mask"):
            np.testing.assert_array_equal(column(table, name), alone[name])
        np.testing.assert_array_equal(column(table, "input_ids_lengths"), alone["lengths"])
        meta = json.loads(pq.read_metadata(out / f"{shard}.parquet").metadata[b"maskcli"])
        assert meta["maxlen"] == 3 and meta["values"] == {"input_ids": 0, "labels": -100}


def test_a_glob_to_npz_shards_and_a_single_file_to_a_new_folder(tmp_path, monkeypatch):
    for index in range(2):
        (tmp_path / f"part-{index}.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in ROWS[index::2]))
    monkeypatch.chdir(tmp_path)
    invoke(["pad", "part-*.jsonl", "--maxlen", "2", "--to", "npz", "-o", "padded/"])
    for index in range(2):
        with np.load(tmp_path / "padded" / f"part-{index}.npz") as npz:
            np.testing.assert_array_equal(npz["inputs"],
                                          maskcli.pad_sequences(ROWS[index::2], maxlen=2))
    invoke(["pad", "part-0.jsonl", "--maxlen", "2", "-o", "one/"])
    table = pq.read_table(tmp_path / "one" / "part-0.parquet")
    assert table.column_names == ["inputs", "inputs_mask", "inputs_lengths"]
    np.testing.assert_array_equal(column(table, "inputs"), maskcli.pad_sequences(ROWS[0::2],
                                                                                 maxlen=2))


def test_a_bad_shard_fails_alone_and_leaves_the_others_whole(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    pq.write_table(pa.table({"ids": [[1], [2]]}), shards / "a.parquet")
    pq.write_table(pa.table({"ids": [[1], None]}), shards / "b.parquet")
    out = tmp_path / "out"
    out.mkdir()
    result = invoke(["pad", shards, "--maxlen", "2", "-o", out], exit_code=2)
    assert "b.parquet, column 'ids' (row 1): null instead of a sequence" in result.stderr
    assert [path.name for path in out.iterdir()] == ["a.parquet"]  # no half shard, no temp file
    assert pq.read_table(out / "a.parquet").num_rows == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--maxlen", "2", "-o", "out/", "--save-vocab", "v.txt"], "--save-vocab builds one vocab"),
    (["-o", "out/"], "give --maxlen N"),
    (["--maxlen", "2", "-o", "missing/out/"], "folder missing does not exist"),
    (["--maxlen", "2", "-o", "shards/"], "is the input file itself"),
    (["--maxlen", "2", "-o", "out/", "--mask-as", "ids"],
     "--mask-as ids needs the column 'ids' for its mask, which is field 'ids'"),
    (["--maxlen", "2", "-o", "out/", "--mask-as", "ids_lengths"],
     "field 'ids' needs the column 'ids_lengths' for its lengths, which is the mask of 'ids' "
     "(--mask-as ids_lengths)"),
])
def test_refused_before_any_shard_is_written(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shards").mkdir()
    pq.write_table(pa.table({"ids": [[1]]}), tmp_path / "shards" / "a.parquet")
    result = invoke(["pad", "shards", "--field", "ids", *args], exit_code=2)
    assert message in result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_listing_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder in ("a", "b", "empty", "broken"):
        (tmp_path / folder).mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "x.jsonl").write_text("[1]\n")
    (tmp_path / "broken" / "state.json").write_text("{}")
    (tmp_path / "file.npz").write_bytes(b"")
    for args, message in [
        (["*/x.jsonl", "-o", "out/"], "a/x.jsonl and b/x.jsonl would both be written to out/x"),
        (["nothing*.parquet", "-o", "out/"], "no file matches this pattern"),
        (["empty", "-o", "out/"], "empty is a directory without shards"),
        (["broken", "-o", "out/"], "no list of '_data_files'"),
        (["-", "-o", "out/"], "not standard input"),
        (["a", "-o", "file.npz/"], "is a file, not a folder"),
    ]:
        assert message in invoke(["pad", *args, "--maxlen", "2"], exit_code=2).stderr


def test_progress_counts_shards(saved, tmp_path, monkeypatch):
    calls = []

    class Bar:
        def __init__(self, label, unit=None):
            assert unit == "shards"

        def __call__(self, done, total):
            calls.append((done, total))

        def close(self):
            calls.append("closed")

    monkeypatch.setattr("maskcli.render.progress.ProgressBar", Bar)
    monkeypatch.setattr("maskcli.cli.pad_command._stderr_is_terminal", lambda: True)
    invoke(["pad", saved, "--field", "input_ids", "--maxlen", "2", "-o", f"{tmp_path}/out/"])
    assert calls == [(1, 3), (2, 3), (3, 3), "closed"]


def test_the_shard_bar_counts_shards():
    from rich.console import Console

    screen = io.StringIO()
    bar = ProgressBar("padding", delay=0, unit="shards",
                      console=Console(file=screen, force_terminal=True, width=80))
    bar(2, 5)
    bar.progress.refresh()
    bar.close()
    assert "2/5" in screen.getvalue() and "shards" in screen.getvalue()


def test_parquet_output_of_one_file_equals_the_npz(tmp_path):
    source = tmp_path / "frames.parquet"
    pq.write_table(pa.table({"frames": [[[1.5, 2.0]], [[3.0, 4.0], [5.0, 6.0]]],
                             "tokens": [["a", "bb"], ["c"]]}), source)
    out = tmp_path / "frames_padded.parquet"
    invoke(["pad", source, "--field", "frames", "--dtype", "float32", "--value", "nan",
            "-o", out])
    npz = npz_of(invoke(["pad", source, "--field", "frames", "--dtype", "float32", "--value",
                         "nan", "--to", "npz"]))
    table = pq.read_table(out)
    assert table.schema.field("frames").type == pa.list_(pa.list_(pa.float32(), 2), 2)
    np.testing.assert_array_equal(np.array(table.column("frames").to_pylist(), np.float32),
                                  npz["inputs"])
    tokens = pq.read_table(io.BytesIO(invoke(["pad", source, "--field", "tokens", "--dtype",
                                              "str", "--to", "parquet"]).stdout_bytes))
    assert tokens.column("tokens").to_pylist() == [["a", "bb"], ["0", "c"]]
    empty = invoke(["pad", "--to", "parquet"], input="", exit_code=2).stderr
    assert "give a maxlen of 1 or more" in empty


def test_pack_shards_each_packed_alone(saved, tmp_path):
    out = tmp_path / "packed"
    result = invoke(["pack", saved, "--field", "input_ids", "--length", "4", "-o", f"{out}/"])
    assert "packed 5 documents" in result.stderr and "3 shards into" in result.stderr
    for shard in ("data-00000", "data-00001", "data-00002"):
        alone = invoke(["pack", saved / f"{shard}.arrow", "--field", "input_ids", "--length", "4",
                        "--to", "parquet"]).stdout_bytes
        assert pq.read_table(out / f"{shard}.parquet").equals(pq.read_table(io.BytesIO(alone)))
    (tmp_path / "npy").mkdir()
    invoke(["pack", saved, "--field", "input_ids", "--length", "4", "--to", "npy", "-o",
            tmp_path / "npy"])  # an existing folder: each shard a folder of .npy files
    assert sorted(path.name for path in (tmp_path / "npy").iterdir()) == [
        "data-00000", "data-00001", "data-00002"]
    assert np.load(tmp_path / "npy" / "data-00001" / "input_ids.npy").shape[1] == 4
    from maskcli.core.packing import PackOptions
    from maskcli.formats.shards import pack_shards

    with pytest.raises(maskcli.UsageError, match="--to csv cannot be written per shard"):
        pack_shards(str(saved), f"{out}/", to="csv", options=PackOptions(4))
