"""kcompile's int8 convolutions, beyond Keras: ``model.quantize("int8", convolutions=True)``
(``kcompile/layers/convolutional/int8_conv.py``, docs/quantization.md).

Checked against numpy computations of the stated formulas (not against the code): the
kernels and scales, each layer's output, and predictions within a bound on what int8
rounding can move them, derived layer by layer; native code against the reference
interpreter; the input gradient against the float convolution's with the dequantized
kernel; ``.keras`` files; plain ``quantize("int8")`` unchanged; the refusals."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.passes.int8_products import EXACT_I8_DEPTH
from tests.gradcheck import input_gradient
from tests.keras_oracle import run_in_keras

EPS = np.float32(1e-7)  # Keras's epsilon in abs_max_quantize

# (layer class, constructor arguments, input shape without the batch)
GEOMETRIES = {
    "conv2d_same": (layers.Conv2D, dict(filters=5, kernel_size=3, padding="same"), (7, 6, 3)),
    "conv2d_strided": (
        layers.Conv2D,
        dict(filters=4, kernel_size=(3, 2), strides=2, padding="valid"),
        (9, 8, 2),
    ),
    "conv2d_dilated": (
        layers.Conv2D,
        dict(filters=3, kernel_size=3, dilation_rate=2, padding="same"),
        (8, 7, 4),
    ),
    "conv1d_causal": (layers.Conv1D, dict(filters=4, kernel_size=3, padding="causal"), (10, 3)),
    "conv1d_strided": (
        layers.Conv1D,
        dict(filters=6, kernel_size=5, strides=2, padding="same"),
        (11, 2),
    ),
    "conv1d_dilated": (layers.Conv1D, dict(filters=3, kernel_size=2, dilation_rate=3), (9, 5)),
}


# --- numpy: the formulas, written independently of the layers -----------------------------


def tf_same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv_numpy(x, k, strides=(1, 1), dilation=(1, 1), pads=(0, 0, 0, 0)):
    """x[N, H, W, C] (*) k[KH, KW, C, F] in x's dtype, zero padding (top, bottom, left,
    right): a sum over the taps of shifted images times the tap's kernel."""
    x = np.pad(x, ((0, 0), pads[:2], pads[2:], (0, 0)))
    (kh, kw, _, f), (sh, sw), (dh, dw) = k.shape, strides, dilation
    oh = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (x.shape[2] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, f), dtype=np.result_type(x, k))
    for i in range(kh):
        for j in range(kw):
            rows = x[:, i * dh : i * dh + (oh - 1) * sh + 1 : sh]
            out += rows[:, :, j * dw : j * dw + (ow - 1) * sw + 1 : sw] @ k[i, j]
    return out


def as_image(layer_class, args: dict, x: np.ndarray, kernel: np.ndarray):
    """A layer's input, kernel and window as a 2-D convolution's (a Conv1D is one of
    height 1); pads by Keras's rules."""
    strides, dilation = args.get("strides", 1), args.get("dilation_rate", 1)
    padding = args.get("padding", "valid")
    if layer_class is layers.Conv1D:
        x, kernel = x[:, None], kernel[None]
        strides, dilation = (1, strides), (1, dilation)
        if padding == "causal":
            return x, kernel, strides, dilation, (0, 0, dilation[1] * (kernel.shape[1] - 1), 0)
    strides = (strides,) * 2 if isinstance(strides, int) else strides
    dilation = (dilation,) * 2 if isinstance(dilation, int) else dilation
    pads = (0, 0, 0, 0)
    if padding == "same":
        pads = sum(
            (
                tf_same_pads(x.shape[1 + a], kernel.shape[a], strides[a], dilation[a])
                for a in range(2)
            ),
            (),
        )
    return x, kernel, strides, dilation, pads


