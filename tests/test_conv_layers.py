"""Convolutional layers, pooling, normalization and embedding against independent numpy
implementations of Keras's equations; their gradients against central differences; their
train steps compiled against the reference interpreter."""

from __future__ import annotations

import math

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.gradcheck import assert_model_gradients


def conv2d_numpy(x, k, strides, padding, dilation=(1, 1)):
    n, h, w, _ = x.shape
    kh, kw, _, f = k.shape
    (sh, sw), (dh, dw) = strides, dilation
    if padding == "same":
        oh, ow = math.ceil(h / sh), math.ceil(w / sw)
        th = max((oh - 1) * sh + dh * (kh - 1) + 1 - h, 0)
        tw = max((ow - 1) * sw + dw * (kw - 1) + 1 - w, 0)
        x = np.pad(x, ((0, 0), (th // 2, th - th // 2), (tw // 2, tw - tw // 2), (0, 0)))
    else:
        oh = (h - dh * (kh - 1) - 1) // sh + 1
        ow = (w - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, oh, ow, f))
    for a in range(oh):
        for b in range(ow):
            for i in range(kh):
                for j in range(kw):
                    out[:, a, b] += x[:, a * sh + i * dh, b * sw + j * dw] @ k[i, j]
    return out


def pool_numpy(x, size, strides, padding, op):
    n, h, w, c = x.shape
    if padding == "same":
        oh, ow = math.ceil(h / strides[0]), math.ceil(w / strides[1])
        th = max((oh - 1) * strides[0] + size[0] - h, 0)
        tw = max((ow - 1) * strides[1] + size[1] - w, 0)
        top, left = th // 2, tw // 2
    else:
        oh = (h - size[0]) // strides[0] + 1
        ow = (w - size[1]) // strides[1] + 1
        top = left = 0
    out = np.zeros((n, oh, ow, c))
    for a in range(oh):
        for b in range(ow):
            r0, c0 = a * strides[0] - top, b * strides[1] - left
            window = x[:, max(r0, 0) : r0 + size[0], max(c0, 0) : c0 + size[1]]
            out[:, a, b] = window.max((1, 2)) if op == "max" else window.mean((1, 2))
    return out


@pytest.mark.parametrize(
    "padding, strides, dilation",
    [
        ("valid", (1, 1), (1, 1)),
        ("same", (2, 2), (1, 1)),
        ("same", (1, 2), (2, 1)),
        ("valid", (2, 1), (1, 2)),
    ],
)
def test_conv2d(padding, strides, dilation, rng):
    layer = layers.Conv2D(4, (3, 2), strides=strides, padding=padding, dilation_rate=dilation)
    x = rng.normal(size=(2, 9, 7, 3)).astype(np.float32)  # odd sizes
    out = layer(x)
    k, b = layer.get_weights()
    np.testing.assert_allclose(
        out, conv2d_numpy(x, k, strides, padding, dilation) + b, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_conv1d(padding, rng):
    layer = layers.Conv1D(3, 3, padding=padding, dilation_rate=2 if padding == "causal" else 1)
    x = rng.normal(size=(2, 11, 4)).astype(np.float32)
    out = layer(x)
    k, b = layer.get_weights()
    if padding == "causal":
        xp = np.pad(x, ((0, 0), (4, 0), (0, 0)))
        expected = conv2d_numpy(xp[:, None], k[None], (1, 1), "valid", (1, 2))[:, 0]
    else:
        expected = conv2d_numpy(x[:, None], k[None], (1, 1), padding)[:, 0]
    np.testing.assert_allclose(out, expected + b, rtol=1e-5, atol=1e-5)


def test_depthwise_conv2d(rng):
    layer = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)
    x = rng.normal(size=(2, 6, 5, 3)).astype(np.float32)
    out = layer(x)
    k, b = layer.get_weights()  # (3, 3, 3, 2)
    expected = np.stack(
        [
            conv2d_numpy(x[..., ch : ch + 1], k[:, :, ch : ch + 1, :], (1, 1), "same")
            for ch in range(3)
        ],
        axis=3,
    ).reshape(2, 6, 5, 6)
    np.testing.assert_allclose(out, expected + b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "cls, op", [(layers.MaxPooling2D, "max"), (layers.AveragePooling2D, "mean")]
)
@pytest.mark.parametrize(
    "padding, size, strides",
    [("valid", (2, 2), None), ("same", (3, 3), (2, 2)), ("same", (2, 2), (2, 2))],
)
def test_pooling(cls, op, padding, size, strides, rng):
    x = rng.normal(size=(2, 7, 9, 3)).astype(np.float32)
    out = cls(size, strides, padding)(x)
    np.testing.assert_allclose(
        out, pool_numpy(x, size, strides or size, padding, op), rtol=1e-5, atol=1e-6
    )


def test_global_pooling_padding_upsampling(rng):
    x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(layers.GlobalAveragePooling2D()(x), x.mean((1, 2)), rtol=1e-5)
    np.testing.assert_allclose(layers.GlobalMaxPooling2D()(x), x.max((1, 2)))
    seq = x[:, 0]
    np.testing.assert_allclose(layers.GlobalAveragePooling1D()(seq), seq.mean(1), rtol=1e-5)
    np.testing.assert_allclose(
        layers.ZeroPadding2D(((1, 2), (0, 1)))(x), np.pad(x, ((0, 0), (1, 2), (0, 1), (0, 0)))
    )
    np.testing.assert_allclose(
        layers.UpSampling2D((2, 3))(x), x.repeat(2, axis=1).repeat(3, axis=2)
    )
    np.testing.assert_allclose(layers.MaxPooling1D(2)(seq), seq[:, :4].reshape(2, 2, 2, 3).max(2))


def test_layer_normalization(rng):
    layer = layers.LayerNormalization()
    x = rng.normal(size=(4, 6)).astype(np.float32) * 3 + 1
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(layer(x), (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)


def test_batch_normalization_training_and_inference(rng):
    model = keras.Sequential([keras.Input(shape=(5,)), layers.BatchNormalization(momentum=0.9)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    bn = model.layers[0]
    assert [v.name for v in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [v.trainable for v in bn.weights] == [True, True, False, False]
    x = (rng.normal(size=(16, 5)) * 2 + 3).astype(np.float32)
    model.train_on_batch(x, np.zeros((16, 5)))
    mean, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(bn.moving_mean.value, 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.value, 0.9 + 0.1 * var, rtol=1e-5)
    # Inference uses the moving statistics.
    mm, mv = bn.moving_mean.value, bn.moving_variance.value
    np.testing.assert_allclose(
        model.predict(x, verbose=0), (x - mm) / np.sqrt(mv + 1e-3), rtol=1e-4, atol=1e-5
    )
    # Training normalizes with the batch's own statistics (biased variance).
    ref = model.test_on_batch(x, (x - mm) / np.sqrt(mv + 1e-3))
    assert ref < 1e-8


def test_embedding_gradient_touches_only_used_rows(rng):
    model = keras.Sequential(
        [
            keras.Input(shape=(4,), dtype="int32"),
            layers.Embedding(20, 3),
            layers.GlobalAveragePooling1D(),
            layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    ids = np.array([[1, 2, 2, 5], [5, 7, 1, 1]])
    table = model.layers[0].get_weights()[0]
    np.testing.assert_allclose(model.layers[0](ids[:1])[0], table[[1, 2, 2, 5]])
    model.train_on_batch(ids, np.ones((2, 1)))
    changed = np.nonzero(np.any(model.layers[0].get_weights()[0] != table, axis=1))[0]
    assert changed.tolist() == [1, 2, 5, 7]


def small_models():
    def cnn():
        return keras.Sequential(
            [
                keras.Input(shape=(7, 6, 2)),
                layers.Conv2D(3, 3, padding="same", activation="relu"),
                layers.BatchNormalization(),
                layers.MaxPooling2D(2, padding="same"),
                layers.DepthwiseConv2D(2),
                layers.AveragePooling2D(2, padding="same"),
                layers.Flatten(),
                layers.Dense(3, activation="softmax"),
            ]
        )

    def conv1d():
        return keras.Sequential(
            [
                keras.Input(shape=(9, 3)),
                layers.Conv1D(4, 3, padding="causal", activation="tanh"),
                layers.LayerNormalization(),
                layers.Dropout(0.25),
                layers.GlobalAveragePooling1D(),
                layers.Dense(3, activation="softmax"),
            ]
        )

    def transpose():
        return keras.Sequential(
            [
                keras.Input(shape=(3, 2, 2)),
                layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="tanh"),
                layers.Conv2DTranspose(
                    2, (2, 3), strides=(1, 2), padding="valid", output_padding=(0, 1)
                ),
                layers.Reshape((-1, 2)),
                layers.Conv1DTranspose(2, 3, strides=2, padding="same", dilation_rate=1),
                layers.GlobalAveragePooling1D(),
                layers.Dense(3, activation="softmax"),
            ]
        )

    def conv_bn():
        # The small ResNet's block: BatchNormalization straight on a convolution's result
        # (its statistics summed in the convolution's kernel, its centred value computed
        # by each loop that reads it), a strided one, a residual add.
        x = keras.Input(shape=(7, 6, 3))
        y = layers.Conv2D(5, 3, strides=2, padding="same", use_bias=False)(x)
        y = layers.Activation("relu")(layers.BatchNormalization()(y))
        z = layers.Conv2D(5, 3, padding="same", use_bias=False)(y)
        y = layers.Activation("relu")(layers.Add()([y, layers.BatchNormalization()(z)]))
        y = layers.GlobalAveragePooling2D()(y)
        return keras.Model(x, layers.Dense(3, activation="softmax")(y))

    return {"cnn": cnn, "conv1d": conv1d, "transpose": transpose, "conv_bn": conv_bn}


def _conv_transpose_by_definition(x, kernel, strides, padding, output_padding, dilation):
    """Keras's JAX formulation, computed directly: the input spread out by the strides,
    padded by Keras's (left, right) rule, correlated with the flipped kernel."""
    n, h, w, _ = x.shape
    kh, kw, filters, _ = kernel.shape
    pads = []
    for k, s, d, p in zip((kh, kw), strides, dilation, output_padding):
        span = (k - 1) * d + 1
        if padding == "valid":
            extra = max(span, s) - span if p is None else p
            pads.append((span - 1, span - 1 + extra))
        else:
            total = s + span - 2 if p is None else span + span % 2 - 2 + p
            left = min(total // 2 + total % 2, span - 1)
            pads.append((left, total - left))
    spread = np.zeros((n, (h - 1) * strides[0] + 1, (w - 1) * strides[1] + 1, x.shape[3]))
    spread[:, :: strides[0], :: strides[1]] = x
    padded = np.pad(spread, ((0, 0), pads[0], pads[1], (0, 0)))
    flipped = kernel[::-1, ::-1]
    out_h = padded.shape[1] - (kh - 1) * dilation[0]
    out_w = padded.shape[2] - (kw - 1) * dilation[1]
    y = np.zeros((n, out_h, out_w, filters))
    for a in range(kh):
        for b in range(kw):
            window = padded[:, a * dilation[0] : a * dilation[0] + out_h, b * dilation[1] :][
                :, :, :out_w
            ]
            y += window @ flipped[a, b].T
    return y


@pytest.mark.parametrize(
    "kernel, strides, padding, output_padding, dilation",
    [
        ((3, 3), (2, 2), "same", None, (1, 1)),
        ((3, 3), (2, 2), "valid", None, (1, 1)),
        ((2, 2), (2, 2), "same", None, (1, 1)),
        ((4, 3), (3, 2), "valid", (1, 1), (1, 1)),
        ((3, 3), (2, 2), "same", (1, 0), (1, 1)),
        ((1, 1), (3, 3), "valid", None, (1, 1)),
        ((3, 2), (1, 1), "same", None, (2, 2)),
    ],
)
def test_conv2d_transpose_by_its_definition(
    kernel, strides, padding, output_padding, dilation, rng
):
    inputs = keras.Input((5, 4, 3))
    layer = layers.Conv2DTranspose(
        2, kernel, strides, padding, output_padding=output_padding, dilation_rate=dilation
    )
    model = keras.Model(inputs, layer(inputs))
    x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
    want = _conv_transpose_by_definition(
        x, layer.kernel.numpy(), strides, padding, output_padding or (None, None), dilation
    )
    assert model.output_shape[1:3] == want.shape[1:3]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["cnn", "conv1d", "transpose", "conv_bn"])
def test_layer_gradients_by_central_differences(name, rng):
    model = small_models()[name]()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert_model_gradients(model, rng, 3, lambda r, n: r.integers(0, 3, n).astype(np.int32))


@pytest.mark.parametrize(
    "name", ["cnn", "conv1d", "transpose", pytest.param("conv_bn", marks=pytest.mark.slow)]
)
def test_compiled_train_steps_match_reference(name, rng):
    def build(backend):
        keras.backend.clear_session()
        keras.utils.set_random_seed(5)
        model = small_models()[name]()
        model.compile(
            optimizer="adam",
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            backend=backend,
        )
        return model

    native, reference = build("llvm"), build("reference")
    for step, n in enumerate((1, 5, 8)):
        x = rng.normal(size=(n, *native.inputs[0].shape[1:])).astype(np.float32)
        y = rng.integers(0, 3, n)
        a = native.train_on_batch(x, y, return_dict=True)
        b = reference.train_on_batch(x, y, return_dict=True)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5), step
        for va, vb in zip(native.weights, reference.weights):
            np.testing.assert_allclose(
                va.value, vb.value, rtol=1e-4, atol=1e-6, err_msg=f"{va.path} step {step}"
            )
    for n in (1, 3):
        x = rng.normal(size=(n, *native.inputs[0].shape[1:])).astype(np.float32)
        np.testing.assert_allclose(
            native.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=1e-4, atol=1e-6
        )


def test_bias_batchnorm_and_activation_fold_into_the_convolution_at_inference(rng):
    from kcompile.ir import parse_graph
    from kcompile.tools import inspect

    model = keras.Sequential(
        [
            keras.Input(shape=(6, 5, 2)),
            layers.Conv2D(4, 3, padding="same"),
            layers.BatchNormalization(),
            layers.Activation("relu"),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    bn = model.layers[1]
    bn.moving_mean.assign(rng.normal(size=4))
    bn.moving_variance.assign(rng.random(4) + 0.5)
    graph = parse_graph(inspect.pipeline_stages(model, "predict")[-1][1])
    image = graph.nodes[-1].outputs[0].shape
    over_image = [n for n in graph.nodes if n.outputs[0].shape == image]
    # One kernel over the image: the product with bias, normalization and relu in its
    # epilogue (the per-channel scale is computed by a 4-element kernel before it).
    assert len(over_image) == 1 and over_image[0].attrs["kind"] == "matmul"
    body_ops = [n.op for n in over_image[0].attrs["body"].nodes]
    assert "select" in body_ops and body_ops.count("add") >= 2  # relu, bias, BN shift
    assert inspect.check(model, "predict").ok
    x = rng.normal(size=(3, 6, 5, 2)).astype(np.float32)
    k, b = model.layers[0].get_weights()
    gamma, beta, mean, var = bn.get_weights()
    conv = conv2d_numpy(x, k, (1, 1), "same") + b
    want = np.maximum((conv - mean) / np.sqrt(var + 1e-3) * gamma + beta, 0)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "layer, shape", [(layers.Conv1D(3, 2), (6, None)), (layers.Conv2D(3, 2), (5, 5, None))]
)
def test_unknown_channels_are_refused_naming_the_layer(layer, shape):
    """Keras's message (its base convolution's build), where the groups check used to
    fail with a TypeError (None % groups)."""
    with pytest.raises(ValueError, match=r"\(Conv[12]D\): the channel dimension .* `None`"):
        layer(keras.Input(shape))
