"""The random image augmentation layers (``RandomFlip``, ``RandomRotation``, ...): on a
fixed transform against Keras 3's own numbers (``keras_fixtures/image_ops.npz``, made by
``make_image_fixtures.py``); identity in inference; in training, each output image is the
layer's transform of its input with the parameters the step's generator drew, and those
lie in the layer's range; seeded runs repeat; compiled training equals the reference
interpreter's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.ir import BATCH, DType, Graph, Interpreter, TensorType
from kcompile.ir.ops.random import stream_key, uniform_bits

FIXTURES = np.load(Path(__file__).parent / "keras_fixtures" / "image_ops.npz")
X = FIXTURES["x"]  # (3, 5, 7, 3), values in [0, 255)
MODES = ("constant", "nearest", "wrap", "reflect")
GEOMETRIC = [(mode, interpolation) for mode in MODES for interpolation in ("nearest", "bilinear")]


def _apply(method, x: np.ndarray, *params: np.ndarray) -> np.ndarray:
    """``method(x, *params)`` of a layer, run on the reference interpreter."""
    g = Graph("transform")
    xv = g.add_input("x", TensorType(DType.f32, (BATCH, *x.shape[1:])))
    pv = []
    for i, p in enumerate(params):
        dtype = DType.bool if p.dtype == bool else DType.f32
        pv.append(g.add_input(f"p{i}", TensorType(dtype, (BATCH, *p.shape[1:]))))
    g.set_outputs([("y", method(xv, *pv))])
    feeds = {"x": x, **{f"p{i}": p for i, p in enumerate(params)}}
    return Interpreter(g).run(feeds)["y"]


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-3)


# --- fixed transforms against Keras ------------------------------------------------------


@pytest.mark.parametrize(("mode", "interpolation"), GEOMETRIC)
def test_rotation_translation_zoom_on_fixed_parameters_match_keras(mode, interpolation):
    options = dict(fill_mode=mode, interpolation=interpolation, fill_value=2.0)
    degrees = FIXTURES["rotation_degrees"].reshape(3, 1)
    rotate = layers.RandomRotation(0.5, **options).rotate
    _close(_apply(rotate, X, degrees), FIXTURES[f"rotation_{mode}_{interpolation}"])
    fractions = FIXTURES["translation_fractions"]  # (dx, dy) per image
    translate = layers.RandomTranslation(0.5, 0.5, **options).translate
    _close(
        _apply(translate, X, fractions[:, 1:], fractions[:, :1]),
        FIXTURES[f"translation_{mode}_{interpolation}"],
    )
    shear = layers.RandomShear(0.5, 0.5, **options).shear
    factors = FIXTURES["shear_factors"]  # (sx, sy) per image
    _close(
        _apply(shear, X, factors[:, :1], factors[:, 1:]),
        FIXTURES[f"shear_{mode}_{interpolation}"],
    )
    zoom = layers.RandomZoom(0.5, 0.5, **options).zoom
    _close(
        _apply(zoom, X, FIXTURES["zoom_height"], FIXTURES["zoom_width"]),
        FIXTURES[f"zoom_{mode}_{interpolation}"],
    )


def test_colour_and_flip_on_fixed_parameters_match_keras():
    contrast = layers.RandomContrast(0.9).adjust
    _close(_apply(contrast, X, FIXTURES["contrast_factor"]), FIXTURES["contrast"])
    brighten = layers.RandomBrightness(0.5).brighten
    _close(_apply(brighten, X, FIXTURES["brightness_factor"]), FIXTURES["brightness"])
    for mode in ("horizontal", "vertical", "horizontal_and_vertical"):
        flip = layers.RandomFlip(mode).flip
        np.testing.assert_array_equal(_apply(flip, X, FIXTURES["flips"]), FIXTURES[f"flip_{mode}"])


def test_grayscale_invert_solarization_and_auto_contrast_match_keras():
    apply = FIXTURES["apply"]
    _close(_apply(layers.RandomGrayscale(0.5).gray, X, apply), FIXTURES["grayscale"])
    invert = layers.RandomInvert(value_range=(0, 200)).invert
    _close(_apply(invert, X, apply), FIXTURES["invert"])
    solarize = layers.Solarization(0.5, 0.5, value_range=(-1, 300)).solarize
    _close(
        _apply(
            solarize,
            X,
            FIXTURES["solarization_additions"],
            FIXTURES["solarization_thresholds"],
        ),
        FIXTURES["solarization"],
    )
    degenerate = layers.RandomColorDegeneration(0.5).degenerate
    _close(_apply(degenerate, X, FIXTURES["degeneration_factor"]), FIXTURES["degeneration"])
    flat = FIXTURES["auto_contrast_input"]
    inputs = keras.Input(flat.shape[1:])
    model = keras.Model(inputs, layers.AutoContrast(value_range=(0, 300))(inputs))
    _close(model.predict(flat, verbose=0), FIXTURES["auto_contrast"])  # in inference too
    _close(layers.AutoContrast(value_range=(0, 300))(flat), FIXTURES["auto_contrast"])


def test_colour_layers_draw_per_image():
    x = np.random.default_rng(5).uniform(0, 255, size=(30, 3, 4, 3)).astype("float32")
    layer = layers.RandomGrayscale(0.4, seed=31)
    out = layer(x)
    gray = np.repeat((x @ np.array([0.2989, 0.5870, 0.1140], "float32"))[..., None], 3, -1)
    chosen = _drawn(layer, 0, 30, 0.0, 1.0)[:, 0] < 0.4
    assert 3 < chosen.sum() < 27
    _close(out, np.where(chosen[:, None, None, None], gray, x))
    invert = layers.RandomInvert(0.6, seed=32)
    out = invert(x)
    inverted = np.array([np.allclose(o, 255 - a) for o, a in zip(out, x)])
    kept = np.array([np.array_equal(o, a) for o, a in zip(out, x)])
    assert (inverted | kept).all() and 0 < inverted.sum() < 30
    solarize = layers.Solarization(0.2, (0.4, 0.8), seed=33)
    out = solarize(x)
    additions = _drawn(solarize, 0, 30, 0.0, 0.2 * 255)
    thresholds = _drawn(solarize, 1, 30, 0.4, 0.8 * 255)
    _close(out, _apply(solarize.solarize, x, additions, thresholds))


# --- inference ---------------------------------------------------------------------------


def _every_layer():
    return [
        layers.RandomFlip(seed=1),
        layers.RandomTranslation(0.3, 0.2, seed=2),
        layers.RandomRotation(0.2, seed=3),
        layers.RandomZoom(0.3, seed=4),
        layers.RandomContrast(0.5, seed=5),
        layers.RandomBrightness(0.2, seed=6),
        layers.RandomGrayscale(0.5, seed=7),
        layers.RandomInvert(seed=8),
        layers.Solarization(0.3, 0.5, seed=9),
        layers.RandomColorDegeneration(0.4, seed=10),
        layers.RandomShear(0.3, 0.2, seed=11),
    ]


def test_identity_in_inference():
    """Every layer, as one compiled model's outputs (one compile for all) and eagerly."""
    every = _every_layer()
    inputs = keras.Input(X.shape[1:])
    model = keras.Model(inputs, [layer(inputs) for layer in every])
    integers = X.astype("int32")
    for layer, got in zip(every, model.predict(X, verbose=0), strict=True):
        name = type(layer).__name__
        np.testing.assert_array_equal(got, X, err_msg=f"{name} in a compiled model")
        np.testing.assert_array_equal(layer(X, training=False), X, err_msg=name)
        out = layer(integers, training=False)
        assert out.dtype == np.float32, f"{name}: {out.dtype}"
        np.testing.assert_array_equal(out, integers, err_msg=f"{name} on int32")


