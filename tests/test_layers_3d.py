"""Conv3D, Conv3DTranspose, DepthwiseConv1D, Cropping3D, ZeroPadding3D, UpSampling3D and
SpatialDropout3D: Keras's numbers on the same weights (``conv3d_cases``), numpy written
from the definitions, gradients by central differences, compiled training against the
reference interpreter, configs, output shapes and Keras's refusals."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.conv3d_cases import check_keras_cases, conv_numpy
from tests.fixture_scripts.make_conv3d_fixtures import CASES
from tests.gradcheck import assert_model_gradients

NAMES = [n for n, case in CASES.items() if not case[0].startswith(("Adaptive", "ConvLSTM"))]


@pytest.mark.slow
def test_outputs_and_configs_match_keras():
    check_keras_cases(NAMES)


CONV3D = [  # (kernel, strides, padding, dilation)
    ((3, 2, 3), (1, 1, 1), "valid", (1, 1, 1)),
    ((3, 3, 2), (2, 1, 3), "same", (1, 1, 1)),
    ((2, 2, 2), (1, 1, 1), "valid", (2, 1, 2)),
    ((1, 3, 2), (1, 1, 1), "same", (1, 2, 1)),
]


def test_conv3d_and_depthwise_conv1d_match_their_definitions(rng):
    volume, steps = keras.Input((5, 6, 7, 3)), keras.Input((9, 4))
    convs = [layers.Conv3D(2, k, s, p, dilation_rate=d) for k, s, p, d in CONV3D]
    depthwise = [
        layers.DepthwiseConv1D(3, 2, "same", depth_multiplier=2),
        layers.DepthwiseConv1D(2, 1, "valid", dilation_rate=3, use_bias=False),
    ]
    outs = [c(volume) for c in convs] + [d(steps) for d in depthwise]
    model = keras.Model([volume, steps], outs)
    x = rng.normal(size=(2, 5, 6, 7, 3)).astype(np.float32)
    s = rng.normal(size=(2, 9, 4)).astype(np.float32)
    got = model.predict([x, s], verbose=0)
    for conv, (_, st, p, d), y in zip(convs, CONV3D, got):
        kernel, bias = conv.get_weights()
        np.testing.assert_allclose(y, conv_numpy(x, kernel, st, p, d) + bias, rtol=1e-5, atol=1e-5)
    for layer, y in zip(depthwise, got[len(convs) :]):
        kernel = layer.kernel.numpy()  # (K, C, M): channel c's m-th filter
        want = np.concatenate(
            [
                conv_numpy(
                    s[..., c : c + 1],
                    kernel[:, c : c + 1],
                    layer.strides,
                    layer.padding,
                    layer.dilation_rate,
                )
                for c in range(4)
            ],
            axis=-1,
        )
        if layer.bias is not None:
            want = want + layer.bias.numpy()
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def _conv_transpose_by_definition(x, kernel, strides, padding, output_padding):
    """Keras's JAX formulation in 3-D: the input spread out by the strides, padded by
    Keras's (left, right) rule, correlated with the flipped kernel."""
    pads = []
    for k, s, p in zip(kernel.shape[:3], strides, output_padding):
        if padding == "valid":
            extra = max(k, s) - k if p is None else p
            pads.append((k - 1, k - 1 + extra))
        else:
            total = s + k - 2 if p is None else k + k % 2 - 2 + p
            left = min(total // 2 + total % 2, k - 1)
            pads.append((left, total - left))
    n, *sizes, c = x.shape
    spread = np.zeros((n, *((d - 1) * s + 1 for d, s in zip(sizes, strides)), c))
    spread[:, :: strides[0], :: strides[1], :: strides[2]] = x
    padded = np.pad(spread, ((0, 0), *pads, (0, 0)))
    flipped = kernel[::-1, ::-1, ::-1].transpose(0, 1, 2, 4, 3)  # (K..., C, F)
    return conv_numpy(padded, flipped, (1, 1, 1), "valid", (1, 1, 1))


TRANSPOSED = [  # (kernel, strides, padding, output_padding)
    ((3, 3, 3), (2, 2, 2), "same", None),
    ((3, 2, 3), (2, 1, 2), "valid", None),
    ((4, 3, 2), (3, 2, 2), "valid", (1, 1, 0)),
    ((3, 3, 2), (2, 2, 1), "same", (1, 0, 0)),
    ((1, 1, 1), (3, 3, 3), "valid", None),
]


def test_conv3d_transpose_matches_its_definition(rng):
    inputs = keras.Input((3, 4, 2, 3))
    convs = [layers.Conv3DTranspose(2, k, s, p, output_padding=o) for k, s, p, o in TRANSPOSED]
    model = keras.Model(inputs, [c(inputs) for c in convs])
    x = rng.normal(size=(2, 3, 4, 2, 3)).astype(np.float32)
    for conv, (_, s, p, o), y in zip(convs, TRANSPOSED, model.predict(x, verbose=0)):
        kernel, bias = conv.get_weights()
        want = _conv_transpose_by_definition(x, kernel, s, p, o or (None,) * 3) + bias
        assert y.shape == want.shape
        assert conv.compute_output_shape((None, 3, 4, 2, 3)) == (None, *want.shape[1:])
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cropping_padding_and_upsampling_match_numpy(data_format, rng):
    first = data_format == "channels_first"
    x = rng.normal(size=(2, 4, 5, 6, 3)).astype(np.float32)
    inputs = keras.Input(x.shape[1:])
    crop = layers.Cropping3D(((1, 0), 1, (0, 2)), data_format=data_format)
    pad = layers.ZeroPadding3D((1, (0, 2), 1), data_format=data_format)
    grow = layers.UpSampling3D((2, 1, 3), data_format=data_format)
    model = keras.Model(inputs, [crop(inputs), pad(inputs), grow(inputs)])
    cropped, padded, grown = model.predict(x, verbose=0)
    spatial = (slice(None), slice(None)) if first else (slice(None),)
    np.testing.assert_array_equal(
        cropped, x[(*spatial, slice(1, None), slice(1, -1), slice(0, -2))]
    )
    widths = [(1, 1), (0, 2), (1, 1)]
    widths = [(0, 0), (0, 0), *widths] if first else [(0, 0), *widths, (0, 0)]
    np.testing.assert_array_equal(padded, np.pad(x, widths))
    axis = 2 if first else 1
    want = x.repeat(2, axis).repeat(1, axis + 1).repeat(3, axis + 2)
    np.testing.assert_array_equal(grown, want)
    for layer, y in zip((crop, pad, grow), (cropped, padded, grown)):
        assert layer.compute_output_shape((None, *x.shape[1:])) == (None, *y.shape[1:])


def test_spatial_dropout3d_drops_whole_feature_maps_in_training_only():
    rate = 0.5
    x = np.ones((4, 2, 3, 2, 6), np.float32)
    for data_format, axes in (("channels_last", (1, 2, 3)), ("channels_first", (2, 3, 4))):
        layer = layers.SpatialDropout3D(rate, data_format=data_format, seed=3)
        np.testing.assert_array_equal(layer(x), x)  # inference: the identity
        y = np.asarray(layer(x, training=True))
        assert set(np.unique(y)) <= {0.0, 1.0 / (1.0 - rate)}
        # one draw per (sample, channel): constant over the spatial axes
        np.testing.assert_array_equal(y, np.broadcast_to(y.max(axis=axes, keepdims=True), y.shape))
        assert 0 < (y == 0).mean() < 1


def small_model():
    volume, steps = keras.Input((3, 5, 4, 1)), keras.Input((7, 2))
    h = layers.Conv3D(2, (2, 3, 2), strides=(1, 2, 1), padding="same", activation="tanh")(volume)
    h = layers.ZeroPadding3D((1, 0, (0, 1)))(h)
    h = layers.Cropping3D(((0, 1), 0, (1, 0)))(h)
    h = layers.UpSampling3D((1, 2, 1))(h)
    h = layers.SpatialDropout3D(0.25)(h)
    h = layers.Conv3DTranspose(2, (2, 2, 3), strides=(2, 1, 2), padding="same")(h)
    h = layers.Conv3D(1, 2, dilation_rate=(1, 2, 1))(h)
    a = layers.GlobalAveragePooling3D()(h)
    s = layers.DepthwiseConv1D(3, padding="same", depth_multiplier=2, activation="tanh")(steps)
    s = layers.DepthwiseConv1D(2, strides=2)(s)
    b = layers.GlobalAveragePooling1D()(s)
    return keras.Model([volume, steps], layers.Dense(3)(layers.Concatenate()([a, b])))


@pytest.mark.slow
def test_gradients_by_central_differences(rng):
    model = small_model()
    model.compile("sgd", "mse")
    assert_model_gradients(model, rng, 2, lambda r, n: r.normal(size=(n, 3)))


@pytest.mark.slow
def test_compiled_train_steps_match_the_reference_interpreter(rng):
    def build(backend):
        keras.backend.clear_session()
        keras.utils.set_random_seed(5)
        model = small_model()
        model.compile(optimizer="adam", loss="mse", backend=backend)
        return model

    native, reference = build("llvm"), build("reference")
    for step, n in enumerate((1, 4)):
        x = [rng.normal(size=(n, *i.shape[1:])).astype(np.float32) for i in native.inputs]
        y = rng.normal(size=(n, 3)).astype(np.float32)
        a, b = native.train_on_batch(x, y), reference.train_on_batch(x, y)
        assert a == pytest.approx(b, rel=1e-5), step
        for va, vb in zip(native.weights, reference.weights):
            np.testing.assert_allclose(va.value, vb.value, rtol=1e-4, atol=1e-6, err_msg=va.path)


def test_aliases_and_config_round_trips():
    assert layers.Convolution3D is layers.Conv3D
    assert layers.Convolution3DTranspose is layers.Conv3DTranspose
    made = [
        layers.Conv3D(
            4, (1, 2, 3), strides=2, padding="same", activation="relu", kernel_regularizer="l2"
        ),
        layers.Conv3DTranspose(2, 3, strides=(1, 2, 2), output_padding=(0, 1, 1)),
        layers.DepthwiseConv1D(3, depth_multiplier=3, dilation_rate=2),
        layers.Cropping3D(2),
        layers.ZeroPadding3D(((1, 2), (3, 4), (5, 6)), data_format="channels_first"),
        layers.UpSampling3D(3),
        layers.SpatialDropout3D(0.3, seed=1),
    ]
    for layer in made:
        config = layer.get_config()
        again = type(layer).from_config(config)
        assert again.get_config() == config, type(layer).__name__
    assert made[3].cropping == ((2, 2),) * 3
    assert made[5].size == (3, 3, 3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: layers.Conv3D(0, 3), "Expected a strictly positive value"),
        (lambda: layers.Conv3D(2, (3, 0, 3)), "cannot contain 0"),
        (lambda: layers.Conv3D(2, 3, strides=2, dilation_rate=2), "not supported in conjunction"),
        (lambda: layers.Conv3D(2, 3, padding="causal"), "padding must be 'valid' or 'same'"),
        (
            lambda: layers.Conv3DTranspose(2, 3, strides=2, output_padding=2),
            "`output_padding` must be strictly less than `strides`",
        ),
        (lambda: layers.DepthwiseConv1D(3, depth_multiplier=0), "depth_multiplier=0"),
        (lambda: layers.Cropping3D((1, 2)), "`cropping` should have 3 elements"),
        (lambda: layers.ZeroPadding3D("x"), "`padding` should have 3 elements"),
        (lambda: layers.SpatialDropout3D(1.5), "rate must be in"),
        (lambda: layers.Conv3D(2, 3, data_format="ndhwc"), "`data_format` argument must be"),
    ],
)
def test_kerass_refusals_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_refusals_at_the_call():
    with pytest.raises(ValueError, match="'c3'.*Computed output size would be zero or negative"):
        layers.Conv3D(1, (2, 5, 2), name="c3")(keras.Input((3, 3, 3, 1)))
    with pytest.raises(ValueError, match="should be smaller than the corresponding"):
        layers.Cropping3D((1, 2, 1))(keras.Input((3, 4, 3, 1)))
    with pytest.raises(ValueError, match="expects inputs of rank 5"):
        layers.Conv3D(1, 2)(keras.Input((4, 4, 1)))


# --- the fuzzer's entries (kcompile/tools/fuzz/catalogue_conv3d.py) --------------------

FUZZ_SHAPES = [(5, 2), (7, 3), (4, 6, 2), (5, 5, 1), (3, 4, 5, 2), (2, 6, 3, 1), (4, 5, 5, 3)]


def test_fuzz_entries_build_their_layers_with_the_shapes_they_say():
    import random

    from kcompile.tools.fuzz.catalogue_conv3d import KINDS
    from kcompile.tools.fuzz.kind import Invalid

    for kind in KINDS:
        checked = 0
        for seed in range(10):
            for shape in FUZZ_SHAPES:
                if len(shape) not in kind.ranks:
                    continue
                args = kind.draw(random.Random(seed * 31 + len(shape)), shape)
                try:
                    want = kind.shape(args, shape)
                except Invalid:
                    continue
                layer = getattr(layers, kind.name)(**args)
                out = layer(keras.Input(shape))
                assert tuple(out.shape[1:]) == want, (kind.name, args, shape)
                assert tuple(layer.compute_output_shape((None, *shape))[1:]) == want
                checked += 1
        assert checked >= 10, kind.name
