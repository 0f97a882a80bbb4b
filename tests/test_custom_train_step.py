"""A model's own train_step / test_step / predict_step, traced and compiled
(``trainers.custom_step``), with the gradient API of ``trainers.gradients``.

Keras's numbers come from ``tests/keras_fixtures/custom_steps.npz``, made by real Keras
(3.15.1, JAX) running the same program (``tests/fixture_scripts/make_custom_step_fixtures.py``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers, ops

HERE = Path(__file__).parent
FIXTURE = np.load(HERE / "keras_fixtures" / "custom_steps.npz")
_spec = importlib.util.spec_from_file_location(
    "make_custom_step_fixtures", HERE / "fixture_scripts" / "make_custom_step_fixtures.py"
)
program = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(program)

START = [FIXTURE[f"start_{i}"] for i in range(8)]


def tape_style_model():
    """The same step as the fixture's, written as TensorFlow's guide writes it."""

    class CustomModel(keras.Model):
        def train_step(self, data):
            x, y = data
            with keras.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(y=y, y_pred=y_pred)
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(grads, self.trainable_variables)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

        def test_step(self, data):
            x, y = data
            y_pred = self(x, training=False)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    return program.build(keras, CustomModel)


def _check_against_keras(out: dict) -> None:
    for key in ("history_loss", "history_mae", "evaluate_loss", "evaluate_mae", "predict"):
        np.testing.assert_allclose(out[key], FIXTURE[key], rtol=2e-4, atol=2e-5, err_msg=key)
    for i in range(8):
        np.testing.assert_allclose(
            out[f"final_{i}"], FIXTURE[f"final_{i}"], rtol=2e-4, atol=2e-5, err_msg=f"weight {i}"
        )


@pytest.mark.parametrize("style", ["stateless", "tape"])
def test_a_custom_train_step_trains_as_keras_does(style):
    if style == "stateless":
        model = program.jax_style_model(keras, keras.value_and_grad)
    else:
        model = tape_style_model()
    _check_against_keras(program.run(model, START))


def test_the_default_steps_written_with_the_api_match_the_built_in_ones():
    """A model overriding only predict_step gets Keras's default train and test steps,
    written with the gradient API; they must train as the built-in steps do."""

    class OwnPredict(keras.Model):
        def predict_step(self, data):
            return {"value": self(data, training=False), "double": 2.0 * self(data)}

    own = program.run(program.build(keras, OwnPredict), START)
    plain = program.run(program.build(keras, keras.Model), START)
    for key in ("history_loss", "history_mae", "evaluate_loss", "final_0", "final_7"):
        np.testing.assert_allclose(own[key], plain[key], rtol=1e-5, atol=1e-6, err_msg=key)
    model = program.build(keras, OwnPredict)
    x, _ = program.data()
    out = model.predict(x[:5], verbose=0)
    assert set(out) == {"value", "double"}
    np.testing.assert_allclose(out["double"], 2 * out["value"], rtol=1e-6)


def test_two_optimizers_in_one_step_update_their_own_weights():
    """A GAN's shape of step, linear so the expected SGD update is written out in numpy:
    critic c(v) = v @ a, generator g(z) = z @ b; the critic's loss is mean(c(real)) -
    mean(c(g(z))), then the generator's is mean(c(g(z))) with the updated critic."""

    class Pair(keras.Model):
        def __init__(self):
            super().__init__()
            self.critic = layers.Dense(1, use_bias=False, name="critic")
            self.gen = layers.Dense(3, use_bias=False, name="gen")

        def compile(self, c_opt, g_opt):
            super().compile()
            self.c_opt, self.g_opt = c_opt, g_opt
            self.c_loss = keras.metrics.Mean(name="c_loss")

        def train_step(self, data):
            real, z = data[:, :3], data[:, 3:]
            with keras.GradientTape() as tape:
                c_loss = ops.mean(self.critic(real)) - ops.mean(self.critic(self.gen(z)))
            grads = tape.gradient(c_loss, self.critic.trainable_weights)
            self.c_opt.apply_gradients(zip(grads, self.critic.trainable_weights))
            with keras.GradientTape() as tape:
                g_loss = ops.mean(self.critic(self.gen(z)))
            grads = tape.gradient(g_loss, self.gen.trainable_weights)
            self.g_opt.apply(grads, self.gen.trainable_weights)
            self.c_loss.update_state(c_loss)
            return {"c_loss": self.c_loss.result(), "g_loss": g_loss}

    model = Pair()
    model.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.2))
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(8, 5)).astype("float32")
    model.critic.build((None, 3))
    model.gen.build((None, 2))
    a = model.critic.kernel.numpy().copy()
    b = model.gen.kernel.numpy().copy()
    logs = model.train_on_batch(batch, return_dict=True)
    real, z = batch[:, :3].astype(np.float64), batch[:, 3:].astype(np.float64)
    c_loss = (real @ a).mean() - (z @ b @ a).mean()
    a1 = a - 0.1 * (real.mean(0) - (z @ b).mean(0))[:, None]
    g_loss = (z @ b @ a1).mean()
    b1 = b - 0.2 * np.outer(z.mean(0), a1[:, 0])
    np.testing.assert_allclose(model.critic.kernel.numpy(), a1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.gen.kernel.numpy(), b1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logs["c_loss"], c_loss, rtol=1e-5)
    np.testing.assert_allclose(logs["g_loss"], g_loss, rtol=1e-5)
    assert model.c_opt.iterations == 1 and model.g_opt.iterations == 1