CROP_SIZES = [(3, 4), (7, 9), (4, 7)]


def test_random_crop_in_inference_takes_keras_window():
    """Each size as one output of one compiled model."""
    inputs = keras.Input(X.shape[1:])
    model = keras.Model(inputs, [layers.RandomCrop(*size)(inputs) for size in CROP_SIZES])
    for size, got in zip(CROP_SIZES, model.predict(X, verbose=0), strict=True):
        np.testing.assert_allclose(
            got, FIXTURES[f"crop_center_{size[0]}x{size[1]}"], rtol=1e-5, atol=2e-3,
            err_msg=f"RandomCrop{size}",
        )  # fmt: skip


# --- training: the allowed transforms, with parameters in range --------------------------


def _drawn(layer, k: int, n: int, low: float, high: float) -> np.ndarray:
    """The [n, 1] numbers the layer's k-th draw made in its last call on data (counter 0)."""
    u = uniform_bits(stream_key(layer.draw_seed(k), 0), n).astype(np.float32)
    return (u * np.float32(high - low) + np.float32(low)).reshape(n, 1)


def test_random_flip_gives_each_image_or_its_flip():
    x = np.random.default_rng(1).normal(size=(40, 4, 5, 2)).astype("float32")
    layer = layers.RandomFlip("horizontal", seed=7)
    out = layer(x)  # training by default on data, as Keras's
    flipped = np.array([np.array_equal(o, a[:, ::-1]) for o, a in zip(out, x)])
    kept = np.array([np.array_equal(o, a) for o, a in zip(out, x)])
    assert (flipped | kept).all() and 5 < flipped.sum() < 35
    np.testing.assert_array_equal(flipped, _drawn(layer, 0, 40, 0.0, 1.0)[:, 0] <= 0.5)
    both = layers.RandomFlip(seed=7)(x)
    turned = np.array([np.array_equal(o, a[::-1, ::-1]) for o, a in zip(both, x)])
    assert (turned | np.array([np.array_equal(o, a) for o, a in zip(both, x)])).all()


