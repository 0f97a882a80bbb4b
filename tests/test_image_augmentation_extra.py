"""The colour, blur, erasing, equalization, perspective and elastic augmentation layers
of Keras 3.15 (``RandomHue``, ``RandomSaturation``, ``RandomColorJitter``,
``RandomSharpness``, ``RandomPosterization``, ``RandomGaussianBlur``, ``RandomErasing``,
``Equalization``, ``RandomPerspective``, ``RandomElasticTransform``): on the parameters of
one draw against Keras 3's own numbers (``keras_fixtures/image_extra.npz``, made by
``make_image_extra_fixtures.py``); identity in inference; in training, each output is
the layer's transform with the parameters the step's generator drew, and those lie in
the layer's range; compiled training equals the reference interpreter's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.ir import BATCH, DType, Graph, Interpreter, TensorType
from kcompile.ir.ops.random import stream_key, uniform_bits

F = np.load(Path(__file__).parent / "keras_fixtures" / "image_extra.npz")
X = F["images"]  # (3, 6, 7, 3), values in [0, 255)


def _apply(method, x: np.ndarray, *params: np.ndarray) -> np.ndarray:
    """``method(x, *params)`` of a layer, run on the reference interpreter (a parameter
    whose first axis is 1 is the batch's, the others per image)."""
    g = Graph("transform")
    xv = g.add_input("x", TensorType(DType.f32, (BATCH, *x.shape[1:])))
    pv = []
    for i, p in enumerate(params):
        dtype = DType.bool if p.dtype == bool else DType.f32
        shape = p.shape if p.shape[0] == 1 and len(x) != 1 else (BATCH, *p.shape[1:])
        pv.append(g.add_input(f"p{i}", TensorType(dtype, shape)))
    g.set_outputs([("y", method(xv, *pv))])
    feeds = {"x": x, **{f"p{i}": p for i, p in enumerate(params)}}
    return Interpreter(g).run(feeds)["y"]


def _close(got, want, atol=2e-3):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol)


def _drawn(layer, k: int, shape: tuple, low: float, high: float) -> np.ndarray:
    """The numbers the layer's k-th draw made in its last call on data (counter 0)."""
    u = uniform_bits(stream_key(layer.draw_seed(k), 0), int(np.prod(shape))).astype(np.float32)
    return (u * np.float32(high - low) + np.float32(low)).reshape(shape)


def _chosen(layer, n: int, factor: tuple) -> np.ndarray:
    """Keras's ``threshold < U(factor)`` per image, from draws 0 and 1."""
    return _drawn(layer, 1, (n, 1), 0.0, 1.0) < _drawn(layer, 0, (n, 1), *factor)


# --- the parameters of one draw, against Keras ----------------------------------------------


def test_colour_layers_on_fixed_parameters_match_keras():
    turn = F["hue_turn"].reshape(3, 1)
    _close(_apply(layers.RandomHue(0.5).shift, X, turn), F["hue"])
    saturate = layers.RandomSaturation(0.5, value_range=(0, 1)).saturate
    _close(_apply(saturate, X / 255.0, F["saturation_factor"].reshape(3, 1)), F["saturation"], 1e-5)
    sharpen = layers.RandomSharpness(0.9).sharpen
    _close(_apply(sharpen, X, F["sharpness_factor"].reshape(3, 1)), F["sharpness"])
    posterize = layers.RandomPosterization(8).posterize
    bits = F["posterization_bits"].reshape(3, 1)
    np.testing.assert_array_equal(_apply(posterize, X, bits), F["posterization"])


