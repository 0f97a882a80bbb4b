"""``gather_rows`` and ``scatter_rows`` whose rows are the batch (``N``): ``gather_batch``
reads each batch row from another row of the same batch, ``out[i] = x[order[i]]``, and
its gradient adds each row's gradient into the row it was read from.

Compiled code is compared with the reference interpreter exactly (a gather copies; the
scatter's sums are of at most a few rows, in the same order) at several batch sizes, the
short batch included, and on one and several threads; the gradient against central
differences.
"""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.ir import BATCH, DType, Graph, ShapeError, TensorType, interpret, verify
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.ir.indices import index_uses
from kcompile.ir.ops.row_gather import gather_batch, gather_rows, scatter_rows
from kcompile.ir.parser import parse_graph
from kcompile.ir.printer import print_graph
from kcompile.passes import append_gradients
from kcompile.runtime import make_executable
from tests.threads import on_threads

BATCHES = (1, 2, 7, 33, 64)


def _orders(n: int, rng) -> dict[str, np.ndarray]:
    """A permutation, and indices with repeats and out-of-range values (clamped)."""
    return {
        "perm": rng.permutation(n).astype(np.int32),
        "wild": rng.integers(-3, n + 3, size=n).astype(np.int32),
    }


def _gather_graph() -> Graph:
    g = Graph("gather_batch")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 3, 5)), "data")
    labels = g.add_input("y", TensorType(DType.i32, (BATCH, 2)), "data")
    order = g.add_input("order", TensorType(DType.i32, (BATCH,)), "data")
    g.set_outputs([("xs", gather_batch(x, order)), ("ys", gather_batch(labels, order))])
    return g


def _feeds(n: int, rng, order: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "x": rng.normal(size=(n, 3, 5)).astype(np.float32),
        "y": rng.integers(0, 100, size=(n, 2)).astype(np.int32),
        "order": order,
    }


def test_reference_reads_rows_of_the_batch_in_order(rng):
    g = _gather_graph()
    for n in (1, 5):
        for order in _orders(n, rng).values():
            feeds = _feeds(n, rng, order)
            out = interpret(g, feeds)
            at = np.clip(order, 0, n - 1)
            np.testing.assert_array_equal(out["xs"], feeds["x"][at])
            np.testing.assert_array_equal(out["ys"], feeds["y"][at])


@pytest.mark.parametrize("threads", [1, 3])
def test_compiled_gather_matches_the_reference(rng, threads):
    exe = make_executable(_gather_graph(), "llvm")
    with on_threads(threads):
        for n in BATCHES:
            for kind, order in _orders(n, rng).items():
                feeds = _feeds(n, rng, order)
                got, want = exe(feeds), interpret(_gather_graph(), feeds)
                for key in ("xs", "ys"):
                    assert got[key].dtype == want[key].dtype
                    np.testing.assert_array_equal(got[key], want[key], err_msg=f"{kind} N={n}")


def _loss_graph() -> tuple[Graph, list]:
    """loss = sum(w · gather_batch(tanh(x) · v, order)): the gradient reaches x through
    the scatter (into rows read twice, or never, with the wild order)."""
    g = Graph("gather_batch_grad")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 4)), "data")
    v = g.add_input("v", TensorType(DType.f32, (4,)), "param")
    w = g.add_input("w", TensorType(DType.f32, (BATCH, 4)), "data")
    order = g.add_input("order", TensorType(DType.i32, (BATCH,)), "data")
    loss = B.reduce_sum(w * gather_batch(B.tanh(x) * v, order))
    grads = append_gradients(g, loss, [x, v])
    g.set_outputs([("loss", loss), ("dx", grads[0]), ("dv", grads[1])])
    verify(g)
    return g, [x, v]


