"""The Hugging Face / KerasHub path in one command (#25): a NER dataset as
``datasets`` saves it (save_to_disk in 2 shards, Parquet, an Arrow stream;
-100 on [CLS], [SEP] and continuation pieces) and a KerasHub BERT tagger
whose inputs have KerasHub's names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import invoke
from tests.hf.hf_data import IGNORE, records, write_dataset

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]
FORMS = ("disk", "parquet", "arrow")
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "hf"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The dataset, generated afresh; the taggers of sample_data/hf, which
    ``write_taggers`` wrote (building them again costs 20 s of Keras)."""
    folder = tmp_path_factory.mktemp("hf")
    write_dataset(folder)
    for name in ("tagger.keras", "leaky_tagger.keras"):
        shutil.copy(SAMPLE / name, folder / name)
    return folder


def audit(folder, form, model, exit_code):
    data = write_paths(folder)[form]
    result = invoke(["audit-loss", data, "--model", folder / model, "--targets", "labels",
                     "--format", "json"], exit_code=exit_code)
    return json.loads(result.stdout)


def write_paths(folder):
    return {"disk": folder / "ner", "parquet": folder / "ner.parquet",
            "arrow": folder / "ner.arrow"}


@pytest.fixture(scope="module")
def reference_accuracy(folder):
    """Keras' own tagger's accuracy over the labelled tokens only, in numpy."""
    import keras

    model = keras.saving.load_model(folder / "tagger.keras")
    columns = records()
    width = max(map(len, columns["input_ids"]))

    def padded(key, value):
        return np.array([row + [value] * (width - len(row)) for row in columns[key]], "int32")

    logits = model.predict({"token_ids": padded("input_ids", 0),
                            "segment_ids": padded("token_type_ids", 0),
                            "padding_mask": padded("attention_mask", 0)}, verbose=0)
    labels = padded("labels", IGNORE)
    scored = labels != IGNORE
    return float((logits.argmax(-1) == labels)[scored].mean())


@pytest.mark.parametrize("form", FORMS)
def test_ignore_class_and_weighted_metric_audit_ignored(folder, form, reference_accuracy):
    report = audit(folder, form, "tagger.keras", 0)
    assert report["verdict"] == "ignored"
    metric = next(c for c in report["checks"] if c["id"] == "metric-parity")
    assert metric["status"] == "pass"
    assert metric["reference"]["sparse_categorical_accuracy"] == pytest.approx(
        reference_accuracy, rel=1e-5)
    assert report["inputs"] == {"token_ids": "input_ids", "segment_ids": "token_type_ids",
                                "padding_mask": "attention_mask"}
    assert report["targets"] == "labels"
    assert "post" in report["padding"] and "--value labels=-100" in report["padding"]
    labelled = sum(label != IGNORE for row in records()["labels"] for label in row)
    parity = next(c for c in report["checks"] if c["id"] == "loss-parity")
    assert f"125 real of 168 steps less {125 - labelled} whose label is ignore_class=-100" in \
        parity["detail"]


@pytest.mark.parametrize("form", FORMS)
def test_without_ignore_class_the_loss_leaks_and_the_fix_is_verified(folder, form):
    report = audit(folder, form, "leaky_tagger.keras", 1)
    assert report["verdict"] == "leaks"
    assert "ignore_class=-100" in report["cause"]
    fix = report["fixes"][0]
    assert fix["kind"] == "compile" and "ignore_class=-100" in fix["text"]
    assert fix["verified"] is True
    assert "--target-pad" not in json.dumps(report)  # advice that crashes the same way


def test_a_plain_metric_gets_the_whole_fix_in_one_message(folder):
    import keras

    model = keras.saving.load_model(folder / "tagger.keras")
    model.compile(loss=model.loss, metrics=["sparse_categorical_accuracy"])
    model.save(folder / "plain_metric.keras")
    report = audit(folder, "parquet", "plain_metric.keras", 1)
    assert report["verdict"] == "leaks"
    assert "weighted_metrics" in report["cause"] and "labels != -100" in report["cause"]
    assert any("weighted_metrics" in fix["text"] for fix in report["fixes"])


def test_labels_are_found_by_name_and_synthetic_targets_are_stated(folder, tmp_path):
    report = json.loads(invoke(["audit-loss", folder / "ner", "--model", folder / "tagger.keras",
                                "--format", "json"]).stdout)
    assert report["targets"] == "labels"
    assert any("found by their name" in note for note in report["notes"])
    only = tmp_path / "x.jsonl"  # jsonl records without labels: padded post as asked
    columns = records()
    only.write_text("".join(json.dumps({"input_ids": ids, "attention_mask": [1] * len(ids)}) + "\n"
                            for ids in columns["input_ids"]))
    result = invoke(["audit-loss", only, "--model", folder / "tagger.keras", "--padding", "post",
                     "--input", "segment_ids=attention_mask", "--format", "json"], exit_code=1)
    report = json.loads(result.stdout)
    assert report["failed"] if "failed" in report else report["verdict"] == "leaks"
    assert report["inputs"] == {"token_ids": "input_ids", "padding_mask": "attention_mask",
                                "segment_ids": "attention_mask"}
    assert "sample-weight mask" in report["cause"]  # padding counted: not a -100 message
    assert report["targets"] == "synthetic"
    assert any("--targets" in note and "SYNTHETIC" in note for note in report["notes"])


