"""Models for the LoRA parity tests, written once for Keras and kcompile (``keras`` is
either module). Each program returns (model, x, the names of its layers LoRA goes on,
the quantization modes it is run under: None is float). Run by Keras into
``keras_fixtures/lora.npz`` (``fixture_scripts/make_lora_fixtures.py``) and by
``test_lora.py`` on kcompile."""

from __future__ import annotations

import numpy as np

RANK, ALPHA = 2, 3.0


def dense_mlp(keras):
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="relu", name="d1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="d2")(h))
    x = np.random.default_rng(3).normal(size=(5, 6)).astype(np.float32)
    return model, x, ("d1", "d2"), (None, "int8", "int4")


def einsum(keras):
    inputs = keras.Input((4, 6))
    h = keras.layers.EinsumDense("abc,cd->abd", (4, 5), bias_axes="d", name="e1")(inputs)
    h = keras.layers.Flatten()(h)
    model = keras.Model(inputs, keras.layers.Dense(2, name="d2")(h))
    x = np.random.default_rng(4).normal(size=(3, 4, 6)).astype(np.float32)
    return model, x, ("e1", "d2"), (None, "int8", "int4")


def embedding(keras):
    ids = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(10, 4, name="emb")(ids)
    h = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model(ids, keras.layers.Dense(2, name="d2")(h))
    x = np.random.default_rng(5).integers(0, 10, (4, 5)).astype(np.int32)
    return model, x, ("emb", "d2"), (None, "int8")


PROGRAMS = {"dense_mlp": dense_mlp, "einsum": einsum, "embedding": embedding}


def perturbed(model) -> list[np.ndarray]:
    """The float weights plus N(0, 0.1) noise (so biases are not zero)."""
    rng = np.random.default_rng(7)
    return [
        w.astype(np.float32) + 0.1 * rng.normal(size=w.shape).astype(np.float32)
        for w in model.get_weights()
    ]


def lora_values(model, names) -> dict[str, np.ndarray]:
    """Values for the LoRA weights of the named layers (both nonzero, so the delta is
    seen), by path within the layer: ``d1/lora_kernel_a``, ..."""
    rng = np.random.default_rng(9)
    out = {}
    for name in names:
        layer = model.get_layer(name)
        for v in layer.weights:
            if "lora_" in v.path:
                key = f"{name}/{v.path.rsplit('/', 1)[-1]}"
                out[key] = (0.3 * rng.normal(size=v.shape)).astype(np.float32)
    return out


def prepared(keras, program, mode, float_weights: dict | None = None):
    """The program's model with perturbed float weights (or ``float_weights``, by path:
    Keras's, as the fixtures hold them), quantized to ``mode`` (or not), LoRA enabled
    (rank 2, alpha 3) on its named layers with nonzero values."""
    keras.utils.set_random_seed(1)
    model, x, names, _ = program(keras)
    if float_weights is None:
        model.set_weights(perturbed(model))
    else:
        for v in model.weights:
            v.assign(float_weights[v.path])
    if mode is not None:
        model.quantize(mode)
    for name in names:
        model.get_layer(name).enable_lora(RANK, lora_alpha=ALPHA)
    values = lora_values(model, names)
    for name in names:
        for v in model.get_layer(name).weights:
            key = f"{name}/{v.path.rsplit('/', 1)[-1]}"
            if key in values:
                v.assign(values[key])
    return model, x, names
