"""Parity: inspect-mask's embedding and masking modes equal Keras' own compute_mask.

Keras is imported here only; the command builds its masks with numpy.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from maskcli import inspect_mask
from tests.conftest import invoke
from tests.core.test_inspect import npy_bytes

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras

PARITY = settings(max_examples=60, deadline=None, derandomize=True)
NAN, INF = float("nan"), float("inf")
# Few distinct values, so that steps equal to the mask value are common.
FLOATS = [0.0, 1.0, -1.0, 0.5, NAN, INF, -INF]

token_ids = arrays(
    dtype=st.sampled_from([np.int32, np.int64]),
    shape=st.tuples(st.integers(1, 6), st.integers(1, 9)),
    elements=st.integers(-2, 3))

# float32, the dtype Keras models compute in. (For float64 data Keras casts the
# mask value to float32 before comparing, so a value float32 cannot hold,
# such as 0.1, would never match; with the values below that cannot happen.)
feature_steps = arrays(
    dtype=st.sampled_from([np.float32, np.float64]),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 7), st.integers(1, 3)),
    elements=st.sampled_from(FLOATS))


def keras_mask(layer, inputs) -> np.ndarray:
    return keras.ops.convert_to_numpy(layer.compute_mask(inputs))


def cli_mask(inputs, *options) -> np.ndarray:
    result = invoke(["inspect-mask", "--format", "npy", *options], input=npy_bytes(inputs))
    return np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False)


@pytest.fixture(scope="module")
def embedding():
    return keras.layers.Embedding(8, 2, mask_zero=True)


@PARITY
@given(ids=token_ids)
def test_embedding_mode_equals_keras(embedding, ids):
    expected = keras_mask(embedding, ids)
    assert inspect_mask(ids, mode="embedding").mask.tolist() == expected.tolist()
    assert inspect_mask(ids).mask.tolist() == expected.tolist()  # the 2-D default
    assert cli_mask(ids).tolist() == expected.tolist()
    assert cli_mask(ids, "--polarity", "ignore").tolist() == (~expected).tolist()


@PARITY
@given(data=feature_steps, mask_value=st.sampled_from(FLOATS))
def test_masking_mode_equals_keras(data, mask_value):
    expected = keras_mask(keras.layers.Masking(mask_value), data)
    assert inspect_mask(data, mode="masking", mask_value=mask_value).mask.tolist() == \
        expected.tolist()
    # The 3-D default, and the value as typed on the command line.
    assert cli_mask(data, "--mask-value", str(mask_value)).tolist() == expected.tolist()


def test_masking_nan_masks_nothing_in_keras_too():
    data = np.full((1, 3, 2), np.nan, dtype=np.float32)
    assert keras_mask(keras.layers.Masking(NAN), data).tolist() == [[True, True, True]]
    report = inspect_mask(data, mask_value=NAN)
    assert report.mask.tolist() == [[True, True, True]]
    assert "NaN, which masks nothing" in report.diagnostic("non-finite").message


def test_partial_timestep_is_kept_by_keras():
    data = np.array([[[1.0, 2.0], [0.0, 3.0], [0.0, 0.0]]], dtype=np.float32)
    assert keras_mask(keras.layers.Masking(0.0), data).tolist() == [[True, True, False]]
    report = inspect_mask(data)
    assert report.mask.tolist() == [[True, True, False]]
    assert report.diagnostic("partial-timestep").locations == [(0, 1)]
