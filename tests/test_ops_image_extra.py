"""``keras.ops.image``'s filters and warps (gaussian_blur, sobel_edges, ssim,
map_coordinates, perspective_transform, scale_and_translate, extract_patches_3d,
elastic_transform) against Keras 3's own numbers (``keras_fixtures/image_extra.npz``,
made by ``make_image_extra_fixtures.py`` with Keras 3.15.1 on JAX): eagerly (the
reference interpreter), compiled in a model, and their gradients by central
differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers, ops
from kcompile.ir import BATCH, DType, Graph, Interpreter, TensorType
from kcompile.ops.image_sampling import Sampling
from kcompile.ops.image_warps import displace
from tests.gradcheck import assert_model_gradients

F = np.load(Path(__file__).parent / "keras_fixtures" / "image_extra.npz")
X, Y = F["x"], F["y"]
BLURS = [((3, 3), (1.0, 1.0)), ((5, 3), (2.0, 0.7)), ((4, 2), (1.3, 0.5))]
MODES = ("constant", "nearest", "wrap", "mirror", "reflect")
PATCH_CASES = [
    dict(size=2),
    dict(size=(2, 3, 2), strides=(1, 2, 3)),
    dict(size=(3, 2, 2), strides=1, dilation_rate=(2, 1, 1)),
    dict(size=(2, 3, 3), strides=(2, 2, 2), padding="same"),
]


def _close(got, want, atol=1e-5):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol)


def test_filters_match_keras():
    for i, (size, sigma) in enumerate(BLURS):
        _close(ops.image.gaussian_blur(X, size, sigma), F[f"blur_{i}"])
    _close(ops.image.gaussian_blur(X[0], (5, 3), (2.0, 0.7)), F["blur_1"][0])
    _close(ops.image.sobel_edges(X), F["sobel"])
    _close(ops.image.ssim(X, Y, filter_size=7), F["ssim_7"])
    args = dict(max_val=2.0, filter_size=5, filter_sigma=0.8, k1=0.02, k2=0.05)
    _close(ops.image.ssim(X, Y, **args), F["ssim_5"])
    single = ops.image.ssim(X[0], Y[0], filter_size=3)
    assert np.shape(single) == ()
    _close(single, F["ssim_single"])
    _close(ops.image.ssim(X, X, filter_size=3), np.ones(2))


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("mode", MODES)
def test_map_coordinates_matches_keras(order, mode):
    got = ops.image.map_coordinates(F["map_table"], F["map_coordinates"], order, mode, 0.7)
    _close(got, F[f"map_{order}_{mode}"])


def test_map_coordinates_of_integers_rounds_and_checks_as_keras():
    table = np.arange(12, dtype="int32").reshape(3, 4)
    got = ops.image.map_coordinates(table, [[0.5, 1.25], [0.5, 2.5]], 1)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [3, 8])  # 2.5 and 7.5 rounded away from zero
    with pytest.raises(ValueError, match="order"):
        ops.image.map_coordinates(table, [[0.5], [0.5]], 3)
    with pytest.raises(ValueError, match="rank of `inputs`"):
        ops.image.map_coordinates(table, [[0.5]], 1)
    with pytest.raises(ValueError, match="fill_mode"):
        ops.image.map_coordinates(table, [[0.5], [0.5]], 1, fill_mode="edge")


def test_perspective_and_scale_and_translate_match_keras():
    for interpolation in ("nearest", "bilinear"):
        got = ops.image.perspective_transform(
            X, F["start_points"], F["end_points"], interpolation, 0.5
        )
        _close(got, F[f"perspective_{interpolation}"], atol=5e-5)
    one = ops.image.perspective_transform(
        X[1], F["start_points"][1], F["end_points"][1], "bilinear", 0.5
    )
    _close(one, F["perspective_bilinear"][1], atol=5e-5)
    cases = [((0.6, 1.7), (0.5, -1.0), (1, 6, 13, 2)), ((2.0, 0.5), (0.0, 0.3), (1, 18, 4, 2))]
    for method in ("linear", "cubic", "lanczos3", "lanczos5"):
        for antialias in (True, False):
            for i, (scale, translation, shape) in enumerate(cases):
                got = ops.image.scale_and_translate(
                    F["scale_image"], shape, np.array(scale), np.array(translation), (1, 2),
                    method, antialias,
                )  # fmt: skip
                _close(got, F[f"scale_{method}_{antialias}_{i}"])


@pytest.mark.parametrize("index", range(len(PATCH_CASES)))
def test_extract_patches_3d_matches_keras(index):
    got = ops.image.extract_patches_3d(F["volumes"], **PATCH_CASES[index])
    np.testing.assert_array_equal(got, F[f"patches3d_{index}"])
    single = ops.image.extract_patches_3d(F["volumes"][1], **PATCH_CASES[index])
    np.testing.assert_array_equal(single, F[f"patches3d_{index}"][1])


def _run(method, x: np.ndarray, *params: np.ndarray) -> np.ndarray:
    """``method(x, *params)`` over IR values, on the reference interpreter."""
    g = Graph("warp")
    xv = g.add_input("x", TensorType(DType.f32, (BATCH, *x.shape[1:])))
    pv = [g.add_input(f"p{i}", TensorType(DType.f32, (BATCH, *p.shape[1:]))) for i, p in
          enumerate(params)]  # fmt: skip
    g.set_outputs([("y", method(xv, *pv))])
    return Interpreter(g).run({"x": x, **{f"p{i}": p for i, p in enumerate(params)}})["y"]


@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_elastic_transform_on_keras_field_matches_keras(mode):
    """Keras's elastic warp given the normal field Keras drew (its dx and dy alike)."""
    how = Sampling("bilinear", mode, 1.5)
    field = F["elastic_field"][..., None]
    got = _run(lambda x, f: displace(x, B_reshape(f), 2.5, 0.9, how), X * 50, field)
    _close(got, F[f"elastic_{mode}"], atol=2e-4)


