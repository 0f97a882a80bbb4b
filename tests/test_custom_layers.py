"""Custom layers with Keras's contract, as Keras's "making new layers and models via
subclassing" guide writes them, traced into IR: eagerly, in functional models, trained
natively and against the reference backend; and functional-API arithmetic on tensors."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers, ops
from kcompile.backend.symbolic import TraceError


class Linear(keras.layers.Layer):
    """The guide's first layer: weights made in ``__init__``."""

    def __init__(self, units=32, input_dim=32):
        super().__init__()
        self.w = self.add_weight(
            shape=(input_dim, units), initializer="random_normal", trainable=True
        )
        self.b = self.add_weight(shape=(units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


class LazyLinear(keras.layers.Layer):
    """The guide's second form: weights made in ``build`` from the input shape."""

    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="random_normal", name="kernel"
        )
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


class MLPBlock(keras.layers.Layer):
    """Nested layers, tracked as attributes."""

    def __init__(self):
        super().__init__()
        self.linear_1 = LazyLinear(16)
        self.linear_2 = LazyLinear(16)
        self.linear_3 = LazyLinear(1)

    def call(self, inputs):
        x = ops.relu(self.linear_1(inputs))
        x = ops.nn.gelu(self.linear_2(x))
        return self.linear_3(x)


class ComputeSum(keras.layers.Layer):
    """The guide's non-trainable weight, updated by each call."""

    def __init__(self, input_dim):
        super().__init__()
        self.total = self.add_weight(
            initializer="zeros", shape=(input_dim,), trainable=False, name="total"
        )

    def call(self, inputs):
        self.total.assign_add(ops.sum(inputs, axis=0))
        return self.total


class NoisyScale(keras.layers.Layer):
    """Behaves differently in training (Keras passes ``training``)."""

    def call(self, inputs, training=None):
        return inputs * (2.0 if training else 1.0)


class Pair(keras.layers.Layer):
    """A list of inputs and a dict of inputs."""

    def call(self, inputs):
        if isinstance(inputs, dict):
            return inputs["a"] * inputs["b"]
        a, b = inputs
        return ops.concatenate([a, b * 2.0], axis=-1)


def test_eager_call_makes_and_uses_weights():
    keras.utils.set_random_seed(0)
    layer = Linear(4, 2)
    x = np.ones((2, 2), "float32")
    y = layer(x)
    np.testing.assert_allclose(y, x @ layer.w.numpy() + layer.b.numpy(), rtol=1e-6)
    assert [w.shape for w in layer.weights] == [(2, 4), (4,)]
    lazy = LazyLinear(3)
    assert lazy.weights == [] and lazy(x).shape == (2, 3) and len(lazy.weights) == 2
    assert [w.path for w in lazy.weights] == [f"{lazy.name}/kernel", f"{lazy.name}/bias"]


def test_nested_layers_are_tracked():
    block = MLPBlock()
    block(np.ones((1, 8), "float32"))
    assert len(block.weights) == 6 and len(block.trainable_weights) == 6
    frozen = ComputeSum(2)
    assert frozen.trainable_weights == [] and len(frozen.non_trainable_weights) == 1
    x = ops.ones((2, 2))
    y = frozen(x)
    np.testing.assert_array_equal(y.numpy(), [2.0, 2.0])
    # Keras returns the variable ``call`` returns, itself: the guide's ``y.numpy()``
    # then reads its value after the next call too
    assert y is frozen.total
    np.testing.assert_array_equal(frozen(x).numpy(), [4.0, 4.0])  # as the guide prints
    np.testing.assert_array_equal(y.numpy(), [4.0, 4.0])


def test_a_state_update_in_call_is_written_by_each_train_step():
    inputs = keras.Input((2,))
    counter = ComputeSum(2)
    summed = counter(inputs)
    model = keras.Model(inputs, layers.Dense(1)(inputs + ops.sum(summed) * 0.0))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((8, 2), "float32"), np.zeros((8, 1), "float32"), batch_size=4, verbose=0)
    np.testing.assert_array_equal(counter.total.numpy(), [8.0, 8.0])  # two steps of 4 rows


def _regression(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(128, 8)).astype("float32")
    return x, (x[:, :1] * 2 - x[:, 1:2] + 0.5).astype("float32")