def test_gradient_matches_central_differences(rng):
    g, _ = _loss_graph()
    for kind, order in _orders(6, rng).items():
        feeds = {
            "x": rng.normal(size=(6, 4)),
            "v": rng.normal(size=4),
            "w": rng.normal(size=(6, 4)),
            "order": order,
        }
        out = interpret(g, feeds, np.float64)
        for name, key in (("x", "dx"), ("v", "dv")):
            np.testing.assert_allclose(
                out[key], numeric_gradient(g, feeds, name), rtol=1e-5, atol=1e-7, err_msg=kind
            )
    # The adjoint of a permutation is its inverse: row order[i] of dx is w[i]'s.
    perm = _orders(6, rng)["perm"]
    feeds = {"x": np.zeros((6, 4)), "v": np.ones(4), "w": rng.normal(size=(6, 4)), "order": perm}
    dx = interpret(g, feeds, np.float64)["dx"]
    np.testing.assert_allclose(dx[perm], feeds["w"], rtol=1e-12)


@pytest.mark.parametrize("threads", [1, 3])
def test_compiled_gradient_matches_the_reference(rng, threads):
    g, _ = _loss_graph()
    exe = make_executable(_loss_graph()[0], "llvm")
    v = rng.normal(size=4).astype(np.float32)
    exe.bind("v", v)
    with on_threads(threads):
        for n in BATCHES:
            for kind, order in _orders(n, rng).items():
                feeds = {
                    "x": rng.normal(size=(n, 4)).astype(np.float32),
                    "w": rng.normal(size=(n, 4)).astype(np.float32),
                    "order": order,
                }
                got, want = exe(feeds), interpret(g, {**feeds, "v": v})
                for key in ("loss", "dx", "dv"):
                    np.testing.assert_allclose(
                        got[key], want[key], rtol=1e-5, atol=1e-5, err_msg=f"{key} {kind} N={n}"
                    )


def test_rows_of_the_batch_print_parse_and_are_not_split_by_rows():
    g, _ = _loss_graph()
    text = print_graph(g)
    assert "{rows=N}" in text and "gather_rows(" in text
    assert print_graph(parse_graph(text)) == text
    nodes = [n for n in g.nodes if n.op in ("gather_rows", "scatter_rows")]
    assert {n.op for n in nodes} == {"gather_rows", "scatter_rows"}
    # Each reads across the batch: no kernel may run it on a slice of the batch's rows.
    assert not any(n.traits.rows_independent(n) for n in nodes)
    # Indices into the batch are the step's own (clamped), not checked data.
    assert index_uses(g) == []


def test_static_row_counts_keep_their_checks():
    g = Graph("static_rows")
    table = g.add_input("t", TensorType(DType.f32, (BATCH, 5, 3)), "data")
    ids = g.add_input("ids", TensorType(DType.i32, (BATCH, 4)), "data")
    g.set_outputs([("y", gather_rows(table, ids))])
    (use,) = index_uses(g)
    assert (use.input, use.bound) == ("ids", 5)
    assert g.nodes[-1].traits.rows_independent(g.nodes[-1])


def test_bad_shapes_are_refused_naming_what_was_expected():
    g = Graph("bad")
    both = g.add_input("both", TensorType(DType.f32, (BATCH, BATCH, 2)), "data")
    ids = g.add_input("ids", TensorType(DType.i32, (BATCH, 3)), "data")
    with pytest.raises(ShapeError, match="rows N need a static first dimension"):
        gather_rows(both, ids)
    inner = g.add_input("inner", TensorType(DType.f32, (1, 4, BATCH)), "data")
    one = g.add_input("one", TensorType(DType.i32, (1, 3)), "data")
    with pytest.raises(ShapeError, match="only the rows of the table may be N"):
        gather_rows(inner, one)
    updates = g.add_input("u", TensorType(DType.f32, (BATCH, 3, 2)), "data")
    with pytest.raises(ShapeError, match="rows N need a static first dimension"):
        scatter_rows(ids, updates, BATCH)
    with pytest.raises(ShapeError, match="rows >= 1 or N"):
        scatter_rows(ids, updates, 0)
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 2)), "data")
    with pytest.raises(ShapeError, match=r"an i32 order \[N\]"):
        gather_batch(x, B.cast(B.reduce_sum(x, (1,)), DType.f32))
