"""A loop's input projection computed in its step (``passes.loops.project_in_loops``) and
the two products of that step run as one kernel (``codegen.lowering.packed_products.paired``):
which loops qualify, native loops against the reference at ragged batches on 1 and 2
threads (host tile and AVX2's), the same bits as with the projection before the loop,
and the LSTM's gradients through the rewritten loop against central differences."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.codegen.library.gemm import Tile
from kcompile.codegen.lowering import packed_products, scan
from kcompile.codegen.lowering.module import lower_graph
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.passes import loops
from kcompile.runtime import make_executable
from tests.scan_graphs import scan_attrs
from tests.threads import on_threads

F32 = DType.f32


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    monkeypatch.setenv("KCOMPILE_CACHE", "0")  # the cache's key does not hold the flags


def _graph(
    units: int, features: int, steps: int = 3, bias: bool = True, also_read: bool = False
) -> Graph:
    """h' = tanh(p_t + h·u) over the projection p = transpose(x)·w (+ b), time-major;
    ``also_read``: p is a result of the graph too."""
    g = Graph("projected")
    x = g.add_input("x", TensorType(F32, (BATCH, steps, features)))
    w = g.add_input("w", TensorType(F32, (features, units)), "param")
    u = g.add_input("u", TensorType(F32, (units, units)), "param")
    p = B.matmul(B.transpose(x, (1, 0, 2)), w)
    if bias:
        p = p + g.add_input("b", TensorType(F32, (units,)), "param")
    body = Graph("step")
    h = body.add_input("h", TensorType(F32, (BATCH, units)), "carry")
    xt = body.add_input("x", TensorType(F32, (BATCH, units)), "step")
    ub = body.add_input("u", TensorType(F32, (units, units)), "invariant")
    hn = B.tanh(xt + B.matmul(h, ub))
    body.set_outputs([("h", hn), ("y", hn)])
    attrs = {**scan_attrs(body, steps), "time_major": True}
    h_t, ys, *_ = g.emit("scan", [B.const(g, 0.0, F32, (BATCH, units)), p, u], attrs)
    g.set_outputs([("h", h_t), ("ys", ys), *([("p", p)] if also_read else [])])
    return g


def _scan(g: Graph):
    return next(n for n in g.nodes if n.op == "scan")


def test_the_projection_moves_into_the_step():
    g = loops.hoist_from_loops(_graph(7, 5))
    node = _scan(g)
    # the loop reads the inputs, time-major, and the projection's weights and bias
    assert [tuple(v.shape) for v in node.inputs] == [
        (BATCH, 7),
        (3, BATCH, 5),
        (7, 7),
        (5, 7),
        (7,),
    ]
    body = node.attrs["body"]
    assert [n.op for n in body.nodes] == ["matmul", "add", "matmul", "add", "tanh"]
    assert not any(n.op == "matmul" for n in g.nodes)


@pytest.mark.parametrize("case", ["also_read", "flag_off"])
def test_a_projection_read_elsewhere_or_with_the_flag_off_stays(monkeypatch, case):
    monkeypatch.setattr(loops, "PROJECT_IN_LOOP", case != "flag_off")
    g = loops.hoist_from_loops(_graph(7, 5, also_read=case == "also_read"))
    assert tuple(_scan(g).inputs[1].shape) == (3, BATCH, 7)
    assert any(n.op == "matmul" for n in g.nodes)


def test_a_step_input_not_only_added_to_a_product_stays():
    """A GRU's step slices its input: the projection stays before the loop."""
    g = Graph("sliced")
    x = g.add_input("x", TensorType(F32, (BATCH, 3, 5)))
    w = g.add_input("w", TensorType(F32, (5, 8)), "param")
    u = g.add_input("u", TensorType(F32, (4, 8)), "param")
    p = B.matmul(B.transpose(x, (1, 0, 2)), w)
    body = Graph("step")
    h = body.add_input("h", TensorType(F32, (BATCH, 4)), "carry")
    xt = body.add_input("x", TensorType(F32, (BATCH, 8)), "step")
    ub = body.add_input("u", TensorType(F32, (4, 8)), "invariant")
    z = B.matmul(h, ub)
    hn = B.tanh(B.slice_(xt, (0, 0), (BATCH, 4)) + B.slice_(z, (0, 4), (BATCH, 8)))
    body.set_outputs([("h", hn), ("y", hn)])
    attrs = {**scan_attrs(body, 3), "time_major": True}
    h_t, ys, *_ = g.emit("scan", [B.const(g, 0.0, F32, (BATCH, 4)), p, u], attrs)
    g.set_outputs([("h", h_t), ("ys", ys)])
    assert tuple(_scan(loops.hoist_from_loops(g)).inputs[1].shape) == (3, BATCH, 8)


