"""``passes.sink_reshapes``: elementwise ops moved above a reshape that splits their
operand's last axis (a projection into heads), so they join the product's epilogue; the
same values, bit for bit; and what it leaves alone."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.ir import BATCH, DType, Graph, TensorType, interpret, verify
from kcompile.ir import build as B
from kcompile.ir.printer import print_graph
from kcompile.passes import PassManager, default_passes
from kcompile.passes.sink_reshapes import sink_reshapes
from kcompile.runtime import make_executable, prepare

F32 = DType.f32


def _heads_graph() -> Graph:
    """x @ w split into 4 heads of 8, then a rescale by a row scale times a per-column
    scale, a bias of the heads' shape and a scalar: a quantized projection's epilogue."""
    g = Graph("heads")
    x = g.add_input("x", TensorType(F32, (BATCH, 5, 16)), "data")
    w = g.add_input("w", TensorType(F32, (16, 32)), "param")
    row = g.add_input("row", TensorType(F32, (BATCH, 5, 1)), "data")
    scale = g.add_input("scale", TensorType(F32, (1, 1, 4, 8)), "param")
    bias = g.add_input("bias", TensorType(F32, (4, 8)), "param")
    per_head = g.add_input("per_head", TensorType(F32, (4, 1)), "param")
    y = B.reshape(B.matmul(x, w), (BATCH, 5, 4, 8))
    rescale = B.mul(B.reshape(row, (BATCH, 5, 1, 1)), scale)
    y = B.add(B.div(y, rescale), bias)
    g.set_outputs([("y", B.mul(B.mul(y, per_head), 0.5))])
    return g


def _feeds(rng, n: int = 3) -> dict:
    shapes = dict(x=(n, 5, 16), w=(16, 32), row=(n, 5, 1), scale=(1, 1, 4, 8), bias=(4, 8))
    feeds = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    feeds["per_head"] = rng.normal(size=(4, 1)).astype(np.float32)
    return feeds


def test_the_ops_after_a_split_move_above_it_with_the_same_bits(rng):
    g = _heads_graph()
    new = sink_reshapes(g)
    verify(new)
    # One reshape to the heads' shape is left, after every op: the graph's output.
    splits = [n for n in new.nodes if n.op == "reshape" and n.outputs[0].rank == 4]
    assert len(splits) == 1 and splits[0].outputs[0] is new.outputs[0][1], print_graph(new)
    # (the per-head column of [4, 1] is made whole, [4, 8], before it is flattened)
    assert any(n.op == "broadcast_to" for n in new.nodes)
    feeds = _feeds(rng)
    np.testing.assert_array_equal(interpret(new, feeds)["y"], interpret(g, feeds)["y"])


def test_the_rescale_runs_in_the_products_epilogue(rng):
    """After the pipeline the product is the one kernel: the row scale times the column
    scale is computed in its epilogue, not as rows of its own through memory."""
    g = _heads_graph()
    fused = prepare(g, PassManager(default_passes()))
    # (the per-head column is made whole once, a kernel on the weight alone)
    kernels = [n for n in fused.nodes if not n.traits.view and not n.outputs[0].type.is_static]
    assert [n.attrs.get("kind") for n in kernels] == ["matmul"], print_graph(fused)
    without = make_executable(g, "llvm", PassManager(default_passes({"sink_reshapes"})))
    feeds = _feeds(rng, 7)
    got = make_executable(g, "llvm")(feeds)["y"]
    np.testing.assert_allclose(got, without(feeds)["y"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, interpret(g, feeds)["y"], rtol=1e-5, atol=1e-5)


def test_a_row_scale_made_by_a_row_kernel_is_spread_in_the_epilogue(rng):
    """The row scale is a row kernel's (an input quantizer's abs-max): its product with the
    column scale, rows of 32, is computed where the product's epilogue reads it, not
    written by the row kernel (``fuse_rows``: an op that only spreads row scalars joins
    its reader's kernel)."""
    g = Graph("quantized_heads")
    # (as many columns in as out: the row kernel could take the rows of 32)
    x = g.add_input("x", TensorType(F32, (BATCH, 5, 32)), "data")
    w = g.add_input("w", TensorType(F32, (32, 32)), "param")
    scale = g.add_input("scale", TensorType(F32, (1, 1, 4, 8)), "param")
    row = B.div(127.0, B.reduce_max(B.abs(x), (2,), keepdims=True))
    y = B.reshape(B.matmul(B.round_(B.mul(x, row)), w), (BATCH, 5, 4, 8))
    g.set_outputs([("y", B.div(y, B.mul(B.reshape(row, (BATCH, 5, 1, 1)), scale)))])
    fused = prepare(g, PassManager(default_passes()))
    (product,) = [n for n in fused.nodes if n.attrs.get("kind") == "matmul"]
    spread = [n for n in product.attrs["body"].nodes if n.op == "mul"]
    assert [[v.shape for v in n.inputs] for n in spread] == [[(BATCH, 5, 1), (1, 1, 32)]]
    (quantizer,) = [n for n in fused.nodes if n.attrs.get("kind") == "row"]
    assert [v.shape for v in quantizer.outputs] == [(BATCH, 5, 1), (BATCH, 5, 32)]
    feeds = {
        "x": rng.normal(size=(4, 5, 32)).astype(np.float32),
        "w": rng.normal(size=(32, 32)).astype(np.float32),
        "scale": rng.normal(size=(1, 1, 4, 8)).astype(np.float32),
    }
    got = make_executable(g, "llvm")(feeds)["y"]
    np.testing.assert_allclose(got, interpret(g, feeds)["y"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "case",
    ["unsqueeze", "leading_broadcast"],
)
def test_what_is_not_a_split_or_has_no_form_before_it_stays(case):
    g = Graph(case)
    x = g.add_input("x", TensorType(F32, (BATCH, 12)), "data")
    if case == "unsqueeze":  # [N, 12] -> [N, 12, 1]: a broadcast, not a split
        y = B.exp(B.reshape(x, (BATCH, 12, 1)))
    else:  # an operand that varies along the batch and is broadcast along the split
        other = g.add_input("o", TensorType(F32, (BATCH, 1, 4)), "data")
        y = B.add(B.reshape(x, (BATCH, 3, 4)), other)
    g.set_outputs([("y", y)])
    assert print_graph(sink_reshapes(g)) == print_graph(g)