def test_blur_erasing_and_equalization_match_keras():
    blur = layers.RandomGaussianBlur(1.0, kernel_size=(5, 3), sigma=1.0).blur
    chosen = F["blur_chosen"].reshape(3, 1, 1, 1)
    _close(_apply(blur, X, chosen, F["blur_sigmas"].reshape(1, 2)), F["gaussian_blur"])
    eraser = layers.RandomErasing(1.0, fill_value=300.0)

    def erase(x, chosen, box):
        from kcompile.ir import build as B

        corners = [B.slice_(box, [0, i], [box.shape[0], i + 1]) for i in range(4)]
        return eraser.erase(x, chosen, tuple(corners), eraser.constant_fill(x))

    _close(_apply(erase, X, chosen, F["erasing_box"]), F["erasing"])
    _close(layers.Equalization()(X), F["equalization"])
    ranged = layers.Equalization(value_range=(-1, 2), bins=17)(X / 85.0 - 1.0)
    _close(ranged, F["equalization_range"], 1e-5)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_perspective_on_fixed_corner_moves_matches_keras(interpolation):
    layer = layers.RandomPerspective(1.0, 0.6, interpolation=interpolation, fill_value=9.0)
    chosen = F["blur_chosen"].reshape(3, 1, 1, 1)
    got = _apply(layer.warp, X, chosen, F["perspective_moves"])
    _close(got, F[f"random_perspective_{interpolation}"], 5e-3)


def test_elastic_warp_on_keras_field_matches_keras():
    """A distortion of 0.9 on 20x24 images: a 5-tap kernel inside the layer's widest (7
    taps, for scale 1.0), the other taps weighing 0."""
    layer = layers.RandomElasticTransform(1.0, (0.5, 1.0), fill_mode="wrap")
    images = F["elastic_images"]
    field = F["elastic_layer_field"][..., None]
    chosen = np.ones((2, 1, 1, 1), bool)
    got = _apply(layer.deform, images, chosen, np.full((1, 1), 0.9, "float32"), field)
    _close(got, F["elastic_layer"], 5e-3)


CLAHE_CASES = [
    dict(tile_grid_size=(2, 3)),
    dict(tile_grid_size=(3, 2), clip_limit=0.0),
    dict(),
    dict(value_range=(-1, 1), tile_grid_size=(4, 4), clip_limit=2.0),
]


def test_clahe_matches_keras_in_training_and_inference():
    images = F["clahe_images"]
    for i, args in enumerate(CLAHE_CASES):
        x = images if i < 3 else images / 255.0 * 2 - 1
        layer = layers.ContrastLimitedAdaptiveHistogramEqualization(**args)
        _close(layer(x), F[f"clahe_{i}"], 1e-4)
    in_inference = layers.ContrastLimitedAdaptiveHistogramEqualization((0, 255), 4.0, (2, 3))
    _close(in_inference(images, training=False), F["clahe_0"], 1e-4)  # as Keras's, always
    integers = layers.ContrastLimitedAdaptiveHistogramEqualization(tile_grid_size=(2, 3))(
        images.astype("int32")
    )
    assert integers.dtype == np.int32  # back in the images' dtype, as Keras's


# --- inference ---------------------------------------------------------------------------


def _every_layer():
    return [
        layers.RandomHue(0.4, seed=1),
        layers.RandomSaturation(0.6, seed=2),
        layers.RandomColorJitter(
            brightness_factor=0.2,
            contrast_factor=0.3,
            saturation_factor=0.4,
            hue_factor=0.2,
            seed=3,
        ),
        layers.RandomSharpness(0.5, seed=4),
        layers.RandomPosterization(5, seed=5),
        layers.RandomGaussianBlur(0.9, 3, 0.8, seed=6),
        layers.RandomErasing(0.9, seed=7),
        layers.Equalization(),
        layers.RandomPerspective(0.8, 0.4, seed=8),
        layers.RandomElasticTransform(0.9, 0.7, seed=9),
        layers.RandAugment(num_ops=2, seed=10),
        layers.AugMix(num_chains=2, chain_depth=2, seed=11),
        layers.MaxNumBoundingBoxes(4),
    ]


def test_identity_in_inference():
    chain = _every_layer()
    inputs = keras.Input(X.shape[1:])
    h = inputs
    for layer in chain:
        h = layer(h)
    model = keras.Model(inputs, h)
    np.testing.assert_array_equal(model.predict(X, verbose=0), X)
    for layer in chain:
        out = layer(X.astype("int32"), training=False)
        passes = isinstance(layer, layers.MaxNumBoundingBoxes)  # its images keep their dtype
        assert out.dtype == (np.int32 if passes else np.float32)
        np.testing.assert_array_equal(out, X.astype("int32"))


# --- training: the drawn parameters ---------------------------------------------------------


