"""``maskcli pack``: every input pad reads, every output format, the messages."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import invoke, invoke_without_keras

DOCUMENTS = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10, 11], []]
EXPECTED = {"inputs": [[7, 8, 9, 10], [1, 2, 3, 6], [4, 5, 11, 0]],
            "inputs_segment_ids": [[1, 1, 1, 1], [1, 1, 1, 2], [1, 1, 2, 0]],
            "inputs_positions": [[0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 0, 0]]}


@pytest.fixture
def documents(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in DOCUMENTS))
    return path


def test_jsonl_on_standard_output_with_the_fill_and_warnings(documents):
    result = invoke(["pack", documents, "--length", "4"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {name: [row[name] for row in rows] for name in EXPECTED} == EXPECTED
    assert ("1 of 5 documents were longer than --length 4 and were split into 2 pieces"
            in result.stderr)
    assert "1 of 5 documents are empty and were skipped" in result.stderr
    assert ("packed 5 documents into 3 rows of 4: fill 0.9167 (real steps / cells); "
            "40.0% fewer cells than pad --maxlen 4 (5 rows)") in result.stderr


def test_standard_input_is_read(documents):
    result = invoke(["pack", "--length", "4", "-q"], input=documents.read_bytes())
    assert json.loads(result.stdout.splitlines()[0])["inputs"] == [7, 8, 9, 10]
    assert result.stderr == "warning: 1 of 5 documents were longer than --length 4 and were " \
        "split into 2 pieces of at most 4 steps (--overflow split)\nwarning: 1 of 5 documents " \
        "are empty and were skipped\n"


@pytest.mark.parametrize("suffix", ["packed.npz", "packed/", "packed.parquet"])
def test_every_file_format_holds_the_same_arrays(documents, tmp_path, suffix):
    output = tmp_path / suffix
    invoke(["pack", documents, "--length", "4", "--cu-seqlens", "-o", str(output)
            + ("/" if suffix.endswith("/") else "")])
    if suffix.endswith(".npz"):
        with np.load(output, allow_pickle=False) as loaded:
            arrays = {name: loaded[name].tolist() for name in loaded.files}
        meta = json.loads(str(arrays.pop("meta")))
        assert arrays.pop("cu_seqlens") == [[0, 4, 4], [0, 3, 4], [0, 2, 3]]
    elif suffix.endswith("/"):
        arrays = {name: np.load(output / f"{name}.npy").tolist() for name in EXPECTED}
        meta = json.loads((output / "meta.json").read_text())
        assert np.load(output / "cu_seqlens.npy").tolist()[0] == [0, 4, 4]
    else:
        table = pq.read_table(output)
        arrays = {name: table[name].to_pylist() for name in EXPECTED}
        assert table["cu_seqlens"].to_pylist() == [[0, 4], [0, 3, 4], [0, 2, 3]]
        meta = {"packed": {"layout": "seqio", "length": 4}}
    assert arrays == EXPECTED
    assert meta["packed"]["layout"] == "seqio" and meta["packed"]["length"] == 4


def test_parquet_fields_packed_together_with_their_own_pad_values(tmp_path):
    source = tmp_path / "train.parquet"
    pq.write_table(pa.table({"input_ids": [[1, 2], [3, 4, 5], [6]],
                             "labels": [[-1, 2], [3, 4, -1], [6]]}), source)
    output = tmp_path / "packed.npz"
    invoke(["pack", source, "--field", "input_ids", "--field", "labels", "--value",
            "labels=-100", "--length", "3", "-o", output])
    with np.load(output) as packed:
        assert packed["input_ids"].tolist() == [[3, 4, 5], [1, 2, 6]]
        assert packed["labels"].tolist() == [[3, 4, -1], [-1, 2, 6]]
        assert packed["labels_segment_ids"].tolist() == [[1, 1, 1], [1, 1, 2]]
        assert json.loads(str(packed["meta"]))["values"] == {"input_ids": 0, "labels": -100}


def test_flatten_layout_writes_hugging_faces_arrays(tmp_path):
    source = tmp_path / "train.jsonl"
    source.write_text('{"input_ids": [5, 6, 7]}\n{"input_ids": [8, 9]}\n')
    result = invoke(["pack", source, "--field", "input_ids", "--length", "6", "--layout",
                     "flatten", "--cu-seqlens", "-q"])
    assert json.loads(result.stdout) == {"input_ids": [5, 6, 7, 8, 9, 0],
                                         "labels": [-100, 6, 7, -100, 9, -100],
                                         "position_ids": [0, 1, 2, 0, 1, 0],
                                         "cu_seqlens": [0, 3, 5]}


def test_truncate_warns_with_the_steps_lost(documents):
    result = invoke(["pack", documents, "--length", "4", "--overflow", "truncate"])
    assert "1 of 5 documents were longer than --length 4 and lost 1 steps at the end" \
        in result.stderr
    assert [json.loads(line)["inputs"] for line in result.stdout.splitlines()] == \
        [[7, 8, 9, 10], [1, 2, 3, 6], [4, 5, 0, 0]]


def test_fields_of_different_lengths_are_refused(tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"a": [1, 2], "b": [1, 2]}\n{"a": [1], "b": [1, 2]}\n')
    result = invoke(["pack", source, "--field", "a", "--field", "b", "--length", "4"],
                    exit_code=2)
    assert "line 2 (sequence 1): field 'b' has 2 steps but 'a' has 1" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--length", "4", "--layout", "flatten", "--dtype", "float32"], "integer token ids"),
    (["--length", "4", "-o", "out.csv"], "cannot tell the format"),
    (["--length", "4", "--value", "labels=-100"], "'labels' is not a padded field"),
    (["--length", "0"], "0 is not in the range"),
])
def test_usage_errors(documents, tmp_path, args, message):
    args = [str(tmp_path / a) if a.startswith("out.") else a for a in args]
    result = invoke(["pack", documents] + args, exit_code=2)
    assert message in result.stderr


def test_a_folder_that_is_not_empty_is_not_overwritten(documents, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    result = invoke(["pack", documents, "--length", "4", "-o", f"{folder}/"], exit_code=2)
    assert "is not an empty folder" in result.stderr
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_failed_pack_leaves_no_output(tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('[1, 2]\n[1, "x"]\n')
    output = tmp_path / "packed.npz"
    invoke(["pack", source, "--length", "4", "-o", output], exit_code=2)
    assert list(tmp_path.iterdir()) == [source]


def test_pack_does_not_import_tensorflow(documents):
    invoke_without_keras(["pack", documents, "--length", "4"])


def test_npy_folder_is_written_window_by_window_with_np_saves_bytes(tmp_path):
    """Many windows streamed into the npy files: the arrays of the npz, and the
    very bytes np.save writes for them; the folder's mode follows the umask."""
    rng = np.random.default_rng(3)
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(rng.integers(1, 99, rng.integers(1, 30)).tolist())
                              + "\n" for _ in range(700)))
    options = ["--length", "32", "--window", "50", "--cu-seqlens", "-q"]
    invoke(["pack", source, *options, "-o", tmp_path / "packed.npz"])
    invoke(["pack", source, *options, "-o", f"{tmp_path / 'packed'}/"])
    folder = tmp_path / "packed"
    with np.load(tmp_path / "packed.npz") as packed:
        names = [name for name in packed.files if name != "meta"]
        assert sorted(path.stem for path in folder.glob("*.npy")) == sorted(names)
        for name in names:
            expected = tmp_path / f"expected_{name}.npy"
            np.save(expected, packed[name])
            assert (folder / f"{name}.npy").read_bytes() == expected.read_bytes(), name
        assert len(packed["inputs"]) > 14  # several windows of 50 documents
    umask = os.umask(0)
    os.umask(umask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask


def test_npy_folder_failing_after_windows_were_written_leaves_nothing(tmp_path):
    """A failure once the files hold rows (a bad document further on): the
    writing thread stops, the files are closed, no folder and no .part left."""
    from maskcli.formats.packed_writers import open_packed_writer

    rows = {"inputs": np.arange(32, dtype=np.int32).reshape(4, 8)}
    with pytest.raises(ValueError, match="a bad document"):
        with open_packed_writer(f"{tmp_path / 'packed'}/", "npy", None) as writer:
            writer.write(rows)
            writer.write(rows)
            raise ValueError("a bad document")
    assert list(tmp_path.iterdir()) == []
    assert all(stream.closed for stream, *_ in writer.files.values()) and writer.files
