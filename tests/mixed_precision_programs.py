"""Models under Keras's dtype policies, written once for Keras and kcompile (``K`` is
either module): what ``make_mixed_precision_fixtures.py`` runs on Keras 3 and
``test_mixed_precision.py`` checks kcompile against. Each program sets its policy,
builds its model and returns (model, inputs, labels); the caller restores float32."""

from __future__ import annotations

import numpy as np


def _rng():
    return np.random.RandomState(0)


def mlp_float32_head(K):
    """Keras's mixed-precision guide: bf16 hidden layers, the softmax in float32."""
    K.mixed_precision.set_global_policy("mixed_bfloat16")
    rng = _rng()
    x = rng.randn(6, 12).astype("float32")
    i = K.Input((12,))
    h = K.layers.Dense(24, activation="relu")(i)
    h = K.layers.Dense(16, activation="gelu")(h)
    y = K.layers.Dense(5, activation="softmax", dtype="float32")(h)
    return K.Model(i, y), x, rng.randint(0, 5, 6)


def cnn_batchnorm(K):
    """A convolution, BatchNormalization (float32 statistics), pooling, a bf16 head."""
    K.config.set_dtype_policy("mixed_bfloat16")
    rng = _rng()
    x = rng.randn(4, 8, 8, 2).astype("float32")
    i = K.Input((8, 8, 2))
    h = K.layers.Conv2D(6, 3, padding="same", activation="relu")(i)
    h = K.layers.BatchNormalization()(h)
    h = K.layers.MaxPooling2D()(h)
    h = K.layers.Flatten()(h)
    y = K.layers.Dense(3, activation="softmax")(h)
    return K.Model(i, y), x, rng.randint(0, 3, 4)


def encoder_block(K):
    """Attention, LayerNormalization and a GELU feed-forward in bf16."""
    K.mixed_precision.set_global_policy("mixed_bfloat16")
    rng = _rng()
    x = rng.randn(3, 6, 8).astype("float32")
    i = K.Input((6, 8))
    a = K.layers.MultiHeadAttention(num_heads=2, key_dim=4)(i, i)
    h = K.layers.LayerNormalization()(i + a)
    f = K.layers.Dense(8)(K.layers.Dense(16, activation="gelu")(h))
    h = K.layers.LayerNormalization()(h + f)
    h = K.layers.GlobalAveragePooling1D()(h)
    y = K.layers.Dense(4, activation="softmax", dtype="float32")(h)
    return K.Model(i, y), x, rng.randint(0, 4, 3)


def per_layer_policies(K):
    """No global policy: one layer in bf16 (``dtype="bfloat16"``), one mixed."""
    rng = _rng()
    x = rng.randn(5, 7).astype("float32")
    i = K.Input((7,))
    h = K.layers.Dense(9, activation="tanh", dtype="mixed_bfloat16")(i)
    h = K.layers.Dense(6, activation="sigmoid", dtype="bfloat16")(h)
    y = K.layers.Dense(2)(h)
    return K.Model(i, y), x, rng.randint(0, 2, 5)


def bfloat16_variables(K):
    """A ``"bfloat16"`` global policy: bf16 variables, updated in bf16 by the optimizer
    (slots in bf16 too), beside a float32 layer."""
    K.mixed_precision.set_global_policy("bfloat16")
    rng = _rng()
    x = rng.randn(8, 10).astype("float32")
    i = K.Input((10,))
    h = K.layers.Dense(12, activation="relu")(i)
    h = K.layers.Dense(7, activation="tanh")(h)
    y = K.layers.Dense(3, activation="softmax", dtype="float32")(h)
    return K.Model(i, y), x, rng.randint(0, 3, 8)


PROGRAMS = {
    "bfloat16_variables": bfloat16_variables,
    "mlp_float32_head": mlp_float32_head,
    "cnn_batchnorm": cnn_batchnorm,
    "encoder_block": encoder_block,
    "per_layer_policies": per_layer_policies,
}
