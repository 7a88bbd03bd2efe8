"""Fixtures shared by the Keras test modules, built once per session (per
xdist worker): importing this file loads no TensorFlow."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def packed_models():
    """The tiny packed models of tests/keras/packed_models.py by kind, and
    "rnn". Shared: a test that trains a model builds its own."""
    from tests.keras.packed_models import KINDS, packed_model, rnn_model

    return {**{kind: packed_model(kind) for kind in KINDS}, "rnn": rnn_model()}