def test_a_step_that_grows_the_batch_is_compiled_per_batch_size():
    """Concatenating along the batch (a GAN's real and fake images) is traced for each
    batch size met, as JAX's jit retraces; the last, smaller batch too."""

    class Grow(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(1, name="d")

        def train_step(self, x):
            both = ops.concatenate([x, 2.0 * x], axis=0)
            with keras.GradientTape() as tape:
                loss = ops.mean(ops.square(self.dense(both)))
            grads = tape.gradient(loss, self.dense.trainable_weights)
            self.optimizer.apply(grads, self.dense.trainable_weights)
            return {"loss": loss, "rows": ops.cast(ops.shape(both)[0], "float32")}

    model = Grow()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    x = np.random.default_rng(1).normal(size=(10, 4)).astype("float32")
    history = model.fit(x, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    assert history["rows"] == [4.0]  # the last batch has 2 rows: 2 * 2
    assert model.optimizer.iterations == 3


def test_value_and_grad_counts_only_the_paths_through_the_function():
    class Probe(keras.Model):
        def train_step(self, x):
            y = ops.sum(x * x)  # depends on x outside fn: not part of d fn / d x

            def fn(v):
                return ops.sum(3.0 * v) + 0.0 * y

            value, grad = keras.value_and_grad(fn)(x)
            g2 = keras.grad(lambda v, w: ops.sum(v * w), argnums=(0, 1))(x, 2.0 * x)
            return {
                "value": value,
                "grad": ops.sum(grad),
                "g2_first": ops.sum(g2[0]),
                "g2_second": ops.sum(g2[1]),
            }

    model = Probe()
    model.compile()
    x = np.arange(6, dtype="float32").reshape(3, 2)
    logs = model.train_on_batch(x, return_dict=True)
    assert logs["value"] == pytest.approx(3 * x.sum())
    assert logs["grad"] == pytest.approx(3 * x.size)
    assert logs["g2_first"] == pytest.approx((2 * x).sum())
    assert logs["g2_second"] == pytest.approx(x.sum())


def test_outside_a_step_the_api_refuses_with_the_reason():
    with pytest.raises(RuntimeError, match="inside a traced step"):
        keras.value_and_grad(lambda v: v)(np.ones(2, "float32"))
    opt = keras.optimizers.SGD()
    with pytest.raises(NotImplementedError, match="inside a model's train_step"):
        opt.apply([np.ones(2)], [keras.Variable(np.ones(2, "float32"))])
    model = program.build(keras, keras.Model)
    with pytest.raises(NotImplementedError, match="runs inside the step kcompile traces"):
        model.train_step((np.ones((2, 6)), np.ones((2, 1))))


def test_a_metric_result_is_a_log_not_a_number_inside_the_step():
    class Misuse(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(1)
            self.tracker = keras.metrics.Mean(name="m")

        def train_step(self, x):
            self.tracker.update_state(ops.mean(self.dense(x)))
            return {"twice": self.tracker.result() * 2.0}

    model = Misuse()
    model.compile()
    with pytest.raises(TypeError, match="return it in the logs"):
        model.train_on_batch(np.ones((2, 3), "float32"))


def test_weight_constraints_apply_after_each_update_as_keras_does():
    start = [FIXTURE[f"constraint_start_{i}"] for i in range(4)]
    out = program.run_constrained(program.constrained(keras), start)
    for i in range(4):
        np.testing.assert_allclose(
            out[f"constraint_final_{i}"], FIXTURE[f"constraint_final_{i}"], rtol=2e-4, atol=2e-5
        )
    assert FIXTURE["constraint_final_1"].min() >= 0  # NonNeg bit: the check can fail
    assert np.linalg.norm(out["constraint_final_2"]) == pytest.approx(1.0, rel=1e-5)


def test_stateless_call_on_arrays_uses_the_given_weights_and_leaves_the_layer_as_it_was():
    layer = layers.Dense(2)
    x = np.ones((3, 4), "float32")
    layer.build((None, 4))
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    given = [np.full((4, 2), 0.5, "float32"), np.array([1.0, -1.0], "float32")]
    out, non_trainable = layer.stateless_call(given, [], x)
    np.testing.assert_allclose(out, x @ given[0] + given[1], rtol=1e-6)
    assert non_trainable == []
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)
    np.testing.assert_array_equal(layer.bias.numpy(), bias)
    with pytest.raises(ValueError, match="expected 2 trainable"):
        layer.stateless_call(given[:1], [], x)


def test_symbolic_call_and_call_signature_parameters():
    dense = layers.Dense(3)
    y = dense.symbolic_call(keras.Input(shape=(4,)))
    assert tuple(y.shape) == (None, 3)
    with pytest.raises(TypeError, match="symbolic tensors"):
        dense.symbolic_call(np.ones((1, 4)))
    assert dense.call_signature_parameters[0] == "inputs"

    class Mine(keras.layers.Layer):
        def call(self, x, mask=None, training=None):
            return x

    assert Mine().call_signature_parameters == ["x", "mask", "training"]


def test_state_tree_round_trip_and_train_function():
    model = program.build(keras, keras.Model)
    model.set_weights(START)
    tree_ = model.get_state_tree()
    assert set(tree_) >= {"trainable_variables", "non_trainable_variables"}
    kernel = tree_["trainable_variables"]["hidden"]["kernel"]
    np.testing.assert_array_equal(kernel, START[0])
    x, y = program.data()
    step = model.make_train_function()
    assert model.train_function is step
    logs = step(iter([(x[:16], y[:16])]))
    assert set(logs) == {"loss", "mae"}
    assert not np.array_equal(model.get_weights()[0], START[0])
    model.set_state_tree(tree_)
    np.testing.assert_array_equal(model.get_weights()[0], START[0])
    predictions = model.make_predict_function()(iter([x[:4]]))
    assert predictions.shape == (4, 1)


def test_a_vae_holding_its_models_trains_and_its_trackers_read_what_fit_reported():
    """keras-io's VAE shape: no call() and no graph of its own, only the encoder and
    decoder it holds; a sampling layer draws noise; trackers are Mean metrics."""

    class Sampling(layers.Layer):
        def __init__(self):
            super().__init__()
            self.seed_generator = keras.random.SeedGenerator(3)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * eps

    inputs = keras.Input(shape=(6,))
    h = layers.Dense(8, activation="relu")(inputs)
    z_mean, z_log_var = layers.Dense(2)(h), layers.Dense(2)(h)
    encoder = keras.Model(inputs, [z_mean, z_log_var, Sampling()([z_mean, z_log_var])])
    latent = keras.Input(shape=(2,))
    decoder = keras.Model(latent, layers.Dense(6, activation="sigmoid")(latent))

    class VAE(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = encoder, decoder
            self.total = keras.metrics.Mean(name="total_loss")

        @property
        def metrics(self):
            return [self.total]

        def train_step(self, data):
            with keras.GradientTape() as tape:
                z_mean, z_log_var, z = self.encoder(data)
                rec = ops.mean(
                    ops.sum(
                        keras.losses.binary_crossentropy(
                            data[..., None], self.decoder(z)[..., None]
                        ),
                        axis=1,
                    )
                )
                kl = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
                loss = rec + ops.mean(ops.sum(kl, axis=1))
            grads = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
            self.total.update_state(loss)
            return {"loss": self.total.result()}

    vae = VAE()
    assert len(vae.trainable_weights) == len(encoder.trainable_weights) + 2
    vae.compile(optimizer=keras.optimizers.Adam(0.01))
    data = np.random.default_rng(2).random((64, 6)).astype("float32")
    history = vae.fit(data, epochs=3, batch_size=16, verbose=0).history["loss"]
    assert history[-1] < history[0]
    assert vae.total.result() == pytest.approx(history[-1], rel=1e-6)
    # The encoder was never compiled: its predict draws at step 0.
    means, _, _ = encoder.predict(data[:3], verbose=0)
    assert means.shape == (3, 2)


def test_metrics_of_predictions_and_a_tape_on_a_vector_inside_a_step():
    """A metric of (y_true, y_pred) updated in the step (MeanAbsoluteError), and a tape
    asked for the gradient of a vector (TensorFlow's: of its sum)."""

    class Probe(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(1, kernel_initializer="ones", use_bias=False)
            self.mae = keras.metrics.MeanAbsoluteError(name="mae")

        def train_step(self, data):
            x, y = data
            with keras.GradientTape() as tape:
                y_pred = self.dense(x)
            grads = tape.gradient(y_pred, self.dense.trainable_weights)
            self.mae.update_state(y, y_pred)
            return {"mae": self.mae.result(), "grad": ops.sum(grads[0])}

    model = Probe()
    model.compile()
    x = np.arange(6, dtype="float32").reshape(3, 2)
    y = np.array([[0.0], [2.0], [10.0]], "float32")
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["mae"] == pytest.approx(float(np.mean(np.abs(x.sum(1, keepdims=True) - y))))
    assert logs["grad"] == pytest.approx(float(x.sum()))
