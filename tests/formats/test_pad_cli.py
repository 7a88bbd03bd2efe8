"""`maskcli pad` through the CLI: input formats, options, output formats,
vocabularies, every error path, and pipeline manners."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maskcli.core.padding import pad_sequences
from maskcli.formats.arrays import META_KEYS, load_padded
from maskcli.formats.files import Source
from maskcli.formats.readers import ReadOptions, read_chunks
from tests.conftest import invoke, invoke_without_keras

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_data"
GUIDE = [[711, 632, 71], [73, 8, 3215, 55, 927], [83, 91, 1, 645, 1253, 927]]
GUIDE_POST = [[711, 632, 71, 0, 0, 0], [73, 8, 3215, 55, 927, 0], [83, 91, 1, 645, 1253, 927]]


def rows(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def npy(result):
    return np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False)


@pytest.fixture(params=["stdin", "file"])
def run(request, tmp_path):
    """Run `maskcli pad` on data given as standard input or as a file named ``name``."""
    def run(data, *args, name="input.jsonl", exit_code=0):
        data = data.encode("utf-8") if isinstance(data, str) else data
        if request.param == "stdin":
            return invoke(["pad", *args], input=data, exit_code=exit_code)
        path = tmp_path / name
        path.write_bytes(data)
        return invoke(["pad", path, *args], exit_code=exit_code)
    run.mode = request.param
    return run


# Input formats ---------------------------------------------------------------

def test_keras_guide_sample():
    result = invoke(["pad", SAMPLES / "keras_guide.jsonl", "--padding", "post"])
    assert rows(result) == GUIDE_POST
    assert result.stderr == ""


def test_jsonl(run):
    assert rows(run("[1, 2]\n[3]\n")) == [[1, 2], [0, 3]]


def test_jsonl_field(run):
    data = '{"input_ids": [101, 7, 102], "label": 1}\n{"input_ids": [101, 102], "label": 0}\n'
    assert rows(run(data, "--field", "input_ids", "--padding", "post")) == [
        [101, 7, 102], [101, 102, 0]]


def test_hf_records_sample():
    result = invoke(["pad", SAMPLES / "hf_records.jsonl", "--field", "input_ids", "--to", "npy"])
    records = [json.loads(line) for line in (SAMPLES / "hf_records.jsonl").read_text().splitlines()]
    expected = pad_sequences([record["input_ids"] for record in records])
    np.testing.assert_array_equal(npy(result), expected)


def test_json_array_of_arrays(run):
    assert rows(run("[[1, 2],\n [3]]\n", "--from", "json")) == [[1, 2], [0, 3]]


def test_json_array_of_objects_with_field(run):
    data = '[{"ids": [1, 2]},\n {"ids": []}]'
    assert rows(run(data, "--from", "json", "--field", "ids")) == [[1, 2], [0, 0]]


def test_text_integers(run):
    assert rows(run("1 2 3\n4  5\n", "--from", "text")) == [[1, 2, 3], [0, 4, 5]]


def test_text_separator(run):
    assert rows(run("1, 2,3\n4\n", "--from", "text", "--sep", ",")) == [[1, 2, 3], [0, 0, 4]]
    assert rows(run("1\t2\n3\n", "--from", "text", "--sep", "\\t")) == [[1, 2], [0, 3]]


@pytest.mark.parametrize("data, args", [
    ("[9223372036854775809, 5]\n", []), ("9223372036854775809 5\n", ["--from", "text"]),
    ("9223372036854775809 5\n", ["--from", "text", "--sep", " "]),
])
def test_ids_beyond_int64_stay_exact_as_uint64(run, data, args):
    """Hashed 64-bit ids: each reader keeps them exact, never rounded through float64."""
    assert rows(run(data, "--dtype", "uint64", *args)) == [[9223372036854775809, 5]]


def test_text_floats_with_float_dtype(run):
    got = npy(run("1.5 -2e-1\nnan\n", "--from", "text", "--dtype", "float64", "--to", "npy"))
    np.testing.assert_array_equal(got, [[1.5, -0.2], [0.0, np.nan]])


def test_text_empty_lines_are_empty_sequences(run):
    assert rows(run("1 2\n\n3\n", "--from", "text", "--value", "9")) == [[1, 2], [9, 9], [9, 3]]


def test_jsonl_blank_lines_are_skipped_and_brackets_are_empty(run):
    assert rows(run("[1, 2]\n\n  \n[]\n", "--value", "9")) == [[1, 2], [9, 9]]


@pytest.mark.parametrize("args, data, expected", [
    (["--from", "jsonl"], "[1, 2]\r\n[3]\r\n", [[1, 2], [0, 3]]),
    (["--from", "text"], "1 2\r\n3\r\n", [[1, 2], [0, 3]]),
    (["--from", "text", "--sep", ","], "1,2\r\n\r\n3", [[1, 2], [0, 0], [0, 3]]),
])
def test_bom_and_crlf_are_accepted(run, args, data, expected):
    assert rows(run(b"\xef\xbb\xbf" + data.encode(), *args)) == expected


def test_last_line_without_newline(run):
    assert rows(run("[1]\n[2, 3]")) == [[0, 1], [2, 3]]


@pytest.mark.parametrize("name, data, expected", [
    ("x.jsonl", "[1]\n[2, 3]\n", [[0, 1], [2, 3]]),
    ("x.ndjson", "[1]\n", [[1]]),
    ("x.json", "[[1], [2, 3]]", [[0, 1], [2, 3]]),
    ("x.txt", "1\n2 3\n", [[0, 1], [2, 3]]),
    ("x.data", "1\n2 3\n", [[0, 1], [2, 3]]),  # unknown extension: sniffed
])
def test_auto_format_by_extension(tmp_path, name, data, expected):
    (tmp_path / name).write_text(data)
    assert rows(invoke(["pad", tmp_path / name])) == expected


@pytest.mark.parametrize("data, expected", [
    ("[1]\n[2, 3]\n", [[0, 1], [2, 3]]),  # first line a whole JSON value: jsonl
    ('{"ids": [1]}\n', None),  # objects: jsonl (needs --field)
    ("[[1],\n [2, 3]]\n", [[0, 1], [2, 3]]),  # a document over several lines: json
    ("1\n2 3\n", [[0, 1], [2, 3]]),  # text
    ("", []),
])
def test_auto_format_sniffs_standard_input(data, expected):
    if expected is None:
        result = invoke(["pad"], input=data, exit_code=2)
        assert "--field" in result.stderr
    else:
        assert rows(invoke(["pad"], input=data)) == expected


def test_feature_vectors_give_3d_output(run):
    result = run("[[1, 2], [3, 4]]\n[[5, 6]]\n", "--dtype", "float32", "--padding", "post",
                 "--to", "npy")
    got = npy(result)
    assert got.shape == (2, 2, 2) and got.dtype == np.float32
    assert got.tolist() == [[[1, 2], [3, 4]], [[5, 6], [0, 0]]]


def test_features_sample_for_the_masking_layer():
    result = invoke(["pad", SAMPLES / "features.jsonl", "--dtype", "float32", "--padding", "post",
                     "--to", "npy"])
    raw = [json.loads(line) for line in (SAMPLES / "features.jsonl").read_text().splitlines()]
    expected = pad_sequences(raw, dtype="float32", padding="post")
    np.testing.assert_array_equal(npy(result), expected)
    # No real step of the sample is all zeros, so Masking(0.0) sees exactly the real steps.
    lengths = np.array([len(sequence) for sequence in raw])
    np.testing.assert_array_equal((npy(result) != 0).any(axis=-1).sum(axis=1), lengths)


def test_chunks_agree_with_one_block_and_keep_line_numbers():
    lines = [json.dumps(list(range(i % 5))) for i in range(40)]
    data = ("\n".join(lines) + "\n").encode()

    def read(block_bytes):
        source = Source("data.jsonl", io.BytesIO(data), None, None)
        return list(read_chunks(source, ReadOptions("jsonl"), block_bytes=block_bytes))

    small, whole = read(16), read(1 << 20)
    assert len(small) > 5 and len(whole) == 1
    assert np.concatenate([c.values for c in small]).tolist() == whole[0].values.tolist()
    assert np.concatenate([c.lengths for c in small]).tolist() == whole[0].lengths.tolist()
    assert np.concatenate([c.lines for c in small]).tolist() == list(range(1, 41))
    assert [c.first for c in small] == np.cumsum([0] + [len(c.lengths) for c in small])[:-1].tolist()


def test_feature_shape_is_checked_across_chunks():
    data = b"[[1, 2]]\n" * 10 + b"[[1, 2, 3]]\n"
    source = Source("data.jsonl", io.BytesIO(data), None, None)
    with pytest.raises(ValueError, match=r"data.jsonl, line 11 \(sequence 10, step 0\): steps "
                                         r"with 3 features after steps with 2 features"):
        list(read_chunks(source, ReadOptions("jsonl"), block_bytes=16))


# Input errors: one Error: line naming the place and the fix, exit 2 -----------------

@pytest.mark.parametrize("data, args, message", [
    ("[1, 2]\n[3,\n", [], "line 2: malformed JSON (Expecting value, column 4): fix the line"),
    ('{"input_ids": [1]}\n{"text": "hi"}\n', ["--field", "input_ids"],
     "line 2 (sequence 1): no field 'input_ids' (keys: 'text'): name the field"),
    ("[1]\n", ["--field", "ids"], "line 1 (sequence 0): an array, not an object with the field "
                                  "'ids': drop --field"),
    ('{"ids": 5}\n', ["--field", "ids"], "line 1 (sequence 0): expected an array, got a number"),
    ("5\n", ["--from", "jsonl"], "line 1 (sequence 0): expected an array, got a number"),
    ("[1, true]\n", [], "line 1 (sequence 0, step 1): true is neither a number nor a string"),
    ("[[1.0, null]]\n", ["--dtype", "float32"], "step 0): null is neither a number nor a string"),
    ("[[1, 2, 3], [4, 5]]\n", ["--dtype", "float32"],
     "line 1 (sequence 0, step 1): 2 features among steps with 3 features: give every step "
     "the same number of features"),
    ("[1]\n[1.7]\n", [], "line 2 (sequence 1, step 0): 1.7 is not a whole number and the dtype is "
                         "int32: to keep fractions, use the dtype float32 (--dtype float32)"),
    ("[3000000000]\n", [], "3000000000 is out of range for int32 (-2147483648..2147483647): use a "
                           "wider dtype such as int64"),
    ('["a", "b"]\n', [], "line 1 (sequence 0, step 0): token 'a' is not a number and the dtype is "
                         "int32: map tokens to ids with --vocab FILE or --save-vocab FILE, or keep "
                         "them with --dtype str"),
    ("1 2\nthe cat\n", ["--from", "text"], "line 2 (sequence 1, step 0): token 'the' is not a "
                                           "number: map words to ids with --vocab"),
    ("1 \u0663\n", ["--from", "text"], "token '\u0663' is not a number"),
    ("1_000\n", ["--from", "text"], "token '1_000' is not a number"),
    ("1,,2\n", ["--from", "text", "--sep", ","], "line 1 (sequence 0, step 1): empty token"),
    ("[1, 2]", ["--from", "text", "--field", "x"], "--field applies to jsonl/json input"),
    ("1 2", ["--from", "jsonl", "--sep", ","], "--sep applies to text input"),
    ('{"a": 1}', ["--from", "json"], "expected a JSON array of sequences, got an object"),
    ("[[1],\n [2,]]", ["--from", "json"], "line 2: malformed JSON"),
    (b"[1]\n[\xff]\n", [], "line 2: not UTF-8 text: convert the file to UTF-8"),
    ("[1]\n".encode("utf-16"), [], "UTF-16 text: convert it to UTF-8"),
])
def test_input_errors(run, data, args, message):
    result = run(data, *args, exit_code=2)
    assert message in result.stderr
    assert result.stdout == ""


def test_error_names_the_file(tmp_path):
    (tmp_path / "bad.jsonl").write_text("[1]\n[oops]\n")
    result = invoke(["pad", tmp_path / "bad.jsonl"], exit_code=2)
    assert f"Error: {tmp_path / 'bad.jsonl'}, line 2: malformed JSON" in result.stderr


def test_stdin_is_named_in_errors():
    assert "Error: <stdin>, line 1" in invoke(["pad"], input="[x]\n", exit_code=2).stderr


@pytest.mark.parametrize("path, message", [("missing.jsonl", "no such file: check the path"),
                                           (".", "is a directory")])
def test_unreadable_input(path, message):
    assert message in invoke(["pad", path], exit_code=2).stderr


# Options ---------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["--maxlen", "4"], [[0, 711, 632, 71], [8, 3215, 55, 927], [1, 645, 1253, 927]]),
    (["--maxlen", "4", "--truncating", "post"],
     [[0, 711, 632, 71], [73, 8, 3215, 55], [83, 91, 1, 645]]),
    (["--maxlen", "2", "--padding", "post", "--truncating", "post"],
     [[711, 632], [73, 8], [83, 91]]),
    (["--value", "-1", "--padding", "post"],
     [[711, 632, 71, -1, -1, -1], [73, 8, 3215, 55, 927, -1], [83, 91, 1, 645, 1253, 927]]),
    (["--pad-to-multiple-of", "4", "--padding", "post"],
     [row + [0] * (8 - len(row)) for row in GUIDE]),
])
def test_keras_options(run, args, expected):
    assert rows(run("".join(json.dumps(s) + "\n" for s in GUIDE), *args)) == expected


def test_truncation_warns_on_stderr_only(run):
    result = run("".join(json.dumps(s) + "\n" for s in GUIDE), "--maxlen", "4")
    assert len(rows(result)) == 3  # stdout is data only
    assert result.stderr == ("warning: 2 of 3 sequences were longer than --maxlen 4 and lost steps "
                             "at the front (--truncating pre)\n")


def test_maxlen_zero_gives_empty_rows(run):
    result = run("[1, 2]\n[3]\n", "--maxlen", "0", "--to", "npz")
    with np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False) as npz:
        assert npz["inputs"].shape == (2, 0) and npz["mask"].shape == (2, 0)
        assert npz["lengths"].tolist() == [2, 1]
    assert "2 of 2 sequences were longer than --maxlen 0" in result.stderr


@pytest.mark.parametrize("args, shape", [([], (0, 0)), (["--maxlen", "3"], (0, 3))])
def test_empty_input_gives_an_empty_array(run, args, shape):
    result = run("", *args, "--to", "npy")
    got = npy(result)
    assert got.shape == shape and got.dtype == np.int32
    assert f"holds no sequences: wrote an empty array of shape {shape}" in result.stderr


def test_float_dtype_and_nan_pad_value(run):
    got = npy(run("[0.5]\n[1, 2]\n", "--dtype", "float32", "--value", "nan", "--to", "npy"))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[np.nan, 0.5], [1, 2]])


def test_str_dtype_keeps_whole_strings(run):
    data = '["hello", "world"]\n["hi"]\n'
    got = npy(run(data, "--dtype", "str", "--value", "<pad>", "--to", "npy"))
    assert got.dtype == np.dtype("<U5")
    assert got.tolist() == [["hello", "world"], ["<pad>", "hi"]]


def test_text_tokens_stay_verbatim_with_str_dtype(run):
    assert rows(run("007 +5 cat\n", "--from", "text", "--dtype", "str")) == [["007", "+5", "cat"]]


@pytest.mark.parametrize("args, message", [
    (["--value", "nan"], "pad value nan does not fit the integer dtype int32"),
    (["--value", "1.5"], "pad value 1.5 does not fit the integer dtype int32"),
    (["--value", "99999999999"], "pad value 99999999999 is out of range for int32"),
    (["--value", "abc"], "Invalid value for '--value': 'abc' is not a number"),
    (["--dtype", "uint8", "--value", "-1"], "pad value -1 is out of range for uint8"),
    (["--dtype", "object"], "dtype object is not supported"),
    (["--dtype", "nonsense"], "unknown dtype 'nonsense'"),
    (["--dtype", "<U2", "--value", "long"], "pad value 'long' is wider than dtype <U2"),
    (["--maxlen", "-1"], "Invalid value for '--maxlen': -1 is not in the range x>=0"),
    (["--pad-to-multiple-of", "0"], "Invalid value for '--pad-to-multiple-of'"),
    (["--padding", "left"], "Invalid value for '--padding'"),
    (["--sep", ""], "the separator is empty"),
])
def test_usage_errors(args, message):
    result = invoke(["pad", *args], input="[1]\n", exit_code=2)
    assert message in result.stderr


# Vocabularies ----------------------------------------------------------------

def test_save_vocab_orders_by_frequency_then_first_appearance(tmp_path):
    vocab = tmp_path / "vocab.txt"
    result = invoke(["pad", "--from", "text", "--save-vocab", vocab, "--padding", "post"],
                    input="b a b\nc a d\n")
    # counts: b 2, a 2, c 1, d 1; b appears before a, c before d.
    assert vocab.read_text() == "\n[UNK]\nb\na\nc\nd\n"
    assert rows(result) == [[2, 3, 2], [4, 3, 5]]


def test_vocab_maps_tokens_and_counts_unknown_ones(run, tmp_path):
    (tmp_path / "vocab.txt").write_text("\n[UNK]\ncat\nsat\n")
    result = run("the cat sat\ncat\n", "--from", "text", "--vocab", tmp_path / "vocab.txt",
                 name="input.txt")
    assert rows(result) == [[1, 2, 3], [0, 0, 2]]
    assert "1 of 4 tokens are not in the vocabulary and became id 1 ([UNK])" in result.stderr


def test_vocab_on_jsonl_strings(run, tmp_path):
    (tmp_path / "vocab.txt").write_bytes(b"\xef\xbb\xbf\r\n<unk>\r\nhello\r\n")
    result = run('["hello", "there"]\n', "--vocab", tmp_path / "vocab.txt")
    assert rows(result) == [[2, 1]]
    assert "became id 1 (<unk>)" in result.stderr


def test_saved_vocab_reproduces_the_same_ids(tmp_path):
    vocab = tmp_path / "vocab.txt"
    first = invoke(["pad", SAMPLES / "sentences.txt", "--save-vocab", vocab, "--to", "npy"])
    again = invoke(["pad", SAMPLES / "sentences.txt", "--vocab", vocab, "--to", "npy"])
    np.testing.assert_array_equal(npy(first), npy(again))
    tokens = vocab.read_text().split("\n")[:-1]
    assert tokens[:3] == ["", "[UNK]", "the"]  # "the" is the most frequent word
    assert len(tokens) == len(set(tokens))
    assert npy(first).max() == len(tokens) - 1 and again.stderr == ""


def test_a_saved_vocab_leaves_out_the_empty_and_the_oov_token(tmp_path):
    """Both have ids of their own: saved again as tokens, they would make a file
    that --vocab refuses (an empty line, a duplicate [UNK])."""
    vocab, data = tmp_path / "vocab.txt", '["a", "", "[UNK]", "b", "a"]\n'
    first = invoke(["pad", "--save-vocab", vocab], input=data)
    assert vocab.read_text() == "\n[UNK]\na\nb\n"
    assert rows(first) == [[2, 1, 1, 3, 2]]
    assert "2 of 5 tokens are not in the vocabulary and became id 1 ([UNK])" in first.stderr
    again = invoke(["pad", "--vocab", vocab], input=data)
    assert rows(again) == rows(first)


@pytest.mark.parametrize("content, message", [
    ("\n[UNK]\ncat\ndog\ncat\n", "vocab.txt, line 5: duplicate token 'cat', already on line 3"),
    ("cat\ndog\n", "line 1 must be empty (id 0, padding) and line 2 name the out-of-vocabulary"),
    ("\n[UNK]\n\ncat\n", "vocab.txt, line 3: empty token (id 2)"),
])
def test_bad_vocab_files(tmp_path, content, message):
    (tmp_path / "vocab.txt").write_text(content)
    result = invoke(["pad", "--from", "text", "--vocab", tmp_path / "vocab.txt"], input="cat\n",
                    exit_code=2)
    assert message in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--vocab", "v.txt", "--save-vocab", "w.txt"], "--vocab and --save-vocab exclude each other"),
    (["--save-vocab", "v.txt", "--dtype", "str"], "a vocabulary maps tokens to integer ids"),
    (["--save-vocab", "-"], "--save-vocab needs a file name"),
    (["--save-vocab", "v.npz", "-o", "v.npz"], "is also the -o output"),
])
def test_vocab_usage_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v.txt").write_text("\n[UNK]\n")
    assert message in invoke(["pad", *args], input="a b\n", exit_code=2).stderr


def test_vocab_refuses_feature_vectors(tmp_path):
    result = invoke(["pad", "--save-vocab", tmp_path / "v.txt"], input="[[1, 2]]\n", exit_code=2)
    assert "a vocabulary maps tokens, but the steps are feature vectors" in result.stderr
    assert not (tmp_path / "v.txt").exists()


def test_save_vocab_refuses_the_input(tmp_path):
    (tmp_path / "in.txt").write_text("a b\n")
    result = invoke(["pad", tmp_path / "in.txt", "--save-vocab", tmp_path / "in.txt"], exit_code=2)
    assert "is the input file itself" in result.stderr
    assert (tmp_path / "in.txt").read_text() == "a b\n"


def test_failed_run_writes_no_vocab(tmp_path):
    # 200 distinct words need ids up to 201, which int8 cannot hold.
    words = " ".join(f"w{i}" for i in range(200))
    result = invoke(["pad", "--from", "text", "--save-vocab", tmp_path / "v.txt", "--dtype", "int8",
                     "-o", tmp_path / "out.npz"], input=words + "\n", exit_code=2)
    assert "is out of range for int8" in result.stderr
    assert sorted(os.listdir(tmp_path)) == []


# Output formats ----------------------------------------------------------------

def guide_input():
    return "".join(json.dumps(s) + "\n" for s in GUIDE)


@pytest.mark.parametrize("to, expected", [
    ("jsonl", "[711, 632, 71, 0]\n[73, 8, 3215, 55]\n[83, 91, 1, 645]\n"),
    ("csv", "711,632,71,0\n73,8,3215,55\n83,91,1,645\n"),
    ("tsv", "711\t632\t71\t0\n73\t8\t3215\t55\n83\t91\t1\t645\n"),
])
def test_row_formats(to, expected):
    args = ["pad", "--maxlen", "4", "--padding", "post", "--truncating", "post", "--to", to]
    assert invoke(args, input=guide_input()).stdout == expected


def test_npy_is_exactly_what_np_save_writes():
    result = invoke(["pad", "--to", "npy"], input=guide_input())
    saved = io.BytesIO()
    np.save(saved, pad_sequences(GUIDE))
    assert result.stdout_bytes == saved.getvalue()


def test_npz_holds_the_contract(tmp_path):
    out = tmp_path / "padded.npz"
    invoke(["pad", "-o", out, "--maxlen", "4", "--padding", "post", "--value", "-1"],
           input=guide_input())
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["inputs", "lengths", "mask", "meta"]
        assert npz["inputs"].tolist() == [[711, 632, 71, -1], [8, 3215, 55, 927],
                                          [1, 645, 1253, 927]]
        assert npz["mask"].dtype == bool
        assert npz["mask"].tolist() == [[True] * 3 + [False], [True] * 4, [True] * 4]
        assert npz["lengths"].dtype == np.int64 and npz["lengths"].tolist() == [3, 5, 6]
        assert npz["meta"].shape == () and npz["meta"].dtype.kind == "U"
        meta = json.loads(str(npz["meta"]))
    assert list(meta) == list(META_KEYS)
    assert meta == {"padding": "post", "truncating": "pre", "value": -1, "maxlen": 4,
                    "dtype": "int32"}
    padded = load_padded(str(out))  # what inspect-mask and audit-loss read
    assert padded.pad_value == -1 and padded.mask.sum() == 11


def test_npz_of_strings_is_fixed_width_unicode(tmp_path):
    out = tmp_path / "tokens.npz"
    invoke(["pad", "--dtype", "str", "--value", "", "-o", out], input='["a", "bcd"]\n["ef"]\n')
    with np.load(out, allow_pickle=False) as npz:
        assert npz["inputs"].dtype == np.dtype("<U3")
        assert npz["inputs"].tolist() == [["a", "bcd"], ["", "ef"]]
        assert json.loads(str(npz["meta"]))["dtype"] == "<U3"


def test_streamed_chunks_of_strings_take_the_widest_width(tmp_path, monkeypatch):
    monkeypatch.setattr("maskcli.formats.readers.BLOCK_BYTES", 8)
    out = tmp_path / "tokens.npy"
    invoke(["pad", "--from", "text", "--dtype", "str", "--maxlen", "2", "-o", out],
           input="a\nb\nlonger words\n")
    got = np.load(out, allow_pickle=False)
    assert got.dtype == np.dtype("<U6")
    assert got.tolist() == [["0", "a"], ["0", "b"], ["longer", "words"]]


@pytest.mark.parametrize("output", ["out.npz", "out.npy", "out.jsonl"])
def test_feature_vectors_after_chunks_of_empty_sequences(tmp_path, monkeypatch, output):
    """Data sorted by length starts with empty sequences: a chunk of them alone
    cannot tell that the steps are feature vectors, yet its rows are 3-D too."""
    monkeypatch.setattr("maskcli.formats.readers.BLOCK_BYTES", 8)
    sequences = [[]] * 6 + [[[1.5, 2.0], [3.0, 4.0]], [[5.0, 6.0]]]
    data = "".join(json.dumps(sequence) + "\n" for sequence in sequences)
    expected = pad_sequences(sequences, maxlen=2, dtype="float32", padding="post")
    assert expected.shape == (8, 2, 2)
    invoke(["pad", "--dtype", "float32", "--maxlen", "2", "--padding", "post", "-o",
            tmp_path / output], input=data)
    if output.endswith(".jsonl"):
        got = np.array([json.loads(line) for line in (tmp_path / output).read_text().splitlines()])
    else:
        got = np.load(tmp_path / output)
        got = got["inputs"] if output.endswith(".npz") else got
    np.testing.assert_array_equal(got, expected)


def test_a_vocabulary_refuses_feature_vectors_after_empty_sequences(tmp_path, monkeypatch):
    monkeypatch.setattr("maskcli.formats.readers.BLOCK_BYTES", 8)
    result = invoke(["pad", "--save-vocab", tmp_path / "vocab.txt"],
                    input="[]\n[]\n[]\n[]\n[[1, 2]]\n", exit_code=2)
    assert "line 5 (sequence 4, step 0): a vocabulary maps tokens, but the steps are feature " \
           "vectors" in result.stderr


def test_output_format_from_extension(tmp_path):
    for name in ("a.jsonl", "a.csv", "a.tsv", "a.npy", "a.npz"):
        invoke(["pad", "-o", tmp_path / name], input=guide_input())
    assert (tmp_path / "a.csv").read_text().splitlines()[0] == "0,0,0,711,632,71"
    assert (tmp_path / "a.tsv").read_text().splitlines()[0] == "0\t0\t0\t711\t632\t71"
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), pad_sequences(GUIDE))
    assert load_padded(str(tmp_path / "a.jsonl")).inputs.tolist() == pad_sequences(GUIDE).tolist()


def test_to_overrides_the_extension(tmp_path):
    invoke(["pad", "-o", tmp_path / "a.txt", "--to", "csv"], input="[1]\n")
    assert (tmp_path / "a.txt").read_text() == "1\n"


def test_unknown_output_extension(tmp_path):
    result = invoke(["pad", "-o", tmp_path / "a.out"], input="[1]\n", exit_code=2)
    assert "cannot tell the format from the extension .out" in result.stderr


@pytest.mark.parametrize("to", ["csv", "tsv"])
def test_delimited_output_refuses_feature_vectors(to):
    result = invoke(["pad", "--dtype", "float32", "--to", to], input="[[1, 2]]\n", exit_code=2)
    assert "feature vectors" in result.stderr and "write .npz, .npy or .jsonl" in result.stderr


def test_float_text_is_short_and_exact():
    result = invoke(["pad", "--dtype", "float32", "--value", "nan", "--maxlen", "3"],
                    input="[0.1, -Infinity]\n")
    assert result.stdout == "[NaN, 0.1, -Infinity]\n"
    assert invoke(["pad", "--dtype", "float32", "--to", "csv", "--value", "inf"],
                  input="[0.1, 2]\n[1e-3]\n").stdout == "0.1,2.0\ninf,0.001\n"


def test_csv_quotes_string_tokens():
    result = invoke(["pad", "--dtype", "str", "--value", "", "--to", "csv"],
                    input='["a,b", "say \\"hi\\""]\n["c"]\n')
    assert result.stdout == '"a,b","say ""hi"""\n,c\n'