def test_input_names_an_array_of_input(folder):
    report = json.loads(invoke(
        ["audit-loss", folder / "ner.parquet", "--model", folder / "tagger.keras",
         "--targets", "labels", "--input", "token_ids=input_ids", "--format", "json"]).stdout)
    assert report["verdict"] == "ignored"


def test_trace_mask_reads_the_dataset(folder):
    result = invoke(["trace-mask", folder / "ner", "--model", folder / "tagger.keras",
                     "--format", "json"])
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [item["shape"] for item in report["inputs"]] == [[12, 14]] * 3
    assert "padded here" in result.stderr


@pytest.mark.parametrize("form", FORMS)
def test_inspect_labels_strict(folder, form):
    data = write_paths(folder)[form]
    result = invoke(["inspect-mask", data, "--field", "labels", "--strict", "--format", "json"])
    report = json.loads(result.stdout)
    assert report["diagnostics"] == []
    assert report["lengths"] == [len(row) for row in records()["labels"]]
    # input_ids alone: no diagnostic either; pad-value-inside is silenced on demand
    invoke(["inspect-mask", data, "--field", "input_ids", "--strict", "--format", "json",
            "--ignore", "pre-padding-rnn"])


def test_ignore_refuses_an_unknown_id(folder):
    result = invoke(["inspect-mask", folder / "ner", "--ignore", "nope"], exit_code=2)
    assert "pad-value-inside" in result.stderr


def test_cat_of_two_shards_pads_every_row(folder):
    shards = sorted((folder / "ner").glob("data-*.arrow"))
    data = b"".join(path.read_bytes() for path in shards)
    result = subprocess.run([sys.executable, "-m", "maskcli", "pad", "--field", "input_ids",
                             "--to", "jsonl"], input=data, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(records()["input_ids"])
    other = folder / "ner.parquet"
    result = subprocess.run([sys.executable, "-m", "maskcli", "pad", "--field", "input_ids"],
                            input=shards[0].read_bytes() + other.read_bytes(),
                            capture_output=True, check=False)
    assert result.returncode == 2 and b"Arrow stream" in result.stderr


def test_errors_name_the_format(folder, tmp_path):
    result = invoke(["audit-loss", tmp_path / "x.npz", "--targets", folder / "ner.parquet:nope",
                     "--model", folder / "tagger.keras"], exit_code=2)
    assert "tsv" not in result.stderr and "UTF-8" not in result.stderr


def test_inspect_pads_piped_records_and_knows_their_labels():
    # once refused ("<stdin> is jsonl, which holds one array"): records are padded in now
    result = invoke(["inspect-mask", "--field", "labels", "--padding", "post", "--strict",
                     "--format", "json"],
                    input=b'{"input_ids": [5, 3, 0], "labels": [1, 2, -100]}\n'
                          b'{"input_ids": [4], "labels": [-100]}\n')
    report = json.loads(result.stdout)
    assert report["lengths"] == [3, 1] and report["mask_value"] == -100
    assert report["diagnostics"] == []
    assert "labels field" in result.stderr


def test_pad_field_new_equals_old_renames(folder, tmp_path):
    out = tmp_path / "renamed.npz"
    invoke(["pad", folder / "ner", "--field", "token_ids=input_ids", "--field", "labels",
            "--value", "labels=-100", "--padding", "post", "-o", out])
    with np.load(out) as arrays:
        assert sorted(arrays) == ["labels", "lengths", "mask", "meta", "token_ids"]
        rows = records()
        assert arrays["token_ids"][1, :len(rows["input_ids"][1])].tolist() == rows["input_ids"][1]
        assert (arrays["labels"][~arrays["mask"].astype(bool)] == IGNORE).all()
    result = invoke(["pad", folder / "ner", "--field", "a=input_ids", "--field", "a=labels"],
                    exit_code=2)
    assert "two fields would be written as a" in result.stderr


def test_a_datasetdict_needs_its_split(folder, tmp_path):
    import datasets

    whole = datasets.Dataset.from_dict(records())
    datasets.DatasetDict({"train": whole, "test": whole.select(range(3))}).save_to_disk(
        str(tmp_path / "dd"))
    result = invoke(["inspect-mask", tmp_path / "dd", "--field", "labels"], exit_code=2)
    assert "--split" in result.stderr and "train, test" in result.stderr
    result = invoke(["inspect-mask", tmp_path / "dd", "--split", "test", "--field", "labels",
                     "--format", "json"])
    assert json.loads(result.stdout)["shape"][0] == 3
    invoke(["pad", tmp_path / "dd", "--field", "input_ids"], exit_code=2)


def test_a_negative_class_id_gets_advice_that_does_not_lead_back(tmp_path):
    # the old advice (--target-pad) kept the same loss, which failed the same way
    np.save(tmp_path / "ids.npy", np.array([[3, 1, 4, 0], [2, 5, 0, 0]], "int32"))
    np.save(tmp_path / "y.npy", np.array([[1, -1, 2, 0], [1, 1, 0, 0]]))
    result = invoke(["audit-loss", tmp_path / "ids.npy", "--loss",
                     "sparse_categorical_crossentropy", "--targets", tmp_path / "y.npy"],
                    exit_code=2)
    assert "SparseCategoricalCrossentropy(ignore_class=-1)" in result.stderr
    assert "--target-pad" not in result.stderr
