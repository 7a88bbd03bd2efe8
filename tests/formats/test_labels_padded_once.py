"""A dataset padded inside inspect-mask, audit-loss or trace-mask is read once
(#25): a labels field (or the --targets field) holding -100 at real steps gets
-100 at its padded steps by a rewrite of the npz, which equals member for
member the npz ``maskcli pad --value labels=-100`` writes (what the second
reading wrote before)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maskcli.core.label_fields import holds_ignore_label
from maskcli.core.masks import parse_value
from maskcli.core.padding import PadOptions
from maskcli.formats import dataset_input, ignore_label_padding, pipeline
from maskcli.formats.dataset_input import DatasetOptions
from maskcli.formats.readers import ReadOptions

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "hf"
FIELDS = ("input_ids", "token_type_ids", "attention_mask", "labels")


@pytest.fixture
def reads(monkeypatch):
    """How often the dataset is opened, and pad_file called."""
    counts = {"open": 0, "pad_file": 0}
    open_dataset, pad_file = pipeline.open_dataset, pipeline.pad_file

    def counted_open(*args, **kwargs):
        counts["open"] += 1
        return open_dataset(*args, **kwargs)

    def counted_pad(*args, **kwargs):
        counts["pad_file"] += 1
        return pad_file(*args, **kwargs)

    monkeypatch.setattr(pipeline, "open_dataset", counted_open)
    monkeypatch.setattr(pipeline, "pad_file", counted_pad)
    return counts


def padded_here(tmp_path, data, options: DatasetOptions) -> tuple[Path, str]:
    output = tmp_path / "here.npz"
    sentence = dataset_input._pad(str(data), str(data), options, str(output))
    return output, sentence


def padded_twice(tmp_path, data, options: DatasetOptions, values: dict) -> Path:
    """The npz the second reading wrote: pad_file with the labels' value named."""
    output = tmp_path / "expected.npz"
    padding = options.padding or "post"
    pipeline.pad_file(str(data), str(output), to="npz", read=ReadOptions(fields=options.fields),
                      options=PadOptions.make(options.maxlen, "int32", padding,
                                              "pre" if padding == "pre" else "post", 0, None),
                      values={key: parse_value(text) for key, text in values.items()},
                      split=options.split, renames={})
    return output


def assert_same_npz(got: Path, expected: Path) -> dict:
    """Every member, in the same order, byte for byte; the arrays as np.load reads them."""
    with zipfile.ZipFile(got) as left, zipfile.ZipFile(expected) as right:
        assert left.namelist() == right.namelist()
        for name in left.namelist():
            assert left.read(name) == right.read(name), name
    with np.load(got) as left, np.load(expected) as right:
        for name in right.files:
            np.testing.assert_array_equal(left[name], right[name], strict=True)
        return {name: left[name] for name in left.files}


def tagged(tmp_path, labels_hold_ignore=True, column="labels") -> Path:
    """The NER sample as Parquet, its labels under ``column``; -100 replaced by 1 if not held."""
    table = pq.read_table(SAMPLE / "ner.parquet")
    rows = table.column("labels").to_pylist()
    if not labels_hold_ignore:
        rows = [[1 if label == -100 else label for label in row] for row in rows]
    table = table.drop_columns(["labels"]).append_column(column, pa.array(rows))
    path = tmp_path / "tagged.parquet"
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_labels_holding_ignore_label_are_read_once_and_padded_with_it(tmp_path, reads, padding):
    data = SAMPLE / "ner.parquet"
    options = DatasetOptions(fields=FIELDS, padding=padding)
    got, sentence = padded_here(tmp_path, data, options)
    assert reads == {"open": 1, "pad_file": 1}
    arrays = assert_same_npz(got, padded_twice(tmp_path, data, options, {"labels": "-100"}))
    labels, mask = arrays["labels"], arrays["mask"]
    assert (labels[~mask] == -100).all() and (~mask).any()
    assert (arrays["input_ids"][~mask] == 0).all()
    assert mask[:, 0 if padding == "post" else -1].all()  # the padded steps are on its side
    meta = json.loads(str(arrays["meta"]))
    assert meta["values"] == {"input_ids": 0, "token_type_ids": 0, "attention_mask": 0,
                              "labels": -100}
    assert meta["value"] == 0 and meta["padding"] == padding
    assert "--value labels=-100" in sentence


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_truncated_rows_keep_their_labels_and_the_others_are_padded(tmp_path, reads, padding):
    data = SAMPLE / "ner.parquet"
    options = DatasetOptions(fields=FIELDS, padding=padding, maxlen=8)
    got, _ = padded_here(tmp_path, data, options)
    assert reads["open"] == 1
    arrays = assert_same_npz(got, padded_twice(tmp_path, data, options, {"labels": "-100"}))
    lengths, mask, labels = arrays["lengths"], arrays["mask"], arrays["labels"]
    assert (lengths > 8).any() and (lengths < 8).any()  # some rows cut, some padded
    assert mask[lengths >= 8].all()  # a truncated row has no padded step
    rows = pq.read_table(data).column("labels").to_pylist()
    for row, length, kept in zip(rows, lengths, labels):
        cut = row[:8] if padding == "post" else row[-8:]
        pad = [-100] * (8 - len(cut))
        assert kept.tolist() == (cut + pad if padding == "post" else pad + cut), length


