"""Keras 3.15's semantics of existing layers that kcompile refused or got wrong: a pooling
window larger than its input refused at the call, ReLU's max_value / negative_slope /
threshold, integer inputs of Concatenate and Dot, LayerNormalization over any axes, merge
layers broadcasting (None, 1) with (None, 64). Values against numpy (where Keras's
documented semantics are numpy's) and the numbers of Keras's docstrings; compiled against
the reference interpreter; gradients by central differences; Keras itself when installed."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.gradcheck import assert_model_gradients


def _both_backends(model, x):
    """The model's predictions natively and on the reference interpreter (equal)."""
    found = []
    for backend in ("llvm", "reference"):
        model.compile("sgd", "mse", backend=backend)
        found.append(model.predict(x, verbose=0))
    np.testing.assert_allclose(found[0], found[1], rtol=1e-5, atol=1e-6)
    return found[0]


# --- pooling -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "shape", "shown"),
    [
        (lambda: layers.MaxPooling1D(5, name="p1"), (3, 4), "pool_size=[5]`, `strides=(5,)"),
        (lambda: layers.AveragePooling1D(4, name="p1"), (3, 4), "pool_size=[4]"),
        (lambda: layers.MaxPooling2D(4, name="p1"), (3, 3, 4), "pool_size=[4, 4]"),
        (lambda: layers.AveragePooling2D((2, 5), name="p1"), (3, 3, 4), "pool_size=[2, 5]"),
    ],
)
def test_a_window_larger_than_its_input_is_refused_at_the_call(layer, shape, shown):
    with pytest.raises(ValueError, match="Computed output size would be zero or negative") as e:
        layer()(keras.Input(shape))
    assert "'p1'" in str(e.value) and shown in str(e.value)
    assert "padding=valid" in str(e.value)


def test_a_large_window_with_same_padding_is_accepted():
    assert layers.MaxPooling2D(4, padding="same")(keras.Input((3, 3, 4))).shape == (None, 1, 1, 4)
    assert layers.MaxPooling1D(3)(keras.Input((3, 4))).shape == (None, 1, 4)


# --- ReLU --------------------------------------------------------------------------


def _relu(x, **options):
    inputs = keras.Input(x.shape[1:])
    return _both_backends(keras.Model(inputs, layers.ReLU(**options)(inputs)), x)


def test_relu_arguments_give_kerass_docstring_numbers():
    x = np.array([[-10, -5, 0.0, 5, 10]], "float32")
    np.testing.assert_allclose(_relu(x), [[0, 0, 0, 5, 10]])
    np.testing.assert_allclose(_relu(x, negative_slope=0.5), [[-5, -2.5, 0, 5, 10]])
    np.testing.assert_allclose(_relu(x, max_value=5.0), [[0, 0, 0, 5, 5]])
    np.testing.assert_allclose(_relu(x, threshold=5.0), [[0, 0, 0, 0, 10]])
    # all three at once, as Keras 3.15 computes it
    y = np.array([[-2.0, -0.5, 0.3, 1.0, 5.0]], "float32")
    got = _relu(y, max_value=3.0, negative_slope=0.1, threshold=0.5)
    np.testing.assert_allclose(got, [[-0.25, -0.1, -0.02, 1.0, 3.0]], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_relu(y, max_value=6.0), np.clip(y, 0, 6))


def test_relu_refuses_negative_arguments_as_keras():
    with pytest.raises(ValueError, match="max_value of a ReLU layer cannot be a negative"):
        layers.ReLU(max_value=-1.0)
    with pytest.raises(ValueError, match="negative_slope of a ReLU layer cannot be None"):
        layers.ReLU(negative_slope=-0.1)
    with pytest.raises(ValueError, match="threshold of a ReLU layer cannot be None"):
        layers.ReLU(threshold=None)
    config = layers.ReLU(max_value=2.0, negative_slope=0.2, threshold=0.1).get_config()
    assert (config["max_value"], config["negative_slope"], config["threshold"]) == (
        2.0,
        0.2,
        0.1,
    )