def abs_max(a: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``scale = 127 / (max|a| + 1e-7)`` over ``axes`` (kept), ``clip(round(a * scale),
    -127, 127)``, in float32 with round half to even."""
    scale = np.float32(127) / (np.max(np.abs(a), axis=axes, keepdims=True) + EPS)
    return np.clip(np.round(a * scale), -127, 127), scale


def int8_conv_numpy(image, kernel, kernel_scale, strides, dilation, pads):
    """The int8 convolution's formula: the image quantized per sample, the exact integer
    sums (int64), divided by kernel_scale * inputs_scale."""
    q, inputs_scale = abs_max(image.astype(np.float32), (1, 2, 3))
    acc = conv_numpy(q.astype(np.int64), kernel.astype(np.int64), strides, dilation, pads)
    return acc / (kernel_scale.astype(np.float64) * inputs_scale.astype(np.float64))


# --- models ------------------------------------------------------------------------------


def one_layer(name: str, **extra):
    layer_class, args, shape = GEOMETRIES[name]
    layer = layer_class(**args, bias_initializer="random_normal", name=name, **extra)
    model = keras.Sequential([keras.Input(shape), layer])
    return model, layer


def sample(rng, model, n: int = 3) -> np.ndarray:
    x = rng.normal(size=(n, *model.input_shape[1:])).astype(np.float32)
    x[1] *= 20.0  # samples of different ranges: one inputs scale each
    return x


def small_cnn():
    """Conv2D, pooling, Conv1D and a Dense: every quantized product of the opt-in."""
    inp = keras.Input((10, 10, 3))
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="c2")(inp)
    h = layers.MaxPooling2D(name="pool")(h)
    h = layers.Reshape((25, 8))(h)
    h = layers.Conv1D(6, 3, strides=2, padding="causal", activation="relu", name="c1")(h)
    h = layers.Flatten()(h)
    out = layers.Dense(4, name="d")(h)
    return keras.Model(inp, out)


def quiet_quantize(model, *args, **kwargs) -> list[str]:
    """``model.quantize(...)``, returning its warnings' messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.quantize(*args, **kwargs)
    return [str(w.message) for w in caught]


# --- weights and outputs -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_kernel_quantized_per_filter_as_specified(name):
    model, layer = one_layer(name)
    w = layer.kernel.numpy().copy()
    w[..., 0] = 0.0  # a filter of zeros: epsilon keeps its scale finite
    w[..., 1] = -np.abs(w[..., 1])  # one whose abs-max is a negative weight
    layer.kernel.assign(w)
    quiet_quantize(model, "int8", convolutions=True)
    want, scale = abs_max(w, tuple(range(w.ndim - 1)))
    assert layer.kernel.dtype == "int8" and layer.kernel.shape == w.shape
    np.testing.assert_array_equal(layer.kernel.numpy(), want.astype(np.int8))
    assert layer.kernel_scale.dtype == "float32"
    np.testing.assert_array_equal(layer.kernel_scale.numpy(), scale.reshape(-1))
    assert np.abs(layer.kernel.numpy()[..., 1:]).max(axis=tuple(range(w.ndim - 1))).min() == 127
    assert layer.dtype_policy.name == "int8_from_float32" and layer.quantization_mode == "int8"
    trainable = {v.path.rsplit("/", 1)[-1]: v.trainable for v in layer.weights}
    assert trainable == {"bias": True, "kernel": False, "kernel_scale": False}


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_int8_layer_computes_the_formula(rng, name):
    """Each output: the integer convolution of the per-sample quantized inputs by the
    int8 kernel, over kernel_scale * inputs_scale, plus the bias (native code)."""
    model, layer = one_layer(name)
    x = sample(rng, model)
    quiet_quantize(model, "int8", convolutions=True)
    layer_class, args, _ = GEOMETRIES[name]
    image, kernel, strides, dilation, pads = as_image(layer_class, args, x, layer.kernel.numpy())
    want = int8_conv_numpy(image, kernel, layer.kernel_scale.numpy(), strides, dilation, pads)
    want = want.reshape(model.predict(x, verbose=0).shape) + layer.bias.numpy()
    got = model.predict(x, verbose=0)
    # The same integers; what remains is float32's rounding of the division and the bias.
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6 * np.abs(want).max())