def test_random_rotation_draws_angles_in_range():
    layer = layers.RandomRotation((-0.1, 0.25), fill_mode="constant", seed=11)
    out = layer(X)
    degrees = _drawn(layer, 0, 3, -36.0, 90.0)
    assert ((degrees >= -36.0) & (degrees <= 90.0)).all()
    _close(out, _apply(layer.rotate, X, degrees))


def test_random_translation_and_zoom_draw_in_range():
    layer = layers.RandomTranslation((-0.2, 0.1), 0.3, fill_mode="nearest", seed=12)
    out = layer(X)
    dy, dx = _drawn(layer, 0, 3, -0.2, 0.1), _drawn(layer, 1, 3, -0.3, 0.3)
    _close(out, _apply(layer.translate, X, dy, dx))
    zoom = layers.RandomZoom((-0.3, 0.2), seed=13)
    out = zoom(X)
    zh = _drawn(zoom, 0, 3, 0.7, 1.2)
    _close(out, _apply(zoom.zoom, X, zh, zh))  # no width_factor: the aspect ratio is kept
    assert ((zh >= 0.7) & (zh <= 1.2)).all()


def test_random_contrast_is_an_affine_map_about_the_mean_with_a_factor_in_range():
    x = np.random.default_rng(2).uniform(50, 200, size=(30, 4, 5, 3)).astype("float32")
    layer = layers.RandomContrast(0.5, seed=14)
    out = layer(x)
    mean = x.mean((1, 2), keepdims=True)
    # per image: out - mean = f * (x - mean) with f in Keras 3.15's [1, 1.5] (unclipped)
    factors = ((out - mean) * (x - mean)).sum((1, 2, 3)) / ((x - mean) ** 2).sum((1, 2, 3))
    inside = (out > 0) & (out < 255)
    assert inside.mean() > 0.9
    expected = np.clip((x - mean) * factors[:, None, None, None] + mean, 0, 255)
    np.testing.assert_allclose(out[inside], expected[inside], rtol=1e-4, atol=1e-2)
    assert ((factors > 1.0 - 1e-4) & (factors < 1.5 + 1e-4)).all()
    assert layers.RandomContrast((0.2, 0.5)).factor == (0.2, 0.5)


def test_random_brightness_adds_one_delta_per_image_in_range():
    x = np.random.default_rng(3).uniform(0, 1, size=(20, 4, 5, 3)).astype("float32")
    layer = layers.RandomBrightness(0.3, value_range=(0, 1), seed=15)
    out = layer(x)
    delta = _drawn(layer, 0, 20, -0.3, 0.3).reshape(20, 1, 1, 1)
    np.testing.assert_allclose(out, np.clip(x + delta, 0, 1), rtol=1e-6, atol=1e-6)


def test_random_crop_takes_one_window_of_the_batch():
    x = np.random.default_rng(4).normal(size=(4, 7, 6, 2)).astype("float32")
    out = layers.RandomCrop(3, 4, seed=16)(x)
    assert out.shape == (4, 3, 4, 2)
    windows = [
        (top, left)
        for top in range(5)
        for left in range(3)
        if np.array_equal(out, x[:, top : top + 3, left : left + 4])
    ]
    assert len(windows) == 1
    seen = set()
    for seed in range(20):
        out = layers.RandomCrop(3, 4, seed=seed)(x)
        seen |= {
            (top, left)
            for top in range(5)
            for left in range(3)
            if np.array_equal(out, x[:, top : top + 3, left : left + 4])
        }
    assert len(seen) > 5
    # as Keras's: where the images are not larger in both dimensions, a fixed window
    same = [layers.RandomCrop(3, 6, seed=seed)(x) for seed in range(3)]
    np.testing.assert_array_equal(same[0], same[1])
    np.testing.assert_array_equal(same[0], x[:, 2:5, 0:6])  # the 3x6 box centred in 7x6


