"""Tiny models trained with ``fit`` on ``tf.data``, and their padded data."""

from __future__ import annotations

import numpy as np

from maskcli.keras.models import import_keras

keras = import_keras()
VOCAB = 12


def lstm_classifier(mask_zero: bool, seed: int = 0, run_eagerly: bool = False):
    """Embedding -> LSTM (last state) -> Dense(sigmoid): without mask_zero
    the state reads the padding after the real tokens (a leak). ``run_eagerly``
    spares the tests tracing a training step they take once or twice."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(VOCAB, 4, mask_zero=mask_zero)(ids)
    x = keras.layers.LSTM(4)(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(ids, out, name="lstm_classifier")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"],
                  run_eagerly=run_eagerly)
    return model


def token_ids(sequences: int = 16, steps: int = 8, seed: int = 0) -> np.ndarray:
    """Post-padded token ids (0 = padding), lengths 2..steps-1."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((sequences, steps), dtype="int32")
    for row, length in enumerate(rng.integers(2, steps, sequences)):
        ids[row, :length] = rng.integers(1, VOCAB, length)
    return ids


def labels(sequences: int = 16, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, (sequences, 1)).astype("float32")


def weights(model) -> list:
    return [np.array(w) for w in model.get_weights()]
