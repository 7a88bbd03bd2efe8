"""Custom Keras objects for the audit-loss tests, loaded with ``--import``.

Registered with ``keras.saving.register_keras_serializable`` as users do, so
that a saved model using them loads only when this file is imported.
"""

import keras
from keras import ops

PACKAGE = "maskcli_tests"


@keras.saving.register_keras_serializable(package=PACKAGE)
class Doubler(keras.layers.Layer):
    """A custom layer that forgets ``supports_masking``: it drops the mask."""

    def call(self, inputs):
        return inputs * 2.0


@keras.saving.register_keras_serializable(package=PACKAGE)
def masked_cce_real_steps(y_true, y_pred):
    """Categorical crossentropy with a one-hot padding class (the last one),
    averaged over the real steps: the correct masked mean."""
    real = 1.0 - y_true[..., -1]
    per_step = keras.losses.categorical_crossentropy(y_true, y_pred) * real
    return ops.sum(per_step) / ops.maximum(ops.sum(real), 1.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
def masked_cce_all_steps(y_true, y_pred):
    """The same, divided by ALL steps: the padding's share leaks into the mean
    (what tf.keras up to 2.10 did)."""
    real = 1.0 - y_true[..., -1]
    per_step = keras.losses.categorical_crossentropy(y_true, y_pred) * real
    return ops.sum(per_step) / ops.cast(ops.size(real), per_step.dtype)