def quantization_error_bound(x, slack_in, product, ones_product, w_abs_sum, w_peak, depth):
    """A bound on |int8 product - float product| at each output, for a product of
    ``depth`` terms whose float input ``x`` the quantized model sees moved by at most
    ``slack_in`` (elementwise), derived from the rounding of both operands.

    With ``e_x`` = (max|x'| + eps) / 254 (half of the sample's inputs step, x' = the input
    the quantized model sees) and ``e_w`` = (max|w_f| + eps) / 254 per filter, each
    dequantized operand is off by at most its ``e``, so each term's error is at most
    |w| e_x + e_w |x'| + e_w e_x; summed over the window: e_x sum|w_f| + e_w sum|x'| +
    depth e_w e_x. The input's own deviation adds at most the product of it by |w|.
    ``product(a, k)`` computes the layer's linear map; ``ones_product(a)`` sums ``a``
    over each window."""
    axes = tuple(range(1, x.ndim))
    peak = (np.abs(x) + slack_in).max(axis=axes, keepdims=True)
    e_x = (peak + 1e-7) / 254.0
    e_w = (w_peak + 1e-7) / 254.0
    window_sum = ones_product(np.abs(x) + slack_in)
    rounding = e_x * w_abs_sum + e_w * window_sum + depth * e_w * e_x
    carried = product(slack_in)
    # float32's own roundoff in either model: a few ulps of the sum of |terms|.
    roundoff = 1e-5 * (product(np.abs(x)) + e_x * w_abs_sum) + 1e-6
    return rounding + carried + roundoff


def conv_bound(x, slack, kernel, strides, dilation, pads):
    """``quantization_error_bound`` for a convolution (kernel [KH, KW, C, F])."""
    abs_k = np.abs(kernel).astype(np.float64)
    return quantization_error_bound(
        x,
        slack,
        lambda a: conv_numpy(a, abs_k, strides, dilation, pads),
        lambda a: conv_numpy(a, np.ones_like(abs_k[..., :1]), strides, dilation, pads),
        abs_k.sum(axis=(0, 1, 2)),
        abs_k.max(axis=(0, 1, 2)),
        math.prod(kernel.shape[:3]),
    )


def pool_numpy(x):
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_layer_within_int8_rounding_of_the_float_layer(rng, name):
    """One quantized convolution against the float one on the same inputs: within
    ``quantization_error_bound`` at every output, a bound tight enough to mean something
    (a fraction of the sample's outputs)."""
    model, layer = one_layer(name)
    x = sample(rng, model)
    want = model.predict(x, verbose=0).astype(np.float64)
    layer_class, args, _ = GEOMETRIES[name]
    image, kernel, strides, dilation, pads = as_image(layer_class, args, x, layer.kernel.numpy())
    image = image.astype(np.float64)
    bound = conv_bound(image, np.zeros_like(image), kernel, strides, dilation, pads)
    bound = bound.reshape(want.shape)
    quiet_quantize(model, "int8", convolutions=True)
    error = np.abs(model.predict(x, verbose=0) - want)
    assert (error <= bound).all(), f"worst excess {np.max(error - bound)}"
    assert error.max() > 0  # (the layer was quantized)
    axes = tuple(range(1, want.ndim))
    assert (bound.max(axis=axes) < 0.25 * np.abs(want).max(axis=axes)).all()


