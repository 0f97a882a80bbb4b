"""Models that once compiled wrongly or not at all, each trained three steps on the
native backend and on the reference interpreter from the same weights."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers


def _dense_leaky():
    return keras.Sequential(
        [keras.Input(shape=(5,)), layers.Dense(8, activation="leaky_relu"), layers.Dense(1)]
    )


def _dense_then_leaky_layer():
    return keras.Sequential(
        [keras.Input(shape=(5,)), layers.Dense(8), layers.LeakyReLU(), layers.Dense(1)]
    )


def _concat_of_relu_branches():
    x = keras.Input(shape=(5,))
    a = layers.Dense(3, activation="relu")(x)
    b = layers.Dense(3, activation="tanh")(x)
    return keras.Model(x, layers.Dense(1)(layers.Concatenate()([a, b])))


def _conv_relu_then_padding():
    return keras.Sequential(
        [
            keras.Input(shape=(6, 6, 2)),
            layers.Conv2D(3, 3, activation="relu"),
            layers.ZeroPadding2D(1),
            layers.Flatten(),
            layers.Dense(1),
        ]
    )


def _minimum_merge():
    x = keras.Input(shape=(5,))
    return keras.Model(
        x, layers.Dense(1)(layers.Minimum()([layers.Dense(5)(x), layers.Dense(5)(x)]))
    )


def _maximum_merge():
    x = keras.Input(shape=(5,))
    return keras.Model(
        x, layers.Dense(1)(layers.Maximum()([layers.Dense(5)(x), layers.Dense(5)(x)]))
    )


def _conv_leaky_subtract():
    x = keras.Input(shape=(6, 6, 2))
    a = layers.Conv2D(3, 3, activation="leaky_relu")(x)
    b = layers.Conv2D(3, 3)(x)
    return keras.Model(x, layers.Dense(1)(layers.Flatten()(layers.Subtract()([a, b]))))


def _vector_batchnorm_without_center():
    # The product's epilogue made only column sums (gamma's gradient): codegen took the
    # sums' shape for the epilogue's loop.
    return keras.Sequential(
        [keras.Input(shape=(4,)), layers.BatchNormalization(center=False), layers.Dense(1)]
    )


def _vector_batchnorm_concatenated():
    x = keras.Input(shape=(4,))
    a = layers.BatchNormalization(center=False)(x)
    return keras.Model(x, layers.Dense(1)(layers.Concatenate()([a, layers.Dense(3)(x)])))


MODELS = [
    _vector_batchnorm_without_center,
    _vector_batchnorm_concatenated,
    _dense_leaky,
    _dense_then_leaky_layer,
    _concat_of_relu_branches,
    _conv_relu_then_padding,
    _minimum_merge,
    _maximum_merge,
    _conv_leaky_subtract,
]


def _compiled(factory, backend):
    keras.backend.clear_session()
    keras.utils.set_random_seed(3)
    model = factory()
    model.compile(optimizer="sgd", loss="mse", backend=backend)
    return model


@pytest.mark.parametrize("factory", MODELS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("batch", [1, 16, 32])
def test_trains_like_the_reference(factory, batch, rng):
    native, reference = _compiled(factory, "llvm"), _compiled(factory, "reference")
    shape = native.inputs[0].shape[1:]
    x = rng.normal(size=(batch, *shape)).astype(np.float32)
    y = rng.normal(size=(batch, 1)).astype(np.float32)
    for _ in range(3):
        loss = native.train_on_batch(x, y)
        expected = reference.train_on_batch(x, y)
        np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
    for got, want in zip(native.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_an_epilogue_result_in_the_products_buffer_is_written_after_the_product_is_read():
    """Graph fuzz seed 2804: the product went into the buffer of the first f32 result
    (a cast mask), and the epilogue read it through another pointer, which LLVM took for
    unrelated memory: it read the product back after storing the mask over it."""
    from kcompile.ir import BATCH, Graph, f32, interpret
    from kcompile.ir import build as B
    from kcompile.tools.fuzz.oracle import run_compiled

    g = Graph("epilogue_order")
    x = g.add_input("x", f32(BATCH, 2), "data")
    w = g.add_input("w", f32(2, 6), "param")
    product = B.matmul(x, w)
    mask = B.cast(B.gt(product, product), f32(1).dtype)  # all zeros, as the fuzzer drew
    doubled = product + mask * product
    scale = B.const_array(g, [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5], f32(1).dtype, (6,))
    g.set_outputs([("mask", mask), ("y", (doubled + doubled) * scale)])
    rng = np.random.default_rng(0)
    for batch in (1, 3, 33):
        feeds = {
            "x": rng.normal(size=(batch, 2)).astype("float32"),
            "w": rng.normal(size=(2, 6)).astype("float32"),
        }
        want, got = interpret(g, feeds), run_compiled(g, feeds)
        for name in ("mask", "y"):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
