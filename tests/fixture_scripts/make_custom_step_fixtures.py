"""Makes ``tests/keras_fixtures/custom_steps.npz`` with real Keras (3.15.1, JAX backend):
a functional model (Dense, BatchNormalization, Dense; Adam; mse; mae) trained by its
own ``train_step`` (written as Keras's JAX guide writes it: ``stateless_call``,
``jax.value_and_grad``, ``optimizer.stateless_apply``, ``stateless_update_state``) for
two epochs without shuffling, and evaluated by its own ``test_step``: the starting
weights, the history, the final weights, the evaluation and the predictions; and a
model whose weights have constraints (MaxNorm, NonNeg, UnitNorm) after one epoch of SGD.

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_custom_step_fixtures.py

``tests/test_custom_train_step.py`` runs the same program on kcompile, with
``kcompile.value_and_grad`` for ``jax.value_and_grad`` (and the same step written with
``kcompile.GradientTape``), from the same starting weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(96, 6)).astype("float32")
    y = (x[:, :1] * 0.5 - x[:, 1:2] + 0.1 * rng.normal(size=(96, 1))).astype("float32")
    return x, y


def build(keras, base):
    inputs = keras.Input(shape=(6,))
    h = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    h = keras.layers.BatchNormalization(name="norm")(h)
    outputs = keras.layers.Dense(1, name="head")(h)
    model = base(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    return model


def jax_style_model(keras, value_and_grad):
    """Keras's guide "Customizing what happens in fit() with JAX", the same code."""

    class CustomModel(keras.Model):
        def compute_loss_and_updates(
            self, trainable_variables, non_trainable_variables, x, y, training=False
        ):
            y_pred, non_trainable_variables = self.stateless_call(
                trainable_variables, non_trainable_variables, x, training=training
            )
            loss = self.compute_loss(x, y, y_pred)
            return loss, (y_pred, non_trainable_variables)

        def train_step(self, state, data):
            trainable, non_trainable, optimizer_variables, metrics_variables = state
            x, y = data
            grad_fn = value_and_grad(self.compute_loss_and_updates, has_aux=True)
            (loss, (y_pred, non_trainable)), grads = grad_fn(
                trainable, non_trainable, x, y, training=True
            )
            trainable, optimizer_variables = self.optimizer.stateless_apply(
                optimizer_variables, grads, trainable
            )
            new_metrics_vars, logs = [], {}
            for metric in self.metrics:
                start = len(new_metrics_vars)
                this = metrics_variables[start : start + len(metric.variables)]
                if metric.name == "loss":
                    this = metric.stateless_update_state(this, loss)
                else:
                    this = metric.stateless_update_state(this, y, y_pred)
                logs[metric.name] = metric.stateless_result(this)
                new_metrics_vars += this
            return logs, (trainable, non_trainable, optimizer_variables, new_metrics_vars)

        def test_step(self, state, data):
            trainable, non_trainable, metrics_variables = state
            x, y = data
            y_pred, non_trainable = self.stateless_call(trainable, non_trainable, x, training=False)
            loss = self.compute_loss(x, y, y_pred)
            new_metrics_vars, logs = [], {}
            for metric in self.metrics:
                start = len(new_metrics_vars)
                this = metrics_variables[start : start + len(metric.variables)]
                if metric.name == "loss":
                    this = metric.stateless_update_state(this, loss)
                else:
                    this = metric.stateless_update_state(this, y, y_pred)
                logs[metric.name] = metric.stateless_result(this)
                new_metrics_vars += this
            return logs, (trainable, non_trainable, new_metrics_vars)

    return build(keras, CustomModel)


def run(model, start: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    if start is not None:
        model.set_weights(start)
    first = [np.array(w) for w in model.get_weights()]
    x, y = data()
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
    evaluation = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    out = {f"start_{i}": w for i, w in enumerate(first)}
    out.update({f"final_{i}": np.array(w) for i, w in enumerate(model.get_weights())})
    for key, values in history.items():
        out[f"history_{key}"] = np.array(values, np.float32)
    for key, value in evaluation.items():
        out[f"evaluate_{key}"] = np.float32(value)
    out["predict"] = np.asarray(model.predict(x[:8], verbose=0))
    return out


def constrained(keras):
    """Weight constraints, applied by the optimizer after each update."""
    inputs = keras.Input(shape=(6,))
    h = keras.layers.Dense(
        4,
        kernel_constraint=keras.constraints.MaxNorm(0.5),
        bias_constraint=keras.constraints.NonNeg(),
        activation="tanh",
    )(inputs)
    outputs = keras.layers.Dense(1, kernel_constraint=keras.constraints.UnitNorm(axis=0))(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    return model


def run_constrained(model, start: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    if start is not None:
        model.set_weights(start)
    first = [np.array(w) for w in model.get_weights()]
    x, y = data()
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    out = {f"constraint_start_{i}": w for i, w in enumerate(first)}
    out.update({f"constraint_final_{i}": np.array(w) for i, w in enumerate(model.get_weights())})
    return out


def main() -> None:
    import jax
    import keras

    keras.utils.set_random_seed(3)
    arrays = run(jax_style_model(keras, jax.value_and_grad))
    arrays.update(run_constrained(constrained(keras)))
    path = Path(__file__).resolve().parents[1] / "keras_fixtures" / "custom_steps.npz"
    np.savez(path, keras_version=keras.__version__, **arrays)
    print(f"wrote {path}: {sorted(arrays)}")


if __name__ == "__main__":
    main()
