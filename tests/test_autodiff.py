"""Whole-model gradients from the autodiff pass against central differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.ir import Graph, interpret, verify
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.passes import append_gradients, differentiate, eliminate_dead_code


def _mlp(activation, loss, out_units, out_activation):
    inp = keras.Input(shape=(5,))
    a = layers.Dense(6, activation=activation)(inp)
    b = layers.Dense(6, activation="tanh")(inp)
    h = layers.Concatenate()([a, layers.Add()([a, b])])
    out = layers.Dense(out_units, activation=out_activation)(h)
    model = keras.Model(inp, out)
    model.compile(optimizer="sgd", loss=loss)
    return model


MODELS = [
    ("relu", "sparse_categorical_crossentropy", 3, "softmax"),
    ("gelu", "categorical_crossentropy", 3, "softmax"),
    ("elu", "binary_crossentropy", 1, "sigmoid"),
    ("selu", "mse", 2, None),
    ("softplus", "mae", 2, "swish"),
    ("leaky_relu", "mse", 2, "mish"),
]


@pytest.mark.parametrize("activation, loss, units, out_act", MODELS, ids=[m[0] for m in MODELS])
def test_loss_gradients_of_models(activation, loss, units, out_act, rng):
    model = _mlp(activation, loss, units, out_act)
    label_type = model.default_label_types()[0]
    g = model.step_graph("eval", [label_type])
    params = g.inputs_with_role("param")
    grads = append_gradients(g, g.output("loss"), params)
    g.set_outputs([("loss", g.output("loss"))] + [(p.name, d) for p, d in zip(params, grads)])
    eliminate_dead_code(g)
    verify(g)
    x = rng.normal(size=(4, 5))
    if label_type.dtype.value == "i32":
        y = rng.integers(0, units, 4).astype(np.int32)
    elif loss == "categorical_crossentropy":
        y = np.eye(units)[rng.integers(0, units, 4)]
    else:
        y = (rng.random((4, units)) < 0.5).astype(np.float64)
    feeds = {"input_layer": x, "y": y, **{p.name: rng.normal(size=p.shape) * 0.5 for p in params}}
    out = interpret(g, feeds, np.float64)
    for p in params:
        numeric = numeric_gradient(g, feeds, p.name)
        np.testing.assert_allclose(out[p.name], numeric, rtol=1e-4, atol=1e-6, err_msg=p.name)


def test_no_gradient_of_data_and_zeros_for_unused_params():
    g = Graph("g")
    x = g.add_input("x", keras_type(3))
    w = g.add_input("w", keras_type(3, batch=False), "param")
    unused = g.add_input("u", keras_type(2, batch=False), "param")
    loss = B.reduce_sum(x * w)
    gw, gu = append_gradients(g, loss, [w, unused])
    g.set_outputs([("gw", gw), ("gu", gu)])
    eliminate_dead_code(g)
    ops = [n.op for n in g.nodes]
    assert "matmul" not in ops  # nothing computes d/dx
    out = interpret(
        g,
        {
            "x": np.ones((2, 3), np.float32),
            "w": np.ones(3, np.float32),
            "u": np.ones(2, np.float32),
        },
    )
    np.testing.assert_array_equal(out["gw"], [2, 2, 2])
    np.testing.assert_array_equal(out["gu"], [0, 0])


def test_differentiate_pass_adds_named_gradient_outputs():
    g = Graph("g")
    x = g.add_input("x", keras_type(3))
    w = g.add_input("w", keras_type(3, batch=False), "param")
    g.set_outputs([("loss", B.mean(B.square(x * w)))])
    differentiate(g)
    assert g.output_names == ["loss", "grad/w"]
    verify(g)


def keras_type(n, batch=True):
    from kcompile.ir import BATCH, DType, TensorType

    return TensorType(DType.f32, (BATCH, n) if batch else (n,))
