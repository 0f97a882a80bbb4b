"""``allow_excess_precision``: a fused kernel rounds a narrow float only where the value
leaves it (or a bf16 product reads it), and native code gives the reference's bits of the
graph the pipeline made."""

from __future__ import annotations

import numpy as np

from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.passes import PassManager, default_passes
from kcompile.passes.excess_precision import _inner_roundings, allow_excess_precision
from kcompile.runtime import make_executable, prepare

F32, BF16 = DType.f32, DType.bf16
EVERY_ROUNDING = {"allow_excess_precision"}


def _chain() -> Graph:
    """x cast to bf16, then four bf16 ops: one fused loop."""
    g = Graph("chain")
    x = g.add_input("x", TensorType(F32, (BATCH, 64)))
    v = B.cast(x, BF16)
    y = B.mul(B.add(B.tanh(B.mul(v, 0.75)), 0.3125), v)
    g.set_outputs([("y", B.cast(y, F32))])
    return g


def _chain_exact(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return (np.tanh(x * 0.75) + 0.3125) * x


def _bodies(graph: Graph) -> list[Graph]:
    return [n.attrs["body"] for n in graph.nodes if n.op == "fused"]


def _roundings(body: Graph) -> list:
    return [n for n in body.nodes if n.op == "round_to"]


def test_a_fused_chain_rounds_once_where_it_stores():
    every = prepare(_chain(), PassManager(default_passes(EVERY_ROUNDING)))
    excess = prepare(_chain(), PassManager(default_passes()))
    ((held,), (body,)) = _bodies(every), _bodies(excess)
    assert len(_roundings(held)) == 5  # the input's cast and each of the four ops
    (kept,) = _roundings(body)
    assert body.outputs[0][1] is kept.outputs[0]


def test_native_code_gives_the_bits_of_the_graph_it_was_made_from(rng):
    graph = _chain()
    data = rng.normal(size=(37, 64)).astype(np.float32) * 3
    data[0, :3] = [np.nan, np.inf, -np.inf]
    for disable, source in ((set(), None), (EVERY_ROUNDING, graph)):
        manager = PassManager(default_passes(disable))
        got = make_executable(graph, "llvm", manager)({"x": data})["y"]
        # Every rounding kept: the traced graph's eager semantics, bit for bit.
        want = interpret(source or prepare(graph, manager), {"x": data})["y"]
        np.testing.assert_array_equal(got.view(np.uint32), np.asarray(want).view(np.uint32))


def test_excess_precision_is_one_rounding_from_the_exact_chain(rng):
    """Computed in f32 and rounded once, each result is the exact one rounded to bf16
    (within f32's own error, far below bf16's); rounding each op errs more on average."""
    graph = _chain()
    data = rng.normal(size=(512, 64)).astype(np.float32) * 2
    exact = _chain_exact(data)
    errors = {}
    for disable in (set(), EVERY_ROUNDING):
        exe = make_executable(graph, "llvm", PassManager(default_passes(disable)))
        got = exe({"x": data})["y"].astype(np.float64)
        errors[bool(disable)] = np.abs(got - exact) / np.maximum(np.abs(exact), 1e-3)
    assert errors[False].max() <= 2.0**-8 * 1.001  # half a bf16 step: one rounding
    assert errors[True].max() > 2.0**-8  # the eager chain's roundings add up
    assert errors[False].mean() < 0.75 * errors[True].mean()


def test_a_products_epilogue_keeps_the_rounding_relu_returns():
    """Dense(relu) under mixed_bfloat16: the product's rounding before the bias goes, the
    one after it stays (ReLU's select passes it to the stored result unrounded)."""
    g = Graph("dense")
    x = g.add_input("x", TensorType(F32, (BATCH, 48)))
    w = g.add_input("w", TensorType(F32, (48, 40)))
    b = g.add_input("b", TensorType(F32, (40,)))
    y = B.add(B.matmul(B.cast(x, BF16), B.cast(w, BF16)), B.cast(b, BF16))
    zero = B.const(g, 0.0, BF16, ())
    g.set_outputs([("y", B.cast(B.select(B.le(y, zero), zero, y), F32))])
    every = prepare(g, PassManager(default_passes(EVERY_ROUNDING)))
    excess = prepare(g, PassManager(default_passes()))
    (epilogue,) = [b for b in _bodies(excess) if b.nodes[0].op == "matmul"]
    (held,) = [b for b in _bodies(every) if b.nodes[0].op == "matmul"]
    assert [n.inputs[0].node.op for n in _roundings(held)] == ["matmul", "add"]
    (kept,) = _roundings(epilogue)
    assert kept.inputs[0].node.op == "add"


def test_a_rounding_a_bf16_product_reads_is_kept():
    body = Graph("body")
    x = body.add_input("x0", TensorType(F32, (BATCH, 8)))
    w = body.add_input("x1", TensorType(F32, (8, 4)))
    rounded = body.emit1("round_to", [B.mul(x, 1.5)], dtype="bf16")
    attrs = {"precision": "bf16", "transpose_a": False, "transpose_b": False}
    (product,) = body.emit("matmul", [rounded, w], attrs)
    inner = body.emit1("round_to", [B.mul(product, 2.0)], dtype="bf16")
    body.set_outputs([("y0", body.emit1("round_to", [B.add(inner, 1.0)], dtype="bf16"))])
    assert _inner_roundings(body) == {inner.node}


def test_a_graph_without_inner_roundings_is_left_as_it_is():
    g = Graph("plain")
    x = g.add_input("x", TensorType(F32, (BATCH, 8)))
    g.set_outputs([("y", B.mul(x, 2.0))])
    assert allow_excess_precision(g) is g
