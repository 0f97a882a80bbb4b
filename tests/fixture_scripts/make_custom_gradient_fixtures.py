"""Makes ``tests/keras_fixtures/custom_gradient.npz`` with real Keras (3.15.1, JAX backend):
``keras.ops.custom_gradient`` as its docstring writes it (``log1pexp``, whose rule stays
finite where autodiff of ``log(1 + exp(x))`` gives nan), a function of two arguments and
two outputs, and a model with a straight-through rounding and a gradient-reversal layer
trained by ``fit``: the values, the gradients (``jax.grad``), the history, the final
weights and the predictions.

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_custom_gradient_fixtures.py

``tests/test_custom_gradient.py`` runs the same functions and model on kcompile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

X = np.array([[-30.0, -1.5, 0.0], [0.5, 2.0, 100.0]], dtype="float32")
C = np.array([[1.0, -2.0, 0.5], [3.0, 1.5, -1.0]], dtype="float32")  # weights of the sum
W = np.array([0.5, -1.25, 2.0], dtype="float32")


def log1pexp_forms(keras):
    """The docstring's three forms: for every backend, JAX/TensorFlow's, PyTorch's."""
    ops = keras.ops

    @ops.custom_gradient
    def any_backend(x):
        e = ops.exp(x)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return ops.multiply(upstream, 1.0 - 1.0 / ops.add(1, e))

        return ops.log(1 + e), grad

    @ops.custom_gradient
    def jax_style(x):
        e = ops.exp(x)

        def grad(upstream):
            return ops.multiply(upstream, 1.0 - 1.0 / ops.add(1, e))

        return ops.log(1 + e), grad

    @ops.custom_gradient
    def torch_style(x):
        e = ops.exp(x)

        def grad(*args, upstream):
            return ops.multiply(upstream, 1.0 - 1.0 / ops.add(1, e))

        return ops.log(1 + e), grad

    return {"any_backend": any_backend, "jax_style": jax_style, "torch_style": torch_style}


def two_in_two_out(keras):
    """``(x * w, sin(x))`` with its true gradient as the rule; ``w`` broadcasts over the
    rows, so its gradient sums them."""
    ops = keras.ops

    @ops.custom_gradient
    def scaled_and_sine(x, w):
        def grad(upstream):
            up_scaled, up_sine = upstream
            dx = up_scaled * w + up_sine * ops.cos(x)
            dw = ops.sum(up_scaled * x, axis=0)
            return dx, dw

        return (x * w, ops.sin(x)), grad

    return scaled_and_sine


def custom_gradient_layers(keras):
    """A straight-through rounding (round forward, identity backward) and a gradient
    reversal (identity forward, ``-strength`` times the gradient backward)."""
    ops = keras.ops

    @ops.custom_gradient
    def round_straight_through(x):
        def grad(upstream):
            return upstream

        return ops.round(x), grad

    @ops.custom_gradient
    def reverse_gradient(x, strength):
        def grad(upstream):
            return -strength * upstream, None

        return x, grad

    class StraightThroughRound(keras.layers.Layer):
        def call(self, x):
            return round_straight_through(x)

    class GradientReversal(keras.layers.Layer):
        def __init__(self, strength, **kwargs):
            super().__init__(**kwargs)
            self.strength = strength

        def call(self, x):
            return reverse_gradient(x, self.strength)

    return StraightThroughRound, GradientReversal


def fit_data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x[:, :1] - 0.5 * x[:, 2:3]).astype("float32")
    weights = [
        (rng.normal(size=(4, 6)) * 1.5).astype("float32"),
        (rng.normal(size=(6,)) * 0.1).astype("float32"),
        (rng.normal(size=(6, 1)) * 0.5).astype("float32"),
        np.zeros((1,), "float32"),
    ]
    return x, y, weights


def build_model(keras, base=None):
    straight_through, reversal = custom_gradient_layers(keras)
    inputs = keras.Input(shape=(4,))
    h = keras.layers.Dense(6, name="features")(inputs)
    h = straight_through(name="round")(h)
    h = reversal(0.5, name="reverse")(h)
    outputs = keras.layers.Dense(1, name="head")(h)
    model = (base or keras.Model)(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.02), loss="mse")
    return model


def fit(model):
    x, y, weights = fit_data()
    model.set_weights(weights)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return {
        "history_loss": np.array(history.history["loss"], "float32"),
        "predict": np.asarray(model.predict(x, verbose=0)),
        **{f"final_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())},
    }


def main() -> None:
    import jax
    import keras

    out = {}
    for name, fn in log1pexp_forms(keras).items():
        if name == "torch_style":
            continue  # (Keras's JAX backend calls grad(upstream): this form is PyTorch's)
        out[f"{name}_value"] = np.asarray(fn(X))
        out[f"{name}_grad"] = np.asarray(jax.grad(lambda x, fn=fn: (fn(x) * C).sum())(X))
    f = two_in_two_out(keras)

    def loss(x, w):
        scaled, sine = f(x, w)
        return (scaled * C).sum() + (sine * C[::-1]).sum()

    out["two_dx"], out["two_dw"] = (np.asarray(g) for g in jax.grad(loss, argnums=(0, 1))(X, W))
    out.update(fit(build_model(keras)))
    path = Path(__file__).resolve().parents[1] / "keras_fixtures" / "custom_gradient.npz"
    np.savez(path, **out)
    print(f"wrote {path}: {', '.join(sorted(out))}")


if __name__ == "__main__":
    main()
