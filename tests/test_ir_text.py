"""The text form: print -> parse gives an equal graph; errors give line and column."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcompile.ir import (
    BATCH,
    DType,
    Graph,
    IRParseError,
    TensorType,
    first_difference,
    interpret,
    parse_graph,
    print_graph,
    verify,
)
from kcompile.ir import build as B

GOLDEN = """\
graph tiny(
    %x: f32[N,4] data,
    %w: f32[4,3] param,
) {
  %0 = matmul(%x, %w) {transpose_a=false, transpose_b=false} : f32[N,3]  # dense
  %1 = constant() {dtype=f32, shape=[], value=0.0} : f32[]  # dense
  %2 = max(%0, %1) : f32[N,3]  # dense
  %3 = reduce_sum(%2) {axes=[0, 1], keepdims=false} : f32[]
  return out=%2, total=%3
}
"""


def tiny() -> Graph:
    g = Graph("tiny")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 4)))
    w = g.add_input("w", TensorType(DType.f32, (4, 3)), "param")
    with g.layer_scope("dense"):
        y = B.maximum(B.matmul(x, w), 0.0)
    g.set_outputs([("out", y), ("total", B.reduce_sum(y))])
    return g


def test_golden_text():
    assert print_graph(tiny()) == GOLDEN


def test_round_trip_keeps_layers_and_attributes():
    g = tiny()
    again = parse_graph(print_graph(g))
    assert first_difference(g, again) is None
    assert [n.layer for n in again.nodes] == ["dense", "dense", "dense", ""]


def test_attribute_values_round_trip():
    g = Graph("attrs")
    x = g.add_input("x", TensorType(DType.f32, (2, 3)))
    for value in [float("inf"), -float("inf"), 1e-30, -0.0, 3.25, 1e16]:
        x = x + B.const(g, value)
    c = B.const_array(g, [1.5, -2.0, 0.1], DType.f32, (3,))
    g.set_outputs([("y", x * c)])
    assert first_difference(g, parse_graph(print_graph(g))) is None


def test_model_graphs_round_trip():
    import kcompile as keras
    from kcompile import layers

    inp = keras.Input(shape=(6,))
    h = layers.Dense(5, activation="gelu")(inp)
    h = layers.Dropout(0.3)(h)
    out = layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inp, out)
    model.compile(
        optimizer="adamw",
        loss="categorical_crossentropy",
        metrics=["accuracy", "precision", "recall"],
    )
    for kind in ("predict", "eval", "train"):
        g = model.step_graph(kind)
        verify(g)
        assert first_difference(g, parse_graph(print_graph(g))) is None, kind


@pytest.mark.parametrize(
    "text, line, column, message",
    [
        ("graph g(\n) {\n  return\n}\n@", 5, 1, "unexpected character"),
        ("graph g(  \n) {\t \n  return  $\n}\n", 3, 11, "unexpected character '\\$'"),
        ('graph g(\n) {\n  %0 = constant() {value="a\nb"} : f32[]\n', 3, 26, "unexpected"),
        (
            "graph g(\n    %x: f32[N,4] data,\n) {\n  %0 = nope(%x) : f32[N,4]\n  return y=%0\n}\n",
            4,
            8,
            "unknown op",
        ),
        (
            "graph g(\n    %x: f32[N,4] data,\n) {\n  %0 = exp(%y) : f32[N,4]\n  return y=%0\n}\n",
            4,
            12,
            "undefined value %y",
        ),
        (
            "graph g(\n    %x: f32[N,4] data,\n) {\n  %0 = exp(%x) : f32[N,5]\n  return y=%0\n}\n",
            4,
            3,
            "declared type f32\\[N,5\\]",
        ),
        ("graph g(\n    %x: f33[N,4] data,\n) {\n  return y=%x\n}\n", 2, 9, "unknown dtype"),
        ("graph g(\n    %x: f32[N,4] data\n  return\n", 3, 3, "expected \\)"),
    ],
)
def test_parse_errors_name_line_and_column(text, line, column, message):
    with pytest.raises(IRParseError, match=message) as info:
        parse_graph(text, "bad.kir")
    assert (info.value.line, info.value.column) == (line, column)
    assert str(info.value).startswith(f"bad.kir:{line}:{column}:")


# --- random graphs --------------------------------------------------------------

UNARY = [B.neg, B.exp, B.tanh, B.logistic, B.abs, B.stop_gradient]
BINARY = [B.add, B.sub, B.mul, B.maximum, B.minimum]


@st.composite
def random_graphs(draw):
    g = Graph("random")
    width = draw(st.integers(1, 5))
    values = [
        g.add_input(f"in{i}", TensorType(DType.f32, (BATCH, width)), "data")
        for i in range(draw(st.integers(1, 3)))
    ]
    for _ in range(draw(st.integers(1, 15))):
        kind = draw(st.sampled_from(["unary", "binary", "reduce", "const", "concat"]))
        x = draw(st.sampled_from(values))
        if kind == "unary":
            v = draw(st.sampled_from(UNARY))(x)
        elif kind == "binary":
            y = draw(st.sampled_from([v for v in values if v.shape == x.shape]))
            v = draw(st.sampled_from(BINARY))(x, y)
        elif kind == "reduce":
            v = B.broadcast_to(B.reduce_sum(x, 1, keepdims=True), x.shape)
        elif kind == "concat":
            v = B.slice_(B.concat([x, x], 1), (0, 1), (BATCH, 1 + width))
        else:
            v = x * draw(st.floats(-3, 3, allow_nan=False, width=32))
        values.append(v)
    g.set_outputs([(f"out{i}", v) for i, v in enumerate(values[-2:])])
    return g


@settings(max_examples=60, deadline=None)
@given(random_graphs(), st.integers(1, 6))
def test_random_graphs_round_trip_and_compute_the_same(g, n):
    verify(g)
    again = parse_graph(print_graph(g))
    assert first_difference(g, again) is None
    rng = np.random.default_rng(n)
    feeds = {v.name: rng.normal(size=v.type.concrete_shape(n)).astype(np.float32) for v in g.inputs}
    a, b = interpret(g, feeds), interpret(again, feeds)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_names_keras_allows_print_quoted_and_parse_back():
    """Keras allows any layer name without '/': a weight of a layer named ``odd<&>"name
    x\\y`` prints as ``%"..."`` (quotes and backslashes escaped) and every stage of a
    train step parses back to the same text; so does an output with such a name."""
    import kcompile as keras
    from kcompile import layers
    from kcompile.ir import build as B
    from kcompile.tools import inspect

    name = 'odd<&>"name x\\y'
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3, name=name)])
    model.compile(loss="mse", optimizer="adam")
    stages = inspect.pipeline_stages(model, "train")
    assert '%"odd<&>\\"name x\\\\y/kernel"' in stages[0][1]
    for stage, text in stages:
        assert print_graph(parse_graph(text)) == text, stage
    g = Graph("outputs")
    x = g.add_input(name, TensorType(DType.f32, (2,)), "data")
    g.set_outputs([(name, B.neg(x)), ("return", x)])
    back = parse_graph(print_graph(g))
    assert [n for n, _ in back.outputs] == [name, "return"] and back.inputs[0].name == name


def test_long_constant_tables_print_packed_and_parse_back_exactly():
    """A constant of PACKED_FROM numbers or more prints as its float64 (int64) bytes in hex
    and parses back to the same tuple (NaN, infinities, -0.0, the smallest subnormal,
    int32's ends); shorter ones, bools and mixed tuples print number by number."""
    from kcompile.ir.printer import PACKED_FROM

    rng = np.random.default_rng(0)
    floats = rng.standard_normal(PACKED_FROM).astype(np.float32).tolist()
    floats[:5] = [float("nan"), float("inf"), -float("inf"), -0.0, 1e-45]
    ints = rng.integers(-(2**31), 2**31, PACKED_FROM).tolist()
    ints[:2] = [-(2**31), 2**31 - 1]
    g = Graph("tables")
    table = B.const_array(g, floats, DType.f32, (PACKED_FROM,))
    indices = B.const_array(g, ints, DType.i32, (PACKED_FROM,))
    flags = B.const_array(g, [bool(i % 3) for i in range(PACKED_FROM)], DType.bool, (PACKED_FROM,))
    short = B.const_array(g, floats[: PACKED_FROM - 1], DType.f32, (PACKED_FROM - 1,))
    g.set_outputs([("t", table), ("i", indices), ("f", flags), ("s", short)])
    text = print_graph(g)
    assert text.count("packed_f64") == 1 and text.count("packed_i64") == 1
    assert "[true, true, false" not in text and "[false, true, true" in text  # bools listed
    back = parse_graph(text)
    assert first_difference(g, back) is None
    parsed = back.nodes[0].attrs["value"]
    assert np.isnan(parsed[0]) and parsed[1:5] == (float("inf"), -float("inf"), -0.0, 1e-45)
    assert np.copysign(1.0, parsed[3]) == -1.0
    assert parsed[5:] == tuple(floats[5:]) and back.nodes[1].attrs["value"] == tuple(ints)
    assert print_graph(back) == text