@pytest.mark.parametrize("backend", ["llvm", "reference"])
def test_a_model_of_custom_layers_trains(backend):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, MLPBlock()(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", backend=backend)
    x, y = _regression()
    losses = model.fit(x, y, epochs=8, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < 0.25 * losses[0]
    assert model.count_params() == 8 * 16 + 16 + 16 * 16 + 16 + 16 + 1


def test_native_and_reference_agree_on_custom_layers():
    x, y = _regression(1)
    results = []
    for backend in ("llvm", "reference"):
        keras.utils.set_random_seed(5)
        inputs = keras.Input((8,))
        h = NoisyScale()(Pair()([inputs, inputs]))
        model = keras.Model(inputs, MLPBlock()(h))
        model.compile(optimizer="sgd", loss="mse", backend=backend)
        model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
        results.append((model.predict(x, verbose=0), model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=2e-4, atol=2e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_training_flag_reaches_call():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, NoisyScale()(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 2), "float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), x)
    # The train step sees training=True: the loss of 2x against zeros is 4.
    logs = model.train_on_batch(x, np.zeros_like(x), return_dict=True)
    assert logs["loss"] == pytest.approx(4.0)


def test_list_and_dict_inputs():
    a, b = keras.Input((2,)), keras.Input((2,))
    both = Pair()([a, b])
    assert both.shape == (None, 4)
    product = Pair()({"a": a, "b": b})
    model = keras.Model([a, b], [both, product])
    x1, x2 = np.ones((3, 2), "float32"), np.full((3, 2), 3.0, "float32")
    got_both, got_product = model.predict([x1, x2], verbose=0)
    np.testing.assert_allclose(got_both, np.concatenate([x1, 2 * x2], -1))
    np.testing.assert_allclose(got_product, x1 * x2)


def test_functional_arithmetic_on_tensors():
    x = keras.Input((3,))
    y = keras.Input((3,))
    out = ops.relu(x) * 2 + y[:, :1] - ops.mean(x, axis=-1, keepdims=True)
    model = keras.Model([x, y], out)
    names = [op.name.split("_")[0] for op in model.operations if "input" not in op.name]
    assert names[:2] == ["relu", "multiply"] and "<lambda>" not in " ".join(names)
    assert [layer.name for layer in model.layers] == [x.name, y.name]  # ops are not layers
    a = np.array([[-1.0, 0.0, 2.0]], "float32")
    b = np.array([[5.0, 6.0, 7.0]], "float32")
    want = np.maximum(a, 0) * 2 + b[:, :1] - a.mean(-1, keepdims=True)
    np.testing.assert_allclose(model.predict([a, b], verbose=0), want, rtol=1e-6)


def test_control_flow_on_a_tensor_names_the_layer_and_the_line():
    class Branchy(keras.layers.Layer):
        def call(self, inputs):
            if ops.sum(inputs) > 0:  # cannot be traced
                return inputs
            return -inputs

    with pytest.raises(TraceError, match=r"layer 'branchy.*' \(Branchy\) at .*test_custom_layers"):
        Branchy()(keras.Input((2,)))


def test_values_and_missing_ops_in_a_call_name_the_layer_and_the_line():
    class Scalar(keras.layers.Layer):
        def call(self, inputs):
            return float(ops.mean(inputs)) * inputs  # no value while tracing

    class Cumulative(keras.layers.Layer):
        def call(self, inputs):
            return ops.unique(inputs)

    with pytest.raises(TraceError, match=r"layer 'scalar.*' \(Scalar\) at .*test_custom.*float"):
        Scalar()(keras.Input((2,)))
    with pytest.raises(
        NotImplementedError, match=r"layer 'cumulative.*Cumulative.* at .*test_custom.*ops.unique"
    ):
        Cumulative()(keras.Input((2,)))


class CrossGate(keras.layers.Layer):
    """Keras's calling convention with several tensors: two positional tensors, a tensor
    keyword (``mask``) and ``build`` taking ``<argument>_shape`` for each."""

    def build(self, x_shape, context_shape):
        self.w = self.add_weight(shape=(context_shape[-1], x_shape[-1]), name="w")

    def call(self, x, context, mask=None, scale=1.0, training=None):
        gate = ops.sigmoid(ops.matmul(context, self.w)) * scale
        out = x * gate
        return out if mask is None else out * ops.cast(mask, "float32")


@pytest.mark.parametrize("backend", ["llvm", "reference"])
def test_a_call_of_several_tensors_and_tensor_keywords(backend, rng):
    x, context, mask = keras.Input((4,)), keras.Input((3,)), keras.Input((4,))
    layer = CrossGate()
    model = keras.Model([x, context, mask], layer(x, context, mask=mask, scale=2.0))
    assert layer.w.shape == (3, 4) and model.output_shape == (None, 4)
    model.compile("sgd", "mse", backend=backend)
    a, c = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    m = (rng.random((5, 4)) < 0.5).astype("float32")
    want = a * 2 / (1 + np.exp(-(c @ layer.w.numpy()))) * m
    np.testing.assert_allclose(model.predict([a, c, m], verbose=0), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer(a, c, mask=m, scale=2.0), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match=r"layer 'cross_gate.*\(CrossGate\)\.call: .*unexpected"):
        layer(x, context, other=1)


def test_builtin_layers_inside_a_custom_layer():
    class Head(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(4, activation="relu")
            self.out = layers.Dense(1)

        def call(self, inputs):
            return self.out(self.dense(inputs) + ops.mean(inputs, axis=-1, keepdims=True))

    keras.utils.set_random_seed(1)
    inputs = keras.Input((3,))
    head = Head()
    model = keras.Model(inputs, head(inputs))
    assert len(model.weights) == 4
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    dense, out = head.dense, head.out
    h = np.maximum(x @ dense.kernel.numpy() + dense.bias.numpy(), 0) + x.mean(-1, keepdims=True)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), h @ out.kernel.numpy() + out.bias.numpy(), rtol=1e-5
    )


def test_lambda_layers_custom_losses_and_loss_subclasses():
    def scaled_mse(y_true, y_pred):
        return 0.5 * ops.mean(ops.square(y_pred - y_true), axis=-1)

    class Huberish(keras.losses.Loss):
        def call(self, y_true, y_pred):
            error = ops.abs(y_pred - y_true)
            return ops.mean(ops.where(error < 1.0, 0.5 * error * error, error - 0.5), axis=-1)

    x, y = _regression(2)
    for loss in (scaled_mse, Huberish(), keras.losses.mean_squared_error):
        keras.utils.set_random_seed(2)
        inputs = keras.Input((8,))
        h = layers.Lambda(lambda t: t * 0.5)(inputs)
        model = keras.Model(inputs, layers.Dense(1)(h))
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss)
        losses = model.fit(x, y, epochs=3, batch_size=16, verbose=0).history["loss"]
        assert losses[-1] < losses[0]
        pred = model.predict(x, verbose=0)
        want = {
            "scaled_mse": 0.5 * np.mean((pred - y) ** 2),
            "Huberish": np.mean(
                np.where(np.abs(pred - y) < 1, 0.5 * (pred - y) ** 2, np.abs(pred - y) - 0.5)
            ),
        }.get(getattr(loss, "__name__", type(loss).__name__), np.mean((pred - y) ** 2))
        assert model.evaluate(x, y, verbose=0) == pytest.approx(want, rel=1e-4)


def test_a_subclassed_model_trains_and_round_trips_its_weights(tmp_path):
    class Classifier(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = layers.Dense(16, activation="relu")
            self.dropout = layers.Dropout(0.1)
            self.head = layers.Dense(3, activation="softmax")

        def call(self, inputs, training=False):
            return self.head(self.dropout(self.hidden(inputs), training=training))

    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(256, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32")
    model = Classifier()
    with pytest.raises(ValueError, match="not been built"):
        model.summary()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(x, y, epochs=20, batch_size=32, verbose=0).history
    assert history["accuracy"][-1] > 0.8
    assert model.count_params() == 5 * 16 + 16 + 16 * 3 + 3
    lines = []
    model.summary(print_fn=lines.append)
    assert "(None, 16)" in lines[0] and "Connected to" not in lines[0]
    path = tmp_path / "c.weights.npz"
    model.save_weights(path)
    again = Classifier()
    again.build((None, 5))
    again.load_weights(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_a_backend_specific_train_step_is_refused_with_the_way_to_port_it():
    class TorchStyle(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(1)

        def call(self, inputs):
            return self.dense(inputs)

        def train_step(self, data):
            x, y = data
            loss = self.compute_loss(y=y, y_pred=self(x))
            loss.backward()
            return {"loss": loss}

    class TensorFlowStyle(TorchStyle):
        def train_step(self, data):
            import tensorflow as tf  # noqa: F401  (not installed here)

            return {}

    x, y = np.ones((4, 3), "float32"), np.ones((4, 1), "float32")
    for cls, backend in ((TorchStyle, "PyTorch"), (TensorFlowStyle, "TensorFlow")):
        model = cls()
        model.compile(optimizer="sgd", loss="mse")
        with pytest.raises(NotImplementedError, match=f"with {backend}.*kcompile.GradientTape"):
            model.train_on_batch(x, y)


def test_add_loss_and_regularizers_join_the_loss():
    class ActivityPenalty(keras.layers.Layer):
        def __init__(self, rate=1e-2):
            super().__init__()
            self.rate = rate

        def call(self, inputs):
            self.add_loss(self.rate * ops.sum(inputs))
            return inputs

    keras.utils.set_random_seed(6)
    penalty = ActivityPenalty()
    out = penalty(np.ones((2, 3), "float32"))
    np.testing.assert_allclose(out, 1.0)
    assert [float(v) for v in penalty.losses] == pytest.approx([0.06])

    inputs = keras.Input((3,))
    dense = layers.Dense(
        2,
        kernel_regularizer=keras.regularizers.L2(0.1),
        activity_regularizer=keras.regularizers.L1(0.01),
    )
    outputs = ActivityPenalty(0.5)(dense(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = np.zeros((8, 2), "float32")
    pred = model.predict(x, verbose=0)
    kernel = dense.kernel.numpy()
    # Keras 3 divides an activity penalty by the batch size (8 here)
    activity = 0.01 * np.abs(pred).sum() / 8
    want = np.mean(pred**2) + 0.1 * np.sum(kernel**2) + activity + 0.5 * pred.sum()
    assert model.evaluate(x, y, batch_size=8, verbose=0) == pytest.approx(want, rel=1e-5)


def test_keras_random_in_a_custom_layer_draws_alike_natively_and_on_the_reference():
    class Noisy(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.seed_generator = keras.random.SeedGenerator(3)

        def call(self, inputs, training=None):
            if training:
                noise = keras.random.uniform(ops.shape(inputs), -0.1, 0.1, seed=self.seed_generator)
                jitter = keras.random.normal(ops.shape(inputs), 0.0, 0.05, seed=self.seed_generator)
                return keras.random.dropout(inputs, 0.5, seed=self.seed_generator) + noise + jitter
            return inputs

    x, y = _regression(3)
    weights = []
    for backend in ("llvm", "reference"):
        keras.utils.set_random_seed(8)
        inputs = keras.Input((8,))
        model = keras.Model(inputs, layers.Dense(1)(Noisy()(inputs)))
        model.compile(optimizer="sgd", loss="mse", backend=backend)
        model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
        weights.append(model.get_weights())
        np.testing.assert_allclose(
            model.predict(x[:2], verbose=0), x[:2] @ weights[-1][0] + weights[-1][1], rtol=1e-5
        )
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    eager = keras.random.dropout(np.ones((4, 50), "float32"), 0.5, seed=1)
    assert set(np.unique(eager)) <= {0.0, 2.0} and 0.3 < (eager == 0).mean() < 0.7


@pytest.mark.parametrize("backend", ["llvm", "reference"])
def test_traced_normal_draws_follow_the_normal_distribution(backend):
    """keras.random.normal in a traced step is sqrt(2)·erfinv(2u - 1) of the step's
    uniform draws: 64,000 of them against the normal distribution's quantiles."""
    from math import erf

    class Draw(keras.layers.Layer):
        def call(self, inputs):
            return inputs + keras.random.normal(ops.shape(inputs), 1.0, 2.0, seed=11)

    inputs = keras.Input((1000,))
    model = keras.Model(inputs, Draw()(inputs))
    model.compile("sgd", "mse", backend=backend)
    z = (model.predict(np.zeros((64, 1000), "float32"), verbose=0) - 1.0) / 2.0
    for t in (-2.5, -1.0, 0.0, 0.5, 2.0):
        assert abs((z < t).mean() - 0.5 * (1 + erf(t / 2**0.5))) < 0.006
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02


class BinaryTruePositives(keras.metrics.Metric):
    """The custom metric of Keras's "customizing what happens in fit" guides."""

    def __init__(self, name="binary_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="tp")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "bool")
        y_pred = ops.greater(y_pred, 0.5)
        values = ops.cast(ops.logical_and(y_true, y_pred), self.dtype)
        self.true_positives.assign(self.true_positives + ops.sum(values))

    def result(self):
        return self.true_positives

    def reset_state(self):
        self.true_positives.assign(0)


def test_a_custom_metric_is_traced_into_the_steps_and_runs_eagerly():
    metric = BinaryTruePositives()
    metric.update_state(np.array([1, 1, 0, 1]), np.array([0.9, 0.2, 0.8, 0.7]))
    metric.update_state(np.array([1]), np.array([0.6]))
    assert float(np.asarray(metric.result())) == 3.0
    metric.reset_state()
    assert float(np.asarray(metric.result())) == 0.0

    keras.utils.set_random_seed(9)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(inputs))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=[BinaryTruePositives()])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0).history
    assert "binary_true_positives" in history
    predicted = model.predict(x, verbose=0)
    _, true_positives = model.evaluate(x, y, batch_size=16, verbose=0)
    assert true_positives == float(((predicted > 0.5) & (y > 0)).sum())


def test_a_metric_that_does_not_accumulate_is_refused():
    class Last(keras.metrics.Metric):
        def __init__(self):
            super().__init__(name="last")
            self.value = self.add_variable(name="value")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.value.assign(ops.mean(y_pred))

        def result(self):
            return self.value

    inputs = keras.Input((2,))
    model = keras.Model(inputs, layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse", metrics=[Last()])
    with pytest.raises(NotImplementedError, match="must add to its variables"):
        model.fit(np.ones((4, 2), "float32"), np.ones((4, 1), "float32"), verbose=0)


def test_compute_loss_is_the_backend_agnostic_hook():
    class Penalized(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = super().compute_loss(x, y, y_pred, sample_weight, training)
            return loss + 0.1 * ops.mean(ops.square(y_pred))

    keras.utils.set_random_seed(10)
    model = Penalized()
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    y = np.ones((8, 2), "float32")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    pred = model.predict(x, verbose=0)
    want = np.mean((pred - y) ** 2) + 0.1 * np.mean(pred**2)
    assert model.evaluate(x, y, batch_size=8, verbose=0) == pytest.approx(want, rel=1e-5)


class _NoTrainingArg(keras.Model):
    """keras.io's distiller's signature: ``compute_loss`` without ``training`` (Keras 3.3
    added it), an extra argument of its own, and a loss that reads ``x``."""

    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(2)

    def call(self, inputs):
        return self.dense(inputs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False):
        return ops.mean(ops.square(y - y_pred)) + ops.mean(x)


class _NoTrainingArgOwnStep(_NoTrainingArg):
    def train_step(self, data):
        return super().train_step(data)


@pytest.mark.parametrize("kind", [_NoTrainingArg, _NoTrainingArgOwnStep])
def test_compute_loss_without_training_is_called_as_keras_calls_it(kind):
    keras.utils.set_random_seed(10)
    model = kind()
    model.compile(optimizer="sgd")
    x = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    y = np.ones((8, 2), "float32")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    pred = model.predict(x, verbose=0)
    want = np.mean((y - pred) ** 2) + np.mean(x)
    assert model.evaluate(x, y, batch_size=8, verbose=0) == pytest.approx(want, rel=1e-5)


class PositionalEmbedding(layers.Layer):
    """keras.io's translation transformer's: two Embeddings of ids whose last axis is
    the sequence, of any length."""

    def __init__(self, sequence_length, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_embeddings = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.position_embeddings = layers.Embedding(input_dim=sequence_length, output_dim=embed_dim)

    def call(self, inputs):
        positions = ops.arange(0, ops.shape(inputs)[-1], 1)
        return self.token_embeddings(inputs) + self.position_embeddings(positions)


def test_embeddings_take_ids_of_any_length_after_they_are_built():
    keras.utils.set_random_seed(7)
    inputs = keras.Input(shape=(None,), dtype="int64")
    layer = PositionalEmbedding(12, 30, 4)
    model = keras.Model(inputs, layer(inputs))
    tokens = layer.token_embeddings.embeddings.numpy()
    positions = layer.position_embeddings.embeddings.numpy()
    rng = np.random.default_rng(0)
    for length in (5, 9):
        ids = rng.integers(0, 30, (2, length))
        want = tokens[ids] + positions[:length]
        np.testing.assert_allclose(model.predict(ids, verbose=0), want, rtol=1e-6)
        np.testing.assert_allclose(layer(ids), want, rtol=1e-6)  # eagerly too
        np.testing.assert_allclose(layer.token_embeddings(ids), tokens[ids], rtol=1e-6)


def test_collaborative_filtering_as_the_keras_example_writes_it():
    """keras-io's RecommenderNet, in its own words: a subclassed model of embeddings with an
    L2 regularizer, columns of its input picked by indexing, and ``ops.tensordot`` over
    both axes (as the example writes it, which sums over the batch too)."""

    class RecommenderNet(keras.Model):
        def __init__(self, users, items, size):
            super().__init__()
            self.user_embedding = layers.Embedding(
                users,
                size,
                embeddings_initializer="he_normal",
                embeddings_regularizer=keras.regularizers.l2(1e-6),
            )
            self.user_bias = layers.Embedding(users, 1)
            self.item_embedding = layers.Embedding(
                items,
                size,
                embeddings_initializer="he_normal",
                embeddings_regularizer=keras.regularizers.l2(1e-6),
            )
            self.item_bias = layers.Embedding(items, 1)

        def call(self, inputs):
            user = self.user_embedding(inputs[:, 0])
            item = self.item_embedding(inputs[:, 1])
            dot = ops.tensordot(user, item, 2)
            return ops.nn.sigmoid(dot + self.user_bias(inputs[:, 0]) + self.item_bias(inputs[:, 1]))

    rng = np.random.default_rng(11)
    taste = rng.normal(size=(20, 3))
    kind = rng.normal(size=(15, 3))
    pairs = np.stack([rng.integers(0, 20, 2000), rng.integers(0, 15, 2000)], axis=1)
    ratings = 1 / (1 + np.exp(-(taste[pairs[:, 0]] * kind[pairs[:, 1]]).sum(1)))
    keras.utils.set_random_seed(11)
    model = RecommenderNet(20, 15, 8)
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(
        pairs.astype("int32"), ratings.astype("float32"), batch_size=64, epochs=5, verbose=0
    )
    losses = history.history["loss"]
    assert losses[-1] < losses[0] and model.count_params() == 20 * 8 + 20 + 15 * 8 + 15


def test_siamese_network_as_the_keras_example_writes_it():
    """keras-io's siamese network with a contrastive loss, in its own words: one tower
    shared by two inputs, a Lambda of the Euclidean distance, a closure loss."""

    def euclidean_distance(vects):
        x, y = vects
        sum_square = ops.sum(ops.square(x - y), axis=1, keepdims=True)
        return ops.sqrt(ops.maximum(sum_square, keras.backend.epsilon()))

    def contrastive(margin=1.0):
        def contrastive_loss(y_true, y_pred):
            square_pred = ops.square(y_pred)
            margin_square = ops.square(ops.maximum(margin - y_pred, 0))
            return ops.mean((1 - y_true) * square_pred + y_true * margin_square)

        return contrastive_loss

    rng = np.random.default_rng(12)
    centres = rng.normal(size=(4, 6)) * 3
    left_class, right_class = rng.integers(0, 4, 1024), rng.integers(0, 4, 1024)
    left = (centres[left_class] + rng.normal(size=(1024, 6))).astype("float32")
    right = (centres[right_class] + rng.normal(size=(1024, 6))).astype("float32")
    different = (left_class != right_class).astype("float32")  # the example's labels

    keras.utils.set_random_seed(12)
    tower = keras.Sequential([layers.Dense(16, activation="tanh"), layers.Dense(8)])
    input_1, input_2 = keras.Input((6,)), keras.Input((6,))
    distance = layers.Lambda(euclidean_distance)([tower(input_1), tower(input_2)])
    normal = layers.BatchNormalization()(distance)
    output = layers.Dense(1, activation="sigmoid")(normal)
    siamese = keras.Model(inputs=[input_1, input_2], outputs=output)
    siamese.compile(loss=contrastive(), optimizer="rmsprop", metrics=["accuracy"])
    history = siamese.fit([left, right], different, batch_size=32, epochs=5, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    # Label 1 means "different" (as in the example): a large distance says it.
    predicted = siamese.predict([left, right], verbose=0)[:, 0] > 0.5
    assert np.mean(predicted == different.astype(bool)) > 0.85


def test_a_custom_layer_round_trips_through_its_config():
    class Scaled(keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, inputs):
            return inputs * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    layer = Scaled(3.0, name="scaled_three")
    again = Scaled.from_config(layer.get_config())
    assert again.name == "scaled_three" and again.factor == 3.0
    np.testing.assert_allclose(again(np.ones((1, 2), "float32")), [[3.0, 3.0]])