def test_colour_layers_apply_their_draws():
    x = np.random.default_rng(5).uniform(0, 255, size=(20, 4, 5, 3)).astype("float32")
    hue = layers.RandomHue(0.6, seed=11)
    out = hue(x)
    sign = np.where(_drawn(hue, 0, (20, 1), 0.0, 1.0) > 0.5, -1.0, 1.0)
    turn = sign * _drawn(hue, 1, (20, 1), 0.0, 0.6) * 0.5
    assert np.abs(turn).max() <= 0.3 and (turn < 0).any() and (turn > 0).any()
    _close(out, _apply(hue.shift, x, turn.astype("float32")))
    sharp = layers.RandomSharpness((0.2, 0.7), seed=12)
    out = sharp(x)
    _close(out, _apply(sharp.sharpen, x, _drawn(sharp, 0, (20, 1), 0.2, 0.7)))
    poster = layers.RandomPosterization(6, seed=13)
    out = poster(x)
    bits = np.floor(_drawn(poster, 0, (20, 1), 0.0, 5.0)) + 1  # randint(1, 6)
    assert set(np.unique(bits)) <= {1, 2, 3, 4, 5} and len(np.unique(bits)) > 2
    np.testing.assert_array_equal(out, _apply(poster.posterize, x, bits))
    saturation = layers.RandomSaturation((0.2, 0.8), value_range=(0, 255), seed=14)
    out = saturation(x / 255.0)
    f = _drawn(saturation, 0, (20, 1), 0.2, 0.8)
    _close(out, _apply(saturation.saturate, x / 255.0, f / (1 - f + 1e-7)), 1e-5)


def test_colour_jitter_chains_its_parts_with_its_draws():
    x = np.random.default_rng(6).uniform(0, 255, size=(10, 4, 5, 3)).astype("float32")
    jitter = layers.RandomColorJitter(
        brightness_factor=0.2, contrast_factor=0.3, saturation_factor=0.4, hue_factor=0.2, seed=15
    )
    out = jitter(x)
    n = (10, 1)
    want = _apply(jitter.random_brightness.brighten, x, _drawn(jitter, 0, n, -0.2, 0.2))
    want = _apply(jitter.random_contrast.adjust, want, _drawn(jitter, 1, n, 1.0, 1.3))
    f = _drawn(jitter, 2, n, 0.0, 0.4)
    want = _apply(jitter.random_saturation.saturate, want, f / (1 - f + 1e-7))
    sign = np.where(_drawn(jitter, 3, n, 0.0, 1.0) > 0.5, -1.0, 1.0)
    turn = (sign * _drawn(jitter, 4, n, 0.0, 0.2) * 0.5).astype("float32")
    _close(out, _apply(jitter.random_hue.shift, want, turn), 2e-2)


def test_blur_erasing_and_perspective_apply_their_draws():
    x = np.random.default_rng(7).uniform(0, 255, size=(24, 6, 5, 3)).astype("float32")
    blur = layers.RandomGaussianBlur(0.6, (3, 5), (0.3, 0.9), seed=16)
    out = blur(x)
    chosen = _chosen(blur, 24, (0.0, 0.6)).reshape(24, 1, 1, 1)
    assert 2 < chosen.sum() < 22
    sigmas = _drawn(blur, 2, (1, 2), 0.3, 0.9) + 1e-6
    _close(out, _apply(blur.blur, x, chosen, sigmas))
    eraser = layers.RandomErasing(0.7, scale=(0.1, 0.5), fill_value=7.0, seed=17)
    out = eraser(x)
    erased = ~np.isclose(out, x).all(axis=(1, 2, 3))
    chosen = _chosen_after(eraser, 24, 3, (0.0, 0.7))
    assert (erased <= chosen).all() and erased.sum() > 2
    sides = np.sqrt(_drawn(eraser, 0, (24, 2), 0.1, 0.5))
    assert ((out == 7.0).sum(axis=(1, 2, 3))[chosen] > 0).all()
    rows = (out == 7.0).any(axis=(2, 3)).sum(axis=1)
    assert (rows[chosen] <= np.ceil(sides[chosen, 1] * 6) + 1).all()
    perspective = layers.RandomPerspective(0.7, 0.5, seed=18)
    out = perspective(x)
    chosen = _chosen(perspective, 24, (0.0, 0.7)).reshape(24, 1, 1, 1)
    moves = _drawn(perspective, 2, (24, 8), -0.25, 0.25).reshape(24, 4, 2)
    _close(out, _apply(perspective.warp, x, chosen, moves), 5e-3)


