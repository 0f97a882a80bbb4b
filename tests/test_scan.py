"""The ``scan`` loop op: reference against an unrolled numpy loop, its gradient against
central differences, the pipeline inside loop bodies, native code against the reference,
and a graph whose size does not grow with the number of steps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kcompile.codegen.lowering.module import lower_graph
from kcompile.ir import (
    BATCH,
    DType,
    Graph,
    ShapeError,
    TensorType,
    interpret,
    parse_graph,
    print_graph,
    registry,
)
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.ir.grad import Zero
from kcompile.ir.registry import get_op
from kcompile.passes import PassManager, append_gradients, default_passes
from kcompile.runtime import make_executable
from tests.scan_graphs import scan_attrs

D, U = 3, 4
F32 = DType.f32


def rnn_graph(steps: int, reverse: bool = False, saved: bool = True) -> Graph:
    """h' = tanh(x_t @ w + h @ u + b) with a second carry s' = s + h' * scale (scale: a
    per-step sequence), and loss = sum(ys^2) + sum(h_T) + sum(s_T)."""
    g = Graph("rnn")
    x = g.add_input("x", TensorType(F32, (BATCH, steps, D)))
    scale = g.add_input("scale", TensorType(F32, (BATCH, steps, 1)))
    w = g.add_input("w", TensorType(F32, (D, U)), "param")
    u = g.add_input("u", TensorType(F32, (U, U)), "param")
    bias = g.add_input("b", TensorType(F32, (U,)), "param")
    body = Graph("step")
    h = body.add_input("h", TensorType(F32, (BATCH, U)), "carry")
    s = body.add_input("s", TensorType(F32, (BATCH, U)), "carry")
    xt = body.add_input("x", TensorType(F32, (BATCH, U)), "step")
    st = body.add_input("scale", TensorType(F32, (BATCH, 1)), "step")
    ub = body.add_input("u", TensorType(F32, (U, U)), "invariant")
    bb = body.add_input("b", TensorType(F32, (U,)), "invariant")
    hn = B.tanh(xt + B.matmul(h, ub) + bb)
    body.set_outputs([("h", hn), ("s", s + hn * st), ("y", hn)])
    zeros = B.const(g, 0.0, F32, (BATCH, U))
    attrs = scan_attrs(body, steps, carries=2, sequences=2, reverse=reverse, saved=saved)
    h_t, s_t, ys, *_ = g.emit("scan", [zeros, zeros, B.matmul(x, w), scale, u, bias], attrs)
    loss = B.reduce_sum(ys * ys) + B.reduce_sum(h_t) + B.reduce_sum(s_t)
    g.set_outputs([("loss", loss), ("ys", ys)])
    return g


def unrolled(feeds: dict, reverse: bool = False):
    x, scale = feeds["x"].astype(np.float64), feeds["scale"].astype(np.float64)
    w, u, b = (feeds[k].astype(np.float64) for k in ("w", "u", "b"))
    n, steps, _ = x.shape
    h, s, ys = np.zeros((n, U)), np.zeros((n, U)), np.zeros((n, steps, U))
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        h = np.tanh(x[:, t] @ w + h @ u + b)
        s = s + h * scale[:, t]
        ys[:, t] = h
    return (ys**2).sum() + h.sum() + s.sum(), ys


def feeds_for(n: int, steps: int, rng) -> dict:
    return {
        "x": rng.normal(size=(n, steps, D)).astype(np.float32),
        "scale": rng.uniform(0.5, 1.5, size=(n, steps, 1)).astype(np.float32),
        "w": (rng.normal(size=(D, U)) * 0.5).astype(np.float32),
        "u": (rng.normal(size=(U, U)) * 0.5).astype(np.float32),
        "b": (rng.normal(size=U) * 0.1).astype(np.float32),
    }


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("steps", [1, 5])
def test_reference_matches_an_unrolled_loop(reverse, steps, rng):
    feeds = feeds_for(3, steps, rng)
    out = interpret(rnn_graph(steps, reverse), feeds, np.float64)
    loss, ys = unrolled(feeds, reverse)
    assert out["loss"] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(out["ys"], ys, rtol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_gradient_matches_central_differences(reverse, rng):
    g = rnn_graph(4, reverse)
    wrt = [g.input(name) for name in ("x", "scale", "w", "u", "b")]
    grads = append_gradients(g, g.output("loss"), wrt)
    g.set_outputs([("loss", g.output("loss"))] + [(f"d{v.name}", d) for v, d in zip(wrt, grads)])
    feeds = feeds_for(2, 4, rng)
    out = interpret(g, feeds, np.float64)
    for v in wrt:
        np.testing.assert_allclose(
            out[f"d{v.name}"], numeric_gradient(g, feeds, v.name), rtol=1e-6, atol=1e-8
        )


def test_backward_reads_the_saved_activation_instead_of_recomputing_it():
    g = rnn_graph(4)
    append_gradients(g, g.output("loss"), g.inputs_with_role("param"))
    forward, backward = (n for n in g.nodes if n.op == "scan")
    body = forward.attrs["body"]
    assert [name for name, _ in body.outputs] == ["h", "s", "y", "residual_0"]
    # tanh(x + h @ u + b), stacked per step: its derivative is 1 - its square
    assert body.output("residual_0").node.op == "tanh"
    backward_ops = [n.op for n in backward.attrs["body"].nodes]
    # the gradient's two products (dh = dz uᵀ, du += hᵀ dz), not the forward's h @ u,
    # and no tanh
    assert backward_ops.count("matmul") == 2 and "tanh" not in backward_ops
    assert "residual_0" in [v.name for v in backward.attrs["body"].inputs]


def test_residuals_fall_back_to_the_products_when_the_activations_take_too_much(monkeypatch):
    """An LSTM step's gates (5 x units a row) against its product (4 x units) and its
    carries (2 x units): with room for 2.2 x the carries, the product alone is saved."""
    import kcompile as keras
    from kcompile.ir.ops import scan as scan_op
    from kcompile.tools.inspect import pipeline_stages

    def saved(limit):
        monkeypatch.setattr(scan_op, "RESIDUAL_LIMIT", limit)
        keras.backend.clear_session()
        model = keras.Sequential([keras.Input(shape=(3, 2)), keras.layers.LSTM(4)])
        model.compile(optimizer="sgd", loss="mse")
        g = parse_graph(pipeline_stages(model, "train", [])[-1][1])
        forward = next(n for n in g.nodes if n.op == "scan")
        body = forward.attrs["body"]
        return sorted(v.node.op for name, v in body.outputs if name.startswith("residual"))

    assert saved(2.6) == ["logistic"] * 3 + ["tanh"] * 2
    assert saved(2.2) == ["matmul"]


def train_graph(steps: int, reverse: bool = False) -> Graph:
    g = rnn_graph(steps, reverse)
    params = g.inputs_with_role("param")
    grads = append_gradients(g, g.output("loss"), params)
    g.set_outputs(g.outputs + [(f"grad/{p.name}", d) for p, d in zip(params, grads)])
    return g


def test_text_round_trip_and_optimized_graph_match_the_reference(rng):
    g = train_graph(5)
    text = print_graph(g)
    assert print_graph(parse_graph(text)) == text
    feeds = feeds_for(3, 5, rng)
    want = interpret(g, feeds)
    optimized = PassManager(default_passes(), verify_each=True).run(parse_graph(text))
    scans = [n for n in optimized.nodes if n.op == "scan"]
    assert len(scans) == 2 and all(n.attrs["body"].memory is not None for n in scans)
    assert all(any(m.op == "fused" for m in n.attrs["body"].nodes) for n in scans)
    got = interpret(optimized, feeds)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=2e-5, atol=1e-6, err_msg=key)


def test_native_train_step_matches_the_reference():
    g = train_graph(6)
    exe = make_executable(g, "llvm")
    reference = make_executable(g, "reference")
    params = feeds_for(1, 6, np.random.default_rng(1))
    for name in ("w", "u", "b"):
        exe.bind(name, params[name])
        reference.bind(name, params[name])
    for n in (1, 7, 33):
        data = {
            k: v
            for k, v in feeds_for(n, 6, np.random.default_rng(n)).items()
            if k in ("x", "scale")
        }
        got, want = exe(data), reference(data)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_unused_stacked_results_and_saved_carries_are_pruned(rng):
    g = rnn_graph(5)
    scan = next(n for n in g.nodes if n.op == "scan")
    g.set_outputs([("h", scan.outputs[0])])  # neither the stacked ys nor a gradient
    feeds = feeds_for(2, 5, rng)
    want = interpret(g, feeds)["h"]
    optimized = PassManager(default_passes(), verify_each=True).run(g)
    (scan,) = [n for n in optimized.nodes if n.op == "scan"]
    assert scan.attrs["saved"] is False
    assert [name for name, _ in scan.attrs["body"].outputs] == ["h", "s"]
    assert len(scan.outputs) == 4  # two carries and the workspace
    np.testing.assert_allclose(interpret(optimized, feeds)["h"], want, rtol=1e-6)


def test_graph_and_code_do_not_grow_with_the_number_of_steps():
    def lowered(steps):
        optimized = PassManager(default_passes()).run(train_graph(steps))
        return len(optimized.nodes), lower_graph(optimized).llvm_ir

    nodes20, ir20 = lowered(20)
    nodes200, ir200 = lowered(200)
    assert nodes20 == nodes200
    assert abs(len(ir200) - len(ir20)) < 200  # only constants that hold the length differ


def test_body_that_does_not_match_its_operands_is_refused():
    g = rnn_graph(3)
    scan = next(n for n in g.nodes if n.op == "scan")
    wrong = [*scan.inputs[:2], scan.inputs[3], scan.inputs[2], *scan.inputs[4:]]
    with pytest.raises(ShapeError, match=r"body input %x must be f32\[N,1\] step, got f32\[N,4\]"):
        g.emit("scan", wrong, dict(scan.attrs))


def test_outputs_no_gradient_reaches_are_symbolic_zeros(monkeypatch):
    """A loss of the final carries alone: the stacked outputs and the saved carries get
    symbolic zeros (``ir.grad.Zero``), so the backward loop reads no per-step cotangent
    and nothing materializes zeros for them."""
    g = rnn_graph(3)
    forward = next(n for n in g.nodes if n.op == "scan")
    h_t, s_t = forward.outputs[:2]
    loss = B.reduce_sum(h_t) + B.reduce_sum(s_t)
    scan = get_op("scan")
    seen = []

    def recording(node, cotangents):
        seen.append(cotangents)
        return scan.vjp(node, cotangents)

    monkeypatch.setitem(registry._REGISTRY, "scan", dataclasses.replace(scan, vjp=recording))
    before = len(g.nodes)
    append_gradients(g, loss, g.inputs_with_role("param"))
    (cotangents,) = seen
    assert not any(isinstance(d, Zero) for d in cotangents[:2])
    assert all(isinstance(d, Zero) for d in cotangents[2:])
    backward = next(n for n in g.nodes[before:] if n.op == "scan")
    step_inputs = [v.name for v in backward.attrs["body"].inputs if v.role == "step"]
    assert step_inputs and not any(name.startswith("d_out_") for name in step_inputs)


@pytest.mark.parametrize("reverse", [False, True])
def test_hoisting_moves_the_recurrent_gradient_and_transpose_out_of_the_loop(reverse, rng):
    """passes/loops.py: du += hᵀ·dz leaves the backward body for one product over the
    stacks after it, and dz·uᵀ reads u transposed once before the loop (the loop runs
    whole: its scale's gradient is a carry); the gradients are those of the unhoisted
    graph."""
    from kcompile.ir.rows import splits_by_rows
    from kcompile.passes.loops import hoist_from_loops

    g = train_graph(5, reverse)
    hoisted = hoist_from_loops(g)
    backward = [n for n in hoisted.nodes if n.op == "scan"][-1]
    assert not splits_by_rows(backward.attrs)
    body_products = [n for n in backward.attrs["body"].nodes if n.op == "matmul"]
    assert [n.attrs["transpose_a"] or n.attrs["transpose_b"] for n in body_products] == [False]
    outside = [n for n in hoisted.nodes if n.op == "matmul" and n.outputs[0].shape == (U, U)]
    assert outside and outside[0].attrs["transpose_a"]
    assert any(n.op == "transpose" for n in hoisted.nodes)
    # db += sum over the batch of dz: one sum over the batch and the steps after the loop
    body_sums = [n for n in backward.attrs["body"].nodes if n.op == "reduce_sum"]
    assert not [n for n in body_sums if 0 in n.attrs["axes"]]
    assert any(n.op == "reduce_sum" and n.attrs["axes"] == (0, 1) for n in hoisted.nodes)
    feeds = feeds_for(3, 5, rng)
    want, got = interpret(g, feeds, np.float64), interpret(hoisted, feeds, np.float64)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-12, err_msg=name)
    compiled = make_executable(g, "llvm")
    for v in g.inputs_with_role("param"):
        compiled.bind(v.name, feeds[v.name])
    native = compiled({k: feeds[k] for k in ("x", "scale")})
    for name in ("loss", "grad/u", "grad/w"):
        np.testing.assert_allclose(native[name], want[name], rtol=2e-4, atol=1e-5, err_msg=name)


def test_a_loop_that_mixes_rows_reads_the_invariants_transpose_made_once(rng):
    """h' = tanh(x_t + h·uᵀ - mean over the batch of h): the loop runs whole (its rows
    mix), so its product reads a transpose of u made before the loop; same results."""
    from kcompile.ir.rows import splits_by_rows
    from kcompile.passes.loops import hoist_from_loops

    g = Graph("centered")
    x = g.add_input("x", TensorType(F32, (BATCH, 4, U)))
    u = g.add_input("u", TensorType(F32, (U, U)), "param")
    body = Graph("step")
    h = body.add_input("h", TensorType(F32, (BATCH, U)), "carry")
    xt = body.add_input("x", TensorType(F32, (BATCH, U)), "step")
    ub = body.add_input("u", TensorType(F32, (U, U)), "invariant")
    hn = B.tanh(xt + B.matmul(h, ub, transpose_b=True) - B.reduce_sum(h, 0) * 0.25)
    body.set_outputs([("h", hn), ("y", hn)])
    attrs = scan_attrs(body, 4)
    h_t, ys, *_ = g.emit("scan", [B.const(g, 0.0, F32, (BATCH, U)), x, u], attrs)
    g.set_outputs([("h", h_t), ("ys", ys)])
    hoisted = hoist_from_loops(g)
    (scan,) = [n for n in hoisted.nodes if n.op == "scan"]
    assert not splits_by_rows(scan.attrs)
    assert [n.op for n in hoisted.nodes].count("transpose") == 1
    inner = [n for n in scan.attrs["body"].nodes if n.op == "matmul"]
    assert [n.attrs["transpose_b"] for n in inner] == [False]
    feeds = {
        "x": rng.normal(size=(5, 4, U)).astype(np.float32),
        "u": (rng.normal(size=(U, U)) * 0.5).astype(np.float32),
    }
    want, got = interpret(g, feeds, np.float64), interpret(hoisted, feeds, np.float64)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_what_the_body_computes_from_invariants_alone_runs_before_the_loop(rng):
    """h' = tanh(x_t + h·u + 2·b[:U]): the slice of b and its scaling leave the body (an
    invariant operand instead), the body's unused invariant b is no longer an operand,
    and the native step matches the reference."""
    from kcompile.passes.loops import hoist_from_loops

    g = Graph("licm")
    x = g.add_input("x", TensorType(F32, (BATCH, 4, U)))
    u = g.add_input("u", TensorType(F32, (U, U)), "param")
    bias = g.add_input("b", TensorType(F32, (2 * U,)), "param")
    body = Graph("step")
    h = body.add_input("h", TensorType(F32, (BATCH, U)), "carry")
    xt = body.add_input("x", TensorType(F32, (BATCH, U)), "step")
    ub = body.add_input("u", TensorType(F32, (U, U)), "invariant")
    bb = body.add_input("b", TensorType(F32, (2 * U,)), "invariant")
    hn = B.tanh(xt + B.matmul(h, ub) + B.slice_(bb, (0,), (U,)) * 2.0)
    body.set_outputs([("h", hn), ("y", hn)])
    attrs = scan_attrs(body, 4)
    h_t, ys, *_ = g.emit("scan", [B.const(g, 0.0, F32, (BATCH, U)), x, u, bias], attrs)
    g.set_outputs([("h", h_t), ("ys", ys)])
    hoisted = hoist_from_loops(g)
    scan = next(n for n in hoisted.nodes if n.op == "scan")
    inner = scan.attrs["body"]
    assert [n.op for n in inner.nodes if n.op in ("slice", "mul")] == []
    assert [v.type.shape for v in inner.inputs_with_role("invariant")] == [(U, U), (U,)]
    feeds = {
        "x": rng.normal(size=(5, 4, U)).astype(np.float32),
        "u": (rng.normal(size=(U, U)) * 0.5).astype(np.float32),
        "b": rng.normal(size=2 * U).astype(np.float32),
    }
    want = interpret(g, feeds, np.float64)
    got = interpret(hoisted, feeds, np.float64)
    compiled = make_executable(g, "llvm")
    for name in ("u", "b"):
        compiled.bind(name, feeds[name])
    native = compiled({"x": feeds["x"]})
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(native[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)
