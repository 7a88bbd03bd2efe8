"""The built-in transformer models (``--arch transformer``, ``--arch
transformer-unmasked``): a token and position embedding, one attention block
(layer normalization, self-attention, a residual connection), a Dense layer
per step.

- ``transformer`` masks: its embedding creates the Keras mask (id 0 is
  padding) and counts positions over real steps only (the cumulative sum of
  the mask), so padding on either side moves no real token, and the attention
  gets the mask on its queries and keys. It ignores padding.
- ``transformer-unmasked`` is the classic tutorial's shape: no mask, and
  positions 0, 1, 2, ... whatever the padding. Its attention attends to the
  padded steps: padding enters there (and, on pre-padded data, already at the
  position embedding).

Keras is handed in by ``models.build_arch``; nothing here imports it.
"""

from __future__ import annotations

TRANSFORMERS = {
    "transformer": "token and position embedding (mask_zero, positions from the mask) -> "
                   "attention masked by it -> Dense per step",
    "transformer-unmasked": "token and position embedding (positions 0..T-1, no mask) -> "
                            "attention with no mask -> Dense per step; padding enters at the "
                            "attention: the classic tutorials' shape, for demonstration",
}
HEADS = 2
_EMBEDDING_CLASS = {}  # the layer class, made once Keras is loaded


def position_rows(steps: int) -> int:
    """Rows of the position table: twice the built length; longer sequences
    reuse the last row."""
    return 2 * max(int(steps), 1)


def weights_bytes(vocab: int, steps: int, units: int, out_units: int) -> int:
    """An upper bound of the bytes a built-in transformer's float32 weights
    take while Keras builds them (each initial value is made, then copied in)."""
    embedding = (vocab + position_rows(steps)) * units
    attention = 4 * units * (units + 1)  # query, key, value and output projections
    dense = units * (units + 1) + units * out_units + out_units
    return 2 * 4 * (embedding + attention + 2 * units + dense)


def build_transformer(keras, name: str, vocab: int, steps: int, units: int, out_units: int,
                      out_activation: str | None):
    """Build ``name`` (one of TRANSFORMERS) for ids below ``vocab``."""
    layers = keras.layers
    masked = name == "transformer"
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = token_and_position_class(keras)(vocab, position_rows(steps), units, masked=masked,
                                        name="embedding")(tokens)
    # Normalized before attention (as GPT-2 does): MultiHeadAttention takes the
    # Keras mask off the tensors it is given, so the residual branch keeps it.
    normed = layers.LayerNormalization(name="norm")(x)
    attended = layers.MultiHeadAttention(HEADS, max(units // HEADS, 1), name="attention")(
        normed, normed)
    x = layers.Add(name="residual")([x, attended])
    x = layers.Dense(units, activation="relu", name="feed_forward")(x)
    out = layers.Dense(out_units, activation=out_activation, name="output")(x)
    return keras.Model(tokens, out, name=name)


def token_and_position_class(keras):
    """The ``TokenAndPositionEmbedding`` layer class, defined once Keras is loaded."""
    if "class" in _EMBEDDING_CLASS:
        return _EMBEDDING_CLASS["class"]
    ops = keras.ops

    class TokenAndPositionEmbedding(keras.layers.Layer):
        """Token embedding plus a learned position embedding.

        ``masked=True``: id 0 is padding, the output carries the mask, and a
        real step's position counts the real steps before it, so padding on
        either side moves no real token. ``masked=False``: step t has
        position t and no mask is made, as in keras.io's text-classification
        transformer.
        """

        def __init__(self, vocab, max_position, units, masked=True, **kwargs):
            super().__init__(**kwargs)
            self.token = keras.layers.Embedding(vocab, units, name="token")
            self.position = keras.layers.Embedding(max_position, units, name="position")
            self.max_position, self.masked = max_position, masked
            self.supports_masking = masked

        def call(self, ids):
            if self.masked:
                real = ops.cast(ops.not_equal(ids, 0), "int32")
                positions = ops.maximum(ops.cumsum(real, axis=1) - 1, 0)
            else:
                positions = ops.expand_dims(ops.arange(ops.shape(ids)[1]), 0)
            positions = ops.minimum(positions, self.max_position - 1)
            return self.token(ids) + self.position(positions)

        def compute_mask(self, ids, mask=None):
            return ops.not_equal(ids, 0) if self.masked else None

    _EMBEDDING_CLASS["class"] = TokenAndPositionEmbedding
    return TokenAndPositionEmbedding