def _chosen_after(layer, n: int, k: int, factor: tuple) -> np.ndarray:
    return (_drawn(layer, k + 1, (n, 1), 0.0, 1.0) < _drawn(layer, k, (n, 1), *factor))[:, 0]


def test_elastic_transform_moves_chosen_images_smoothly():
    x = np.random.default_rng(8).uniform(0, 255, size=(16, 12, 10, 3)).astype("float32")
    layer = layers.RandomElasticTransform(0.6, (0.5, 1.0), fill_mode="nearest", seed=19)
    out = layer(x)
    chosen = _chosen(layer, 16, (0.0, 0.6))[:, 0]
    moved = ~np.isclose(out, x).all(axis=(1, 2, 3))
    np.testing.assert_array_equal(moved, chosen)
    assert out.min() >= 0 and out.max() <= 255
    still = layers.RandomElasticTransform(1.0, 0.0, seed=19)(x)
    np.testing.assert_array_equal(still, x)  # scale 0: Keras returns the images


def test_seeded_layers_repeat_and_single_images():
    for make in (lambda: layers.RandomHue(0.5, seed=3), lambda: layers.RandomErasing(seed=4)):
        a, b = make()(X), make()(X)
        np.testing.assert_array_equal(a, b)
        assert make()(X[0]).shape == X[0].shape


@pytest.mark.slow  # 2-9 s: four eager calls of twenty-two candidates each
def test_rand_augment_applies_the_drawn_augmentations():
    from kcompile.layers.preprocessing.image_preprocessing.rand_augment import AUGMENT_LAYERS

    x = np.random.default_rng(9).uniform(0, 255, size=(4, 6, 7, 3)).astype("float32")
    seen = set()
    for seed in range(4):
        layer = layers.RandAugment(num_ops=2, factor=0.6, seed=seed)
        out = layer(x)
        picks = np.floor(_drawn(layer, 0, (1, 2), 0.0, 11.0))[0].astype(int)
        seen.update(picks)
        want = x
        for pick in picks:  # each part draws once per call: a part picked twice repeats
            part = getattr(layer, AUGMENT_LAYERS[pick])
            part._data_calls = 0  # its next call on data draws what the call above drew
            want = part(want)
        _close(out, want)
    assert len(seen) >= 4


def test_aug_mix_mixes_its_chains_with_dirichlet_and_beta_weights():
    x = np.random.default_rng(10).uniform(0, 255, size=(4, 6, 7, 3)).astype("float32")
    layer = layers.AugMix(num_chains=2, chain_depth=2, alpha=0.7, seed=20)
    out = layer(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, x)
    chains = layer.chains()  # what the call above picked
    assert len(chains) == 2 and all(len(c) <= 2 for c in chains)
    again = layers.AugMix(num_chains=2, chain_depth=2, alpha=0.7, seed=20)(x)
    np.testing.assert_array_equal(out, again)


def test_gamma_draws_have_the_gamma_moments():
    from kcompile.layers.preprocessing.image_preprocessing.random_draws import gamma

    class Step:
        def __init__(self, graph):
            self.counter = graph.add_input("step", TensorType(DType.i32, ()))

        def step_counter(self):
            return self.counter

    for alpha in (0.4, 1.0, 3.0):
        layer = layers.AugMix(alpha=alpha, seed=1)
        g = Graph("gamma")
        x = g.add_input("x", TensorType(DType.f32, (BATCH, 2)))
        g.set_outputs([("y", gamma(layer, Step(g), x, 1, alpha, 20000))])
        y = Interpreter(g).run({"x": np.zeros((1, 2), "float32"), "step": np.int32(0)})["y"]
        assert (y > 0).all()
        np.testing.assert_allclose([y.mean(), y.var()], [alpha, alpha], rtol=0.06)


