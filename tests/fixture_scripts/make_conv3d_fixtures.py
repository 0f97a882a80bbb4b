"""Makes ``tests/keras_fixtures/conv3d_family.npz`` with real Keras (3.15.1, JAX backend):
the outputs of the 3-D convolution family, DepthwiseConv1D, the adaptive poolings and the
ConvLSTMs on fixed inputs and weights (numpy's, seeded), so the tests compare kcompile's
numbers with Keras's on the same weights without Keras installed.

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_conv3d_fixtures.py

Each case is a layer class, its keyword arguments, an input shape (a batch of 2: the tests
run the cases in one model) and, for the ConvLSTMs,
whether the call passes ``initial_state``; ``CASES`` is read by the tests too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# name: (class, kwargs, input shape, initial_state given)
CASES: dict[str, tuple[str, dict, tuple[int, ...], bool]] = {
    "conv3d_valid": ("Conv3D", {"filters": 3, "kernel_size": (2, 3, 2)}, (2, 4, 5, 6, 2), False),
    "conv3d_same_strided": (
        "Conv3D",
        {
            "filters": 2,
            "kernel_size": 3,
            "strides": (2, 1, 2),
            "padding": "same",
            "activation": "tanh",
        },
        (2, 5, 4, 7, 3),
        False,
    ),
    "conv3d_dilated": (
        "Conv3D",
        {"filters": 2, "kernel_size": 2, "dilation_rate": (2, 1, 2), "use_bias": False},
        (2, 5, 4, 5, 2),
        False,
    ),
    "conv3d_transpose_same": (
        "Conv3DTranspose",
        {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"},
        (2, 3, 2, 4, 3),
        False,
    ),
    "conv3d_transpose_valid_output_padding": (
        "Conv3DTranspose",
        {"filters": 3, "kernel_size": (2, 3, 3), "strides": (2, 2, 3), "output_padding": (1, 0, 2)},
        (2, 2, 3, 2, 2),
        False,
    ),
    "depthwise_conv1d": (
        "DepthwiseConv1D",
        {"kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2},
        (2, 9, 3),
        False,
    ),
    "depthwise_conv1d_dilated": (
        "DepthwiseConv1D",
        {"kernel_size": 2, "dilation_rate": 3, "activation": "relu"},
        (2, 8, 2),
        False,
    ),
    "conv3d_channels_first": (
        "Conv3D",
        {
            "filters": 2,
            "kernel_size": (2, 3, 2),
            "padding": "same",
            "data_format": "channels_first",
        },
        (2, 3, 4, 5, 3),
        False,
    ),
    "conv3d_transpose_channels_first": (
        "Conv3DTranspose",
        {"filters": 2, "kernel_size": 2, "strides": (2, 1, 2), "data_format": "channels_first"},
        (2, 3, 2, 3, 2),
        False,
    ),
    "depthwise_conv1d_channels_first": (
        "DepthwiseConv1D",
        {"kernel_size": 3, "depth_multiplier": 2, "data_format": "channels_first"},
        (2, 3, 7),
        False,
    ),
    "up_sampling3d_channels_first": (
        "UpSampling3D",
        {"size": (1, 2, 2), "data_format": "channels_first"},
        (2, 2, 2, 3, 2),
        False,
    ),
    "cropping3d": ("Cropping3D", {"cropping": ((1, 0), 1, (0, 2))}, (2, 4, 5, 6, 2), False),
    "zero_padding3d": ("ZeroPadding3D", {"padding": (1, (0, 2), 1)}, (2, 2, 3, 2, 2), False),
    "up_sampling3d": ("UpSampling3D", {"size": (2, 1, 3)}, (2, 2, 3, 2, 2), False),
    "adaptive_avg1d": ("AdaptiveAveragePooling1D", {"output_size": 4}, (2, 10, 3), False),
    "adaptive_max1d_grow": ("AdaptiveMaxPooling1D", {"output_size": 5}, (2, 3, 2), False),
    "adaptive_avg2d": ("AdaptiveAveragePooling2D", {"output_size": (3, 4)}, (2, 7, 9, 2), False),
    "adaptive_max2d_first": (
        "AdaptiveMaxPooling2D",
        {"output_size": (2, 3), "data_format": "channels_first"},
        (2, 3, 5, 7),
        False,
    ),
    "adaptive_avg3d": (
        "AdaptiveAveragePooling3D",
        {"output_size": (2, 3, 4)},
        (2, 5, 6, 7, 2),
        False,
    ),
    "adaptive_max3d": ("AdaptiveMaxPooling3D", {"output_size": 2}, (2, 5, 4, 3, 2), False),
    "conv_lstm1d": (
        "ConvLSTM1D",
        {"filters": 2, "kernel_size": 3, "strides": 2, "return_state": True},
        (2, 3, 7, 2),
        False,
    ),
    "conv_lstm2d": (
        "ConvLSTM2D",
        {
            "filters": 3,
            "kernel_size": (3, 2),
            "padding": "same",
            "return_sequences": True,
            "go_backwards": True,
        },
        (2, 4, 5, 4, 2),
        False,
    ),
    "conv_lstm2d_initial_state": (
        "ConvLSTM2D",
        {"filters": 2, "kernel_size": 2, "return_sequences": True},
        (2, 3, 4, 4, 2),
        True,
    ),
    "conv_lstm2d_channels_first": (
        "ConvLSTM2D",
        {
            "filters": 2,
            "kernel_size": 2,
            "padding": "same",
            "data_format": "channels_first",
            "return_sequences": True,
        },
        (2, 3, 2, 4, 3),
        True,
    ),
    "conv_lstm3d": (
        "ConvLSTM3D",
        {"filters": 2, "kernel_size": 2, "padding": "same", "unit_forget_bias": False},
        (2, 3, 3, 4, 3, 2),
        False,
    ),
}


def arrays_for(name: str, layer, shape, initial: bool) -> dict[str, np.ndarray]:
    """The case's input, weights and initial states, drawn from numpy seeded by its name."""
    rng = np.random.default_rng(sum(map(ord, name)))
    x = rng.normal(size=shape).astype(np.float32)
    layer.build(shape)
    out = {"x": x}
    for i, w in enumerate(layer.get_weights()):
        out[f"w{i}"] = (rng.normal(size=w.shape) * 0.5).astype(np.float32)
    if initial:
        # the cases with initial states return sequences: (batch, time, *state)
        state_shape = (shape[0], *layer.compute_output_shape(shape)[2:])
        for i in range(2):
            out[f"s{i}"] = rng.normal(size=state_shape).astype(np.float32)
    return out


