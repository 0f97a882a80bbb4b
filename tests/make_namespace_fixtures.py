"""What Keras 3 (JAX backend) computes for the small namespaces that
``test_namespaces_api.py`` checks kcompile against: every activation's values and
gradients (on a grid through each kink, and on NaN), the constraints, the orthogonal
regularizer, the STFT initializer. Writes ``keras_fixtures/namespaces.npz`` (with the Keras and JAX versions).

Run it where Keras is installed, not in kcompile's own environment::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/make_namespace_fixtures.py

(made with Keras 3.15.1 and JAX from that environment).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import keras
import numpy as np

OUT = Path(__file__).resolve().parent / "keras_fixtures" / "namespaces.npz"

GRID = np.array(
    [-7, -6, -3.5, -3, -2, -1.5, -1, -0.75, -0.5, -0.4, -0.25, 0, 0.25, 0.3, 0.4, 0.5,
     0.75, 1, 1.5, 2, 3, 3.5, 6, 7], np.float32,
)  # fmt: skip

# name -> (activation name, keyword arguments, input)
ELEMENTWISE = {
    "relu": ("relu", {}),
    "relu_slope": ("relu", {"negative_slope": 0.1}),
    "relu_max": ("relu", {"max_value": 1.5}),
    "relu_threshold": ("relu", {"threshold": 0.5}),
    "relu_all": ("relu", {"negative_slope": 0.1, "max_value": 2.0, "threshold": 0.5}),
    "relu_six_slope": ("relu", {"negative_slope": 0.2, "max_value": 6.0}),
    "relu6": ("relu6", {}),
    "sigmoid": ("sigmoid", {}),
    "tanh": ("tanh", {}),
    "elu": ("elu", {"alpha": 0.5}),
    "selu": ("selu", {}),
    "gelu": ("gelu", {}),
    "gelu_tanh": ("gelu", {"approximate": True}),
    "softplus": ("softplus", {}),
    "softsign": ("softsign", {}),
    "silu": ("silu", {}),
    "swish": ("swish", {}),
    "leaky_relu": ("leaky_relu", {"negative_slope": 0.1}),
    "hard_sigmoid": ("hard_sigmoid", {}),
    "hard_silu": ("hard_silu", {}),
    "hard_swish": ("hard_swish", {}),
    "exponential": ("exponential", {}),
    "mish": ("mish", {}),
    "linear": ("linear", {}),
    "celu": ("celu", {"alpha": 0.7}),
    "hard_shrink": ("hard_shrink", {"threshold": 0.4}),
    "hard_tanh": ("hard_tanh", {}),
    "log_sigmoid": ("log_sigmoid", {}),
    "soft_shrink": ("soft_shrink", {"threshold": 0.4}),
    "sparse_plus": ("sparse_plus", {}),
    "sparse_sigmoid": ("sparse_sigmoid", {}),
    "squareplus": ("squareplus", {"b": 2}),
    "tanh_shrink": ("tanh_shrink", {}),
    "threshold": ("threshold", {"threshold": 0.3, "default_value": -1.0}),
}

ROWS = np.array(
    [[1.0, 2.0, 0.5, -1.0, 0.25], [0.0, 0.0, 0.0, 0.0, 0.0], [3.0, -2.0, 3.0, 0.1, 2.9]],
    np.float32,
)
ALONG_AXIS = {
    "softmax": ("softmax", {}),
    "log_softmax": ("log_softmax", {}),
    "sparsemax": ("sparsemax", {}),
    "sparsemax_axis0": ("sparsemax", {"axis": 0}),
    "glu": ("glu", {}),
    "glu_axis0": ("glu", {"axis": 0}),
}
GLU_INPUT = np.arange(-11, 13, dtype=np.float32).reshape(4, 6) / 5.0


def activation_fixtures(out: dict) -> None:
    weights = np.random.default_rng(0).normal(size=32).astype(np.float32)
    cases = {name: (spec, GRID) for name, spec in ELEMENTWISE.items()}
    cases.update(
        {
            name: (spec, GLU_INPUT if name.startswith("glu") else ROWS)
            for name, spec in ALONG_AXIS.items()
        }
    )
    for name, ((fn_name, kwargs), x) in cases.items():
        fn = getattr(keras.activations, fn_name)
        y = np.asarray(fn(jnp.asarray(x), **kwargs))
        # a weighted sum, so that softmax's gradient is not 0
        w = jnp.asarray(weights[: y.size].reshape(y.shape))

        def loss(v, fn=fn, kwargs=kwargs, w=w):
            return jnp.sum(fn(v, **kwargs) * w)

        out[f"act/{name}/x"] = x
        out[f"act/{name}/y"] = y
        out[f"act/{name}/grad"] = np.asarray(jax.grad(loss)(jnp.asarray(x)))
        out[f"act/{name}/w"] = np.asarray(w)
        if x is GRID:
            nan = np.array([np.nan, -1.0, np.nan, 2.0], np.float32)
            out[f"act/{name}/nan"] = np.asarray(fn(jnp.asarray(nan), **kwargs))


def constraint_fixtures(out: dict) -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 3, 5)).astype(np.float32) * 2.0
    out["constraint/w"] = w
    cases = {
        "max_norm": keras.constraints.MaxNorm(max_value=1.5, axis=0),
        "max_norm_axes": keras.constraints.MaxNorm(max_value=2.0, axis=[0, 1]),
        "min_max_norm": keras.constraints.MinMaxNorm(0.5, 1.2, rate=0.7, axis=1),
        "min_max_norm_rate1": keras.constraints.MinMaxNorm(1.0, 3.0, axis=-1),
        "non_neg": keras.constraints.NonNeg(),
        "unit_norm": keras.constraints.UnitNorm(axis=0),
        "unit_norm_last": keras.constraints.UnitNorm(axis=-1),
    }
    for name, c in cases.items():
        out[f"constraint/{name}"] = np.asarray(c(jnp.asarray(w)))


def regularizer_fixtures(out: dict) -> None:
    rng = np.random.default_rng(2)
    w = rng.normal(size=(6, 4)).astype(np.float32)
    out["regularizer/w"] = w
    for mode in ("rows", "columns"):
        r = keras.regularizers.OrthogonalRegularizer(factor=0.3, mode=mode)
        out[f"regularizer/orthogonal_{mode}"] = np.asarray(r(jnp.asarray(w)))


STFT_CASES = {
    "hann_density": ({"side": "real", "window": "hann", "scaling": "density"}, (8, 1, 5)),
    "hamming_spectrum_periodic": (
        {"side": "imag", "window": "hamming", "scaling": "spectrum", "periodic": True},
        (6, 1, 4),
    ),
    "no_window": ({"side": "real", "window": None}, (4, 1, 3)),
    "blackman": ({"side": "imag", "window": "blackman", "scaling": None}, (7, 1, 4)),
}


def initializer_fixtures(out: dict) -> None:
    for name, (config, shape) in STFT_CASES.items():
        out[f"stft/{name}"] = np.asarray(keras.initializers.STFT(**config)(shape))


def main() -> None:
    out: dict = {}
    activation_fixtures(out)
    constraint_fixtures(out)
    regularizer_fixtures(out)
    initializer_fixtures(out)
    out["versions"] = np.array(f"keras {keras.__version__}, jax {jax.__version__}")
    np.savez(OUT, **out)
    print(f"wrote {len(out)} arrays to {OUT}")


if __name__ == "__main__":
    main()