def _weights(rng, units, features, bias=True):
    found = {
        "w": (rng.normal(size=(features, units)) / np.sqrt(features)).astype(np.float32),
        "u": (rng.normal(size=(units, units)) / np.sqrt(units)).astype(np.float32),
    }
    if bias:
        found["b"] = rng.normal(size=(units,)).astype(np.float32)
    return found


def _run(exe, weights, x):
    for key, value in weights.items():
        exe.bind(key, value)
    return exe({"x": x})


@pytest.mark.parametrize(
    ("tile", "units", "features", "bias"),
    [
        pytest.param("host", 37, 5, True, id="host-37x5"),
        pytest.param("host", 7, 3, False, id="host-7x3-nobias"),
        pytest.param("avx2", 37, 5, True, id="avx2-37x5", marks=pytest.mark.slow),
        pytest.param("host", 300, 29, True, id="host-300x29", marks=pytest.mark.slow),
    ],
)
def test_paired_products_match_the_reference(monkeypatch, rng, tile, units, features, bias):
    """Units 37: a whole panel and a ragged one (AVX-512); 300: a recurrent depth cut
    into three blocks; odd batches, 1 and 2 threads."""
    if tile == "avx2":
        monkeypatch.setattr(packed_products, "TILE", Tile(vw=8, mr=6))
    g = _graph(units, features, bias=bias)
    exe = make_executable(g, "llvm")
    assert "c_first" in lower_graph(exe.compiled.graph).llvm_ir  # the paired kernel ran
    weights = _weights(rng, units, features, bias)
    for threads in (1, 2):
        with on_threads(threads):
            for n in (1, 7, 33):
                x = rng.normal(size=(n, 3, features)).astype(np.float32)
                want, got = interpret(g, {"x": x, **weights}), _run(exe, weights, x)
                for key in want:
                    np.testing.assert_allclose(
                        got[key], want[key], rtol=2e-5, atol=2e-5, err_msg=f"{key} n={n}"
                    )


def test_bits_equal_across_threads_and_with_pairing_off(monkeypatch, rng):
    """The paired kernel gives the bits of the two kernels it replaces, on 1 and 2
    threads; against the projection before the loop (the GEMM over every step, which
    sums some ragged tiles' rows in another order) the results agree to rounding."""
    weights = _weights(rng, 37, 5)
    exes = {}
    for key in ("before", "two", "paired"):
        monkeypatch.setattr(loops, "PROJECT_IN_LOOP", key != "before")
        monkeypatch.setattr(scan, "PAIR_PRODUCTS", key == "paired")
        exes[key] = make_executable(_graph(37, 5), "llvm")
        paired = "c_first" in lower_graph(exes[key].compiled.graph).llvm_ir
        assert paired == (key == "paired")
    for n in (7, 33):
        x = rng.normal(size=(n, 3, 5)).astype(np.float32)
        runs = {}
        for threads in (1, 2):
            with on_threads(threads):
                runs.update({(key, threads): _run(exe, weights, x) for key, exe in exes.items()})
        first = runs["paired", 1]
        for key in first:
            for other in [("paired", 2), ("two", 1), ("two", 2)]:
                np.testing.assert_array_equal(runs[other][key], first[key], err_msg=f"{other}")
            for threads in (1, 2):
                np.testing.assert_allclose(
                    runs["before", threads][key], first[key], rtol=1e-6, atol=1e-6
                )


