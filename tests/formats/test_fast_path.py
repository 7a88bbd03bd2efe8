"""`maskcli pad` through the fast parser gives the same bytes as through the
generic one, and the progress bar's wiring."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from maskcli.cli import main
from maskcli.formats import readers
from maskcli.formats.files import open_source
from maskcli.formats.pipeline import pad_file
from maskcli.formats.readers import ReadOptions, read_chunks
from maskcli.render.progress import ProgressBar
from tests.conftest import invoke
from tests.formats.test_fastparse import jsonl_documents, text_documents

OPTIONS = [
    ["--maxlen", "5", "--padding", "post", "--truncating", "post"],
    ["--maxlen", "3"],
    [],  # pad to the longest, Keras' pre/pre
    ["--maxlen", "4", "--dtype", "int64", "--value", "-1", "--pad-to-multiple-of", "3"],
    ["--maxlen", "4", "--dtype", "float32", "--padding", "post"],
]
OUTPUTS = ["out.npy", "out.npz", "out.jsonl", "out.csv"]


def pad_both_ways(tmp_path, monkeypatch, name: str, data: bytes, args: list, output: str):
    """Run pad on ``data`` with the fast parser, then without: return both runs'
    (output bytes, result), and how many blocks the fast parser read. Small
    blocks make many chunks, parsed ahead on threads."""
    source = tmp_path / name
    source.write_bytes(data)
    monkeypatch.setattr(readers, "BLOCK_BYTES", 97)
    hits = []
    real = readers._fast_parser

    def counting(fmt, options):
        parse = real(fmt, options)
        if parse is None:
            return None

        def counted(block):
            hits.append(parse(block))
            return hits[-1]
        return counted
    monkeypatch.setattr(readers, "_fast_parser", counting)
    outputs = []
    for fast in (True, False):
        monkeypatch.setattr(readers, "FAST_PARSE", fast)
        target = tmp_path / f"{fast}-{output}"
        result = CliRunner().invoke(main, ["pad", str(source), *args, "-o", str(target)])
        outputs.append((target.read_bytes() if target.exists() else None, result))
    return outputs, sum(parsed is not None for parsed in hits)


def assert_same_run(outputs):
    (fast_bytes, fast), (generic_bytes, generic) = outputs
    assert fast.exit_code == generic.exit_code, (fast.stderr, generic.stderr)
    assert fast.stderr == generic.stderr
    assert fast_bytes == generic_bytes


@settings(max_examples=25, deadline=None, derandomize=True)
@given(jsonl_documents(), st.sampled_from(OPTIONS), st.sampled_from(OUTPUTS))
def test_jsonl_fast_path_writes_the_same_bytes(tmp_path_factory, data, args, output):
    with pytest.MonkeyPatch.context() as monkeypatch:
        tmp_path = tmp_path_factory.mktemp("jsonl")
        outputs, fast_blocks = pad_both_ways(tmp_path, monkeypatch, "in.jsonl", data, args, output)
        assert_same_run(outputs)
        assert fast_blocks or not data.strip()


@settings(max_examples=25, deadline=None, derandomize=True)
@given(text_documents(), st.sampled_from(OPTIONS), st.sampled_from(OUTPUTS))
def test_text_fast_path_writes_the_same_bytes(tmp_path_factory, data, args, output):
    with pytest.MonkeyPatch.context() as monkeypatch:
        tmp_path = tmp_path_factory.mktemp("text")
        outputs, fast_blocks = pad_both_ways(tmp_path, monkeypatch, "in.txt", data, args, output)
        assert_same_run(outputs)
        assert fast_blocks or not data


EDGE_CASES = {
    "empty lines": b"[1, 2]\n\n[3]\n  \n\n[4, 5, 6]\n",
    "empty sequences": b"[]\n[1]\n[]\n",
    "only empty sequences": b"[]\n[]\n",
    "negative ids": b"[-1, -22, 3]\n[-0, 0]\n",
    "whitespace inside lines": b"  [ 1 ,2,\t3 ]  \n[4 , 5]\n",
    "CRLF": b"[1, 2]\r\n[3]\r\n\r\n[4]\r\n",
    "no final newline": b"[1, 2]\n[3, 4, 5]",
    "byte-order mark": b"\xef\xbb\xbf[1, 2]\n[3]\n",
    "a float later on": b"[1, 2]\n" * 30 + b"[1.5]\n",
    "malformed later on": b"[1, 2]\n" * 30 + b"[1, 2\n",
    "an id too large for int32": b"[1]\n" * 30 + b"[3000000000]\n",
    "an id too large for int64": b"[1]\n" * 30 + b"[123456789012345678901]\n",
    "leading zero": b"[1]\n[01]\n",
    "no input": b"",
}


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("case", EDGE_CASES)
def test_jsonl_edge_cases_same_bytes(tmp_path, monkeypatch, case, output):
    outputs, _ = pad_both_ways(tmp_path, monkeypatch, "in.jsonl", EDGE_CASES[case],
                               ["--maxlen", "2", "--padding", "post"], output)
    assert_same_run(outputs)


@pytest.mark.parametrize("data", [
    b"1 2 3\n\n4\r\n-5 007\n", b"1 2\n  \n", b"1 2\n3", b"\xef\xbb\xbf1 2\n",
    b"1 2\n" * 40 + b"1.5 2\n", b"1 2\n" * 40 + b"a b\n", b"",
])
def test_text_edge_cases_same_bytes(tmp_path, monkeypatch, data):
    outputs, _ = pad_both_ways(tmp_path, monkeypatch, "in.txt", data, ["--maxlen", "3"], "out.npz")
    assert_same_run(outputs)


def test_errors_name_the_same_place_on_both_paths(tmp_path, monkeypatch):
    data = b"[1, 2]\n" * 50 + b"\n[1, 2, oops]\n"
    ((_, fast), (_, generic)), _ = pad_both_ways(tmp_path, monkeypatch, "in.jsonl", data, [],
                                                 "o.npy")
    assert fast.exit_code == generic.exit_code == 2
    assert "line 52" in fast.stderr and fast.stderr == generic.stderr


def test_standard_input_takes_the_fast_path(monkeypatch):
    calls = []
    real = readers._fast_parser

    def spy(fmt, options):
        parse = real(fmt, options)
        return lambda block: calls.append(block) or parse(block)
    monkeypatch.setattr(readers, "_fast_parser", spy)
    result = invoke(["pad", "--padding", "post"], input=b"[1, 2]\n[3]\n")
    assert calls and result.stdout == "[1, 2]\n[3, 0]\n"


def test_npy_is_written_as_chunks_arrive_and_equals_np_save(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 64)
    rows = [[i] * (i % 7) for i in range(300)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    invoke(["pad", source, "--maxlen", "5", "--padding", "post", "-o", tmp_path / "out.npy"])
    expected = io.BytesIO()
    padded = np.zeros((300, 5), np.int32)
    for i, row in enumerate(rows):
        padded[i, :min(len(row), 5)] = row[:5]
    np.save(expected, padded)
    assert (tmp_path / "out.npy").read_bytes() == expected.getvalue()


# --- progress -------------------------------------------------------------------

def test_progress_reports_bytes_read_and_the_size(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + b"[1, 2, 3]\n" * 100)
    seen = []
    pad_file(str(source), str(tmp_path / "out.npy"), progress=lambda done, total: seen.append(
        (done, total)))
    size = source.stat().st_size
    assert [total for _, total in seen] == [size] * len(seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1][0] == size


def test_progress_size_is_unknown_on_standard_input(monkeypatch):
    seen = []
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"[1]\n")))
    pad_file("-", "-", stdout=io.BytesIO(), progress=lambda done, total: seen.append(total))
    assert seen == [None]


def test_read_chunks_reports_progress_per_block(tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes(b"1 2 3\n" * 50)
    seen = []
    with open_source(source) as opened:
        chunks = list(read_chunks(opened, ReadOptions(), block_bytes=60, progress=seen.append))
    assert len(chunks) == len(seen) > 1 and seen[-1] == 300


def test_progress_bar_waits_then_draws_on_stderr():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80)
    bar = ProgressBar("padding", delay=3600, console=console)
    bar(10, 100)
    assert bar.progress is None  # a quick run shows nothing
    bar = ProgressBar("padding", delay=0, console=console)
    bar(5, None)
    assert bar.progress is None  # no size, no bar
    bar(50, 100)
    assert bar.progress.tasks[0].completed == 50
    bar.progress.refresh()
    assert "padding" in screen.getvalue()
    bar.close()


class FakeBar:
    made = []

    def __init__(self, label):
        self.calls, self.closed = [], False
        FakeBar.made.append(self)

    def __call__(self, done, total):
        self.calls.append((done, total))

    def close(self):
        self.closed = True


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_shows_progress_on_a_terminal_unless_quiet(tmp_path, monkeypatch, quiet):
    FakeBar.made = []
    monkeypatch.setattr("maskcli.render.progress.ProgressBar", FakeBar)
    monkeypatch.setattr("maskcli.cli.pad_command._stderr_is_terminal", lambda: True)
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"[1, 2]\n" * 10)
    invoke(["pad", source, "-o", tmp_path / "o.npy"] + (["--quiet"] if quiet else []))
    if quiet:
        assert FakeBar.made == []
    else:
        (bar,) = FakeBar.made
        assert bar.closed and bar.calls[-1] == (70, 70)


def test_cli_shows_no_progress_when_stderr_is_not_a_terminal(tmp_path, monkeypatch):
    FakeBar.made = []
    monkeypatch.setattr("maskcli.render.progress.ProgressBar", FakeBar)
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"[1, 2]\n")
    result = invoke(["pad", source, "-o", tmp_path / "o.npy"])
    assert FakeBar.made == [] and result.stderr == ""


def test_npy_writer_keeps_no_chunk(tmp_path):
    """Each chunk is on disk once written; close only rewrites the header's row count."""
    from maskcli.formats.writers import open_writer

    path = tmp_path / "out.npy"
    first, second = np.arange(6, dtype=np.int32).reshape(2, 3), np.full((1, 3), 7, np.int32)
    with open(path, "wb") as stream:
        writer = open_writer(stream, "npy", np.dtype(np.int32))
        writer.write(first, first > 0, np.array([3, 3]))
        writer.write(second, second > 0, np.array([3]))
        stream.flush()
        assert path.stat().st_size == 128 + 9 * 4  # header, then both chunks already
        writer.close({})
    assert np.array_equal(np.load(path), np.concatenate([first, second]))


