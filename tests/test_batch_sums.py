"""A reduction over the batch left on its own (a bias gradient that no product epilogue
took) becomes a one-node reduce loop (passes/fuse.py), which runs on every thread in
chunks of rows into partials added in chunk order (codegen/lowering/fused.py): the reference's
sums, and the same bits on 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.passes import PassManager, default_passes
from kcompile.runtime import make_executable
from tests.threads import on_threads


def _sums_graph() -> Graph:
    """Sums over the batch (and a row axis) of a batched product's result, as attention's
    bias gradients are, and a sum that keeps the batch (left a plain kernel)."""
    g = Graph("sums")
    a = g.add_input("a", TensorType(DType.f32, (BATCH, 3, 37, 5)), "data")
    b = g.add_input("b", TensorType(DType.f32, (BATCH, 3, 5, 19)), "data")
    y = B.batch_matmul(a, b)
    g.set_outputs(
        [
            ("y", y),
            ("bias", B.reduce_sum(y, (0, 1, 2))),
            ("rows", B.reduce_sum(y, (0, 2))),
            ("kept", B.reduce_sum(y, (1, 2))),
        ]
    )
    return g


def test_lone_batch_sums_become_reduce_loops():
    g = PassManager(default_passes()).run(_sums_graph())
    loops = [n for n in g.nodes if n.op == "fused" and n.attrs["kind"] == "reduce"]
    assert sorted(n.outputs[0].shape for n in loops) == [(3, 19), (19,)]
    # The sum that keeps the batch is computed row by row already.
    assert [n.outputs[0].shape for n in g.nodes if n.op == "reduce_sum"] == [(BATCH, 19)]


@pytest.mark.parametrize("n", [1, 7, 33])
def test_batch_sums_match_the_reference_on_any_thread_count(rng, n):
    g = _sums_graph()
    feeds = {
        "a": rng.normal(size=(n, 3, 37, 5)).astype(np.float32),
        "b": rng.normal(size=(n, 3, 5, 19)).astype(np.float32),
    }
    _check_on_one_and_two_threads(g, feeds, ("bias", "rows"))


def _check_on_one_and_two_threads(g: Graph, feeds: dict, same_bits: tuple[str, ...]) -> None:
    """Native results against the reference on 1 and 2 threads; ``same_bits`` equal on
    both thread counts."""
    exe = make_executable(g, "llvm")
    want = interpret(g, feeds)
    got = {}
    for threads in (1, 2):
        with on_threads(threads):
            got[threads] = {name: array.copy() for name, array in exe(feeds).items()}
        for name in want:
            np.testing.assert_allclose(got[threads][name], want[name], rtol=2e-5, atol=2e-4)
    for name in same_bits:
        np.testing.assert_array_equal(got[1][name], got[2][name])


def _time_major_graph() -> Graph:
    """A recurrent layer's stacked bias gradient (a loop's result, which no loop fuses):
    [T, N, F] summed over time and batch (the batch second), and a sum over time alone,
    which keeps the batch."""
    g = Graph("time_major")
    x = g.add_input("x", TensorType(DType.f32, (28, BATCH, 130)), "data")
    g.set_outputs([("bias", B.reduce_sum(x, (0, 1))), ("per_row", B.reduce_sum(x, (0,)))])
    return g


def test_a_time_major_sum_over_time_and_batch_is_a_reduce_loop():
    g = PassManager(default_passes()).run(_time_major_graph())
    loops = [n for n in g.nodes if n.op == "fused" and n.attrs["kind"] == "reduce"]
    assert [n.outputs[0].shape for n in loops] == [(130,)]
    # The sum over time alone keeps the batch: a plain reduction.
    kept = [n for n in g.nodes if n.op == "reduce_sum"]
    assert [n.outputs[0].shape for n in kept] == [(BATCH, 130)]


@pytest.mark.parametrize("n", [1, 7, 33])
def test_time_major_sums_match_the_reference_on_any_thread_count(rng, n):
    g = _time_major_graph()
    feeds = {"x": rng.normal(size=(28, n, 130)).astype(np.float32)}
    _check_on_one_and_two_threads(g, feeds, ("bias",))