def test_relu_arguments_by_central_differences(rng):
    inputs = keras.Input((5,))
    h = layers.Dense(6)(inputs)
    h = layers.ReLU(max_value=1.5, negative_slope=0.3, threshold=0.2)(h)
    model = keras.Model(inputs, layers.Dense(2)(h))
    model.compile("sgd", "mse")
    assert_model_gradients(model, rng, 4, lambda r, n: r.normal(size=(n, 2)))


# --- integer inputs of Concatenate and Dot -------------------------------------------


def test_concatenate_keeps_integers_and_promotes_a_mix_to_float():
    a = np.arange(6, dtype="int32").reshape(2, 3)
    out = layers.Concatenate()([a, a])
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, np.concatenate([a, a], -1))
    mixed = layers.Concatenate()([a, a.astype("float32")])
    assert mixed.dtype == np.float32
    ints = keras.Input((3,), dtype="int32")
    assert layers.Concatenate()([ints, ints]).dtype == "int32"
    assert layers.Concatenate()([ints, keras.Input((3,))]).dtype == "float32"


def test_dot_of_integers_is_an_integer_product():
    a = np.arange(6, dtype="int32").reshape(2, 3)
    out = layers.Dot(axes=-1)([a, a])
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[5], [50]])  # Keras 3.15's numbers
    b = np.arange(24, dtype="int32").reshape(2, 3, 4) - 7
    out = layers.Dot(axes=(1, 1))([b, b])
    np.testing.assert_array_equal(out, np.einsum("bij,bik->bjk", b, b))
    with pytest.raises(TypeError, match="normalize=True needs float inputs"):
        layers.Dot(axes=-1, normalize=True)([a, a])


# --- LayerNormalization over any axes -------------------------------------------------


@pytest.mark.parametrize("axis", [-1, 1, 2, [1, 2], [2, 3], [1, 3], [1, 2, 3], (-2, -1)])
def test_layer_normalization_over_any_axes(axis, rng):
    x = rng.normal(size=(3, 4, 5, 6)).astype("float32")
    inputs = keras.Input(x.shape[1:])
    layer = layers.LayerNormalization(axis=axis, epsilon=1e-3)
    model = keras.Model(inputs, layer(inputs))
    axes = sorted(a % 4 for a in (axis if isinstance(axis, list | tuple) else [axis]))
    assert layer.get_config()["axis"] == sorted(axis if isinstance(axis, list | tuple) else [axis])
    weights = [rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()]
    assert weights[0].shape == tuple(x.shape[a] for a in axes)
    layer.set_weights(weights)
    spread = [x.shape[i] if i in axes else 1 for i in range(4)]
    mean = x.mean(tuple(axes), keepdims=True)
    var = x.var(tuple(axes), keepdims=True)
    want = (x - mean) / np.sqrt(var + 1e-3) * weights[0].reshape(spread)
    want += weights[1].reshape(spread)
    np.testing.assert_allclose(_both_backends(model, x), want, rtol=1e-4, atol=1e-5)


def test_layer_normalization_over_inner_axes_by_central_differences(rng):
    inputs = keras.Input((3, 4))
    h = layers.Dense(5)(inputs)
    h = layers.LayerNormalization(axis=[1, 2])(h)
    h = layers.LayerNormalization(axis=1, center=False)(h)
    model = keras.Model(inputs, layers.Dense(2)(layers.Flatten()(h)))
    model.compile("sgd", "mse")
    assert_model_gradients(model, rng, 3, lambda r, n: r.normal(size=(n, 2)))


def test_layer_normalization_refuses_the_batch_axis():
    with pytest.raises(ValueError, match="batch axis"):
        layers.LayerNormalization(axis=0)(keras.Input((3,)))


