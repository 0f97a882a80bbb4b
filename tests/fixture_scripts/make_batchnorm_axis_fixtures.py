"""Makes ``tests/keras_fixtures/batchnorm_axis.npz`` with real Keras (3.15.1, JAX backend):
BatchNormalization over a channel axis that is not the last (axis=1, channels first) and
a positive last axis (axis=3): outputs in inference and in training, and the moving
statistics after the training call.

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_batchnorm_axis_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CASES = {"axis1": (1, (4, 3, 5, 2)), "axis3": (3, (4, 5, 2, 3))}


def main() -> None:
    import keras

    rng = np.random.default_rng(11)
    out = {}
    for name, (axis, shape) in CASES.items():
        layer = keras.layers.BatchNormalization(axis=axis, momentum=0.9)
        layer.build(shape)
        weights = [rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()]
        weights[3] = np.abs(weights[3]) + 0.5  # a variance
        layer.set_weights(weights)
        x = rng.normal(size=shape).astype("float32")
        out[f"{name}/x"] = x
        for i, w in enumerate(weights):
            out[f"{name}/w{i}"] = w
        out[f"{name}/inference"] = np.asarray(layer(x, training=False))
        out[f"{name}/training"] = np.asarray(layer(x, training=True))
        for i, w in enumerate(layer.get_weights()):
            out[f"{name}/after{i}"] = np.asarray(w)
    path = Path(__file__).resolve().parents[1] / "keras_fixtures" / "batchnorm_axis.npz"
    np.savez(path, keras_version=keras.__version__, **out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