# --- seeds, single images, model training --------------------------------------------------


def test_seeded_layers_repeat_and_each_call_draws_anew():
    first = layers.RandomRotation(0.3, seed=21)
    second = layers.RandomRotation(0.3, seed=21)
    a, b = first(X), second(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(first(X), a)
    assert layers.RandomFlip(seed=1)(X[0]).shape == X[0].shape


def _augmented_model():
    return keras.Sequential(
        [
            keras.Input((6, 5, 3)),
            layers.RandomFlip(seed=1),
            layers.RandomTranslation(0.2, 0.2, seed=2),
            layers.RandomRotation(0.1, fill_mode="constant", seed=3),
            layers.RandomZoom(0.2, seed=4),
            layers.RandomShear(0.2, (0.1, 0.3), fill_mode="wrap", seed=12),
            layers.RandomContrast(0.3, value_range=(-5, 5), seed=5),
            layers.RandomBrightness(0.1, value_range=(-5, 5), seed=6),
            layers.RandomGrayscale(0.5, seed=8),
            layers.RandomInvert(0.5, value_range=(-5, 5), seed=9),
            layers.Solarization(0.1, 0.5, value_range=(-5, 5), seed=10),
            layers.AutoContrast(value_range=(-5, 5)),
            layers.RandomColorDegeneration(0.5, value_range=(-5, 5), seed=11),
            layers.RandomCrop(4, 4, seed=7),
            layers.Conv2D(3, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )


@pytest.mark.slow  # 7 s: two compiles of thirteen layers (the quick tier has fuzz seed 1)
def test_compiled_training_matches_the_reference_interpreter(rng):
    x = rng.normal(size=(8, 6, 5, 3)).astype("float32")
    y = rng.integers(0, 3, 8)
    results = []
    for backend in ("llvm", "reference"):
        keras.utils.set_random_seed(3)
        model = _augmented_model()
        model.compile("adam", "sparse_categorical_crossentropy", backend=backend)
        history = model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
        results.append((history.history["loss"], model.get_weights(), model.predict(x, verbose=0)))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results[0][2], results[1][2], rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # 7 s
def test_training_repeats_with_a_seed(rng):
    x = rng.normal(size=(8, 6, 5, 3)).astype("float32")
    y = rng.integers(0, 3, 8)
    losses = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        model = _augmented_model()
        model.compile("adam", "sparse_categorical_crossentropy")
        losses.append(model.fit(x, y, epochs=2, batch_size=4, verbose=0).history["loss"])
    assert losses[0] == losses[1]


# --- Keras's arguments and errors ----------------------------------------------------------


def test_configs_round_trip():
    for layer in [*_every_layer(), layers.RandomCrop(3, 4, seed=8), layers.AutoContrast()]:
        config = layer.get_config()
        again = type(layer).from_config(config)
        assert again.get_config() == config


def test_arguments_are_checked_as_keras_checks_them():
    with pytest.raises(ValueError, match="factor"):
        layers.RandomRotation(1.5)
    with pytest.raises(ValueError, match="height_factor"):
        layers.RandomZoom(-1.0)
    with pytest.raises(NotImplementedError, match="fill_mode"):
        layers.RandomTranslation(0.1, 0.1, fill_mode="mirror")
    with pytest.raises(NotImplementedError, match="interpolation"):
        layers.RandomZoom(0.1, interpolation="bicubic")
    with pytest.raises(ValueError, match="mode"):
        layers.RandomFlip("diagonal")
    with pytest.raises(NotImplementedError, match="channels_last"):
        layers.RandomFlip(data_format="channels_first")
    with pytest.raises(NotImplementedError, match="dictionaries"):
        layers.RandomFlip()({"images": X})
    with pytest.raises(NotImplementedError, match="bounding boxes"):
        layers.RandomFlip(bounding_box_format="xyxy")
    with pytest.raises(ValueError, match="expects images"):
        layers.RandomFlip()(np.zeros((2, 3), "float32"))