def test_predictions_within_int8_rounding_of_the_float_model(rng):
    """The quantized CNN's predictions against the float model's (numpy, float64),
    within ``quantization_error_bound`` carried through the layers: ReLU and max pooling
    move nothing by more than they are moved, a product carries a deviation through |w|.
    A worst case carried through three products is loose (it assumes every rounding
    pushes the same way); each layer's own bound is checked tight above."""
    model = small_cnn()
    x = rng.normal(size=(6, 10, 10, 3))
    x[2] *= 30.0
    w = {
        n: [v.astype(np.float64) for v in model.get_layer(n).get_weights()]
        for n in ("c2", "c1", "d")
    }
    same = tf_same_pads(10, 3, 1, 1) * 2
    (k2, b2), (k1, b1), (kd, bd) = w["c2"], w["c1"], w["d"]
    h = np.maximum(conv_numpy(x, k2, pads=same) + b2, 0)
    slack = conv_bound(x, np.zeros_like(x), k2, (1, 1), (1, 1), same)
    h, slack = pool_numpy(h).reshape(6, 1, 25, 8), pool_numpy(slack).reshape(6, 1, 25, 8)
    causal = (0, 0, 2, 0)
    slack = conv_bound(h, slack, k1[None], (1, 2), (1, 1), causal).reshape(6, -1)
    h = np.maximum(conv_numpy(h, k1[None], (1, 2), (1, 1), causal) + b1, 0).reshape(6, -1)
    want = h @ kd + bd
    slack = quantization_error_bound(
        h,
        slack,
        lambda a: a @ np.abs(kd),
        lambda a: a.sum(axis=1, keepdims=True),
        np.abs(kd).sum(axis=0),
        np.abs(kd).max(axis=0),
        kd.shape[0],
    )
    x = x.astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
    quiet_quantize(model, "int8", convolutions=True)
    error = np.abs(model.predict(x, verbose=0) - want)
    assert (error <= slack).all(), f"worst excess {np.max(error - slack)}"
    assert error.max() > 0  # (the model was quantized)


# --- native code, gradients, fine-tuning ---------------------------------------------------


def test_native_equals_reference_interpreter(rng):
    """Predictions and one training step (Adam) of the quantized CNN, compiled and on
    the reference interpreter: the integer sums are exact on both."""
    x = rng.normal(size=(5, 10, 10, 3)).astype(np.float32)
    y = rng.normal(size=(5, 4)).astype(np.float32)
    float_model = small_cnn()
    results = {}
    for backend in ("llvm", "reference"):
        model = small_cnn()
        model.set_weights(float_model.get_weights())
        quiet_quantize(model, "int8", convolutions=True)
        model.compile(keras.optimizers.Adam(0.01), "mse", backend=backend)
        results[backend] = [model.predict(x, verbose=0)]
        results[backend].append(np.asarray(model.train_on_batch(x, y)))
        results[backend] += model.get_weights()
    for got, want in zip(results["llvm"], results["reference"]):
        if got.dtype == np.int8:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_input_gradient_is_the_dequantized_float_convolutions(rng, name):
    """Through a quantized convolution the input's gradient is the float convolution's
    with ``kernel / kernel_scale`` (``gradient_via``), as Keras's quantized Dense."""
    model, layer = one_layer(name)
    x = sample(rng, model)
    quiet_quantize(model, "int8", convolutions=True)
    c = rng.normal(size=model.predict(x, verbose=0).shape).astype(np.float32)
    got = input_gradient(model, x, c)
    proxy, proxy_layer = one_layer(name)
    dequantized = layer.kernel.numpy().astype(np.float32) / layer.kernel_scale.numpy()
    proxy_layer.set_weights([dequantized, layer.bias.numpy()])
    want = input_gradient(proxy, x, c)
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


