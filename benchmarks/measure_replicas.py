"""Measure how Keras 3 weighs real tokens across data-parallel replicas (#22).

Runs one SGD step (learning rate 1) of a masked tagger, Embedding(mask_zero)
-> Dense, mse, under ``tf.distribute.MirroredStrategy`` over 2 logical CPU
devices, on 4 post-padded sequences of lengths 1, 1, 4, 4 (batch 4: each
replica gets 2 sequences). The change of the Dense kernel is compared with
the step the same model takes, without a strategy, on three losses:

- ``token mean``: the masked loss over the whole batch (one divisor);
- ``mean of replica means, first half / second half``: each replica's masked
  mean over its own consecutive share of the batch, averaged;
- ``mean of replica means, interleaved``: shares of every other sequence.

Then the same with ``gradient_accumulation_steps=2`` on two micro-batches,
without a strategy. Prints the relative distance of the measured step to
each prediction (0 = that is what Keras does).

    python benchmarks/measure_replicas.py

jax is not installed here: ``keras.distribution.DataParallel`` is not measured.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import keras  # noqa: E402

X = np.array([[3, 0, 0, 0], [5, 0, 0, 0], [1, 4, 2, 5], [2, 2, 1, 3]], dtype="int32")
Y = np.random.default_rng(0).standard_normal((4, 4, 2)).astype("float32")


def build(accumulation=None):
    keras.utils.set_random_seed(1)
    tokens = keras.Input((None,), dtype="int32")
    model = keras.Model(tokens, keras.layers.Dense(2)(
        keras.layers.Embedding(6, 3, mask_zero=True)(tokens)))
    model.compile(optimizer=keras.optimizers.SGD(1.0, gradient_accumulation_steps=accumulation),
                  loss="mse")
    return model


def kernel(model):
    return np.array(model.layers[-1].kernel.numpy(), dtype=np.float64)


def predicted_step(rows_groups):
    """The kernel change of one SGD step on the mean of the groups' masked means."""
    model = build()
    before = kernel(model)
    with tf.GradientTape() as tape:
        total = 0.0
        for rows in rows_groups:
            x, y = X[rows], Y[rows]
            pred = model(x)
            real = tf.cast(x != 0, tf.float32)
            per_step = tf.reduce_mean((pred - y) ** 2, axis=-1)
            total += tf.reduce_sum(per_step * real) / tf.reduce_sum(real)
        loss = total / len(rows_groups)
    grad = tape.gradient(loss, model.layers[-1].kernel)
    return -np.asarray(grad, dtype=np.float64), before


def distance(measured, predicted):
    return float(np.abs(measured - predicted).max() / np.abs(predicted).max())


def main():
    predictions = {
        "token mean": [[0, 1, 2, 3]],
        "mean of replica means, first half / second half": [[0, 1], [2, 3]],
        "mean of replica means, interleaved": [[0, 2], [1, 3]],
    }
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print(f"keras {keras.__version__}, tensorflow {tf.__version__}, "
          f"{strategy.num_replicas_in_sync} replicas (MirroredStrategy, logical CPUs)")
    with strategy.scope():
        model = build()
    before = kernel(model)
    logs = model.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    measured = kernel(model) - before
    for name, groups in predictions.items():
        step, start = predicted_step(groups)
        assert np.allclose(start, before)
        print(f"  {name}: relative distance {distance(measured, step):.2e}")
    print(f"  loss fit reports: {logs.history['loss'][0]:.6f}")

    print("gradient_accumulation_steps=2, micro-batches of 2, no strategy")
    model = build(accumulation=2)
    before = kernel(model)
    model.fit(X, Y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    measured = kernel(model) - before
    for name, groups in (("token mean of the window", [[0, 1, 2, 3]]),
                         ("mean of micro-batch means", [[0, 1], [2, 3]])):
        step, _ = predicted_step(groups)
        print(f"  {name}: relative distance {distance(measured, step):.2e}")


if __name__ == "__main__":
    main()
