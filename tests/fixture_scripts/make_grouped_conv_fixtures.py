"""Makes ``tests/keras_fixtures/grouped_conv.npz`` with real Keras (3.15.1, JAX backend):
grouped convolutions (``groups=``) on random inputs and weights, and their outputs.

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_grouped_conv_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# name -> (layer class, arguments, input shape)
CASES = {
    "conv2d_g2": ("Conv2D", {"filters": 6, "kernel_size": 3, "groups": 2}, (2, 5, 5, 4)),
    "conv2d_depthwise": (
        "Conv2D",
        {"filters": 8, "kernel_size": 3, "groups": 4, "padding": "same", "strides": 2},
        (2, 5, 5, 4),
    ),
    "conv1d_g2": ("Conv1D", {"filters": 4, "kernel_size": 2, "groups": 2}, (2, 6, 4)),
}


def main() -> None:
    import keras

    rng = np.random.default_rng(5)
    out = {}
    for name, (cls, args, shape) in CASES.items():
        layer = getattr(keras.layers, cls)(**args)
        x = rng.normal(size=shape).astype("float32")
        layer.build(shape)
        weights = [rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()]
        layer.set_weights(weights)
        out[f"{name}/x"] = x
        for i, w in enumerate(weights):
            out[f"{name}/w{i}"] = w
        out[f"{name}/y"] = np.asarray(layer(x))
    path = Path(__file__).resolve().parents[1] / "keras_fixtures" / "grouped_conv.npz"
    np.savez(path, keras_version=keras.__version__, **out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
