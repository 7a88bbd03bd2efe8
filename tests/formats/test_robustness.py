"""Reader robustness: random and damaged bytes give a result or a clean error.

Every reader is fed random bytes, damaged npy and npz files and JSON-like
noise. The outcome must be a result (an array of numbers or strings) or a
MaskcliError, which the CLI shows as one ``Error:`` line: never another
exception, which would be a traceback.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskcli.core.errors import MaskcliError
from maskcli.core.padding import PadOptions
from maskcli.formats import arrays, readers
from maskcli.formats.files import open_source
from maskcli.formats.pipeline import pad_file
from maskcli.formats.vocab import load_vocabulary


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(12).reshape(3, 4))
    return buffer.getvalue()


def _npz() -> bytes:
    buffer = io.BytesIO()
    ids = np.arange(12).reshape(3, 4)
    np.savez(buffer, inputs=ids, mask=ids > 2, lengths=np.array([4, 4, 1]),
             meta=np.array('{"value": 0}'))
    return buffer.getvalue()


def damaged(original: bytes):
    """``original`` with a stretch overwritten by random bytes, then cut short."""
    return st.tuples(st.integers(0, len(original)), st.binary(max_size=24),
                     st.integers(0, len(original))).map(
        lambda t: (original[:t[0]] + t[1] + original[t[0] + len(t[1]):])[:t[2]])


JSONISH = st.text(alphabet='[]{},:0123456789.-+eE "nul\tNaIfy\r\n\ufeff\xe9', max_size=80)
PAYLOADS = st.one_of(st.binary(max_size=200), damaged(_npy()), damaged(_npz()),
                     JSONISH.map(lambda text: text.encode("utf-8")))
# What pad reads: JSON lines, a JSON document, text tokens; whole and damaged
SEQUENCES = b'[1, 2, 3]\n[4, 5]\n["a", "b"]\n{"input_ids": [6]}\n[[1.5, 2], [3, 4]]\n'
RAW = st.one_of(st.binary(max_size=200), damaged(SEQUENCES), damaged(b"[[1, 2], [3]]"),
                damaged(b"the cat\n1 2 3\n\n4\t5\n"), JSONISH.map(lambda text: text.encode("utf-8")))
# "data" has no extension, so the format is sniffed from the first bytes
NAMES = st.sampled_from(["data", "data.npz", "data.npy", "data.jsonl", "data.csv", "data.tsv"])
FORMATS = st.sampled_from(arrays.FORMATS)
ROBUSTNESS = settings(max_examples=400, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


def outcome(read) -> str:
    try:
        result = read()
    except MaskcliError:
        return "error"
    array = result.inputs if isinstance(result, arrays.Padded) else result
    assert isinstance(array, np.ndarray)
    assert array.dtype.kind in "biufUS"
    return "result"


@ROBUSTNESS
@given(payload=PAYLOADS, name=NAMES, fmt=FORMATS)
def test_load_padded_gives_a_result_or_a_clean_error(tmp_path, payload, name, fmt):
    path = tmp_path / name
    path.write_bytes(payload)
    outcome(lambda: arrays.load_padded(str(path), fmt))


@ROBUSTNESS
@given(payload=PAYLOADS, name=NAMES, fmt=FORMATS)
def test_load_array_gives_a_result_or_a_clean_error(tmp_path, payload, name, fmt):
    path = tmp_path / name
    path.write_bytes(payload)
    outcome(lambda: arrays.load_array(str(path), fmt, key="targets"))


@ROBUSTNESS
@given(payload=RAW, fmt=st.sampled_from(readers.INPUT_FORMATS), field=st.sampled_from([None, "input_ids"]))
def test_pad_readers_give_chunks_or_a_clean_error(tmp_path, payload, fmt, field):
    path = tmp_path / "data"
    path.write_bytes(payload)
    try:
        with open_source(str(path)) as source:
            chunks = list(readers.read_chunks(source, readers.ReadOptions(fmt, field),
                                              block_bytes=16))
    except MaskcliError:
        return
    for chunk in chunks:
        assert len(chunk.values) == chunk.lengths.sum()


@ROBUSTNESS
@given(payload=RAW, dtype=st.sampled_from(["int32", "int8", "float32", "str"]),
       to=st.sampled_from(["npz", "jsonl", "csv"]), maxlen=st.sampled_from([None, 0, 2]))
def test_pad_gives_a_file_or_a_clean_error(tmp_path, payload, dtype, to, maxlen):
    """The whole of pad (read, cast, pad, write): a file, or an error and no file."""
    for path in tmp_path.iterdir():  # the folder is shared by every example
        path.unlink()
    source, output = tmp_path / "data", tmp_path / f"out.{to}"
    source.write_bytes(payload)
    try:
        pad_file(str(source), str(output), options=PadOptions.make(maxlen, dtype))
    except MaskcliError:
        assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]
        return
    assert output.is_file()  # an input without sequences gives an empty jsonl or csv


@ROBUSTNESS
@given(payload=st.one_of(st.binary(max_size=100), damaged(b"\n[UNK]\nthe\ncat\n")))
def test_vocabulary_reader_gives_a_vocabulary_or_a_clean_error(payload):
    try:
        vocabulary = load_vocabulary("vocab.txt", payload)
    except MaskcliError:
        return
    assert vocabulary.tokens[0] == "" and len(set(vocabulary.tokens)) == len(vocabulary)


@pytest.mark.parametrize("payload, expected", [
    (_npy(), "result"), (_npz(), "result"), (b"[1, 0]\n[2, 3]\n", "result"),
    (_npy()[:-1], "error"), (_npz()[:-1], "error"), (b"\x00\x01", "error"),
])
def test_the_payloads_reach_both_outcomes(tmp_path, payload, expected):
    """The strategies start from files that read well, so damage is what breaks them."""
    path = tmp_path / "data"
    path.write_bytes(payload)
    assert outcome(lambda: arrays.load_padded(str(path))) == expected


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(st.sampled_from(["../labels", "a\\b", "..", "", "a\nb", "input ids",
                                        "étiquettes", "mask", "x.npy"]),
                      st.text(max_size=12).filter(lambda text: text != "ids")))
def test_a_field_name_from_data_is_refused_or_kept_as_it_is(tmp_path, name):
    """A JSON key (or a Parquet column) becomes an npz array name: it is kept
    verbatim, any script or punctuation, or refused with one printable line;
    it never becomes a member outside the archive's root."""
    import json
    import zipfile

    from maskcli.core.names import shown

    for path in tmp_path.iterdir():
        path.unlink()
    source, output = tmp_path / "records.jsonl", tmp_path / "out.npz"
    source.write_text(json.dumps({"ids": [1, 2], name: [3]}) + "\n", encoding="utf-8")
    try:
        pad_file(str(source), str(output), read=readers.ReadOptions("jsonl", ("ids", name)))
    except MaskcliError as exc:
        assert shown(str(exc)).isprintable()
        assert sorted(path.name for path in tmp_path.iterdir()) == ["records.jsonl"]
        return
    with zipfile.ZipFile(output) as archive:
        assert all("/" not in member and "\\" not in member for member in archive.namelist())
    with np.load(output) as padded:
        np.testing.assert_array_equal(padded[name], [[3]])


def test_the_npz_writer_itself_refuses_a_member_outside_the_root():
    """The last guard, for callers of the writer that did not check the names."""
    from maskcli.core.errors import UsageError
    from maskcli.formats.writers import open_writer

    writer = open_writer(io.BytesIO(), "npz", np.dtype("int32"), ("ids", "../labels"))
    part = (np.ones((1, 2), "int32"), np.ones((1, 2), bool), np.array([2]))
    writer.write_fields([part, part])
    with pytest.raises(UsageError, match="'../labels' cannot be an npz array"):
        writer.close({})


def test_pack_never_writes_a_field_outside_its_output_folder(tmp_path):
    """pack --to npy writes one file per array into a folder: a field named
    '../labels' would land beside it. It is refused, and nothing is written."""
    from tests.conftest import invoke

    (tmp_path / "out").mkdir()
    (tmp_path / "in.jsonl").write_text('{"ids": [1, 2], "../labels": [0, 1]}\n')
    result = invoke(["pack", tmp_path / "in.jsonl", "--field", "ids", "--field", "../labels",
                     "--length", 4, "--to", "npy", "-o", tmp_path / "out" / "packed"],
                    exit_code=2)
    assert "the name '../labels' cannot be an npz array" in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["in.jsonl", "out"]
