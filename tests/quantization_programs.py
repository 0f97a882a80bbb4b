"""Models that ``model.quantize("int8")`` changes, each built by a function of the
``keras`` module (real Keras 3 in ``fixture_scripts/make_quantization_fixtures.py``,
kcompile in ``test_quantization.py``): functional, Sequential and subclassed; Dense with
and without bias and activation, on a 3-D input, EinsumDense with two equations,
Embedding, a BatchNormalization Keras leaves in float, a mixed_bfloat16 model, and a
MultiHeadAttention block and a GroupQueryAttention block (their projections quantized).

Each returns ``(model, x)``: the model built, its float weights still the initializer's
(the fixture stores Keras's, the test loads them), and an input batch."""

from __future__ import annotations

import numpy as np


def _normal(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def functional(keras):
    inp = keras.Input((6,), name="x")
    h = keras.layers.Dense(5, activation="relu", name="d1")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    out = keras.layers.Dense(3, use_bias=False, name="d2")(h)
    return keras.Model(inp, out, name="functional_q"), _normal((7, 6), 1)


def sequential_3d(keras):
    model = keras.Sequential(
        [
            keras.Input((4, 6)),
            keras.layers.Dense(5, activation="tanh", name="dense_3d"),
            keras.layers.EinsumDense(
                "abc,cde->abde", output_shape=(4, 2, 3), bias_axes="de", name="einsum_proj"
            ),
            keras.layers.Reshape((4, 6)),
            keras.layers.EinsumDense("abc,cd->abd", output_shape=(4, 2), name="einsum_nobias"),
        ],
        name="sequential_q",
    )
    return model, _normal((3, 4, 6), 2)


def embedding(keras):
    inp = keras.Input((5,), dtype="int32", name="ids")
    h = keras.layers.Embedding(11, 6, name="emb")(inp)
    h = keras.layers.GlobalAveragePooling1D()(h)
    out = keras.layers.Dense(4, activation="softmax", name="head")(h)
    ids = np.random.default_rng(3).integers(0, 11, size=(6, 5)).astype(np.int32)
    return keras.Model(inp, out, name="embedding_q"), ids


def subclassed(keras):
    class TwoDense(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.first = keras.layers.Dense(8, activation="gelu", name="first")
            self.second = keras.layers.EinsumDense("ab,bc->ac", 3, bias_axes="c", name="second")

        def call(self, x):
            return self.second(self.first(x))

    model = TwoDense(name="subclassed_q")
    x = _normal((4, 5), 4)
    model(x)
    return model, x


def mixed_bfloat16(keras):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inp = keras.Input((6,))
        h = keras.layers.Dense(8, activation="relu", name="m1")(inp)
        out = keras.layers.Dense(3, name="m2", dtype="float32")(h)
        model = keras.Model(inp, out, name="mixed_q")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model, _normal((5, 6), 5)


def attention(keras):
    """A self-attention block: Keras quantizes MultiHeadAttention's four EinsumDense
    projections (its inner layers), not the layer itself."""
    inp = keras.Input((5, 8), name="seq")
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(inp, inp)
    h = keras.layers.LayerNormalization(name="ln")(keras.layers.Add()([inp, h]))
    h = keras.layers.GlobalAveragePooling1D()(h)
    out = keras.layers.Dense(3, name="head")(h)
    return keras.Model(inp, out, name="attention_q"), _normal((4, 5, 8), 6)


def grouped_query_attention(keras):
    """A self-attention block of grouped queries (four query heads sharing two key/value
    heads): Keras quantizes GroupQueryAttention's four EinsumDense projections."""
    inp = keras.Input((5, 8), name="seq")
    gqa = keras.layers.GroupQueryAttention(
        head_dim=4, num_query_heads=4, num_key_value_heads=2, name="gqa"
    )
    h = keras.layers.LayerNormalization(name="ln")(keras.layers.Add()([inp, gqa(inp, inp)]))
    h = keras.layers.GlobalAveragePooling1D()(h)
    out = keras.layers.Dense(3, name="head")(h)
    return keras.Model(inp, out, name="gqa_q"), _normal((4, 5, 8), 8)


PROGRAMS = {
    "functional": functional,
    "sequential_3d": sequential_3d,
    "embedding": embedding,
    "subclassed": subclassed,
    "mixed_bfloat16": mixed_bfloat16,
    "attention": attention,
    "grouped_query_attention": grouped_query_attention,
}
