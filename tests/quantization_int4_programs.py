"""Models that ``model.quantize("int4")`` changes, each built by a function of the
``keras`` module (real Keras 3 in ``fixture_scripts/make_int4_fixtures.py``, kcompile in
``test_quantization_int4.py``), and the block size each is quantized with.

Chosen for the corners of Keras's int4: an input dimension that is not a multiple of the
block (130 rows in groups of 128: a last group of 2), one smaller than a block (a single
padded group), small blocks with a ragged last group, odd output widths (the nibbles are
packed along the output axis, padded to an even count), Dense with and without bias and
activation, a 3-D input, and EinsumDense equations whose summed axis leads the kernel
and whose summed axis does not (Keras flattens the kernel to (summed, other) by a plain
reshape, not a transpose: its groups and columns are those of the reshaped array).

Each program returns ``(model, x)``: the model built, its float weights still the
initializer's (the fixture stores Keras's, the test loads them), and an input batch.
``CASES`` maps a case name to ``(program, block_size)``; block_size ``"default"`` means
``model.quantize("int4")`` (Keras's default, 128), anything else
``model.quantize(config=Int4QuantizationConfig(block_size=...))``."""

from __future__ import annotations

import numpy as np


def _normal(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def dense_mlp(keras):
    """130 inputs (two groups of the default 128, the second of 2 rows), 7 units (odd:
    a padded nibble), then a Dense without bias on 7 inputs (one padded group)."""
    inp = keras.Input((130,), name="x")
    h = keras.layers.Dense(7, activation="relu", name="d1")(inp)
    out = keras.layers.Dense(5, use_bias=False, name="d2")(h)
    return keras.Model(inp, out, name="int4_mlp"), _normal((6, 130), 21)


def dense_3d(keras):
    """A 3-D input: Dense applies to the last axis of every position."""
    model = keras.Sequential(
        [
            keras.Input((3, 9)),
            keras.layers.Dense(5, activation="tanh", name="d3"),
            keras.layers.Dense(4, name="d4"),
        ],
        name="int4_3d",
    )
    return model, _normal((4, 3, 9), 22)


def einsum(keras):
    """An EinsumDense whose summed axis leads its kernel ("cde"), then one whose summed
    axis is the kernel's last ("dc": Keras's reshape to (c, d) mixes rows and columns)."""
    model = keras.Sequential(
        [
            keras.Input((4, 6)),
            keras.layers.EinsumDense(
                "abc,cde->abde", output_shape=(4, 2, 3), bias_axes="de", name="proj"
            ),
            keras.layers.Reshape((4, 6)),
            keras.layers.EinsumDense(
                "abc,dc->abd", output_shape=(4, 5), activation="relu", name="back"
            ),
        ],
        name="int4_einsum",
    )
    return model, _normal((3, 4, 6), 23)


CASES = {
    "mlp_default": (dense_mlp, "default"),
    "mlp_per_channel": (dense_mlp, -1),
    "dense_3d_none": (dense_3d, None),
    "dense_3d_block_4": (dense_3d, 4),
    "einsum_default": (einsum, "default"),
    "einsum_per_channel": (einsum, -1),
    "einsum_block_4": (einsum, 4),
}


def quantize(keras, model, block_size) -> None:
    """``model.quantize`` as the case asks."""
    if block_size == "default":
        model.quantize("int4")
    else:
        config = keras.quantizers.Int4QuantizationConfig(block_size=block_size)
        model.quantize(config=config)