def test_fine_tuning_trains_the_other_layers_only(rng):
    """After quantize, fit trains a float layer before the quantized ones (its gradient
    goes through them) and the biases; int8 kernels and scales stay as they are."""
    inp = keras.Input((8, 8, 2))
    h = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(inp)  # stays float
    h = layers.Conv2D(4, 3, activation="relu", name="c2")(h)
    out = layers.Dense(2, name="d")(layers.Flatten()(h))
    model = keras.Model(inp, out)
    messages = quiet_quantize(model, "int8", convolutions=True)
    assert "Layer DepthwiseConv2D does not have a `quantize` method implemented." in messages
    frozen = {v.path: v.numpy() for v in model.weights if not v.trainable}
    assert {p.rsplit("/", 1)[-1] for p in frozen} == {"kernel", "kernel_scale"}
    trainable = {v.path: v.numpy() for v in model.trainable_weights}
    assert "depthwise/kernel" in trainable
    model.compile(keras.optimizers.Adam(0.01), "mse")
    x = rng.normal(size=(16, 8, 8, 2)).astype(np.float32)
    history = model.fit(x, np.ones((16, 2), np.float32), epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for v in model.weights:
        if v.path in frozen:
            np.testing.assert_array_equal(v.numpy(), frozen[v.path], err_msg=v.path)
        else:
            assert not np.array_equal(v.numpy(), trainable[v.path]), v.path


# --- files -------------------------------------------------------------------------------


def test_keras_file_round_trip(tmp_path, rng):
    import io
    import zipfile

    import h5py

    model = small_cnn()
    x = rng.normal(size=(4, 10, 10, 3)).astype(np.float32)
    quiet_quantize(model, "int8", convolutions=True)
    path = tmp_path / "cnn_int8.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        weights = h5py.File(io.BytesIO(z.read("model.weights.h5")))
        saved = weights["layers/conv2d/vars"]  # (kernel, bias, kernel_scale), as a Dense's
        assert [saved[str(i)].dtype for i in range(3)] == [np.int8, np.float32, np.float32]
        assert saved["0"].shape == (3, 3, 3, 8) and saved["2"].shape == (8,)
    again = keras.saving.load_model(path)
    for name in ("c2", "c1", "d"):
        layer = again.get_layer(name)
        assert layer.dtype_policy.name == "int8_from_float32", name
        assert layer.kernel.dtype == "int8", name
    for a, b in zip(again.weights, model.weights):
        assert a.path == b.path and a.dtype == b.dtype and a.trainable == b.trainable
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_quantized_cnn_exports_as_an_artifact(tmp_path, rng):
    """``kcompile build``'s path: the int8 kernels travel in the artifact as bytes and
    the loaded artifact predicts what the model does; ``summary`` runs."""
    model = small_cnn()
    quiet_quantize(model, "int8", convolutions=True)
    model.summary(print_fn=lambda *a, **k: None)
    x = rng.normal(size=(3, 10, 10, 3)).astype(np.float32)
    model.compile("sgd", "mse")
    want = model.predict(x, verbose=0)
    model.export(tmp_path / "cnn_int8.kc", probe=x)
    loaded = keras.load(tmp_path / "cnn_int8.kc")
    np.testing.assert_array_equal(np.asarray(loaded.predict(x)), want)


def test_filters_pick_the_convolutions():
    model = small_cnn()
    quiet_quantize(model, "int8", convolutions=True, filters=["c1", "d"])
    assert model.get_layer("c2").quantization_mode is None
    assert model.get_layer("c2").kernel.dtype == "float32"
    assert model.get_layer("c1").dtype_policy.name == "int8_from_float32"
    assert model.get_layer("d").kernel.dtype == "int8"


def test_keras_refuses_the_file(tmp_path):
    """Needs Keras itself (its venv): Keras's Conv2D has no quantized variables, so it
    refuses kcompile's file of a quantized convolution rather than loading it wrong."""
    model = keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(3, 3, name="c")])
    quiet_quantize(model, "int8", convolutions=True)
    path = tmp_path / "c.keras"
    model.save(path)
    result = run_in_keras(f"import keras; keras.saving.load_model(r'{path}')", tmp_path)
    assert result.returncode != 0
    assert "Layer 'c' expected 2 variables, but received 3 variables" in result.stderr