def main() -> None:
    import jax
    import keras

    arrays = {
        "keras_version": np.array(keras.__version__),
        "jax_version": np.array(jax.__version__),
    }
    for name, (cls, kwargs, shape, initial) in CASES.items():
        given = arrays_for(name, getattr(keras.layers, cls)(**kwargs), shape, initial)
        layer, inputs, outputs, feeds = fixture_call(keras, name, given)
        model = keras.Model(inputs, outputs)
        ys = model.predict(feeds, verbose=0)
        ys = list(ys) if isinstance(ys, list | tuple) else [ys]
        for key, value in given.items():
            arrays[f"{name}/{key}"] = value
        for i, v in enumerate(ys):
            arrays[f"{name}/y{i}"] = np.asarray(v)
        config = layer.get_config()
        arrays[f"{name}/config"] = np.array(json.dumps(config, default=str))
    path = Path(__file__).resolve().parent.parent / "keras_fixtures" / "conv3d_family.npz"
    np.savez(path, **arrays)
    print(f"wrote {path}")


def fixture_call(library, name: str, given: dict) -> tuple[object, list, list, list]:
    """The case's layer of ``library`` (``keras`` or ``kcompile``) called on Inputs, its
    weights set to the fixture's: (the layer, the Inputs, the outputs, the arrays to feed)."""
    cls, kwargs, shape, initial = CASES[name]
    layer = getattr(library.layers, cls)(**kwargs)
    inputs = [library.Input(shape[1:])]
    feeds = [given["x"]]
    if initial:
        inputs += [library.Input(given[f"s{i}"].shape[1:]) for i in range(2)]
        feeds += [given["s0"], given["s1"]]
        y = layer(inputs[0], initial_state=inputs[1:])
    else:
        y = layer(inputs[0])
    layer.set_weights([given[f"w{i}"] for i in range(len(layer.weights))])
    return layer, inputs, list(y) if isinstance(y, list | tuple) else [y], feeds


if __name__ == "__main__":
    main()