# --- merge layers broadcast ----------------------------------------------------------

MERGES = {
    "Add": np.add,
    "Subtract": np.subtract,
    "Multiply": np.multiply,
    "Maximum": np.maximum,
    "Minimum": np.minimum,
    "Average": lambda a, b: (a + b) / 2,
}


@pytest.mark.parametrize("name", sorted(MERGES))
def test_merge_layers_broadcast_a_size_of_one(name, rng):
    a, b = keras.Input((1,)), keras.Input((64,))
    merged = getattr(layers, name)()([a, b])
    assert merged.shape == (None, 64)
    model = keras.Model([a, b], merged)
    x = [rng.normal(size=(5, 1)).astype("float32"), rng.normal(size=(5, 64)).astype("float32")]
    np.testing.assert_allclose(_both_backends(model, x), MERGES[name](*x), rtol=1e-6)


def test_merge_of_lower_rank_gets_axes_after_the_batch(rng):
    a, b = keras.Input((1,)), keras.Input((5, 64))
    model = keras.Model([a, b], layers.Add()([a, b]))
    assert model.output_shape == (None, 5, 64)
    x = [rng.normal(size=(2, 1)).astype("float32"), rng.normal(size=(2, 5, 64)).astype("float32")]
    np.testing.assert_allclose(_both_backends(model, x), x[0][:, :, None] + x[1], rtol=1e-6)
    with pytest.raises(ValueError, match="Inputs have incompatible shapes"):
        layers.Add()([keras.Input((3,)), keras.Input((64,))])


def test_merge_broadcasting_by_central_differences(rng):
    a, b = keras.Input((1,)), keras.Input((4,))
    h = layers.Multiply()([layers.Dense(1)(a), layers.Dense(4)(b)])
    model = keras.Model([a, b], layers.Dense(2)(layers.Maximum()([h, layers.Dense(1)(b)])))
    model.compile("sgd", "mse")
    assert_model_gradients(model, rng, 3, lambda r, n: r.normal(size=(n, 2)))


# --- Keras itself, when installed ----------------------------------------------------


def test_against_keras_when_installed(rng):
    real = pytest.importorskip("keras")
    if real.__name__ == "kcompile" or not hasattr(real, "__version__"):
        pytest.skip("no Keras here")
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    for axis in ([1, 2], 1):
        theirs, ours = (
            real.layers.LayerNormalization(axis=axis),
            layers.LayerNormalization(axis=axis),
        )
        want = np.asarray(theirs(x))
        ours(x)
        ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
        np.testing.assert_allclose(ours(x), want, rtol=1e-5, atol=1e-6)
    y = rng.normal(size=(3, 6)).astype("float32") * 3
    options = {"max_value": 2.5, "negative_slope": 0.2, "threshold": 0.7}
    np.testing.assert_allclose(
        layers.ReLU(**options)(y), np.asarray(real.layers.ReLU(**options)(y)), rtol=1e-6
    )
    a = np.arange(6, dtype="int32").reshape(2, 3)
    assert layers.Dot(axes=-1)([a, a]).dtype == np.asarray(real.layers.Dot(axes=-1)([a, a])).dtype


# --- 3-D poolings --------------------------------------------------------------------