def B_reshape(f):
    from kcompile.ir import build as B

    return B.reshape(f, f.shape[:3])


def test_elastic_transform_draws_a_smooth_field():
    images = np.random.default_rng(3).uniform(0, 1, (3, 12, 10, 2)).astype("float32")
    still = ops.image.elastic_transform(images, alpha=0.0, sigma=1.0, seed=4)
    _close(still, images)  # no displacement: each pixel reads itself
    moved = ops.image.elastic_transform(images, alpha=3.0, sigma=1.0, seed=4)
    again = ops.image.elastic_transform(images, alpha=3.0, sigma=1.0, seed=4)
    np.testing.assert_array_equal(moved, again)  # a seed repeats
    assert moved.shape == images.shape and not np.allclose(moved, images)
    assert np.isfinite(moved).all() and moved.min() >= 0 and moved.max() <= 1  # reflect


@pytest.mark.slow  # 8 s: one compile of five ops
def test_ops_compiled_in_a_model_match_keras():
    """Batched inputs of a model: points and images traced, the 8×8 solves and the row
    gathers native."""
    images, start, end = keras.Input(X.shape[1:]), keras.Input((4, 2)), keras.Input((4, 2))
    volumes = keras.Input(F["volumes"].shape[1:])
    outputs = [
        ops.image.gaussian_blur(images, (5, 3), (2.0, 0.7)),
        ops.image.sobel_edges(images),
        ops.image.ssim(images, images * 0.5 + 0.1, filter_size=7),
        ops.image.perspective_transform(images, start, end, "bilinear", 0.5),
        ops.image.extract_patches_3d(volumes, **PATCH_CASES[3]),
    ]
    model = keras.Model([images, start, end, volumes], outputs)
    got = model.predict([X, F["start_points"], F["end_points"], F["volumes"]], verbose=0)
    _close(got[0], F["blur_1"])
    _close(got[1], F["sobel"])
    _close(got[2], ops.image.ssim(X, X * 0.5 + 0.1, filter_size=7))
    _close(got[3], F["perspective_bilinear"], atol=5e-5)
    np.testing.assert_array_equal(got[4], F["patches3d_3"])