def test_lstm_gradients_through_the_rewritten_loop(rng):
    """The LSTM's eval step with its gradients, the projection moved into the loop, in
    float64 against central differences of the step as traced."""
    import kcompile as keras
    from kcompile import layers
    from kcompile.ir import verify
    from kcompile.passes import append_gradients, eliminate_dead_code
    from tests.gradcheck import numeric_gradient

    keras.backend.clear_session()
    model = keras.Sequential(
        [keras.Input(shape=(3, 2)), layers.LSTM(4), layers.Dense(2, "softmax")]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    g = model.step_graph("eval")
    params = g.inputs_with_role("param")
    grads = append_gradients(g, g.output("loss"), params)
    g.set_outputs([("loss", g.output("loss"))] + [(p.name, d) for p, d in zip(params, grads)])
    eliminate_dead_code(g)
    moved = loops.hoist_from_loops(g)
    verify(moved)
    forward = next(n for n in moved.nodes if n.op == "scan" and not n.attrs["reverse"])
    assert any(n.op == "matmul" for n in forward.attrs["body"].nodes[:1])
    feeds = {v.name: rng.normal(size=v.type.concrete_shape(2)) for v in g.inputs}
    feeds["y"] = np.array([0, 1], np.int32)
    out = interpret(moved, feeds, np.float64)
    for p in params:
        np.testing.assert_allclose(
            out[p.name], numeric_gradient(g, feeds, p.name), rtol=1e-4, atol=1e-6, err_msg=p.name
        )


def _gradient_like_loop(reverse: bool) -> Graph:
    """A time-major loop that saves nothing (as a backward loop): its per-step output
    y_t = tanh(x_t + d·u) is written in place into its stack."""
    g = Graph("backward_like")
    x = g.add_input("x", TensorType(F32, (BATCH, 3, 37)))
    u = g.add_input("u", TensorType(F32, (37, 37)), "param")
    body = Graph("step")
    d = body.add_input("d", TensorType(F32, (BATCH, 37)), "carry")
    xt = body.add_input("x", TensorType(F32, (BATCH, 37)), "step")
    ub = body.add_input("u", TensorType(F32, (37, 37)), "invariant")
    y = B.tanh(xt * d)
    body.set_outputs([("d", B.matmul(y, ub)), ("y", y)])
    attrs = {**scan_attrs(body, 3, reverse=reverse), "time_major": True}
    start = B.const(g, 1.0, F32, (BATCH, 37))
    d_t, ys, *_ = g.emit("scan", [start, B.transpose(x, (1, 0, 2)), u], attrs)
    g.set_outputs([("d", d_t), ("ys", ys)])
    return g


@pytest.mark.parametrize("on", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
def test_a_loop_without_saves_prefetches_the_next_blocks(monkeypatch, rng, on, reverse):
    """``codegen.lowering.scan.PREFETCH_AHEAD``: the step's product asks for the next step's
    blocks of the stacks read and written in place; the results are the reference's
    either way (odd batches, 1 and 2 threads)."""
    monkeypatch.setattr(scan, "PREFETCH_AHEAD", on)
    g = _gradient_like_loop(reverse)
    exe = make_executable(g, "llvm")
    assert ("llvm.prefetch" in lower_graph(exe.compiled.graph).llvm_ir) == on
    u = (rng.normal(size=(37, 37)) / 6).astype(np.float32)
    exe.bind("u", u)
    for threads in (1, 2):
        with on_threads(threads):
            for n in (1, 7, 33):
                x = rng.normal(size=(n, 3, 37)).astype(np.float32)
                want, got = interpret(g, {"x": x, "u": u}), exe({"x": x})
                for key in want:
                    np.testing.assert_allclose(
                        got[key], want[key], rtol=2e-5, atol=2e-5, err_msg=f"{key} n={n}"
                    )
