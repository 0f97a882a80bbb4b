"""``keras.activations``: every activation's values and gradients against what Keras 3.15
(JAX backend) computes (``keras_fixtures/namespaces.npz``, made by
``make_namespace_fixtures.py``), on the reference interpreter, on compiled code and
called eagerly on arrays; NaN stays NaN where Keras keeps it (relu included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kcompile import activations
from kcompile.ir import DType, Graph, f32, interpret
from kcompile.ir import build as B
from kcompile.passes import append_gradients

FIXTURE = np.load(Path(__file__).parent / "keras_fixtures" / "namespaces.npz")
CASES = sorted({k.split("/")[1] for k in FIXTURE.files if k.startswith("act/")})

KWARGS = {
    "relu_slope": ("relu", {"negative_slope": 0.1}),
    "relu_max": ("relu", {"max_value": 1.5}),
    "relu_threshold": ("relu", {"threshold": 0.5}),
    "relu_all": ("relu", {"negative_slope": 0.1, "max_value": 2.0, "threshold": 0.5}),
    "relu_six_slope": ("relu", {"negative_slope": 0.2, "max_value": 6.0}),
    "elu": ("elu", {"alpha": 0.5}),
    "gelu_tanh": ("gelu", {"approximate": True}),
    "leaky_relu": ("leaky_relu", {"negative_slope": 0.1}),
    "celu": ("celu", {"alpha": 0.7}),
    "hard_shrink": ("hard_shrink", {"threshold": 0.4}),
    "soft_shrink": ("soft_shrink", {"threshold": 0.4}),
    "squareplus": ("squareplus", {"b": 2}),
    "threshold": ("threshold", {"threshold": 0.3, "default_value": -1.0}),
    "sparsemax_axis0": ("sparsemax", {"axis": 0}),
    "glu_axis0": ("glu", {"axis": 0}),
}


def _activation(case: str):
    name, kwargs = KWARGS.get(case, (case, {}))
    fn = getattr(activations, name)
    return lambda x: fn(x, **kwargs)


def _graph(cases: list[str]) -> Graph:
    g = Graph("activations")
    outputs = []
    for case in cases:
        x_fix = FIXTURE[f"act/{case}/x"]
        x = g.add_input(f"x_{case}", f32(*x_fix.shape), "param")
        y = _activation(case)(x)
        w = FIXTURE[f"act/{case}/w"]
        weights = B.const_array(g, w.ravel().tolist(), DType.f32, w.shape)
        loss = B.reduce_sum(y * weights, tuple(range(y.rank)))
        (grad,) = append_gradients(g, loss, [x])
        outputs += [(f"y_{case}", y), (f"g_{case}", grad)]
    g.set_outputs(outputs)
    return g


def _feeds(cases, dtype):
    return {f"x_{c}": FIXTURE[f"act/{c}/x"].astype(dtype) for c in cases}


# The tanh-approximated gelu, mish and the like differ from jax's by float32 rounding.
RTOL, ATOL = 2e-5, 2e-6


@pytest.mark.parametrize("case", CASES)
def test_activation_values_and_gradients_match_keras(case):
    # float32, as Keras computed: a threshold of 0.3 is float32's 0.3 there.
    out = interpret(_graph([case]), _feeds([case], np.float32), np.float32)
    np.testing.assert_allclose(out[f"y_{case}"], FIXTURE[f"act/{case}/y"], RTOL, ATOL)
    np.testing.assert_allclose(out[f"g_{case}"], FIXTURE[f"act/{case}/grad"], RTOL, ATOL)


def test_compiled_activations_match_keras():
    from kcompile.runtime import make_executable

    exe = make_executable(_graph(CASES), "llvm")
    for name, value in _feeds(CASES, np.float32).items():
        exe.bind(name, value.copy())
    out = exe({})
    for case in CASES:
        np.testing.assert_allclose(out[f"y_{case}"], FIXTURE[f"act/{case}/y"], 1e-5, 1e-5)
        np.testing.assert_allclose(out[f"g_{case}"], FIXTURE[f"act/{case}/grad"], 1e-4, 1e-5)


NAN_CASES = [c for c in CASES if f"act/{c}/nan" in FIXTURE.files]
NAN_INPUT = np.array([np.nan, -1.0, np.nan, 2.0], np.float32)


@pytest.mark.parametrize("case", NAN_CASES)
def test_nan_as_keras_eagerly(case):
    got = _activation(case)(NAN_INPUT)
    np.testing.assert_allclose(got, FIXTURE[f"act/{case}/nan"], rtol=1e-6, equal_nan=True)


def test_relu_keeps_nan_in_compiled_code():
    from kcompile.runtime import make_executable

    g = Graph("relu_nan")
    x = g.add_input("x", f32(4), "param")
    names = ("relu", "relu6", "hard_tanh", "celu", "sparse_sigmoid")
    g.set_outputs([(n, _activation(n)(x)) for n in names])
    exe = make_executable(g, "llvm")
    exe.bind("x", NAN_INPUT.copy())
    out = exe({})
    for name in names:
        np.testing.assert_allclose(out[name], FIXTURE[f"act/{name}/nan"], 1e-6, err_msg=name)
    assert np.isnan(out["relu"][0])


@pytest.mark.parametrize("case", CASES)
def test_eager_call_on_arrays(case):
    got = _activation(case)(FIXTURE[f"act/{case}/x"])
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, FIXTURE[f"act/{case}/y"], 1e-5, 1e-6)


def test_a_model_trained_on_a_nan_pixel_has_a_nan_loss():
    import kcompile as keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="relu")])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 3), np.float32)
    x[0, 0] = np.nan
    loss = model.evaluate(x, np.zeros((4, 2), np.float32), verbose=0)
    assert np.isnan(loss)


def test_names_aliases_and_serialization():
    assert activations.get("swish") is activations.silu is activations.swish
    assert activations.get("hard_swish") is activations.hard_silu is activations.hard_swish
    assert activations.serialize(activations.swish) == "silu"
    assert activations.serialize(activations.hard_swish) == "hard_silu"
    for name in ("relu", "celu", "glu", "sparsemax", "threshold", "log_sigmoid"):
        fn = activations.get(name)
        assert activations.deserialize(activations.serialize(fn)) is fn
    keras_config = {
        "module": "keras.activations",
        "class_name": "function",
        "config": "tanh_shrink",
        "registered_name": "tanh_shrink",
    }
    assert activations.deserialize(keras_config) is activations.tanh_shrink
    assert activations.get(keras_config) is activations.tanh_shrink
    with pytest.raises(ValueError, match="could not deserialize activation"):
        activations.deserialize("no_such_activation")


def test_glu_refuses_an_odd_axis():
    with pytest.raises(ValueError, match="glu: the size of axis 1 must be even"):
        activations.glu(np.ones((2, 3), np.float32))


def test_a_users_activation_written_with_ops_runs_in_a_layer():
    import kcompile as keras
    from kcompile import ops

    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2, activation=ops.gelu)(inputs)
    model = keras.Model(inputs, outputs)
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    kernel, bias = (w.numpy() for w in model.layers[1].weights)
    z = x @ kernel + bias
    expected = np.asarray(ops.gelu(z))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