def test_max_num_bounding_boxes_passes_images_and_refuses_boxes():
    layer = layers.MaxNumBoundingBoxes(5, fill_value=-2)
    images = X.astype("int32")
    out = layer(images)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, images)
    with pytest.raises(NotImplementedError, match="MaxNumBoundingBoxes.*bounding boxes"):
        layer({"images": images, "bounding_boxes": {"boxes": np.zeros((3, 1, 4))}})
    assert layer.get_config()["max_number"] == 5


def _augmented_model():
    return keras.Sequential(
        [
            keras.Input((6, 5, 3)),
            # first, on integer images: its floor and histograms see exact values in both
            # backends (a value at a bin's edge could fall either side after other layers)
            layers.ContrastLimitedAdaptiveHistogramEqualization((0, 255), 2.0, (2, 2)),
            layers.Rescaling(10 / 255, offset=-5),
            layers.RandomColorJitter(
                value_range=(-5, 5),
                brightness_factor=0.1,
                contrast_factor=0.2,
                saturation_factor=0.3,
                hue_factor=0.1,
                seed=1,
            ),
            layers.RandomSharpness(0.5, value_range=(-5, 5), seed=2),
            layers.RandomPosterization(6, value_range=(-5, 5), seed=3),
            layers.RandomGaussianBlur(0.8, 3, 0.7, value_range=(-5, 5), seed=4),
            layers.RandomErasing(0.5, value_range=(-5, 5), seed=5),
            layers.Equalization(value_range=(-5, 5), bins=32),
            layers.RandomPerspective(0.8, 0.3, seed=6),
            layers.RandomElasticTransform(0.8, 0.5, value_range=(-5, 5), seed=7),
            layers.Conv2D(3, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )


@pytest.mark.slow  # 2 compiles of eleven augmentation layers
def test_compiled_training_matches_the_reference_interpreter(rng):
    x = rng.integers(0, 256, size=(8, 6, 5, 3)).astype("float32")
    y = rng.integers(0, 3, 8)
    results = []
    for backend in ("llvm", "reference"):
        keras.utils.set_random_seed(3)
        model = _augmented_model()
        model.compile("adam", "sparse_categorical_crossentropy", backend=backend)
        history = model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
        results.append((history.history["loss"], model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# --- Keras's arguments and errors ----------------------------------------------------------


def test_configs_round_trip():
    for layer in _every_layer():
        config = layer.get_config()
        again = type(layer).from_config(config)
        assert again.get_config() == config


def test_arguments_are_checked_as_keras_checks_them():
    with pytest.raises(ValueError, match="factor"):
        layers.RandomHue(1.5)
    with pytest.raises(ValueError, match="kernel_size must be an odd number"):
        layers.RandomGaussianBlur(kernel_size=4)
    with pytest.raises(ValueError, match="sigma"):
        layers.RandomGaussianBlur(sigma=2.0)
    with pytest.raises(ValueError, match="scale"):
        layers.RandomPerspective(scale=1.5)
    with pytest.raises(NotImplementedError, match="interpolation"):
        layers.RandomPerspective(interpolation="bicubic")
    with pytest.raises(NotImplementedError, match="fill_mode"):
        layers.RandomElasticTransform(fill_mode="edge")
    with pytest.raises(ValueError, match="factor"):
        layers.RandomPosterization(9)
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        layers.RandomHue(0.3)(np.zeros((1, 4, 4, 2), "float32"))
    with pytest.raises(ValueError, match="value_range"):
        layers.RandomSharpness(0.3, value_range=5)


# --- the fuzzer's entries (kcompile/tools/fuzz/catalogue_image.py) ------------------------


def test_fuzz_entries_build_the_layer_with_the_shape_they_say():
    import random

    from kcompile.tools.fuzz.catalogue_image import KINDS
    from kcompile.tools.fuzz.kind import Invalid

    for kind in KINDS:
        checked = 0
        for seed in range(4):
            for shape in [(6, 5, 3), (4, 7, 1)]:
                args = kind.draw(random.Random(seed * 7 + shape[-1]), shape)
                try:
                    want = kind.shape(args, shape)
                except Invalid:
                    continue
                layer = getattr(layers, kind.name)(**args)
                out = layer(keras.Input(shape))
                assert tuple(out.shape[1:]) == want, (kind.name, args)
                assert tuple(layer.compute_output_shape((None, *shape))[1:]) == want
                checked += 1
        assert checked >= 4, kind.name