def test_jsonl_of_strings_escapes():
    result = invoke(["pad", "--dtype", "str", "--value", ""], input='["\\"q\\"", "é"]\n')
    assert result.stdout == '["\\"q\\"", "é"]\n'


# Pipelines ---------------------------------------------------------------------

def test_output_file_is_not_the_input(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("[1]\n")
    result = invoke(["pad", path, "-o", path], exit_code=2)
    assert "is the input file itself: write to another path" in result.stderr
    assert path.read_text() == "[1]\n"


def test_error_leaves_no_output_file(tmp_path):
    out = tmp_path / "padded.npz"
    result = invoke(["pad", "-o", out, "--maxlen", "2"], input="[1]\n" * 5 + "[1.5]\n",
                    exit_code=2)
    assert "line 6 (sequence 5, step 0): 1.5 is not a whole number" in result.stderr
    assert os.listdir(tmp_path) == []


def test_error_keeps_an_existing_output_unchanged(tmp_path):
    out = tmp_path / "padded.csv"
    out.write_text("old\n")
    invoke(["pad", "-o", out], input="[oops]\n", exit_code=2)
    assert out.read_text() == "old\n" and os.listdir(tmp_path) == ["padded.csv"]


def test_no_color_and_plain_messages():
    env = {"NO_COLOR": "1"}
    warned = invoke(["pad", "--maxlen", "1"], input="[1, 2]\n", env=env)
    failed = invoke(["pad"], input="[x]\n", env=env, exit_code=2)
    for stderr in (warned.stderr, failed.stderr):
        assert "\x1b[" not in stderr and stderr


def test_help_has_summary_and_examples():
    text = invoke(["pad", "--help"]).stdout
    assert "Pad and truncate sequences exactly like keras.utils.pad_sequences" in text
    assert "maskcli pad sample_data/keras_guide.jsonl --padding post\n" in text


def run_module(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "maskcli", *args], cwd=ROOT, env=env,
                          capture_output=True, timeout=120, **kwargs)


