"""passes/narrow.py: each value computed on the window its users read."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret, parse_graph, print_graph
from kcompile.ir import build as B
from kcompile.passes import PIPELINE, PassManager
from kcompile.passes.narrow import narrow_slices
from kcompile.tools.fuzz.oracle import run_compiled


def _same(before: Graph, after: Graph, feeds: dict) -> None:
    want, got = interpret(before, feeds), interpret(after, feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6, err_msg=name)


def _shapes(g: Graph, op: str) -> list[tuple]:
    return [n.outputs[0].shape for n in g.nodes if n.op == op]


def _shapes_within(g: Graph, op: str) -> list[tuple]:
    """``_shapes`` of the graph's nodes and of those inside its fused kernels."""
    nodes = [n for n in g.nodes if n.op != "fused"]
    nodes += [m for n in g.nodes if n.op == "fused" for m in n.attrs["body"].nodes]
    return [n.outputs[0].shape for n in nodes if n.op == op]


def _conv_pool_graph() -> Graph:
    """conv 3x3 + bias + relu on a 13x13 image, then 2x2 pooling that reads 10x10."""
    g = Graph("conv_pool")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 13, 13, 3)), "data")
    w = g.add_input("w", TensorType(DType.f32, (27, 4)), "param")
    bias = g.add_input("b", TensorType(DType.f32, (4,)), "param")
    y = B.matmul(B.extract_patches(x, (3, 3)), w) + bias
    y = B.select(B.gt(y, B.const(g, 0.0, DType.f32, ())), y, B.const(g, 0.0, DType.f32, ()))
    cut = B.slice_(y, (0, 0, 0, 0), (BATCH, 10, 10, 4))
    pooled = B.reduce_max(B.reshape(cut, (BATCH, 5, 2, 5, 2, 4)), (2, 4))
    g.set_outputs([("y", pooled)])
    return g


def _conv_pool_feeds(rng) -> dict:
    return {
        "x": rng.standard_normal((2, 13, 13, 3)).astype("float32"),
        "w": rng.standard_normal((27, 4)).astype("float32"),
        "b": rng.standard_normal(4).astype("float32"),
    }


def test_a_pooling_edge_narrows_the_convolution_before_it(rng):
    g = _conv_pool_graph()
    before = parse_graph(print_graph(g))
    after = narrow_slices(g)
    assert _shapes(after, "matmul") == [(BATCH, 10, 10, 4)]
    assert _shapes(after, "extract_patches") == [(BATCH, 10, 10, 27)]
    assert _shapes(after, "slice") == [(BATCH, 12, 12, 3)]  # the image rows the patches read
    _same(before, after, _conv_pool_feeds(rng))


def test_a_value_read_whole_elsewhere_is_computed_whole(rng):
    g = _conv_pool_graph()
    relu = g.outputs[0][1].node.inputs[0].node.inputs[0].node.inputs[0]  # before the slice
    g.set_outputs([*g.outputs, ("relu", relu)])
    before = parse_graph(print_graph(g))
    after = narrow_slices(g)
    assert _shapes(after, "matmul") == [(BATCH, 11, 11, 4)]
    _same(before, after, _conv_pool_feeds(rng))


def test_two_slices_of_one_value_narrow_it_to_their_bounding_box(rng):
    g = Graph("two")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 8, 6)), "data")
    y = B.tanh(x) * B.const(g, 2.0, DType.f32, ())
    first = B.slice_(y, (0, 1, 0), (BATCH, 3, 6))
    second = B.slice_(y, (0, 4, 2), (BATCH, 6, 5))
    g.set_outputs([("a", first), ("b", B.exp(second))])
    before = parse_graph(print_graph(g))
    after = narrow_slices(g)
    assert _shapes(after, "tanh") == [(BATCH, 5, 6)]  # rows 1..5, every column
    _same(before, after, {"x": rng.standard_normal((3, 8, 6)).astype("float32")})


def test_broadcast_operands_keep_their_unit_axes(rng):
    g = Graph("bcast")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 7, 5)), "data")
    row = g.add_input("row", TensorType(DType.f32, (1, 5)), "param")
    col = g.add_input("col", TensorType(DType.f32, (7, 1)), "param")
    y = B.slice_(x * row + col, (0, 2, 1), (BATCH, 6, 4))
    g.set_outputs([("y", y)])
    before = parse_graph(print_graph(g))
    after = narrow_slices(g)
    assert _shapes(after, "add") == [(BATCH, 4, 3)]
    feeds = {
        "x": rng.standard_normal((2, 7, 5)).astype("float32"),
        "row": rng.standard_normal((1, 5)).astype("float32"),
        "col": rng.standard_normal((7, 1)).astype("float32"),
    }
    _same(before, after, feeds)


@pytest.mark.parametrize("step", ["predict", "eval", "train"])
def test_the_example_cnn_matches_the_reference_with_narrowing(step, rng):
    """MaxPooling2D over an odd image: the compiled step (narrowed in predict and eval)
    against the reference interpreter on the traced graph."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((11, 11, 2)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    graph = model.step_graph(step)
    optimized = PassManager(PIPELINE, verify_each=True).run(parse_graph(print_graph(graph)))
    if step != "train":  # the convolution computes 8x8 of its 9x9 outputs (in its kernel)
        assert _shapes_within(optimized, "conv2d") == [(BATCH, 8, 8, 4)]
    feeds = {}
    x = rng.standard_normal((5, 11, 11, 2)).astype("float32")
    for v in graph.inputs:
        shape = tuple(5 if d == BATCH else d for d in v.shape)
        if v.role == "data" and v.dtype is DType.f32:
            feeds[v.name] = x if shape == x.shape else rng.random(shape).astype("float32")
        elif v.dtype is DType.i32:
            feeds[v.name] = rng.integers(0, 3, shape).astype("int32")
        else:
            feeds[v.name] = (0.3 * rng.standard_normal(shape)).astype(v.dtype.numpy)
    want = interpret(graph, feeds)
    got = run_compiled(graph, feeds)
    assert "loss" in got or step == "predict"
    for name in set(want) & set(got):  # a train step's new weights are written in place
        np.testing.assert_allclose(
            np.asarray(got[name]), want[name], rtol=2e-5, atol=2e-6, err_msg=name
        )


@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
def test_a_padded_convolution_narrows_its_padding_with_its_windows(strides, rng):
    """conv2d "same" whose lower-right outputs are unused: the image it reads is cut
    where the kept windows stop, and only their part of the padding is kept."""
    g = Graph("conv_same")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 9, 8, 3)), "data")
    w = g.add_input("w", TensorType(DType.f32, (3, 3, 3, 4)), "param")
    y = B.conv2d(x, w, strides, (1, 1), (1, 1, 1, 1))
    g.set_outputs([("y", B.slice_(y, (0, 0, 1, 0), (BATCH, 3, 3, 4)))])
    before = parse_graph(print_graph(g))
    after = narrow_slices(g)
    (conv,) = [n for n in after.nodes if n.op == "conv2d"]
    assert conv.outputs[0].shape == (BATCH, 3, 2, 4)
    assert conv.attrs["padding"] == (1, 0, 0, 0)
    feeds = {
        "x": rng.standard_normal((2, 9, 8, 3)).astype("float32"),
        "w": rng.standard_normal((3, 3, 3, 4)).astype("float32"),
    }
    _same(before, after, feeds)
