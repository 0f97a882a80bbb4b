"""``keras.ops.image`` against Keras 3's own numbers (``keras_fixtures/image_ops.npz``, made
by ``make_image_fixtures.py`` with Keras 3.15.1 on JAX): eagerly (the reference
interpreter), compiled in a model, and its gradient by central differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers, ops
from tests.gradcheck import assert_model_gradients

FIXTURES = np.load(Path(__file__).parent / "keras_fixtures" / "image_ops.npz")
X = FIXTURES["x"]
CASES = [
    (kind, interpolation, mode, fill)
    for kind in ("general", "aligned")
    for interpolation in ("nearest", "bilinear")
    for mode in ("constant", "nearest", "wrap", "mirror", "reflect")
    for fill in (0.0, 1.5)
]


@pytest.mark.parametrize(("kind", "interpolation", "mode", "fill"), CASES)
def test_affine_transform_matches_keras(kind, interpolation, mode, fill):
    transform = FIXTURES[f"transform_{kind}"]
    got = ops.image.affine_transform(
        X, transform, interpolation=interpolation, fill_mode=mode, fill_value=fill
    )
    want = FIXTURES[f"affine_{kind}_{interpolation}_{mode}_{fill}"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_affine_transform_of_one_image_and_one_transform():
    transform = FIXTURES["transform_general"]
    got = ops.image.affine_transform(X[1], transform[1], fill_mode="reflect")
    want = FIXTURES["affine_general_bilinear_reflect_0.0"][1]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_affine_transform_of_integer_images_rounds_as_keras():
    transform = FIXTURES["transform_general"]
    images = np.round(X).astype("int32")
    got = ops.image.affine_transform(images, transform)
    assert got.dtype == np.int32
    import_free = ops.image.affine_transform(images.astype("float32"), transform)
    np.testing.assert_array_equal(got, np.sign(import_free) * np.floor(np.abs(import_free) + 0.5))


def test_affine_transform_compiled_in_a_model_matches_keras():
    """A traced transform (an input of the model) takes the general path, natively."""
    images = keras.Input(X.shape[1:])
    transform = keras.Input((8,))
    out = ops.image.affine_transform(images, transform, fill_mode="wrap", fill_value=1.5)
    model = keras.Model([images, transform], out)
    for kind in ("general", "aligned"):
        got = model.predict([X, FIXTURES[f"transform_{kind}"]], verbose=0)
        want = FIXTURES[f"affine_{kind}_bilinear_wrap_1.5"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_affine_transform_gradient_by_central_differences(rng):
    transform = FIXTURES["transform_general"][:1]
    inputs = keras.Input((12,))
    h = layers.Reshape((2, 3, 2))(layers.Dense(12, activation="tanh")(inputs))
    h = ops.image.affine_transform(h, transform, fill_mode="reflect")
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(layers.Flatten()(h)))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert_model_gradients(model, rng, 3, lambda r, n: r.integers(0, 3, n).astype(np.int32))


@pytest.mark.parametrize("size", [(3, 4), (9, 11)])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resize_matches_keras(size, interpolation):
    got = ops.image.resize(X, size, interpolation=interpolation)
    want = FIXTURES[f"resize_{size[0]}x{size[1]}_{interpolation}"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


PATCHES = {
    "2_valid": dict(size=2, strides=1),
    "2x3_same": dict(size=(2, 3), strides=(2, 2), padding="same"),
    "3_dilated": dict(size=2, strides=1, dilation_rate=2),
    "3_default": dict(size=3),
}


@pytest.mark.parametrize("name", sorted(PATCHES))
def test_extract_patches_matches_keras(name):
    got = ops.image.extract_patches(X, **PATCHES[name])
    np.testing.assert_allclose(got, FIXTURES[f"patches_{name}"], rtol=1e-6)


def test_crop_pad_and_grayscale_match_keras():
    image = ops.image
    np.testing.assert_array_equal(
        image.crop_images(X, 1, 2, target_height=3, target_width=4), FIXTURES["crop"]
    )
    np.testing.assert_array_equal(
        image.crop_images(X, bottom_cropping=1, right_cropping=2, target_height=2, target_width=3),
        FIXTURES["crop_bottom"],
    )
    np.testing.assert_array_equal(
        image.pad_images(X, 1, 2, target_height=8, target_width=10), FIXTURES["pad"]
    )
    np.testing.assert_allclose(image.rgb_to_grayscale(X), FIXTURES["gray"], rtol=1e-6)
    gray = image.rgb_to_grayscale(X.astype("int32"))
    assert gray.dtype == np.int32
    np.testing.assert_array_equal(gray, FIXTURES["gray_int"])


def test_hsv_conversions_match_keras():
    unit = FIXTURES["unit"]
    np.testing.assert_allclose(ops.image.rgb_to_hsv(unit), FIXTURES["hsv"], rtol=1e-5, atol=1e-6)
    hsv = unit * np.array([3.0, 1.0, 1.0], "float32") - 1.0  # hues out of [0, 1) too
    np.testing.assert_allclose(ops.image.hsv_to_rgb(hsv), FIXTURES["rgb"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        ops.image.hsv_to_rgb(ops.image.rgb_to_hsv(unit)), unit, rtol=1e-5, atol=1e-6
    )
    with pytest.raises(TypeError, match="float images"):
        ops.image.rgb_to_hsv(X.astype("int32"))


def test_image_ops_in_a_compiled_model():
    inputs = keras.Input(X.shape[1:])
    cropped = ops.image.crop_images(inputs, 1, 2, target_height=3, target_width=4)
    resized = ops.image.resize(inputs, (9, 11))
    gray = ops.image.rgb_to_grayscale(inputs)
    patches = ops.image.extract_patches(inputs, size=(2, 3), strides=(2, 2), padding="same")
    hsv = ops.image.rgb_to_hsv(inputs / 255.0)
    model = keras.Model(inputs, [cropped, resized, gray, patches, hsv])
    got = model.predict(FIXTURES["unit"] * 255.0, verbose=0)[4:]
    np.testing.assert_allclose(got[0], FIXTURES["hsv"], rtol=1e-4, atol=1e-5)
    got = model.predict(X, verbose=0)
    for out, key in zip(got, ["crop", "resize_9x11_bilinear", "gray", "patches_2x3_same"]):
        np.testing.assert_allclose(out, FIXTURES[key], rtol=1e-5, atol=1e-3, err_msg=key)


def test_the_rest_of_keras_ops_image_is_refused_by_name():
    with pytest.raises(AttributeError, match="no attribute 'sobel'"):
        getattr(ops.image, "sobel")  # noqa: B009  (not a name of Keras's module either)
    with pytest.raises(NotImplementedError, match="projective"):
        ops.image.affine_transform(X, [1, 0, 0, 0, 1, 0, 0.1, 0])
    with pytest.raises(NotImplementedError, match="channels_last"):
        ops.image.resize(X, (2, 2), data_format="channels_first")
    with pytest.raises(ValueError, match="fill_mode"):
        ops.image.affine_transform(X, FIXTURES["transform_general"], fill_mode="edge")
    with pytest.raises(ValueError, match="exactly two"):
        ops.image.pad_images(X, 1, 2)
