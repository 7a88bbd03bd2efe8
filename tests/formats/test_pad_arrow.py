"""`maskcli pad` on Parquet and Arrow tables: containers, column types, column
choice, batches, nulls, damaged files, standard input, and lazy pyarrow."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from maskcli import pad_sequences
from maskcli.cli import main
from maskcli.formats import arrow
from maskcli.formats.files import open_source
from maskcli.formats.pipeline import pad_file
from maskcli.formats.readers import ReadOptions, open_fields
from tests.conftest import assert_clean_error, invoke
from tests.formats.arrow_tables import CONTAINERS, arrow_stream, parquet

ROOT = Path(__file__).resolve().parents[2]
IDS = [[101, 7, 102], [101, 102], [], [5, 6, 7, 8, 9]]
TABLE = pa.table({"input_ids": IDS, "label": [1, 0, 1, 0]})


def npy(result) -> np.ndarray:
    return np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False)


@pytest.fixture(params=["file", "stdin"])
def pad_table(request, tmp_path):
    """Run `maskcli pad` on a table written by a container writer, as a file or on stdin."""
    def run(table, container, *args, exit_code=0, **options):
        write, extension = CONTAINERS[container]
        data = write(table, **options)
        if request.param == "stdin":
            fmt = "parquet" if container == "parquet" else "arrow"
            return invoke(["pad", "--from", fmt, *args], input=data, exit_code=exit_code)
        path = tmp_path / f"table{extension}"
        path.write_bytes(data)
        return invoke(["pad", path, *args], exit_code=exit_code)
    return run


# Containers -------------------------------------------------------------------

@pytest.mark.parametrize("container", list(CONTAINERS))
def test_every_container_pads_like_pad_sequences(pad_table, container):
    got = npy(pad_table(TABLE, container, "--padding", "post", "--to", "npy"))
    np.testing.assert_array_equal(got, pad_sequences(IDS, padding="post"))
    assert got.dtype == np.int32


@pytest.mark.parametrize("container", list(CONTAINERS))
def test_sniffed_by_magic_bytes_without_an_extension(tmp_path, container):
    write, _ = CONTAINERS[container]
    path = tmp_path / "table.bin"
    path.write_bytes(write(TABLE))
    np.testing.assert_array_equal(npy(invoke(["pad", path, "--to", "npy"])), pad_sequences(IDS))
    # standard input too, without --from
    got = npy(invoke(["pad", "--to", "npy"], input=write(TABLE)))
    np.testing.assert_array_equal(got, pad_sequences(IDS))


@pytest.mark.parametrize("name", ["t.parquet", "t.pq", "t.arrow", "t.feather", "t.ipc"])
def test_extensions(tmp_path, name):
    data = parquet(TABLE) if name.endswith(("parquet", "pq")) else arrow_stream(TABLE)
    (tmp_path / name).write_bytes(data)
    assert [json.loads(line) for line in invoke(["pad", tmp_path / name]).stdout.splitlines()] \
        == pad_sequences(IDS).tolist()


# Column types -------------------------------------------------------------------

@pytest.mark.parametrize("kind", [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(),
                                  pa.uint16(), pa.uint32(), pa.uint64()])
@pytest.mark.parametrize("outer", [pa.list_, pa.large_list])
def test_integer_lists(pad_table, kind, outer):
    table = pa.table({"ids": pa.array([[1, 2, 3], [4], []], type=outer(kind))})
    got = npy(pad_table(table, "parquet", "--to", "npy", "--dtype", "int64"))
    np.testing.assert_array_equal(got, [[1, 2, 3], [0, 0, 4], [0, 0, 0]])


def test_float_lists_need_a_float_dtype(pad_table):
    table = pa.table({"x": pa.array([[0.5, -1.25], [2.0]], type=pa.list_(pa.float32()))})
    got = npy(pad_table(table, "arrow-file", "--dtype", "float32", "--value", "nan", "--to",
                        "npy", "--padding", "post"))
    np.testing.assert_array_equal(got, np.array([[0.5, -1.25], [2.0, np.nan]], np.float32))
    result = pad_table(table, "arrow-file", exit_code=2)
    assert "column 'x' (row 0, step 0): 0.5 is not a whole number" in result.stderr
    assert "--dtype float32" in result.stderr


def test_fixed_size_list_column_is_a_sequence_of_fixed_length(pad_table):
    table = pa.table({"ids": pa.array([[1, 2], [3, 4]], type=pa.list_(pa.int32(), 2))})
    got = npy(pad_table(table, "arrow-stream", "--to", "npy", "--maxlen", "3"))
    np.testing.assert_array_equal(got, [[0, 1, 2], [0, 3, 4]])


def test_string_tokens_through_a_saved_vocabulary(tmp_path):
    table = pa.table({"tokens": [["the", "cat"], ["the", "mat", "the"]]})
    (tmp_path / "t.parquet").write_bytes(parquet(table))
    result = invoke(["pad", tmp_path / "t.parquet", "--save-vocab", tmp_path / "vocab.txt",
                     "--padding", "post"])
    assert (tmp_path / "vocab.txt").read_text().splitlines() == ["", "[UNK]", "the", "cat", "mat"]
    assert result.stdout == "[2, 3, 0]\n[2, 4, 2]\n"


def test_string_tokens_kept_with_dtype_str(pad_table):
    table = pa.table({"tokens": [["the", "cat"], ["élan"]]})
    got = npy(pad_table(table, "parquet", "--dtype", "str", "--value", "<pad>", "--to", "npy"))
    assert got.dtype == np.dtype("<U5") and got.tolist() == [["the", "cat"], ["<pad>", "élan"]]


def test_dictionary_encoded_strings(tmp_path, monkeypatch):
    words = pa.array(["b", "a", "b"]).dictionary_encode()
    column = pa.ListArray.from_arrays(pa.array([0, 2, 3], pa.int32()), words)
    (tmp_path / "t.arrow").write_bytes(arrow_stream(pa.table({"tokens": column})))
    result = invoke(["pad", tmp_path / "t.arrow", "--dtype", "str", "--value", "-"])
    assert result.stdout == '["b", "a"]\n["-", "b"]\n'


@pytest.mark.parametrize("steps", [pa.list_(pa.float32(), 2), pa.list_(pa.float64()),
                                   pa.large_list(pa.float32())])
def test_lists_of_feature_vectors_give_3d_arrays(pad_table, steps):
    rows = [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0]]]
    table = pa.table({"x": pa.array(rows, type=pa.list_(steps))})
    got = npy(pad_table(table, "parquet", "--dtype", "float32", "--padding", "post", "--to", "npy"))
    np.testing.assert_array_equal(got, pad_sequences(rows, dtype="float32", padding="post"))
    assert got.shape == (2, 2, 2)


@pytest.mark.parametrize("steps", [pa.list_(pa.float32(), 2), pa.list_(pa.float64())])
def test_feature_vectors_after_a_batch_without_any(tmp_path, monkeypatch, steps):
    """A first batch whose vectors are all empty lists is still 3-D in the npz,
    beside a field that has steps there."""
    monkeypatch.setattr(arrow, "BATCH_ROWS", 4)
    ids = [[7, 8], [9], [1, 2, 3], [4], [5], [6, 6]]
    vectors = [[]] * 4 + [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0]]]
    table = pa.table({"ids": ids, "vectors": pa.array(vectors, type=pa.list_(steps))})
    (tmp_path / "t.parquet").write_bytes(parquet(table, row_group_size=2))
    invoke(["pad", tmp_path / "t.parquet", "--field", "ids", "--field", "vectors", "--dtype",
            "float32", "--maxlen", "3", "-o", tmp_path / "out.npz"])
    with np.load(tmp_path / "out.npz") as npz:
        np.testing.assert_array_equal(npz["vectors"],
                                      pad_sequences(vectors, maxlen=3, dtype="float32"))
        np.testing.assert_array_equal(npz["ids"], pad_sequences(ids, maxlen=3, dtype="float32"))
        assert npz["vectors"].shape == (6, 3, 2)


def test_ragged_feature_vectors_name_the_row_and_step(pad_table):
    table = pa.table({"x": pa.array([[[1.0, 2.0]], [[3.0, 4.0], [5.0]]])})
    result = pad_table(table, "parquet", "--dtype", "float32", exit_code=2)
    assert "column 'x' (row 1, step 1): 1 feature among steps with 2 features" in result.stderr


def test_empty_lists_only(pad_table):
    table = pa.table({"ids": pa.array([[], []])})  # pyarrow types this list<null>
    assert pad_table(table, "parquet", "--maxlen", "2", "--value", "9").stdout == "[9, 9]\n[9, 9]\n"


def test_no_rows(pad_table):
    table = pa.table({"ids": pa.array([], type=pa.list_(pa.int64()))})
    result = pad_table(table, "parquet", "--to", "npy")
    assert npy(result).shape == (0, 0) and "holds no sequences" in result.stderr


@pytest.mark.parametrize("column, message", [
    (pa.array([[True, False]]), "booleans are neither token ids nor numbers"),
    (pa.array([[b"ab"]]), "give lists of integers, floats or strings"),
    (pa.array([[[[1.0]]]]), "nested deeper than feature vectors"),
    (pa.array([[["a"]]]), "feature vectors must hold numbers"),
])
def test_unsupported_step_types(tmp_path, column, message):
    (tmp_path / "t.arrow").write_bytes(arrow_stream(pa.table({"x": column})))
    result = invoke(["pad", tmp_path / "t.arrow", "--field", "x"], exit_code=2)
    assert f"t.arrow, column 'x' holds {column.type}: {message}" in result.stderr


# Which column ---------------------------------------------------------------------

def test_the_only_list_column_is_picked_and_named(tmp_path):
    (tmp_path / "t.parquet").write_bytes(parquet(TABLE))
    report = pad_file(str(tmp_path / "t.parquet"), str(tmp_path / "o.npz"))
    assert report.fields == ("input_ids",)
    with np.load(tmp_path / "o.npz") as npz:  # one field: the one-field layout
        assert sorted(npz.files) == ["inputs", "lengths", "mask", "meta"]
        assert npz["lengths"].tolist() == [3, 2, 0, 5]


def test_column_errors(tmp_path):
    two = pa.table({"a": [[1]], "b": [[2]], "n": [3]})
    (tmp_path / "two.parquet").write_bytes(parquet(two))
    (tmp_path / "none.parquet").write_bytes(parquet(pa.table({"n": [3], "s": ["x"]})))
    several = invoke(["pad", tmp_path / "two.parquet"], exit_code=2).stderr
    assert "has several list columns (a, b): name the one to pad with --field NAME" in several
    missing = invoke(["pad", tmp_path / "two.parquet", "--field", "c"], exit_code=2).stderr
    assert ("--field c: " in missing and "has no column 'c' (columns: a (list<element: int64>), "
            "b (list<element: int64>), n (int64)): give --field one of them" in missing)
    scalar = invoke(["pad", tmp_path / "two.parquet", "--field", "n"], exit_code=2).stderr
    assert "column 'n' is int64, not a list of tokens: give --field a list column (a, b)" in scalar
    none = invoke(["pad", tmp_path / "none.parquet"], exit_code=2).stderr
    assert "has no list column (columns: n (int64), s (string))" in none
    sep = invoke(["pad", tmp_path / "two.parquet", "--field", "a", "--sep", ","], exit_code=2)
    assert "--sep applies to text input" in sep.stderr


def test_only_the_chosen_columns_are_read_from_parquet(tmp_path, monkeypatch):
    table = pa.table({"ids": [[1, 2]], "text": ["a long text column nobody pads"]})
    (tmp_path / "t.parquet").write_bytes(parquet(table))
    with open_source(str(tmp_path / "t.parquet")) as source:
        opened = open_fields(source, ReadOptions(fields=("ids",)))
        (chunk,) = list(opened.chunks)
    assert opened.names == ("ids",) and chunk[0].lengths.tolist() == [2]


# Batches and memory ----------------------------------------------------------------

def ragged_rows(count: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 1000, int(n)).tolist() for n in rng.integers(0, 9, count)]


@pytest.mark.parametrize("container, options", [
    ("parquet", {"row_group_size": 7}), ("arrow-file", {"batch_rows": 5}),
    ("arrow-stream", {"batch_rows": 3}),
])
def test_many_batches_stream_with_maxlen(pad_table, monkeypatch, container, options):
    monkeypatch.setattr(arrow, "BATCH_ROWS", 16)  # small batches are joined up to 16 rows
    rows = ragged_rows(100)
    table = pa.table({"ids": rows})
    for extra, maxlen in ((["--maxlen", "4"], 4), ([], None)):
        got = npy(pad_table(table, container, "--to", "npy", "--truncating", "post", *extra,
                            **options))
        np.testing.assert_array_equal(got, pad_sequences(rows, maxlen=maxlen, truncating="post"))


def test_chunks_are_joined_and_rows_counted_across_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(arrow, "BATCH_ROWS", 10)
    (tmp_path / "t.arrow").write_bytes(arrow_stream(pa.table({"ids": ragged_rows(25)}), 4))
    with open_source(str(tmp_path / "t.arrow")) as source:
        chunks = list(open_fields(source, ReadOptions()).chunks)
    assert [len(chunk[0].lengths) for chunk in chunks] == [12, 12, 1]
    assert [chunk[0].first for chunk in chunks] == [0, 12, 24]


def test_an_error_in_a_later_batch_names_its_row(tmp_path, monkeypatch):
    monkeypatch.setattr(arrow, "BATCH_ROWS", 4)
    rows = [[1]] * 10 + [[1.5]]
    table = pa.table({"x": pa.array(rows, type=pa.list_(pa.float64()))})
    (tmp_path / "t.parquet").write_bytes(parquet(table, row_group_size=3))
    result = invoke(["pad", tmp_path / "t.parquet", "-o", tmp_path / "o.npz"], exit_code=2)
    assert "t.parquet, column 'x' (row 10, step 0): 1.5 is not a whole number" in result.stderr
    assert not (tmp_path / "o.npz").exists()


def test_progress_follows_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(arrow, "BATCH_ROWS", 8)
    path = tmp_path / "t.parquet"
    path.write_bytes(parquet(pa.table({"ids": ragged_rows(40)}), row_group_size=8))
    seen = []
    pad_file(str(path), str(tmp_path / "o.npy"), progress=lambda done, total: seen.append(
        (done, total)))
    size = path.stat().st_size
    assert seen[-1] == (size, size) and len(seen) == 5
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_standard_input_beyond_memory_is_refused(monkeypatch):
    from maskcli.core import limits

    monkeypatch.setattr(arrow, "_READ_BYTES", 1024)
    monkeypatch.setattr(limits, "memory_limit", lambda: 4096)
    data = parquet(pa.table({"ids": ragged_rows(3000)}))
    result = invoke(["pad", "--from", "parquet"], input=data, exit_code=2)
    assert "<stdin>: reading it into memory would take more than" in result.stderr
    assert "give the file's path instead of standard input" in result.stderr


# Nulls and damaged files --------------------------------------------------------------

@pytest.mark.parametrize("container", list(CONTAINERS))
def test_nulls_name_the_row_and_the_column(pad_table, container):
    null_row = pa.table({"ids": pa.array([[1], [2], None, [3]])})
    result = pad_table(null_row, container, exit_code=2)
    assert "column 'ids' (row 2): null instead of a sequence" in result.stderr
    null_step = pa.table({"ids": pa.array([[1], [2, 3, None]])})
    result = pad_table(null_step, container, exit_code=2)
    assert "column 'ids' (row 1, step 2): null inside the sequence" in result.stderr
    null_feature = pa.table({"x": pa.array([[[1.0, 2.0]], [[3.0, None]]])})
    result = pad_table(null_feature, container, "--dtype", "float32", exit_code=2)
    assert "column 'x' (row 1, step 0): null inside a feature vector" in result.stderr


@pytest.mark.parametrize("container", list(CONTAINERS))
@pytest.mark.parametrize("damage", ["truncated", "zeroed"])
def test_damaged_files_are_one_clean_error(tmp_path, container, damage):
    write, extension = CONTAINERS[container]
    data = bytearray(write(pa.table({"ids": ragged_rows(200)})))
    if damage == "truncated":
        data = data[:len(data) // 2]
    else:
        data[len(data) // 3:len(data) // 3 + 64] = bytes(64)
    path = tmp_path / f"t{extension}"
    path.write_bytes(bytes(data))
    # Zeroed bytes inside an uncompressed values buffer are still valid numbers:
    # then the file pads (exit 0); anything else must be one clean error.
    result = CliRunner().invoke(main, ["pad", str(path), "-o", str(tmp_path / "o.npz")])
    assert result.exit_code in ((2,) if damage == "truncated" else (0, 2)), result.output
    if result.exit_code == 2:
        assert_clean_error(result.stderr)
        assert f"{path}" in result.stderr and "re-export it" in result.stderr
        assert not (tmp_path / "o.npz").exists()


def test_not_a_table_at_all(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b'[1, 2]\n')
    result = invoke(["pad", path], exit_code=2)
    assert f"{path} is not a Parquet file that can be read" in result.stderr
    result = invoke(["pad", "--from", "arrow"], input=b"[1, 2]\n", exit_code=2)
    assert "<stdin> is not an Arrow IPC file that can be read" in result.stderr


# pyarrow loads only for tables ------------------------------------------------------

def loaded_modules(args: list[str]) -> list[str]:
    code = ("import sys\nfrom click.testing import CliRunner\nfrom maskcli.cli import main\n"
            f"r = CliRunner().invoke(main, {args!r})\n"
            "assert r.exit_code == 0, r.output\n"
            "print(sorted(m for m in ('pyarrow', 'rich', 'concurrent.futures', 'tensorflow') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.replace("'", '"'))


def test_jsonl_never_imports_pyarrow_rich_or_threads():
    assert loaded_modules(["pad", "sample_data/keras_guide.jsonl", "--to", "npz"]) == []


def test_parquet_imports_pyarrow(tmp_path):
    (tmp_path / "t.parquet").write_bytes(parquet(TABLE))
    assert "pyarrow" in loaded_modules(["pad", str(tmp_path / "t.parquet")])


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string(), pa.string_view()])
def test_every_string_type(tmp_path, kind):
    column = pa.array([["b", "a"], ["a"]], type=pa.list_(kind))
    (tmp_path / "t.arrow").write_bytes(arrow_stream(pa.table({"tokens": column})))
    result = invoke(["pad", tmp_path / "t.arrow", "--dtype", "str", "--value", "-"])
    assert result.stdout == '["b", "a"]\n["-", "a"]\n'


def test_duplicate_column_names_are_refused(tmp_path):
    ids = pa.array([[1]])
    table = pa.Table.from_arrays([ids, ids], names=["ids", "ids"])
    (tmp_path / "t.arrow").write_bytes(arrow_stream(table))
    result = invoke(["pad", tmp_path / "t.arrow", "--field", "ids"], exit_code=2)
    assert "has 2 columns named 'ids': rename them so that each name is unique" in result.stderr
