"""A time-major loop that saves its carries keeps them in their stacks (``codegen.lowering.scan``,
``_direct_carries``): each step reads its carries from their saved blocks and writes the
next ones into the following blocks, instead of copying them. Checked against the
reference (the saved stacks themselves among the results), forward and reverse, on
slices of the batch and whole, on 1 and 2 threads at batch sizes that do not divide
evenly, and bit for bit against the loop that copies."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile.codegen.lowering.scan as scan_codegen
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.ir.buffers import plan_buffers
from kcompile.passes import PassManager, default_passes
from kcompile.runtime import make_executable
from tests.scan_graphs import scan_attrs
from tests.threads import on_threads

F32 = DType.f32
STEPS, WIDTH = 5, 3


def _graph(reverse: bool, mixes_rows: bool = False, carry_is_output: bool = False) -> Graph:
    """An LSTM's shape of step: [g, z] = x_t + h·u, c' = 0.5·c + tanh z (``mixes_rows``:
    z minus the batch's mean of h, a loop that runs whole), h' = σ(g)·tanh c';
    time-major, the saved carries among the results; the
    step's output is 2·h', or h' itself (``carry_is_output``)."""
    g = Graph("saved")
    x = g.add_input("x", TensorType(F32, (STEPS, BATCH, 2 * WIDTH)))
    u = g.add_input("u", TensorType(F32, (WIDTH, 2 * WIDTH)), "param")
    body = Graph("step")
    h = body.add_input("h", TensorType(F32, (BATCH, WIDTH)), "carry")
    c = body.add_input("c", TensorType(F32, (BATCH, WIDTH)), "carry")
    xt = body.add_input("x", TensorType(F32, (BATCH, 2 * WIDTH)), "step")
    ub = body.add_input("u", TensorType(F32, (WIDTH, 2 * WIDTH)), "invariant")
    z = xt + B.matmul(h, ub)
    gate, cell = B.slice_(z, (0, 0), (BATCH, WIDTH)), B.slice_(z, (0, WIDTH), (BATCH, 2 * WIDTH))
    if mixes_rows:
        cell = cell - B.reduce_sum(h, 0) * 0.25
    cn = c * 0.5 + B.tanh(cell)
    hn = B.logistic(gate) * B.tanh(cn)
    body.set_outputs([("h", hn), ("c", cn), ("y", hn if carry_is_output else hn * 2.0)])
    attrs = {
        **scan_attrs(body, STEPS, carries=2, reverse=reverse, saved=True),
        "time_major": True,
    }
    h0 = B.const(g, 0.0, F32, (BATCH, WIDTH))
    c0 = B.const(g, 0.25, F32, (BATCH, WIDTH))
    h_t, c_t, ys, _, _, saved_h, saved_c = g.emit("scan", [h0, c0, x, u], attrs)
    outputs = [("h", h_t), ("c", c_t), ("ys", ys), ("saved_h", saved_h), ("saved_c", saved_c)]
    g.set_outputs(outputs)
    return g


def _matches_reference(exe, graph: Graph, rng, batches) -> None:
    u = (rng.normal(size=(WIDTH, 2 * WIDTH)) * 0.5).astype(np.float32)
    exe.bind("u", u)
    for threads in (1, 2):
        with on_threads(threads):
            for n in batches:
                x = rng.normal(size=(STEPS, n, 2 * WIDTH)).astype(np.float32)
                want, got = interpret(graph, {"x": x, "u": u}), exe({"x": x})
                for key in want:
                    np.testing.assert_allclose(
                        got[key], want[key], rtol=2e-5, atol=2e-5, err_msg=f"{key} n={n}"
                    )


def _direct(graph: Graph) -> dict:
    optimized = PassManager(default_passes()).run(graph)
    (node,) = [n for n in optimized.nodes if n.op == "scan"]
    body = node.attrs["body"]
    return scan_codegen._direct_carries(node, body, plan_buffers(body))[1]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mixes_rows", [False, True])
def test_saved_carries_kept_in_their_stacks_match_the_reference(reverse, mixes_rows, rng):
    g = _graph(reverse, mixes_rows)
    assert set(_direct(g)) == {0, 1}  # both carries are written in place by the step
    _matches_reference(make_executable(g, "llvm"), g, rng, (1, 9, 33))


def test_a_carry_that_is_also_the_steps_output_is_copied(rng):
    """h' is a carry and the step's output: its storage is shared, so it is still copied
    into its saved stack (and c' still kept in its own)."""
    g = _graph(False, carry_is_output=True)
    assert set(_direct(g)) == {1}
    _matches_reference(make_executable(g, "llvm"), g, rng, (1, 9))


def test_the_same_bits_as_the_loop_that_copies(monkeypatch, rng):
    g = _graph(True)
    u = (rng.normal(size=(WIDTH, 2 * WIDTH)) * 0.5).astype(np.float32)
    monkeypatch.setenv("KCOMPILE_CACHE", "0")  # the cache does not see the flag
    kept = make_executable(g, "llvm")
    monkeypatch.setattr(scan_codegen, "DIRECT_SAVED", False)
    copied = make_executable(g, "llvm")
    for exe in (kept, copied):
        exe.bind("u", u)
    x = rng.normal(size=(STEPS, 11, 2 * WIDTH)).astype(np.float32)
    for threads in (1, 2):
        with on_threads(threads):
            a, b = kept({"x": x}), copied({"x": x})
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{key} on {threads}")
    want = interpret(g, {"x": x, "u": u})
    np.testing.assert_allclose(a["saved_c"], want["saved_c"], rtol=2e-5, atol=2e-5)
