"""Tiny Keras models that take packed rows (``tokens``, ``tokens_segment_ids``,
``tokens_positions``): one that keeps documents apart, and one for each way
documents mix. Seeded, nothing downloaded."""

from __future__ import annotations

import numpy as np

from maskcli.keras.models import import_keras

keras = import_keras()
layers, ops = keras.layers, keras.ops
VOCAB, DIM, MAX_POSITION = 20, 8, 32
KINDS = ("isolated", "padding-only", "ignores-positions", "conv", "additive-mask")


def packed_model(kind: str = "isolated", seed: int = 0):
    """``isolated``: block-diagonal causal attention and positions from the
    input. ``padding-only``: the attention masks padding only.
    ``ignores-positions``: positions 0..L-1 along the row, the input unread.
    ``conv``: a convolution before the attention. ``additive-mask``: Hugging
    Face's additive float mask (0 keep, -1e9 drop) handed to MultiHeadAttention."""
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    segments = keras.Input((None,), dtype="int32", name="tokens_segment_ids")
    positions = keras.Input((None,), dtype="int32", name="tokens_positions")
    x = layers.Embedding(VOCAB, DIM, name="token_embedding")(tokens)
    if kind == "ignores-positions":
        import keras_hub

        along_row = keras_hub.layers.PositionEmbedding(MAX_POSITION, name="position_embedding")(x)
        x = layers.Add(name="add_positions")([x, along_row])
    else:
        x = layers.Add(name="add_positions")(
            [x, layers.Embedding(MAX_POSITION, DIM, name="position_embedding")(positions)])
    if kind == "conv":
        x = layers.Conv1D(DIM, 3, padding="same", name="conv")(x)
    same = ops.equal(ops.expand_dims(segments, 2), ops.expand_dims(segments, 1))
    real = ops.not_equal(ops.expand_dims(segments, 1), 0)
    mask = ops.logical_and(same, real)
    if kind == "padding-only":
        mask = ops.logical_and(ops.equal(same, same), real)  # every real key, any document
    if kind == "additive-mask":
        mask = ops.where(mask, 0.0, -1e9)
    attended = layers.MultiHeadAttention(2, 4, name="attention")(x, x, attention_mask=mask,
                                                                 use_causal_mask=True)
    x = layers.Add(name="residual")([x, attended])
    logits = layers.Dense(VOCAB, name="logits")(x)
    model = keras.Model({"tokens": tokens, "tokens_segment_ids": segments,
                         "tokens_positions": positions}, logits, name=f"packed_{kind}")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def packed_rows(seed: int = 0):
    """Two rows of 10 steps: documents of 4, 3 and 2 steps, then 6 and 3,
    padded after the last; next-token targets inside each document."""
    rng = np.random.default_rng(seed)
    segments = np.array([[1, 1, 1, 1, 2, 2, 2, 3, 3, 0], [1] * 6 + [2] * 3 + [0]])
    positions = np.array([[0, 1, 2, 3, 0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 4, 5, 0, 1, 2, 0]])
    tokens = np.where(segments > 0, rng.integers(1, VOCAB, segments.shape), 0)
    return {"tokens": tokens.astype("int32"), "tokens_segment_ids": segments.astype("int32"),
            "tokens_positions": positions.astype("int32")}


def rnn_model(seed: int = 0):
    """An RNN across the boundaries: tokens -> Embedding -> LSTM(return_sequences)
    -> Dense per step. It takes the packed inputs but reads neither the segment
    ids nor the positions: the LSTM's state runs from one document into the next."""
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    segments = keras.Input((None,), dtype="int32", name="tokens_segment_ids")
    positions = keras.Input((None,), dtype="int32", name="tokens_positions")
    x = layers.Embedding(VOCAB, DIM, name="token_embedding")(tokens)
    x = layers.LSTM(DIM, return_sequences=True, name="lstm")(x)
    logits = layers.Dense(VOCAB, name="logits")(x)
    model = keras.Model({"tokens": tokens, "tokens_segment_ids": segments,
                         "tokens_positions": positions}, logits, name="packed_rnn")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def rows_of_16(seed: int = 0, documents: int = 12):
    """``documents`` documents of 2 to 7 tokens packed by maskcli into rows of
    16 steps (best-fit decreasing): a handful of nearly full rows."""
    from maskcli.core.packing import pack_sequences

    rng = np.random.default_rng(seed)
    docs = [rng.integers(1, VOCAB, int(n)) for n in rng.integers(2, 8, documents)]
    packed = pack_sequences(docs, 16)
    return {"tokens": packed["inputs"], "tokens_segment_ids": packed["inputs_segment_ids"],
            "tokens_positions": packed["inputs_positions"]}


def additive_input_model(seed: int = 0):
    """Takes Hugging Face's additive mask as an input, ``attention_mask`` (rows,
    query, key: 0 keep, -1e9 drop), and hands it to MultiHeadAttention as it is."""
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    segments = keras.Input((None,), dtype="int32", name="tokens_segment_ids")
    positions = keras.Input((None,), dtype="int32", name="tokens_positions")
    bias = keras.Input((None, None), dtype="float32", name="attention_mask")
    x = layers.Add(name="add_positions")(
        [layers.Embedding(VOCAB, DIM, name="token_embedding")(tokens),
         layers.Embedding(MAX_POSITION, DIM, name="position_embedding")(positions)])
    attended = layers.MultiHeadAttention(2, 4, name="attention")(x, x, attention_mask=bias)
    logits = layers.Dense(VOCAB, name="logits")(layers.Add(name="residual")([x, attended]))
    model = keras.Model({"tokens": tokens, "tokens_segment_ids": segments,
                         "tokens_positions": positions, "attention_mask": bias}, logits,
                        name="packed_additive_input")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def additive_mask(segment_ids: np.ndarray) -> np.ndarray:
    """The block-diagonal causal mask in Hugging Face's additive form."""
    from maskcli.core.packed_diagnose import attention_mask

    return np.where(attention_mask(segment_ids), 0.0, -1e9).astype("float32")


def step_losses(model, rows, targets):
    """Sparse cross-entropy from logits at every step, in float64 numpy."""
    logits = np.asarray(model(rows, training=False), np.float64)
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    return -np.take_along_axis(log_p, targets[..., None].astype(np.int64), -1)[..., 0]


def next_token_targets(rows):
    tokens = rows["tokens"]
    return np.concatenate([tokens[:, 1:], np.zeros((len(tokens), 1), tokens.dtype)], axis=1)
