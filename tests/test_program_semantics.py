"""What real programs rely on and Keras does (issue 26's list of what unseen programs
hit): a layer called on arrays sees their shapes, a model whose loss is all add_loss
trains on x alone, inputs one rank short of an Input ending in 1 get that axis, and
compute_mask takes arrays."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers, ops


def test_a_layer_called_on_arrays_sees_their_concrete_shapes():
    class RowsTimes(layers.Layer):
        def call(self, x):
            return x * x.shape[0] + keras.activations.relu(x)

    out = RowsTimes()(np.full((2, 3), -1.0, "float32"))
    np.testing.assert_array_equal(out, np.full((2, 3), -2.0))


def test_a_model_whose_loss_is_all_add_loss_trains_on_x_alone():
    class Penalty(layers.Layer):
        def call(self, x):
            self.add_loss(ops.mean(x**2))
            return x

    inputs = keras.Input((3,))
    model = keras.Model(inputs, Penalty()(layers.Dense(2)(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    x = np.ones((8, 3), "float32")
    losses = model.fit(x, epochs=3, batch_size=8, verbose=0).history["loss"]
    assert losses[2] < losses[0]
    assert model.evaluate(x, verbose=0) == pytest.approx(
        float(np.mean(model.predict(x, verbose=0) ** 2)), rel=1e-5
    )
    bare = keras.Model(inputs, layers.Dense(1)(inputs))
    bare.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="compiled without a loss"):
        bare.fit(x, verbose=0)


def test_inputs_one_rank_short_of_an_input_ending_in_one_get_that_axis():
    inputs = keras.Input((5, 1))
    model = keras.Model(inputs, layers.Flatten()(inputs))
    x = np.arange(10, dtype="float32").reshape(2, 5)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    np.testing.assert_array_equal(model.predict(x[..., None, None], verbose=0), x)
    with pytest.raises(ValueError, match=r"expects arrays of shape \(None, 5, 1\)"):
        model.predict(np.ones((2, 4)), verbose=0)


def test_compute_mask_takes_arrays():
    embedding = layers.Embedding(10, 3, mask_zero=True)
    np.testing.assert_array_equal(
        embedding.compute_mask(np.array([[0, 1, 2]])), [[False, True, True]]
    )
    assert layers.Embedding(10, 3).compute_mask(np.array([[0, 1]])) is None
    masking = layers.Masking(mask_value=0.0)
    x = np.array([[[0.0, 0.0], [1.0, 0.0]]], "float32")
    np.testing.assert_array_equal(masking.compute_mask(x), [[False, True]])
    given = np.array([[True, False]])
    np.testing.assert_array_equal(layers.Dense(2).compute_mask(x, mask=given), given)


@pytest.mark.parametrize("case", ["axis1", "axis3"])
def test_batch_normalization_over_another_axis_gives_keras_numbers(case):
    """Fixture: tests/fixture_scripts/make_batchnorm_axis_fixtures.py (real Keras)."""
    from pathlib import Path

    fixture = np.load(Path(__file__).parent / "keras_fixtures" / "batchnorm_axis.npz")
    axis = {"axis1": 1, "axis3": 3}[case]
    x = fixture[f"{case}/x"]
    layer = layers.BatchNormalization(axis=axis, momentum=0.9)
    layer.build(x.shape)
    layer.set_weights([fixture[f"{case}/w{i}"] for i in range(4)])
    np.testing.assert_allclose(layer(x, training=False), fixture[f"{case}/inference"], atol=1e-5)
    np.testing.assert_allclose(layer(x, training=True), fixture[f"{case}/training"], atol=1e-5)
    for i, w in enumerate(layer.get_weights()):
        np.testing.assert_allclose(w, fixture[f"{case}/after{i}"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        layers.BatchNormalization(axis=4)(np.ones((2, 3, 4, 5), "float32"))


def test_batch_normalization_channels_first_trains_compiled_as_the_reference():
    def build(backend):
        keras.utils.set_random_seed(4)
        inputs = keras.Input((3, 4, 2))
        h = layers.BatchNormalization(axis=1)(inputs)
        model = keras.Model(inputs, layers.Dense(1)(layers.Flatten()(h)))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", backend=backend)
        return model

    native, reference = build("llvm"), build("reference")
    reference.set_weights(native.get_weights())
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3, 4, 2)).astype("float32"), np.ones((6, 1), "float32")
    assert native.train_on_batch(x, y) == pytest.approx(reference.train_on_batch(x, y), rel=1e-5)
    for a, b in zip(native.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_dense_takes_integer_inputs_as_keras_promotes_them():
    out = layers.Dense(3, kernel_initializer="ones")(np.arange(10).reshape(5, 2))
    np.testing.assert_array_equal(out, np.repeat(np.arange(1, 18, 4)[:, None], 3, 1))
    inputs = keras.Input((2,), dtype="int32")
    model = keras.Model(inputs, layers.Dense(1, kernel_initializer="ones")(inputs))
    np.testing.assert_array_equal(model.predict(np.array([[2, 3]]), verbose=0), [[5.0]])


def test_keras_2_spellings_programs_still_use():
    metric = keras.metrics.TopKCategoricalAccuracy(2, name="top2")
    assert (metric.name, metric.get_config()["k"]) == ("top2", 2)
    with pytest.warns(UserWarning, match="`alpha` is deprecated"):
        assert layers.LeakyReLU(alpha=0.2).negative_slope == 0.2
    with pytest.raises(ValueError, match="cannot be None or negative"):
        layers.LeakyReLU(negative_slope=-1.0)


def test_conv2d_regularizers_join_the_loss_and_constraints_hold():
    conv = layers.Conv2D(
        2,
        3,
        kernel_regularizer=keras.regularizers.L2(0.1),
        kernel_constraint=keras.constraints.NonNeg(),
        bias_initializer="ones",
        bias_regularizer=keras.regularizers.L1(0.5),
    )
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, layers.Flatten()(conv(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x = np.random.default_rng(0).normal(size=(4, 4, 4, 1)).astype("float32")
    y = np.zeros((4, 8), "float32")
    kernel = conv.kernel.numpy()
    mse = float(np.mean(model.predict(x, verbose=0) ** 2))
    penalty = 0.1 * float(np.sum(kernel**2)) + 0.5 * 2.0
    assert model.test_on_batch(x, y) == pytest.approx(mse + penalty, rel=1e-5)
    model.train_on_batch(x, y)
    assert conv.kernel.numpy().min() >= 0.0
    assert conv.get_config()["kernel_regularizer"]["class_name"] == "L2"


def test_spatial_dropout_configs_have_keras_keys():
    """Keras 3.15's keys (its SpatialDropout layers take no `trainable`: a config with one
    does not load there; the policy by its name)."""
    config = layers.SpatialDropout1D(0.2).get_config()
    assert set(config) == {"name", "rate", "seed", "dtype"} and config["dtype"] == "float32"
    config = layers.SpatialDropout2D(0.2).get_config()
    assert set(config) == {"name", "rate", "seed", "dtype", "data_format"}
    assert layers.SpatialDropout2D.from_config(config).rate == 0.2
