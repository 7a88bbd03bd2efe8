"""maskcli.audit_loss from Python takes what fit takes (a path, arrays, a dict,
(x, y) tuples, a tf.data.Dataset, a PyDataset) and reports what the command
reports on the same data; maskcli.testing.assert_padding_ignored fails a test
with the cause and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

import maskcli
from maskcli.testing import assert_padding_ignored
from tests.conftest import invoke
from tests.keras.fit_models import keras, labels, lstm_classifier, token_ids

pytestmark = pytest.mark.keras
tf = pytest.importorskip("tensorflow")
BATCH = 4
SEQUENCES = 8


def ids():
    return token_ids(SEQUENCES)


def targets():
    return labels(SEQUENCES)


@pytest.fixture(scope="module", params=[True, False], ids=["masked", "unmasked"])
def saved(request, tmp_path_factory):
    """A classifier saved for the command, its data as an npz, and the
    command's JSON report on them."""
    folder = tmp_path_factory.mktemp("python_audit")
    model = lstm_classifier(mask_zero=request.param)
    path = folder / "model.keras"
    model.save(path)
    data = folder / "data.npz"
    np.savez(data, token_ids=ids(), labels=targets())
    result = invoke(["audit-loss", data, "--model", path, "--targets", "labels",
                     "--format", "json"], exit_code=0 if request.param else 1)
    return model, data, json.loads(result.stdout)


def comparable(report: dict) -> dict:
    """The verdict and every number; not the texts that name the source."""
    keys = ("verdict", "loss", "keras_loss", "masked_loss", "unmasked_loss", "sequences",
            "steps", "real_steps", "batching")
    return {**{key: report.get(key) for key in keys},
            "checks": [(c["id"], c["status"], c["value"], c["reference"])
                       for c in report["checks"]]}


class Batches(keras.utils.PyDataset):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def __len__(self):
        return SEQUENCES // self.size

    def __getitem__(self, index):
        part = slice(self.size * index, self.size * (index + 1))
        return ids()[part], targets()[part]


def dataset(size: int):
    return tf.data.Dataset.from_tensor_slices((ids(), targets())).batch(size)


# Each kind holds the npz's data; a dataset's one batch is audited as one.
KINDS = {
    "path": lambda data: (str(data), {"targets": "labels"}),
    "tuple": lambda data: ((ids(), targets()), {}),
    "dict": lambda data: ({"token_ids": ids(), "labels": targets()}, {"targets": "labels"}),
    "list": lambda data: ([ids()], {"targets": targets()}),
    "tf.data": lambda data: (dataset(SEQUENCES), {}),
    "PyDataset": lambda data: (Batches(SEQUENCES), {}),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_input_kind_gives_the_commands_report(saved, kind):
    model, data, command = saved
    given, options = KINDS[kind](data)
    report = maskcli.audit_loss(given, model=model, **options)
    assert comparable(report.to_dict()) == comparable(command)
    assert report.verdict == command["verdict"] and report.checks and \
        (report.cause is None) == (command["cause"] is None)


def test_several_batches_are_audited_as_batch_size_cuts_them(saved):
    model, data, command = saved
    if command["verdict"] == "ignored":
        pytest.skip("one model is enough: the batches are the point")
    result = invoke(["audit-loss", data, "--model", data.parent / "model.keras", "--targets",
                     "labels", "--batch-size", BATCH, "--format", "json"], exit_code=1)
    expected = comparable(json.loads(result.stdout))
    for given in (dataset(BATCH), Batches(BATCH)):
        report = maskcli.audit_loss(given, model=model)
        assert comparable(report.to_dict()) == expected
    assert expected["batching"] == {"batch_size": BATCH, "batches": 2, "auto": False}


def test_a_dataset_is_read_for_its_first_batches_only(saved):
    model, _, command = saved
    if command["verdict"] == "leaks":
        pytest.skip("one model is enough")
    given = tf.data.Dataset.from_tensor_slices(({"token_ids": ids()}, targets())).batch(3)
    report = maskcli.audit_loss(given, model=model, batches=2)
    assert (report.sequences, report.batch_size, report.batches) == (6, 3, 2)


def test_batches_of_different_lengths_are_padded_to_the_longest(saved):
    model, _, command = saved
    if command["verdict"] == "leaks":
        pytest.skip("one model is enough")
    ragged = tf.ragged.constant([[1, 2], [3, 4, 5], [6], [7, 8, 9, 10], [2, 3, 4, 5, 6, 7]])
    dataset = tf.data.Dataset.from_tensor_slices((ragged, labels(5))).batch(2)
    dataset = dataset.map(lambda x, y: (x.to_tensor(), y))
    report = maskcli.audit_loss(dataset, model=model, batches=3)
    assert report.steps == 5 * 6 and report.real_steps == 2 + 3 + 1 + 4 + 6
    assert report.batches == 3 and any("padded further to 6" in note for note in report.notes)


def test_a_model_path_loads_in_safe_mode(saved):
    model, data, command = saved
    if command["verdict"] == "leaks":
        pytest.skip("one model is enough")
    report = maskcli.audit_loss((ids(), targets()), model=str(data.parent / "model.keras"))
    assert comparable(report.to_dict()) == comparable(command)


def test_assert_padding_ignored_passes_a_masked_model_and_fails_an_unmasked_one(saved):
    model, data, command = saved
    if command["verdict"] == "ignored":
        assert assert_padding_ignored(model, (ids(), targets())).verdict == "ignored"
        return
    with pytest.raises(AssertionError) as failed:
        assert_padding_ignored(model, str(data), targets="labels")
    assert str(failed.value).startswith("padding leaks into the loss of model")
    assert command["cause"] in str(failed.value)  # the cause and its fix


def test_arguments_that_do_not_fit_are_refused_by_their_name(saved):
    model, data, command = saved
    if command["verdict"] == "leaks":
        pytest.skip("one model is enough")
    with pytest.raises(maskcli.UsageError, match="targets='tags'.*not a dict"):
        maskcli.audit_loss(ids(), model=model, targets="tags")
    with pytest.raises(maskcli.InputError, match="targets='tags': no such field"):
        maskcli.audit_loss({"token_ids": ids()}, model=model, targets="tags")
    with pytest.raises(maskcli.UsageError, match="targets given twice"):
        maskcli.audit_loss((ids(), targets()), model=model, targets=labels())
    with pytest.raises(maskcli.UsageError, match="batches=0"):
        maskcli.audit_loss(ids(), model=model, batches=0)
    with pytest.raises(maskcli.UsageError, match="limit and sample"):
        maskcli.audit_loss(ids(), model=model, limit=3)
    with pytest.raises(maskcli.UsageError, match="with a path"):
        maskcli.audit_loss(str(data), model=model, targets=labels())
    with pytest.raises(maskcli.InputError, match="a tuple of 4 items"):
        maskcli.audit_loss((ids(),) * 4, model=model)
