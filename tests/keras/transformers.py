"""Small models of the kinds people train today, built from tiny configs with
seeded random weights (nothing downloaded), and padded batches for them."""

from __future__ import annotations

import numpy as np

from maskcli.keras.models import import_keras

keras = import_keras()
layers = keras.layers
VOCAB = 50  # token ids of the BERT models lie below this
STEPS = 8   # padded length of the BERT batches; + 4 extra padding steps fit max_sequence_length


def bert_backbone(seed: int = 0):
    import keras_hub

    keras.utils.set_random_seed(seed)
    return keras_hub.models.BertBackbone(vocabulary_size=VOCAB, num_layers=1, num_heads=2,
                                         hidden_dim=8, intermediate_dim=16,
                                         max_sequence_length=16)


def bert_tagger(reduction: str = "sum_over_batch_size", seed: int = 0, **compile_args):
    """A KerasHub BertBackbone with a Dense tagging head: one value per token,
    compiled with mse under ``reduction``."""
    backbone = bert_backbone(seed)
    tags = layers.Dense(1, name="tags")(backbone.output["sequence_output"])
    model = keras.Model(backbone.input, tags, name="bert_tagger")
    model.compile(loss=keras.losses.MeanSquaredError(reduction=reduction), **compile_args)
    return model


def bert_batch(lengths=(5, 3, 6, 2), steps: int = STEPS, seed: int = 0, pre: bool = False) -> dict:
    """A post-padded (or pre-padded) batch as KerasHub's BERT preprocessors give
    it: token_ids padded with 0, segment_ids 0, padding_mask 1 at real steps."""
    rng = np.random.default_rng(seed)
    token_ids = np.zeros((len(lengths), steps), dtype="int32")
    for row, length in enumerate(lengths):
        ids = rng.integers(1, VOCAB, length)
        if pre:
            token_ids[row, steps - length:] = ids
        else:
            token_ids[row, :length] = ids
    return {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
            "padding_mask": (token_ids != 0).astype("int32")}


def encoder_decoder(seed: int = 3, vocab: int = 20):
    """The keras.io translation pattern, small: two token inputs of different
    lengths, masks from the embeddings' compute_mask, causal self-attention in
    the decoder, and cross-attention masked by the encoder's padding (the
    value mask). Absolute positions: pre-padding shifts them."""
    import keras_hub

    keras.utils.set_random_seed(seed)
    encoder_tokens = keras.Input((None,), dtype="int32", name="encoder_tokens")
    decoder_tokens = keras.Input((None,), dtype="int32", name="decoder_tokens")

    def embed(x, name):
        return keras_hub.layers.TokenAndPositionEmbedding(
            vocab, 16, 8, mask_zero=True, embeddings_initializer="glorot_normal", name=name)(x)

    encoded = embed(encoder_tokens, "encoder_embedding")
    encoded = layers.MultiHeadAttention(2, 4, name="encoder_attention")(encoded, encoded)
    decoded = embed(decoder_tokens, "decoder_embedding")
    decoded = layers.MultiHeadAttention(2, 4, name="decoder_attention")(
        decoded, decoded, use_causal_mask=True)
    decoded = layers.MultiHeadAttention(2, 4, name="cross_attention")(decoded, encoded)
    logits = layers.Dense(vocab, name="logits")(decoded)
    model = keras.Model([encoder_tokens, decoder_tokens], logits, name="translator")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def token_batch(lengths, steps: int, seed: int, pre: bool = False, vocab: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    batch = np.zeros((len(lengths), steps), dtype="int32")
    for row, length in enumerate(lengths):
        ids = rng.integers(1, vocab, length)
        if pre:
            batch[row, steps - length:] = ids
        else:
            batch[row, :length] = ids
    return batch


def explicit_lstm(seed=0, mask_name="padding_mask", steps=None):
    """Token ids and a padding mask handed to an LSTM as mask=: the model masks
    explicitly through an input, and its output carries the LSTM's mask."""
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((steps,), dtype="int32", name="token_ids")
    mask = keras.Input((steps,), dtype="int32", name=mask_name)
    x = layers.Embedding(10, 4)(tokens)
    x = layers.LSTM(3, return_sequences=True)(x, mask=keras.ops.cast(mask, "bool"))
    model = keras.Model({"token_ids": tokens, mask_name: mask}, layers.Dense(1)(x),
                        name="explicit_lstm")
    model.compile(loss="mse")
    return model