# --- what stays as Keras does it, and the refusals -------------------------------------------


def test_plain_quantize_leaves_convolutions_float_with_keras_warning():
    model = small_cnn()
    kernels = {n: model.get_layer(n).kernel.numpy() for n in ("c2", "c1")}
    messages = quiet_quantize(model, "int8")
    for kind, name in (("Conv2D", "c2"), ("Conv1D", "c1")):
        assert f"Layer {kind} does not have a `quantize` method implemented." in messages
        layer = model.get_layer(name)
        assert layer.quantization_mode is None and layer.dtype_policy.name == "float32"
        np.testing.assert_array_equal(layer.kernel.numpy(), kernels[name])
        assert not hasattr(layer, "kernel_scale")
    assert model.get_layer("d").kernel.dtype == "int8"


def test_plain_int4_leaves_convolutions_float_with_keras_warning():
    """Keras quantizes no convolution to int4 either: they stay float, with its warning
    (not refused as a layer Keras quantizes and kcompile does not)."""
    model = small_cnn()
    messages = quiet_quantize(model, "int4")
    for kind, name in (("Conv2D", "c2"), ("Conv1D", "c1")):
        assert f"Layer {kind} does not have a `quantize` method implemented." in messages
        assert model.get_layer(name).quantization_mode is None
    assert model.get_layer("d").quantization_mode == "int4"


def test_a_layer_quantizes_only_when_asked():
    layer = layers.Conv2D(3, 2)
    layer.build((None, 5, 5, 2))
    with pytest.raises(NotImplementedError, match="Layer Conv2D does not have a `quantize`"):
        layer.quantize("int8")
    with pytest.raises(NotImplementedError, match="Layer Conv2D does not have a `quantize`"):
        layer.dtype_policy = "int8_from_float32"  # (as Keras: a policy quantizes)
    assert layer.kernel.dtype == "float32"
    model = keras.Sequential([keras.Input((5, 5, 2)), layer])  # (the float call, as Keras's)
    x = np.ones((1, 5, 5, 2), np.float32)
    want = conv_numpy(x, layer.kernel.numpy()) + layer.bias.numpy()
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    layer.dtype_policy = "float32"
    layer.quantize("int8", convolutions=True)
    assert layer.kernel.dtype == "int8"
    with pytest.raises(ValueError, match="is already quantized"):
        layer.quantize("int8", convolutions=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.DepthwiseConv2D(3, name="other"),
        lambda: layers.SeparableConv2D(2, 3, name="other"),
        lambda: layers.Conv2DTranspose(2, 3, name="other"),
        lambda: type("MyConv2D", (layers.Conv2D,), {})(2, 3, name="other"),
    ],
    ids=["depthwise", "separable", "transpose", "subclass"],
)
def test_other_convolutions_stay_float_with_keras_warning(make):
    inp = keras.Input((6, 6, 2))
    h = make()(inp)
    out = layers.Conv2D(2, 1, name="plain")(h)
    model = keras.Model(inp, out)
    kind = type(model.get_layer("other")).__name__
    messages = quiet_quantize(model, "int8", convolutions=True)
    assert f"Layer {kind} does not have a `quantize` method implemented." in messages
    assert model.get_layer("other").quantization_mode is None
    assert model.get_layer("plain").quantization_mode == "int8"


def test_grouped_convolution_refused_before_any_layer_changes():
    inp = keras.Input((6, 6, 4))
    h = layers.Conv2D(4, 3, groups=2, name="grouped")(layers.Dense(4, name="first")(inp))
    model = keras.Model(inp, h)
    with pytest.raises(NotImplementedError, match=r"Conv2D 'grouped': groups=2"):
        model.quantize("int8", convolutions=True)
    assert all(x.quantization_mode is None for x in model.layers)
    assert model.get_layer("first").kernel.dtype == "float32"