@pytest.mark.slow  # 4 s: the op chain interpreted in float64 once per parameter
def test_gradients_by_central_differences(rng):
    """Every op's VJP at once: one small Dense feeds them all, and a fixed projection
    (no parameters) reads their outputs, so the differences are few."""
    inputs = keras.Input((2,))
    h = layers.Reshape((4, 3, 2))(layers.Dense(24, activation="tanh")(inputs))
    start = np.array([[0, 0], [2, 0], [0, 3], [2, 3]], "float32")
    end = np.array([[0.2, 0.1], [2.1, 0.3], [0, 2.6], [1.7, 3]], "float32")
    parts = [
        ops.image.gaussian_blur(h, (3, 3), (0.8, 1.2)),
        ops.image.sobel_edges(h),
        ops.image.perspective_transform(h, start, end),
        ops.image.scale_and_translate(h, (1, 5, 2, 2), [1.3, 0.7], [0.2, 0.1], (1, 2), "cubic"),
        ops.image.extract_patches_3d(layers.Reshape((2, 2, 3, 2))(h), 2, strides=1),
        ops.reshape(ops.image.ssim(h, h * 0.5, filter_size=3), (-1, 1)),
    ]
    flat = layers.Concatenate()([layers.Flatten()(p) for p in parts])
    weights = np.random.default_rng(1).normal(size=(flat.shape[-1],)).astype("float32")
    out = ops.sum(flat * weights, axis=-1, keepdims=True)
    model = keras.Model(inputs, out)
    model.compile(optimizer="sgd", loss="mse")
    assert_model_gradients(model, rng, 3, lambda r, n: r.normal(size=(n, 1)).astype(np.float32))


def test_refusals_and_checks_name_the_op():
    with pytest.raises(NotImplementedError, match="scale_and_translate.*traced scale"):
        inputs = keras.Input((4, 4, 1))
        scale = keras.Input((2,))
        ops.image.scale_and_translate(inputs, (1, 4, 4, 1), scale, [0.0, 0.0], (1, 2), "linear")
    with pytest.raises(ValueError, match="method"):
        ops.image.scale_and_translate(X, X.shape, [1, 1], [0, 0], (1, 2), "nearest")
    with pytest.raises(ValueError, match="start_points"):
        ops.image.perspective_transform(X, np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(NotImplementedError, match="map_coordinates.*batch"):
        ops.image.map_coordinates(keras.Input((4, 4)), np.zeros((3, 2)), 1)
    with pytest.raises(ValueError, match="filter_size"):
        ops.image.ssim(X, Y, filter_size=11)


@pytest.mark.parametrize("mode", ["constant", "mirror"])
def test_map_coordinates_gradient_by_central_differences(mode):
    """d/d(table) and d/d(coordinates) of the linear interpolation, away from the kinks
    (coordinates off the integers)."""
    from kcompile.backend.symbolic import TracedTensor
    from kcompile.ir import build as B
    from kcompile.ir.differences import numeric_gradient
    from kcompile.passes import append_gradients

    g = Graph("map_coordinates")
    table = g.add_input("table", TensorType(DType.f32, (4, 5)))
    coords = g.add_input("coords", TensorType(DType.f32, (2, 6)))
    out = ops.image.map_coordinates(TracedTensor(table), TracedTensor(coords), 1, mode, 0.5)
    weights = B.const_array(g, np.linspace(-1, 2, 6).tolist(), DType.f32, (6,))
    loss = B.reduce_sum(out.value * weights, (0,))
    grads = append_gradients(g, loss, [table, coords])
    g.set_outputs([("loss", loss), ("d_table", grads[0]), ("d_coords", grads[1])])
    rng = np.random.default_rng(4)
    feeds = {
        "table": rng.normal(size=(4, 5)),
        "coords": np.round(rng.uniform(-1.5, 5.5, size=(2, 6))) + rng.uniform(0.2, 0.8, (2, 6)),
    }
    got = Interpreter(g).run(feeds)
    for name in ("table", "coords"):
        want = numeric_gradient(g, feeds, name)
        np.testing.assert_allclose(got[f"d_{name}"], want, rtol=1e-3, atol=1e-4, err_msg=name)
