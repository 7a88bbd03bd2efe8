"""audit-loss parts that need no TensorFlow: option parsing, the target-pad
mask, synthetic targets, and the usage/input errors raised before any model
runs."""

import subprocess
import sys

import numpy as np
import pytest

from maskcli.core.errors import InputError, UsageError
from maskcli.keras.audit import loss_rtol, parse_target_pad, synthetic_targets, target_padding_mask
from tests.conftest import invoke


def test_parse_target_pad_number_and_list():
    assert parse_target_pad("-100") == -100
    assert parse_target_pad("0.5") == 0.5
    assert parse_target_pad(" [0, 0, 1] ") == [0, 0, 1]


@pytest.mark.parametrize("text", ["[0, 0", "[]", "[\"a\"]", "[true]", "pad"])
def test_parse_target_pad_rejects(text):
    with pytest.raises(UsageError):
        parse_target_pad(text)


def test_target_pad_number_on_sparse_labels():
    labels = np.array([[3, 1, -100], [2, -100, -100]])
    assert target_padding_mask(labels, -100).tolist() == [[True, True, False],
                                                          [True, False, False]]


def test_target_pad_list_is_a_one_hot_padding_class():
    one_hot = np.eye(3)[[[0, 2, 2], [1, 0, 2]]]
    assert target_padding_mask(one_hot, [0, 0, 1]).tolist() == [[True, False, False],
                                                               [True, True, False]]


def test_target_pad_number_on_vectors_needs_every_feature():
    targets = np.array([[[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    assert target_padding_mask(targets, 0).tolist() == [[False, True, True]]


def test_target_pad_nan_matches_nan():
    assert target_padding_mask(np.array([[1.0, np.nan]]), float("nan")).tolist() == [[True, False]]


def test_target_pad_list_needs_matching_classes():
    with pytest.raises(InputError, match="one-hot targets with 2 classes"):
        target_padding_mask(np.zeros((1, 3, 3)), [0, 1])


def test_synthetic_targets_fit_each_loss_and_repeat_with_the_seed():
    shape = (2, 3, 4)
    binary = synthetic_targets("binary_crossentropy", shape, 7)
    assert set(np.unique(binary)) <= {0.0, 1.0} and binary.shape == shape
    one_hot = synthetic_targets("categorical_crossentropy", shape, 7)
    assert one_hot.shape == shape and (one_hot.sum(axis=-1) == 1).all()
    sparse = synthetic_targets("sparse_categorical_crossentropy", shape, 7)
    assert sparse.shape == shape[:2] and sparse.min() >= 0 and sparse.max() < 4
    normal = synthetic_targets("mse", shape, 7)
    assert normal.dtype == np.float32 and np.array_equal(normal, synthetic_targets(None, shape, 7))
    assert not np.array_equal(normal, synthetic_targets("mse", shape, 8))


def test_loss_rtol_grows_with_the_number_of_values():
    assert loss_rtol(10) == 1e-5
    assert loss_rtol(10**8) == pytest.approx(4 * np.finfo(np.float32).eps * 1e4)


@pytest.fixture
def padded(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.array([[3, 1, 0, 0], [2, 2, 1, 0]]))
    return path


@pytest.mark.parametrize("extra, message", [
    (["--model", "m.keras", "--arch", "embedding-lstm"], "give one of them"),
    (["--unsafe"], "--unsafe applies to --model"),
    (["--mask", "m.npy", "--mode", "embedding"], "give one or the other"),
    (["--target-pad", "-100", "--mask-value", "0"], "drop --mask, --mode"),
    (["--target-pad", "-100"], "needs the targets"),
    (["--target-pad", "[0, 1"], "not a JSON list"),
    (["--mask-value", "zero"], "is not a number"),
    (["--units", "0"], "--units"),
    (["--train-steps", "-1"], "--train-steps"),
    (["--arch", "transformer-xl"], "--arch"),
    (["--loss", "hinge"], "--loss"),
])
def test_usage_errors(padded, extra, message):
    result = invoke(["audit-loss", padded, *extra], exit_code=2)
    assert message in result.stderr


def test_no_padded_step_is_an_input_error(tmp_path):
    path = tmp_path / "full.npy"
    np.save(path, np.array([[3, 1], [2, 2]]))
    result = invoke(["audit-loss", path], exit_code=2)
    assert "no padded step to audit" in result.stderr


def test_mask_file_of_the_wrong_shape(tmp_path, padded):
    mask = tmp_path / "mask.npy"
    np.save(mask, np.ones((2, 3), dtype=bool))
    result = invoke(["audit-loss", padded, "--mask", mask], exit_code=2)
    assert f"{mask}: mask of shape (2, 3)" in result.stderr


def test_targets_for_another_number_of_sequences(tmp_path, padded):
    targets = tmp_path / "y.npy"
    np.save(targets, np.zeros((3, 4)))
    result = invoke(["audit-loss", padded, "--targets", targets], exit_code=2)
    assert "do not fit the 2 input sequences" in result.stderr


def test_missing_input_file(tmp_path):
    result = invoke(["audit-loss", tmp_path / "nope.npz"], exit_code=2)
    assert "no such file" in result.stderr


def test_library_entry_is_lazy():
    code = ("import sys, maskcli\nf = maskcli.audit_loss\n"
            "print(f.__module__, sorted(m for m in ('tensorflow', 'keras', 'rich') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "maskcli.keras.audit.api []"
