"""Several fields at once: --field repeated, --value NAME=V, the npz layout,
jsonl objects, --mask-as, and reading one field back (load_padded, inspect-mask)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from maskcli import inspect_mask, pad_sequences
from maskcli.core.errors import UsageError
from maskcli.core.fields import split_values
from maskcli.formats.arrays import META_KEYS, load_padded
from tests.conftest import invoke
from tests.formats.arrow_tables import parquet

# A tagger's records: ids and labels of the same lengths; a translation pair's
# source and target of different lengths.
TAGGED = [{"input_ids": [101, 7, 102], "labels": [-1, 3, -1], "id": 0},
          {"input_ids": [101, 102], "labels": [-1, -1], "id": 1}]
PAIRS = [{"source": [5, 6, 7], "target": [1, 8]}, {"source": [9], "target": [1, 2, 3, 4]}]


def jsonl(records) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def pad_npz(tmp_path, records, *args, name="out.npz"):
    out = tmp_path / name
    invoke(["pad", "-o", out, *args], input=jsonl(records))
    with np.load(out, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}, out


def test_two_fields_of_equal_lengths_share_one_mask(tmp_path):
    arrays, _ = pad_npz(tmp_path, TAGGED, "--field", "input_ids", "--field", "labels",
                        "--value", "labels=-100", "--padding", "post")
    assert list(arrays) == ["input_ids", "labels", "mask", "lengths", "meta"]
    assert arrays["input_ids"].tolist() == [[101, 7, 102], [101, 102, 0]]
    assert arrays["labels"].tolist() == [[-1, 3, -1], [-1, -1, -100]]
    assert arrays["mask"].tolist() == [[True, True, True], [True, True, False]]
    assert arrays["lengths"].tolist() == [3, 2]
    meta = json.loads(str(arrays["meta"]))
    assert list(meta)[:len(META_KEYS) - 1] == list(META_KEYS)[:-1] and meta["dtype"] == "int32"
    assert meta["value"] == 0 and meta["maxlen"] == 3
    assert meta["fields"] == ["input_ids", "labels"]
    assert meta["values"] == {"input_ids": 0, "labels": -100}
    assert meta["maxlens"] == {"input_ids": 3, "labels": 3}
    assert meta["masks"] == {"input_ids": "mask", "labels": "mask"}


def test_fields_of_different_lengths_get_their_own_mask_and_lengths(tmp_path):
    arrays, _ = pad_npz(tmp_path, PAIRS, "--field", "source", "--field", "target",
                        "--padding", "post")
    assert list(arrays) == ["source", "target", "mask", "lengths", "target_mask",
                            "target_lengths", "meta"]
    # without --maxlen each field is padded to its own longest sequence
    assert arrays["source"].tolist() == [[5, 6, 7], [9, 0, 0]]
    assert arrays["target"].tolist() == [[1, 8, 0, 0], [1, 2, 3, 4]]
    assert arrays["target_mask"].tolist() == [[True, True, False, False], [True] * 4]
    assert arrays["target_lengths"].tolist() == [2, 4]
    meta = json.loads(str(arrays["meta"]))
    assert meta["maxlens"] == {"source": 3, "target": 4}
    assert meta["masks"] == {"source": "mask", "target": "target_mask"}


def test_maxlen_cuts_and_pads_every_field_to_it(tmp_path):
    arrays, _ = pad_npz(tmp_path, PAIRS, "--field", "source", "--field", "target",
                        "--maxlen", "2", "--truncating", "post", "--pad-to-multiple-of", "3")
    assert arrays["source"].tolist() == [[0, 5, 6], [0, 0, 9]]
    assert arrays["target"].tolist() == [[0, 1, 8], [0, 1, 2]]
    assert arrays["target_mask"].tolist() == [[False, True, True], [False, True, True]]
    assert json.loads(str(arrays["meta"]))["maxlens"] == {"source": 2, "target": 2}


def test_each_field_equals_pad_sequences_with_its_value(tmp_path):
    arrays, _ = pad_npz(tmp_path, PAIRS, "--field", "source", "--field", "target",
                        "--value", "7", "--value", "target=-1", "--maxlen", "3")
    for name, value in (("source", 7), ("target", -1)):
        expected = pad_sequences([record[name] for record in PAIRS], maxlen=3, value=value)
        np.testing.assert_array_equal(arrays[name], expected)


def test_truncation_is_reported_per_field(tmp_path):
    result = invoke(["pad", "--field", "source", "--field", "target", "--maxlen", "2",
                     "-o", tmp_path / "o.npz"], input=jsonl(PAIRS))
    assert result.stderr.splitlines() == [
        "warning: source: 1 of 2 sequences were longer than --maxlen 2 and lost steps at the "
        "front (--truncating pre)",
        "warning: target: 1 of 2 sequences were longer than --maxlen 2 and lost steps at the "
        "front (--truncating pre)"]


def test_one_field_keeps_the_one_field_layout(tmp_path):
    arrays, out = pad_npz(tmp_path, TAGGED, "--field", "labels", "--value", "labels=-100")
    assert list(arrays) == ["inputs", "mask", "lengths", "meta"]
    assert arrays["inputs"].tolist() == [[-1, 3, -1], [-100, -1, -1]]
    assert list(json.loads(str(arrays["meta"]))) == list(META_KEYS)
    assert load_padded(str(out)).pad_value == -100


def test_json_document_of_objects(tmp_path):
    out = tmp_path / "o.npz"
    invoke(["pad", "--from", "json", "--field", "source", "--field", "target", "-o", out],
           input=json.dumps(PAIRS))
    with np.load(out) as npz:
        assert npz["target"].tolist() == [[0, 0, 1, 8], [1, 2, 3, 4]]


def test_parquet_columns_as_fields(tmp_path):
    table = pa.table({"source": [r["source"] for r in PAIRS], "target": [r["target"] for r in PAIRS],
                      "note": ["a", "b"]})
    (tmp_path / "pairs.parquet").write_bytes(parquet(table))
    out = tmp_path / "o.npz"
    invoke(["pad", tmp_path / "pairs.parquet", "--field", "target", "--field", "source",
            "--padding", "post", "-o", out])
    with np.load(out) as npz:
        assert list(npz.files)[:2] == ["target", "source"]  # the order given
        assert npz["mask"].tolist() == [[True, True, False, False], [True] * 4]
        assert npz["source_mask"].tolist() == [[True] * 3, [True, False, False]]


def test_jsonl_output_is_one_object_per_line(tmp_path):
    result = invoke(["pad", "--field", "input_ids", "--field", "labels", "--value", "labels=-100",
                     "--padding", "post"], input=jsonl(TAGGED))
    assert result.stdout == ('{"input_ids": [101, 7, 102], "labels": [-1, 3, -1]}\n'
                             '{"input_ids": [101, 102, 0], "labels": [-1, -1, -100]}\n')
    floats = invoke(["pad", "--field", "a", "--field", "b", "--dtype", "float32", "--value",
                     "b=nan", "--maxlen", "1"], input='{"a": [0.5], "b": []}\n')
    assert floats.stdout == '{"a": [0.5], "b": [NaN]}\n'


def test_string_fields_share_one_saved_vocabulary(tmp_path):
    records = [{"src": ["le", "chat"], "tgt": ["the", "cat", "the"]}]
    result = invoke(["pad", "--field", "src", "--field", "tgt", "--save-vocab",
                     tmp_path / "vocab.txt"], input=jsonl(records))
    assert (tmp_path / "vocab.txt").read_text().splitlines() == [
        "", "[UNK]", "the", "le", "chat", "cat"]
    assert result.stdout == '{"src": [3, 4], "tgt": [2, 5, 2]}\n'


@pytest.mark.parametrize("option", ["--save-vocab", "--vocab"])
def test_a_vocabulary_maps_the_tokens_and_leaves_the_labels_alone(tmp_path, option):
    """A tagger's labels (numbers) beside its tokens (strings) keep their values:
    neither mapped to token ids nor counted into the vocabulary."""
    records = [{"tokens": ["[CLS]", "alice", "[SEP]"], "labels": [-100, 1, -100]},
               {"tokens": ["[CLS]", "bob", "[SEP]", "bob"], "labels": [-100, 0, -100, 2]}]
    vocab = tmp_path / "vocab.txt"
    if option == "--vocab":
        vocab.write_text("\n[UNK]\n[CLS]\n[SEP]\nbob\n")
    result = invoke(["pad", "--field", "tokens", "--field", "labels", "--value", "labels=-100",
                     "--padding", "post", option, vocab], input=jsonl(records))
    assert vocab.read_text().splitlines() == ["", "[UNK]", "[CLS]", "[SEP]", "bob"] + (
        ["alice"] if option == "--save-vocab" else [])
    alice = 1 if option == "--vocab" else 5
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"tokens": [2, alice, 3, 0], "labels": [-100, 1, -100, -100]},
        {"tokens": [2, 4, 3, 4], "labels": [-100, 0, -100, 2]}]


def test_str_dtype_with_a_field_value(tmp_path):
    result = invoke(["pad", "--field", "a", "--field", "b", "--dtype", "str", "--value", "<pad>",
                     "--value", "b=-"], input='{"a": ["x"], "b": ["y", "z"]}\n')
    assert result.stdout == '{"a": ["x"], "b": ["y", "z"]}\n'
    result = invoke(["pad", "--field", "a", "--field", "b", "--dtype", "str", "--value", "<pad>",
                     "--value", "b=-", "--maxlen", "3"], input='{"a": ["x"], "b": ["y", "z"]}\n')
    assert result.stdout == '{"a": ["<pad>", "<pad>", "x"], "b": ["-", "y", "z"]}\n'


# --mask-as ------------------------------------------------------------------------------

@pytest.mark.parametrize("fields", [[], ["--field", "input_ids", "--field", "labels"]])
def test_mask_as_writes_an_int32_copy_of_the_mask_beside_it(tmp_path, fields):
    records = TAGGED if fields else [r["input_ids"] for r in TAGGED]
    arrays, _ = pad_npz(tmp_path, records, *fields, "--padding", "post", "--mask-as",
                        "padding_mask")
    assert arrays["padding_mask"].dtype == np.int32
    assert arrays["padding_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    np.testing.assert_array_equal(arrays["padding_mask"], arrays["mask"])
    assert json.loads(str(arrays["meta"]))["mask_as"] == "padding_mask"


@pytest.mark.parametrize("args, message", [
    (["--mask-as", "attention_mask", "--to", "npy"], "--mask-as attention_mask adds an array to "
     "an npz, but the output is npy: write npz"),
    (["--mask-as", "mask", "--to", "npz"], "--mask-as mask names the mask of the npz"),
    (["--mask-as", "", "--to", "npz"], "--mask-as needs the name to store the mask under"),
    (["--mask-as", "inputs", "--to", "npz"], "--mask-as inputs names field 'inputs'"),
    (["--field", "a", "--field", "b", "--mask-as", "b", "--to", "npz"],
     "--mask-as b names field 'b' of the npz"),
    (["--field", "a", "--field", "b", "--to", "csv"], "csv holds one array, but 2 fields are "
     "padded (a, b): write npz (-o padded.npz), which holds one array per field, or jsonl"),
    (["--field", "a", "--field", "b", "--to", "npy"], "npy holds one array"),
    (["--field", "a", "--field", "b", "--to", "tsv"], "tsv holds one array"),
    (["--field", "mask", "--field", "b", "--to", "npz"], "--field mask would be stored as 'mask', "
     "which is the mask of the npz: rename the field first"),
    (["--field", "a", "--field", "b", "--field", "b_mask", "--to", "npz"], "field 'b' may need an "
     "array 'b_mask', which is field 'b_mask'"),
    (["--field", "a", "--field", "a"], "--field a is given twice: name each field once"),
    (["--field", "a", "--value", "b=1"], "--value b=1: 'b' is not a padded field (fields: a): "
     "add --field b, or correct the name"),
    (["--value", "b=1"], "'b' is not a padded field (fields: none is named)"),
    (["--value", "1", "--value", "2"], "--value is given twice ('1' and '2')"),
    (["--field", "a", "--value", "a=1", "--value", "a=2"], "--value a= is given twice"),
    (["--field", "a", "--value", "a=x"], "'--value': 'x' is not a number"),
])
def test_usage_errors(args, message):
    result = invoke(["pad", *args], input='{"a": [1], "b": [2], "mask": [3], "a_mask": [4], '
                                          '"b_mask": [5]}\n', exit_code=2)
    assert message in result.stderr


def test_the_first_field_never_needs_a_mask_of_its_own(tmp_path):
    arrays, _ = pad_npz(tmp_path, [{"a": [1], "a_mask": [2, 3]}], "--field", "a", "--field",
                        "a_mask")
    assert list(arrays) == ["a", "a_mask", "mask", "lengths", "a_mask_mask", "a_mask_lengths",
                            "meta"]


def test_split_values():
    assert split_values([]) == (None, {})
    assert split_values(["-1.5", "labels=-100", "x.y=nan"]) == ("-1.5", {"labels": "-100",
                                                                         "x.y": "nan"})
    with pytest.raises(UsageError, match="given twice"):
        split_values(["<pad>", "=x"])  # two plain values: "=x" names no field
    assert split_values(["tgt=a=b"]) == (None, {"tgt": "a=b"})


def test_a_missing_field_names_the_record(tmp_path):
    result = invoke(["pad", "--field", "source", "--field", "target"],
                    input='{"source": [1], "target": [2]}\n{"source": [3]}\n', exit_code=2)
    assert ("<stdin>, field 'target', line 2 (sequence 1): no field 'target' (keys: 'source')"
            in result.stderr)


# Reading it back ---------------------------------------------------------------------------

@pytest.fixture
def pairs_npz(tmp_path):
    _, out = pad_npz(tmp_path, PAIRS, "--field", "source", "--field", "target", "--value",
                     "target=-1", "--padding", "post", "--mask-as", "padding_mask")
    return out


def test_load_padded_reads_the_first_field(pairs_npz):
    padded = load_padded(str(pairs_npz))
    assert padded.field == "source" and padded.fields == ("source", "target")
    assert padded.inputs.tolist() == [[5, 6, 7], [9, 0, 0]]
    assert padded.mask.tolist() == [[True] * 3, [True, False, False]]
    assert padded.lengths.tolist() == [3, 1] and padded.pad_value == 0
    assert sorted(padded.extra) == ["padding_mask", "target", "target_lengths", "target_mask"]
    assert padded.source == f"{pairs_npz}, field 'source'"


def test_load_padded_reads_another_field_with_its_own_mask_and_value(pairs_npz):
    padded = load_padded(str(pairs_npz), field="target")
    assert padded.field == "target" and padded.inputs.tolist() == [[1, 8, -1, -1], [1, 2, 3, 4]]
    assert padded.mask.tolist() == [[True, True, False, False], [True] * 4]
    assert padded.lengths.tolist() == [2, 4]
    assert padded.pad_value == -1 and padded.meta["maxlen"] == 4
    assert sorted(padded.extra) == ["lengths", "mask", "padding_mask", "source"]


def test_a_field_sharing_the_first_mask_uses_it(tmp_path):
    _, out = pad_npz(tmp_path, TAGGED, "--field", "input_ids", "--field", "labels", "--value",
                     "labels=-100", "--padding", "post")
    padded = load_padded(str(out), field="labels")
    assert padded.mask.tolist() == [[True] * 3, [True, True, False]]
    assert padded.pad_value == -100
    assert "mask" in padded.extra  # it is the first field's, too


def test_inspect_mask_field(pairs_npz):
    report = inspect_mask(str(pairs_npz), field="target")
    assert report.mask_source == "npz" and report.mask_value == -1
    assert report.lengths.tolist() == [2, 4] and report.diagnostics == []
    result = invoke(["inspect-mask", pairs_npz, "--field", "target", "--format", "json"])
    shown = json.loads(result.stdout)
    assert shown["source"] == f"{pairs_npz}, field 'target'" and shown["lengths"] == [2, 4]
    assert shown["mask_value"] == -1 and shown["shape"] == [2, 4]
    first = json.loads(invoke(["inspect-mask", pairs_npz, "--format", "json"]).stdout)
    assert first["lengths"] == [3, 1] and first["shape"] == [2, 3]
    table = invoke(["inspect-mask", pairs_npz, "--field", "target", "--format", "table"],
                   env={"COLUMNS": "400"}).stdout
    assert f"{pairs_npz}, field 'target'" in table


def test_inspect_mask_field_errors(tmp_path, pairs_npz):
    result = invoke(["inspect-mask", pairs_npz, "--field", "labels"], exit_code=2)
    assert (f"--field labels: {pairs_npz} has no field 'labels' (fields: source, target): give "
            "one of them") in result.stderr
    _, single = pad_npz(tmp_path, [[1, 2]], name="single.npz")
    result = invoke(["inspect-mask", single, "--field", "labels"], exit_code=2)
    assert "holds one field, 'inputs': drop --field" in result.stderr
    assert invoke(["inspect-mask", single, "--field", "inputs", "--format", "json"]).stdout
    result = invoke(["inspect-mask", "--field", "labels"], input="[1, 0]\n", exit_code=2)
    assert "--field labels: <stdin> is jsonl, which holds one array" in result.stderr