@pytest.mark.parametrize(
    "make, shape, depth",
    [
        (lambda: layers.Conv2D(2, 3, name="deep"), (6, 6, 114), 3 * 3 * 114),
        (lambda: layers.Conv1D(2, 9, name="deep"), (12, 120), 9 * 120),
    ],
    ids=["conv2d", "conv1d"],
)
def test_window_deeper_than_exact_int8_sums_refused(make, shape, depth):
    assert depth > EXACT_I8_DEPTH
    inp = keras.Input(shape)
    model = keras.Model(inp, make()(layers.Dense(shape[-1], name="first")(inp)))
    kind = type(model.get_layer("deep")).__name__
    with pytest.raises(NotImplementedError, match=rf"{kind} 'deep': its window is {depth} deep"):
        model.quantize("int8", convolutions=True)
    assert model.get_layer("first").kernel.dtype == "float32"  # nothing half quantized


def test_window_exactly_as_deep_as_exact_sums_quantizes_and_runs(rng):
    """A 2x2 window over 256 channels: 1024 terms, the deepest exact one, compiled."""
    model = keras.Sequential([keras.Input((3, 3, 256)), layers.Conv2D(3, 2, name="edge")])
    x = rng.normal(size=(2, 3, 3, 256)).astype(np.float32)
    x[:, 0, 0] = 50.0  # int8 extremes: sums near 2**24
    model.quantize("int8", convolutions=True)
    layer = model.get_layer("edge")
    layer.kernel.assign(np.full(layer.kernel.shape, 127, np.int8))
    results = {}
    for backend in ("llvm", "reference"):
        model.compile("sgd", "mse", backend=backend)
        results[backend] = model.predict(x, verbose=0)
    np.testing.assert_array_equal(results["llvm"], results["reference"])


def test_opt_in_that_does_not_apply_is_refused():
    dense_only = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="found no Conv1D or Conv2D layer to quantize"):
        dense_only.quantize("int8", convolutions=True)
    assert dense_only.layers[0].quantization_mode is None
    model = small_cnn()
    with pytest.raises(ValueError, match=r"no Conv1D or Conv2D layer passing filters='d'"):
        model.quantize("int8", convolutions=True, filters="d")
    with pytest.raises(TypeError, match="convolutions must be True or False, got 'yes'"):
        model.quantize("int8", convolutions="yes")
    with pytest.raises(NotImplementedError, match="int4"):
        model.quantize("int4", convolutions=True)
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        model.quantize("int8", convolution=True)
    assert all(x.quantization_mode is None for x in model.layers)


def test_custom_quantizers_refused():
    from kcompile.quantizers import AbsMaxQuantizer, Int8QuantizationConfig

    model = keras.Sequential([keras.Input((5, 5, 2)), layers.Conv2D(2, 3, name="c")])
    config = Int8QuantizationConfig(activation_quantizer=AbsMaxQuantizer(axis=(1, 2)))
    with pytest.raises(NotImplementedError, match="Conv2D 'c': an Int8QuantizationConfig"):
        model.quantize(config=config, convolutions=True)
    assert model.get_layer("c").kernel.dtype == "float32"
    model.quantize(config=Int8QuantizationConfig(), convolutions=True)  # Keras's defaults
    assert model.get_layer("c").kernel.dtype == "int8"


def test_mixed_bfloat16_policy_name_and_native_run(rng):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = small_cnn()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    quiet_quantize(model, "int8", convolutions=True)
    assert model.get_layer("c2").dtype_policy.name == "int8_from_mixed_bfloat16"
    x = rng.normal(size=(3, 10, 10, 3)).astype(np.float32)
    results = {}
    for backend in ("llvm", "reference"):
        model.compile("sgd", "mse", backend=backend)
        results[backend] = np.asarray(model.predict(x, verbose=0), np.float32)
    scale = np.abs(results["reference"]).max()
    np.testing.assert_allclose(results["llvm"], results["reference"], atol=2**-7 * scale)
