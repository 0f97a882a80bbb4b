"""Reshaping, noise, normalization and preprocessing layers: values against numpy
definitions, natively and on the reference backend, gradients by central differences,
noise by its statistics. Keras's own numbers for them are in test_keras_parity
(``layer_zoo``)."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.gradcheck import assert_model_gradients


def _predict(layer, x, training=False):
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", "mse")
    if not training:
        return model.predict(x, verbose=0)
    return model


def test_reshaping_layers_match_numpy(rng):
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_array_equal(_predict(layers.Permute((2, 1)), x), x.transpose(0, 2, 1))
    np.testing.assert_array_equal(_predict(layers.UpSampling1D(3), x), np.repeat(x, 3, 1))
    np.testing.assert_array_equal(
        _predict(layers.ZeroPadding1D((1, 2)), x), np.pad(x, ((0, 0), (1, 2), (0, 0)))
    )
    np.testing.assert_array_equal(_predict(layers.Cropping1D((1, 2)), x), x[:, 1:3])
    flat = x[:, :, 0]
    np.testing.assert_array_equal(
        _predict(layers.RepeatVector(4), flat), np.repeat(flat[:, None], 4, 1)
    )
    image = rng.normal(size=(2, 6, 5, 2)).astype("float32")
    np.testing.assert_array_equal(
        _predict(layers.Cropping2D(((1, 2), (0, 1))), image), image[:, 1:4, 0:4]
    )
    np.testing.assert_array_equal(_predict(layers.Cropping2D(1), image), image[:, 1:5, 1:4])
    np.testing.assert_array_equal(_predict(layers.CenterCrop(3, 2), image), image[:, 1:4, 1:3])
    with pytest.raises(ValueError, match="Cropping1D.*leaves nothing"):
        _predict(layers.Cropping1D((3, 2)), x)
    with pytest.raises(ValueError, match="Permute.*permutation"):
        layers.Permute((1, 3))


def test_time_distributed_applies_one_layer_to_every_step(rng):
    x = rng.normal(size=(3, 4, 5)).astype("float32")
    dense = layers.Dense(2)
    out = _predict(layers.TimeDistributed(dense), x)
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(out, x @ kernel + bias, rtol=1e-5, atol=1e-6)
    assert len(dense.weights) == 2


def test_normalization_layers_match_their_formulas(rng):
    x = rng.normal(size=(3, 4, 6)).astype("float32")
    unit = _predict(layers.UnitNormalization(), x)
    np.testing.assert_allclose(unit, x / np.linalg.norm(x, axis=-1, keepdims=True), rtol=1e-5)
    grouped = _predict(layers.GroupNormalization(groups=3, epsilon=1e-3), x)
    g = x.reshape(3, 4, 3, 2)
    mean, var = g.mean((1, 3), keepdims=True), g.var((1, 3), keepdims=True)
    np.testing.assert_allclose(
        grouped, ((g - mean) / np.sqrt(var + 1e-3)).reshape(x.shape), rtol=1e-4, atol=1e-5
    )
    with pytest.raises(ValueError, match="GroupNormalization.*6 channels.*4 groups"):
        _predict(layers.GroupNormalization(groups=4), x)


def test_rescaling_and_normalization_with_adapt(rng):
    x = rng.normal(3.0, 2.0, size=(50, 4)).astype("float32")
    np.testing.assert_allclose(
        _predict(layers.Rescaling(1 / 255, 0.5), x), x / 255 + 0.5, rtol=1e-6
    )
    norm = layers.Normalization()
    norm.adapt(x)
    np.testing.assert_allclose(norm.mean.numpy(), x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.variance.numpy(), x.var(0), rtol=1e-5)
    out = _predict(norm, x)
    np.testing.assert_allclose(out, (x - x.mean(0)) / x.std(0), rtol=1e-4, atol=1e-5)
    assert [v.trainable for v in norm.weights] == [False, False, False]
    back = _predict(layers.Normalization(mean=x.mean(0), variance=x.var(0), invert=True), out)
    np.testing.assert_allclose(back, x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resizing_is_jax_image_resize(interpolation, rng):
    """Half-pixel centres without antialiasing: one output pixel samples the input at
    (i + 0.5)·in/out − 0.5 (bilinear: the two neighbours, linearly; nearest: the pixel
    whose cell holds the sample)."""
    image = rng.normal(size=(1, 4, 6, 1)).astype("float32")
    for h, w in ((8, 3), (3, 9), (4, 6)):
        got = _predict(layers.Resizing(h, w, interpolation=interpolation), image)[0, :, :, 0]

        def axis(size, target):
            centre = (np.arange(target) + 0.5) * size / target - 0.5
            if interpolation == "nearest":
                return np.eye(size)[np.clip(np.floor(centre + 0.5), 0, size - 1).astype(int)]
            low = np.clip(np.floor(centre), 0, size - 1).astype(int)
            high = np.clip(low + 1, 0, size - 1)
            frac = np.clip(centre - low, 0, 1)
            return np.eye(size)[low] * (1 - frac)[:, None] + np.eye(size)[high] * frac[:, None]

        want = axis(4, h) @ image[0, :, :, 0] @ axis(6, w).T
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_noise_layers_are_identity_outside_training_and_noisy_in_it(rng):
    x = np.ones((400, 50), "float32")
    for layer in (layers.GaussianNoise(0.5, seed=1), layers.GaussianDropout(0.2, seed=1)):
        model = _predict(layer, x, training=True)
        np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    noisy = layers.GaussianNoise(0.5, seed=3)
    inputs = keras.Input((50,))
    model = keras.Model(inputs, noisy(inputs))
    model.compile("sgd", "mse")
    graph = model.step_graph("train", None)
    assert any(n.op == "random_uniform" for n in graph.nodes)


def _train_output(layer, x, backend="llvm"):
    """What ``layer`` gives in a training step: the model learns to output zeros, and
    the step's loss is the mean square of the layer's output."""
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    model.compile("sgd", "mse", backend=backend)
    return model.train_on_batch(x, np.zeros_like(x), return_dict=True)["loss"]


def test_noise_statistics_in_training():
    x = np.ones((200, 100), "float32")
    # E[(1 + n)^2] = 1 + stddev^2 for gaussian noise; E[(1·m)^2] = 1/(1-rate) for the
    # multiplicative N(1, rate/(1-rate)) of gaussian dropout
    assert _train_output(layers.GaussianNoise(0.5, seed=2), x) == pytest.approx(1.25, rel=0.02)
    assert _train_output(layers.GaussianDropout(0.2, seed=2), x) == pytest.approx(1.25, rel=0.02)
    native = _train_output(layers.GaussianNoise(0.5, seed=4), x)
    assert _train_output(layers.GaussianNoise(0.5, seed=4), x, "reference") == pytest.approx(
        native, rel=1e-5
    )


def test_spatial_dropout_drops_whole_channels(rng):
    x = np.ones((64, 5, 8), "float32")
    inputs = keras.Input((5, 8))
    dropped = layers.SpatialDropout1D(0.5, seed=5)(inputs)
    model = keras.Model(inputs, dropped)
    model.compile("sgd", "mse")
    from kcompile.ir import interpret

    graph = model.step_graph("train", None)
    feeds = {v.name: np.zeros(v.type.concrete_shape(64), v.dtype.numpy) for v in graph.inputs}
    feeds["input_layer"] = x
    out = interpret(graph, feeds)
    loss = float(out["loss"])
    assert loss == pytest.approx(2.0, rel=0.15)  # E[(2·keep)^2] = 4 · 0.5


def test_activity_regularization_adds_its_penalty_per_sample(rng):
    x = rng.normal(size=(8, 3)).astype("float32")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layers.ActivityRegularization(l1=0.1, l2=0.2)(inputs))
    model.compile("sgd", "mse")
    want = np.mean(x**2) + (0.1 * np.abs(x).sum() + 0.2 * (x**2).sum()) / 8
    assert model.evaluate(x, np.zeros_like(x), batch_size=8, verbose=0) == pytest.approx(want)


def small_model():
    return keras.Sequential(
        [
            keras.Input(shape=(4, 3, 2)),
            layers.Resizing(5, 4),
            layers.Cropping2D(((1, 0), (0, 1))),
            layers.GroupNormalization(groups=2),
            layers.Reshape((4, 6)),
            layers.Permute((2, 1)),
            layers.UpSampling1D(2),
            layers.TimeDistributed(layers.Dense(3, activation="tanh")),
            layers.UnitNormalization(),
            layers.GlobalAveragePooling1D(),
            layers.RepeatVector(2),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )


def test_gradients_through_the_new_layers_by_central_differences(rng):
    model = small_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert_model_gradients(model, rng, 3, lambda r, n: r.integers(0, 3, n).astype(np.int32))


def test_native_and_reference_agree_on_the_new_layers(rng):
    results = []
    x = rng.normal(size=(6, 4, 3, 2)).astype("float32")
    y = rng.integers(0, 3, 6)
    for backend in ("llvm", "reference"):
        keras.utils.set_random_seed(2)
        model = small_model()
        model.compile("adam", "sparse_categorical_crossentropy", backend=backend)
        model.fit(x, y, epochs=2, batch_size=3, shuffle=False, verbose=0)
        results.append((model.predict(x, verbose=0), model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4, atol=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_global_pooling_honours_channels_first(rng):
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_allclose(
        _predict(layers.GlobalAveragePooling1D(data_format="channels_first"), x),
        x.mean(2),
        rtol=1e-6,
    )
    image = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    np.testing.assert_allclose(
        _predict(layers.GlobalMaxPooling2D(data_format="channels_first", keepdims=True), image),
        image.max((2, 3), keepdims=True),
    )


def test_separable_convolutions_by_central_differences(rng):
    model = keras.Sequential(
        [
            keras.Input(shape=(5, 4, 2)),
            layers.SeparableConv2D(3, 3, padding="same", depth_multiplier=2, activation="tanh"),
            layers.Reshape((20, 3)),
            layers.SeparableConv1D(2, 3, strides=2),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert [w.shape for w in model.layers[0].weights] == [(3, 3, 2, 2), (1, 1, 4, 3), (3,)]
    assert_model_gradients(model, rng, 3, lambda r, n: r.integers(0, 3, n).astype(np.int32))