def test_npy_to_a_pipe_or_of_flexible_strings_is_kept_until_the_end():
    from maskcli.formats.writers import ArrayWriter, NpyWriter, open_writer

    class Pipe(io.BytesIO):
        def seekable(self):
            return False
    assert isinstance(open_writer(Pipe(), "npy", np.dtype(np.int32)), ArrayWriter)
    assert isinstance(open_writer(io.BytesIO(), "npy", np.dtype(str)), ArrayWriter)
    assert isinstance(open_writer(io.BytesIO(), "npy", np.dtype("<U4")), NpyWriter)


def test_npy_file_streams_past_the_memory_check_that_npz_needs(tmp_path, monkeypatch):
    """An npy file keeps no rows: only each chunk must fit, not the whole array."""
    from maskcli.core import limits

    monkeypatch.setattr(limits, "memory_limit", lambda: 1 << 20)
    monkeypatch.setattr(readers, "BLOCK_BYTES", 1000)
    source = tmp_path / "seq.jsonl"
    source.write_bytes(b"[1, 2, 3]\n" * 1000)
    args = ["pad", source, "--maxlen", 200, "--dtype", "int64"]  # 1.7 MB with the mask
    invoke([*args, "-o", tmp_path / "out.npy"])
    assert np.load(tmp_path / "out.npy").shape == (1000, 200)
    result = invoke([*args, "-o", tmp_path / "out.npz"], exit_code=2)
    assert "more than the 1.0 MB of memory here" in result.stderr
