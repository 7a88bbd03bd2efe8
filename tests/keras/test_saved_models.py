"""Real models saved by Keras pass the model-file checks (issue 15): no false
refusal of a .keras, a legacy .h5, or a .keras with an asset, and each still
loads and audits. The hostile files are in ``tests/formats/test_model_files.py``.
"""

from __future__ import annotations

import json
import warnings
import zipfile

import h5py
import numpy as np
import pytest

from maskcli.formats.model_files import check_model_file
from tests.conftest import invoke

pytestmark = pytest.mark.keras


@pytest.fixture(scope="module")
def keras_models(tmp_path_factory):
    """A small Embedding(mask_zero) -> LSTM -> Dense model saved as .keras and
    as legacy .h5, and a StringLookup model whose vocabulary is an asset of the
    .keras. Sequential, with a loss object: as a functional model, or compiled
    with loss="mse", Keras 3 cannot load its own .h5 back."""
    from maskcli.keras.models import import_keras

    keras = import_keras()
    folder = tmp_path_factory.mktemp("real")
    model = keras.Sequential([keras.Input(shape=(None,), dtype="int32"),
                              keras.layers.Embedding(10, 4, mask_zero=True),
                              keras.layers.LSTM(3, return_sequences=True),
                              keras.layers.Dense(1)])
    model.compile(loss=keras.losses.MeanSquaredError())
    words = keras.Input(shape=(None,), dtype="string")
    vocabulary = keras.layers.StringLookup()
    vocabulary.adapt(np.array(["the", "cat", "the"]))  # adapted: saved as an asset file
    lookup = keras.Model(words, vocabulary(words))
    with warnings.catch_warnings():  # the legacy .h5 format, and TensorFlow's own noise
        warnings.simplefilter("ignore")
        model.save(folder / "real.keras")
        model.save(folder / "real.h5")
        lookup.save(folder / "lookup.keras")
    np.save(folder / "ids.npy", np.array([[5, 3, 0], [7, 0, 0]]))
    return folder


@pytest.mark.parametrize("name", ["real.keras", "real.h5", "lookup.keras"])
def test_a_model_saved_by_keras_passes_and_loads(keras_models, name):
    from maskcli.keras.models import load_model

    path = keras_models / name
    assert check_model_file(str(path)) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(str(path))
    if name == "lookup.keras":
        assert model.layers[1].get_vocabulary() == ["[UNK]", "the", "cat"]
    else:
        assert [w.shape for w in model.get_weights()] == [(10, 4), (4, 12), (3, 12), (12,),
                                                          (3, 1), (1,)]


def test_the_real_files_hold_what_the_checks_walk(keras_models):
    """The asset, the string attributes: what a check could refuse by mistake."""
    with zipfile.ZipFile(keras_models / "lookup.keras") as archive:
        assert "assets/layers/string_lookup/vocabulary.txt" in archive.namelist()
    with h5py.File(keras_models / "real.h5") as h5:
        names = h5["model_weights"].attrs.get_id("layer_names")
        assert names.shape == (3,) and h5py.check_string_dtype(names.dtype).length is None


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", ["real.keras", "real.h5"])
def test_a_model_saved_by_keras_is_audited(keras_models, name):
    result = invoke(["audit-loss", keras_models / "ids.npy", "--model", keras_models / name,
                     "--format", "json"])
    report = json.loads(result.stdout)
    assert {check["status"] for check in report["checks"]} <= {"pass", "skipped"}
    assert "loss-parity" in {check["id"] for check in report["checks"]}