def _pool3d(x, k, s, padding, reduce):
    """numpy's pooling of [N, D, H, W, C]: TensorFlow's "same" padding, the real elements
    of each window (NaN marks the padding)."""
    pads, outs = [], []
    for n, kk, ss in zip(x.shape[1:4], k, s):
        out = -(-n // ss) if padding == "same" else (n - kk) // ss + 1
        total = max((out - 1) * ss + kk - n, 0) if padding == "same" else 0
        pads.append((total // 2, total - total // 2))
        outs.append(out)
    p = np.pad(x.astype(np.float64), [(0, 0), *pads, (0, 0)], constant_values=np.nan)
    y = np.empty((x.shape[0], *outs, x.shape[4]))
    for i in range(outs[0]):
        for j in range(outs[1]):
            for m in range(outs[2]):
                box = p[:, i * s[0] : i * s[0] + k[0], j * s[1] : j * s[1] + k[1]]
                box = box[:, :, :, m * s[2] : m * s[2] + k[2]]
                y[:, i, j, m] = reduce(box.reshape(x.shape[0], -1, x.shape[4]), axis=1)
    return y


@pytest.mark.parametrize(
    ("kind", "k", "s", "padding"),
    [
        ("Max", (2, 2, 2), (2, 2, 2), "valid"),
        ("Average", (2, 3, 2), (1, 2, 3), "valid"),
        ("Average", (3, 2, 4), (2, 2, 3), "same"),
        ("Max", (3, 2, 4), (2, 1, 3), "same"),
    ],
)
def test_3d_poolings_match_numpy(kind, k, s, padding, rng):
    x = rng.normal(size=(2, 5, 6, 7, 3)).astype("float32")
    inputs = keras.Input(x.shape[1:])
    layer = getattr(layers, f"{kind}Pooling3D")(pool_size=k, strides=s, padding=padding)
    got = _both_backends(keras.Model(inputs, layer(inputs)), x)
    want = _pool3d(x, k, s, padding, np.nanmax if kind == "Max" else np.nanmean)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_global_3d_poolings_match_numpy(rng):
    x = rng.normal(size=(2, 3, 4, 5, 6)).astype("float32")
    np.testing.assert_allclose(layers.GlobalAveragePooling3D()(x), x.mean((1, 2, 3)), rtol=1e-5)
    out = layers.GlobalMaxPooling3D(keepdims=True)(x)
    np.testing.assert_array_equal(out, x.max((1, 2, 3), keepdims=True))


def test_3d_poolings_by_central_differences_and_refusal(rng):
    inputs = keras.Input((4, 4, 5, 2))
    h = layers.Dense(3)(inputs)
    h = layers.AveragePooling3D((2, 3, 2), strides=(1, 2, 2), padding="same")(h)
    h = layers.MaxPooling3D(2)(h)
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling3D()(h)))
    model.compile("sgd", "mse")
    assert_model_gradients(model, rng, 2, lambda r, n: r.normal(size=(n, 2)))
    with pytest.raises(ValueError, match="'p3'.*Computed output size would be zero"):
        layers.MaxPooling3D((2, 5, 2), name="p3")(keras.Input((3, 3, 3, 1)))


def test_kerass_other_names_are_the_same_classes():
    for alias, name in [
        ("MaxPool1D", "MaxPooling1D"),
        ("MaxPool2D", "MaxPooling2D"),
        ("MaxPool3D", "MaxPooling3D"),
        ("AvgPool1D", "AveragePooling1D"),
        ("AvgPool2D", "AveragePooling2D"),
        ("AvgPool3D", "AveragePooling3D"),
        ("GlobalMaxPool1D", "GlobalMaxPooling1D"),
        ("GlobalMaxPool2D", "GlobalMaxPooling2D"),
        ("GlobalMaxPool3D", "GlobalMaxPooling3D"),
        ("GlobalAvgPool1D", "GlobalAveragePooling1D"),
        ("GlobalAvgPool2D", "GlobalAveragePooling2D"),
        ("GlobalAvgPool3D", "GlobalAveragePooling3D"),
        ("Convolution1D", "Conv1D"),
        ("Convolution2D", "Conv2D"),
        ("Convolution1DTranspose", "Conv1DTranspose"),
        ("Convolution2DTranspose", "Conv2DTranspose"),
        ("SeparableConvolution1D", "SeparableConv1D"),
        ("SeparableConvolution2D", "SeparableConv2D"),
    ]:
        assert getattr(layers, alias) is getattr(layers, name), alias
        assert alias in layers.__all__