def test_pad_never_imports_tensorflow():
    invoke_without_keras(["pad", "sample_data/keras_guide.jsonl", "--to", "npz"], cwd=ROOT)


def test_broken_pipe_is_quiet(tmp_path):
    # Several input chunks, so that writes go on after `head` has left. A run that
    # finished would warn about truncation: an empty stderr shows the quiet exit.
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps(list(range(i % 50))) + "\n" for i in range(150000)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for extra in ([], ["--maxlen", "20"]):
        with subprocess.Popen([sys.executable, "-m", "maskcli", "pad", str(big), *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                              env=env) as proc:
            head = subprocess.run(["head", "-1"], stdin=proc.stdout, capture_output=True,
                                  timeout=120)
            proc.stdout.close()  # only head held the pipe: its exit broke it
            stderr = proc.stderr.read()
            assert proc.wait(timeout=120) == 0
        assert head.stdout.startswith(b"[0, 0, 0")
        assert stderr == b""


def test_npz_streams_to_a_pipe():
    proc = run_module(["pad", "sample_data/keras_guide.jsonl", "--to", "npz"])
    assert proc.returncode == 0, proc.stderr
    with np.load(io.BytesIO(proc.stdout), allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["inputs"], pad_sequences(GUIDE))


def test_binary_output_refuses_a_terminal():
    import pty

    leader, follower = pty.openpty()
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-m", "maskcli", "pad", "--to", "npy"], cwd=ROOT,
                              env=env, input=b"[1]\n", stdout=follower, stderr=subprocess.PIPE,
                              timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2
    assert b"Error: --to npy is binary: write it to a file with -o, or pipe it" in proc.stderr


# docs/pad.md ----------------------------------------------------------------------

def pad_page():
    return (ROOT / "docs" / "pad.md").read_text()


def test_the_pad_page_documents_formats_and_exit_status():
    # Every option is in the generated CLI reference (tests/test_docs_site.py).
    page = pad_page()
    for word in ("jsonl", "json", "text", "csv", "tsv", "npy", "npz", "Exit status", "--field",
                 "--value NAME=V", "--save-vocab", "--mask-as", "--pad-to-multiple-of"):
        assert word in page, word


def test_pad_page_examples_run(tmp_path):
    """Every `maskcli pad` line of docs/pad.md runs as shown, in order,
    with the `python -c` lines that make its inputs (a Parquet file); a line
    ending in `# exit N` must exit N."""
    lines = [line.strip() for line in pad_page().splitlines()
             if "maskcli pad" in line and line.strip().startswith(("maskcli", "echo", "printf",
                                                                  "cat", "seq"))
             or line.startswith("python -c ")]
    assert len(lines) >= 10
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, command in (("maskcli", f'"{sys.executable}" -m maskcli'),
                          ("python", f'"{sys.executable}"')):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "sample_data").symlink_to(SAMPLES)
    script = "".join(f"{line.split('  #')[0]}\necho \"rc=$?\" >&2\n" for line in lines)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)
    codes = [int(line[3:]) for line in proc.stderr.splitlines() if line.startswith("rc=")]
    expected = [int(line.rsplit("# exit", 1)[1]) if "# exit" in line else 0 for line in lines]
    assert codes == expected, f"{lines}\n{proc.stderr}"


def test_cli_choices_are_the_core_ones():
    # cli.py spells the choices out so that `--help` does not import numpy.
    from maskcli.cli import inspect_mask_command, pad
    from maskcli.core import masks, padding
    from maskcli.formats import readers, writers

    inspect_choices = {param.name: list(param.type.choices) for param in inspect_mask_command.params
                       if hasattr(param.type, "choices") and param.name != "fmt"}
    assert inspect_choices == {"mode": list(masks.MODES), "polarity": list(masks.POLARITIES),
                               "padding": list(padding.SIDES)}  # a dataset padded in it (#25)
    from maskcli import cli
    from maskcli.keras import audit, models

    assert cli.ARCH_NAMES == list(models.ARCHS)
    assert cli.LOSS_NAMES == list(audit.LOSSES)

    choices = {param.name: list(param.type.choices) for param in pad.params
               if hasattr(param.type, "choices")}
    assert choices == {"fmt_in": list(readers.INPUT_FORMATS), "fmt_out": list(writers.OUTPUT_FORMATS),
                       "padding": list(padding.SIDES), "truncating": list(padding.SIDES)}