def test_labels_without_ignore_label_are_padded_with_zero_and_left_alone(tmp_path, reads):
    data = tagged(tmp_path, labels_hold_ignore=False)
    options = DatasetOptions(fields=FIELDS)
    got, sentence = padded_here(tmp_path, data, options)
    assert reads == {"open": 1, "pad_file": 1}
    arrays = assert_same_npz(got, padded_twice(tmp_path, data, options, {}))
    assert (arrays["labels"][~arrays["mask"]] == 0).all()
    assert json.loads(str(arrays["meta"]))["values"]["labels"] == 0
    assert "labels=-100" not in sentence


def test_a_targets_field_of_another_name(tmp_path, reads):
    data = tagged(tmp_path, column="tags")
    fields = ("input_ids", "tags")
    got, sentence = padded_here(tmp_path, data, DatasetOptions(fields=fields, targets="tags"))
    assert reads["open"] == 1
    assert_same_npz(got, padded_twice(tmp_path, data, DatasetOptions(fields=fields),
                                      {"tags": "-100"}))
    assert "--value tags=-100" in sentence
    alone, _ = padded_here(tmp_path, data, DatasetOptions(fields=("tags",), targets="tags"))
    arrays = assert_same_npz(alone, padded_twice(tmp_path, data, DatasetOptions(fields=("tags",)),
                                                 {"tags": "-100"}))
    assert json.loads(str(arrays["meta"]))["value"] == -100  # one field: its own meta value
    assert (arrays["inputs"][~arrays["mask"]] == -100).all()


def test_a_save_to_disk_folder_of_two_shards(tmp_path, reads):
    data = SAMPLE / "ner"
    assert len(list(data.glob("data-*.arrow"))) == 2
    options = DatasetOptions(fields=FIELDS)
    got, _ = padded_here(tmp_path, data, options)
    assert reads == {"open": 1, "pad_file": 1}
    arrays = assert_same_npz(got, padded_twice(tmp_path, data, options, {"labels": "-100"}))
    assert len(arrays["labels"]) == pq.read_table(SAMPLE / "ner.parquet").num_rows


def test_labels_of_other_lengths_are_padded_at_their_own_padded_steps(tmp_path, reads):
    data = tmp_path / "tagged.jsonl"
    records = [{"input_ids": [5, 6, 7], "labels": [-100, 1]}, {"input_ids": [8], "labels": [2]},
               {"input_ids": [9, 9], "labels": [3, -100, 4, 4]}]
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    options = DatasetOptions(fields=("input_ids", "labels"), padding="pre")
    got, _ = padded_here(tmp_path, data, options)
    assert reads["open"] == 1
    arrays = assert_same_npz(got, padded_twice(tmp_path, data, options, {"labels": "-100"}))
    assert arrays["labels"].tolist() == [[-100, -100, -100, 1], [-100, -100, -100, 2],
                                         [3, -100, 4, 4]]
    assert "labels_mask" in arrays  # its own mask: its lengths differ from input_ids'


def test_a_pad_value_the_user_gave_is_kept_and_padding_alone_is_not_holding(tmp_path, reads):
    data = tagged(tmp_path, labels_hold_ignore=False)
    got, sentence = padded_here(tmp_path, data, DatasetOptions(fields=FIELDS, values=("-100",)))
    assert reads["pad_file"] == 1
    assert_same_npz(got, padded_twice(tmp_path, data, DatasetOptions(fields=FIELDS),
                                      {key: "-100" for key in FIELDS}))
    assert "labels=-100" not in sentence  # -100 only where --value -100 padded it
    data = SAMPLE / "ner.parquet"
    got, sentence = padded_here(tmp_path, data, DatasetOptions(fields=FIELDS,
                                                               values=("labels=-7",)))
    assert_same_npz(got, padded_twice(tmp_path, data, DatasetOptions(fields=FIELDS),
                                      {"labels": "-7"}))
    assert "labels=-100" not in sentence and "labels=-7" in sentence


def test_holds_ignore_label_looks_at_real_steps_only():
    labels = np.array([[1, 2, -100], [3, -100, -100]], np.int32)
    assert holds_ignore_label(labels)
    assert not holds_ignore_label(labels, labels != -100)
    assert holds_ignore_label(labels, np.array([[True] * 3, [True, False, False]]))
    assert not holds_ignore_label(labels.astype(np.float32)) and not holds_ignore_label(None)
    features = np.stack([labels, labels + 200], axis=-1)  # (sequences, steps, 2)
    assert not holds_ignore_label(features, labels != -100)
    assert holds_ignore_label(features, np.ones((2, 3), bool))


def test_a_failed_rewrite_leaves_the_npz_whole(tmp_path, monkeypatch):
    data = SAMPLE / "ner.parquet"
    output = tmp_path / "padded.npz"
    pipeline.pad_file(str(data), str(output), to="npz", read=ReadOptions(fields=FIELDS),
                      options=PadOptions.make(None, "int32", "post", "post", 0, None))
    before = output.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ignore_label_padding.npy_format, "write_array", fail)
    with pytest.raises(Exception, match="No space left"):
        ignore_label_padding.pad_with_ignore_label(str(output), ["labels"])
    assert output.read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["padded.npz"]
