"""AdaptiveAveragePooling1D/2D/3D and AdaptiveMaxPooling1D/2D/3D: Keras's bins (start
floor(i*L/n), end ceil((i+1)*L/n)) written out in numpy, Keras's own numbers on the same
inputs (``conv3d_cases``), gradients by central differences (at the max's kinks the
fixture inputs have no ties), compiled training against the reference interpreter,
configs, output shapes and Keras's refusals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.conv3d_cases import check_keras_cases
from tests.fixture_scripts.make_conv3d_fixtures import CASES
from tests.gradcheck import assert_model_gradients


def adaptive_numpy(x, output_size, reduce, channels_first=False):
    """Each output position's box of bins, reduced, from the bins' definition."""
    if channels_first:
        x = np.moveaxis(x, 1, -1)
    spatial = x.shape[1:-1]
    bins = [
        [(math.floor(i * size / n), math.ceil((i + 1) * size / n)) for i in range(n)]
        for size, n in zip(spatial, output_size)
    ]
    out = np.zeros((x.shape[0], *output_size, x.shape[-1]))
    for position in itertools.product(*(range(n) for n in output_size)):
        box = tuple(slice(*bins[a][i]) for a, i in enumerate(position))
        window = x[(slice(None), *box)]
        axes = tuple(range(1, 1 + len(spatial)))
        out[(slice(None), *position)] = window.mean(axes) if reduce == "avg" else window.max(axes)
    return np.moveaxis(out, -1, 1) if channels_first else out


# (layer, input shape without the batch, output size, data format)
SHAPES = [
    ("AdaptiveAveragePooling1D", (10, 3), (4,), None),
    ("AdaptiveMaxPooling1D", (7, 2), (3,), None),
    ("AdaptiveAveragePooling1D", (3, 2), (5,), None),  # more bins than steps: they overlap
    ("AdaptiveMaxPooling2D", (7, 9, 2), (3, 4), None),
    ("AdaptiveAveragePooling2D", (2, 8, 6), (4, 3), "channels_first"),
    ("AdaptiveAveragePooling3D", (5, 6, 7, 2), (2, 3, 4), None),
    ("AdaptiveMaxPooling3D", (4, 5, 3, 2), (4, 2, 2), None),
]


@pytest.mark.slow
def test_bins_match_their_definition(rng):
    inputs = [keras.Input(shape) for _, shape, _, _ in SHAPES]
    made = [getattr(layers, cls)(n, data_format=f) for cls, _, n, f in SHAPES]
    model = keras.Model(inputs, [layer(i) for layer, i in zip(made, inputs)])
    xs = [rng.normal(size=(2, *shape)).astype(np.float32) for _, shape, _, _ in SHAPES]
    for (cls, shape, n, f), x, y in zip(SHAPES, xs, model.predict(xs, verbose=0)):
        reduce = "avg" if "Average" in cls else "max"
        want = adaptive_numpy(x, n, reduce, f == "channels_first")
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6, err_msg=cls)
        layer = getattr(layers, cls)(n, data_format=f)
        assert layer.compute_output_shape((None, *shape)) == (None, *y.shape[1:])


@pytest.mark.slow
def test_outputs_and_configs_match_keras():
    check_keras_cases([n for n, case in CASES.items() if case[0].startswith("Adaptive")])


def small_model():
    volume, image = keras.Input((5, 4, 3, 2)), keras.Input((7, 5, 2))
    a = layers.AdaptiveMaxPooling3D((2, 3, 2))(layers.Dense(2)(volume))
    a = layers.AdaptiveAveragePooling3D(1)(a)
    b = layers.AdaptiveAveragePooling2D((3, 2))(layers.Dense(2)(image))
    b = layers.AdaptiveMaxPooling2D((2, 2), data_format="channels_first")(b)
    c = layers.AdaptiveMaxPooling1D(3)(layers.Reshape((7, 10))(image))
    c = layers.AdaptiveAveragePooling1D(2)(c)
    flat = [layers.Flatten()(t) for t in (a, b, c)]
    return keras.Model([volume, image], layers.Dense(2)(layers.Concatenate()(flat)))


@pytest.mark.slow
def test_gradients_by_central_differences(rng):
    model = small_model()
    model.compile("sgd", "mse")
    assert_model_gradients(model, rng, 2, lambda r, n: r.normal(size=(n, 2)))


@pytest.mark.slow
def test_compiled_train_steps_match_the_reference_interpreter(rng):
    def build(backend):
        keras.backend.clear_session()
        keras.utils.set_random_seed(3)
        model = small_model()
        model.compile(optimizer="adam", loss="mse", backend=backend)
        return model

    native, reference = build("llvm"), build("reference")
    for step, n in enumerate((1, 4)):
        x = [rng.normal(size=(n, *i.shape[1:])).astype(np.float32) for i in native.inputs]
        y = rng.normal(size=(n, 2)).astype(np.float32)
        a, b = native.train_on_batch(x, y), reference.train_on_batch(x, y)
        assert a == pytest.approx(b, rel=1e-5), step
        for va, vb in zip(native.weights, reference.weights):
            np.testing.assert_allclose(va.value, vb.value, rtol=1e-4, atol=1e-6, err_msg=va.path)


def test_configs_round_trip():
    for rank in (1, 2, 3):
        for kind in ("Average", "Max"):
            layer = getattr(layers, f"Adaptive{kind}Pooling{rank}D")(3, name=f"p{rank}")
            config = layer.get_config()
            assert config["output_size"] == (3,) * rank
            assert config["data_format"] == "channels_last"
            assert type(layer).from_config(config).get_config() == config


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: layers.AdaptiveAveragePooling1D((2, 3)), ValueError, "must have length 1"),
        (lambda: layers.AdaptiveMaxPooling1D("2"), TypeError, "integer or tuple of 1 integer"),
        (lambda: layers.AdaptiveMaxPooling2D((2, 3, 4)), TypeError, r"\(height, width\) tuple"),
        (lambda: layers.AdaptiveAveragePooling3D((2, 3)), TypeError, r"\(depth, height, width\)"),
        (lambda: layers.AdaptiveAveragePooling2D(2, data_format="nhwc"), ValueError, "Invalid"),
        (lambda: layers.AdaptiveMaxPooling2D(0), ValueError, "positive integers"),
    ],
)
def test_kerass_refusals(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_rank_refused_at_the_call():
    with pytest.raises(ValueError, match="expects inputs of rank 4"):
        layers.AdaptiveMaxPooling2D(2)(keras.Input((5, 3)))
