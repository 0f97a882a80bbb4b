"""The weight gradients after a recurrent loop that read one of its stacks as one product
(``passes.loops.merge_stack_products``): a bias's sum over the stack is the last row of
the input kernel's product, over the inputs with a column of ones beside them. Which
stacks qualify, the rewritten graphs against the unrewritten ones and against central
differences (float64), and native train steps against the reference at odd batch
sizes on 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.ir import interpret, verify
from kcompile.passes import append_gradients, eliminate_dead_code, loops
from kcompile.runtime import make_executable
from tests.gradcheck import numeric_gradient
from tests.threads import on_threads


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch):
    monkeypatch.setenv("KCOMPILE_CACHE", "0")  # the cache's key does not hold the flags


def _gradient_graph(layer: str, units: int, features: int, steps: int = 3):
    """A recurrent classifier's eval step with its parameters' gradients as results."""
    import kcompile as keras
    from kcompile import layers

    keras.backend.clear_session()
    recurrent = getattr(layers, layer)(units)
    model = keras.Sequential(
        [keras.Input(shape=(steps, features)), recurrent, layers.Dense(3, "softmax")]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    g = model.step_graph("eval")
    params = g.inputs_with_role("param")
    grads = append_gradients(g, g.output("loss"), params)
    g.set_outputs(
        [("loss", g.output("loss"))] + [(f"d/{p.name}", d) for p, d in zip(params, grads)]
    )
    eliminate_dead_code(g)
    return g, params


def _feeds(g, rng, batch: int, dtype=np.float64) -> dict:
    feeds = {v.name: rng.normal(size=v.type.concrete_shape(batch)).astype(dtype) for v in g.inputs}
    feeds["y"] = (np.arange(batch) % 3).astype(np.int32)
    return feeds


def _pads(g) -> list:
    return [n for n in g.nodes if n.op == "pad" and n.attrs["value"] == 1.0]


def _stack_sums(g) -> list:
    return [n for n in g.nodes if n.op == "reduce_sum" and tuple(n.attrs["axes"]) == (0, 1)]


@pytest.mark.parametrize("merge", [True, False])
def test_an_lstm_bias_gradient_comes_from_its_input_kernels_product(monkeypatch, merge):
    monkeypatch.setattr(loops, "MERGE_SUMS", merge)
    g, _ = _gradient_graph("LSTM", 9, 2)
    moved = loops.hoist_from_loops(g)
    verify(moved)
    assert len(_pads(moved)) == int(merge)
    assert len(_stack_sums(moved)) == int(not merge)
    if merge:
        (pad,) = _pads(moved)
        (product,) = [n for n in moved.nodes if pad.outputs[0] in n.inputs]
        assert product.op == "matmul" and product.outputs[0].shape == (3, 36)


def test_a_wide_factor_keeps_its_sum():
    """A GRU's recurrent bias: its hidden state (9 columns) is no narrow factor next to
    its stack (27 columns; ``SUM_WIDTH_RATIO``), so only the input kernel's product
    takes a column of ones."""
    g, _ = _gradient_graph("GRU", 9, 2)
    moved = loops.hoist_from_loops(g)
    verify(moved)
    (pad,) = _pads(moved)
    assert pad.inputs[0].shape[-1] == 2
    assert len(_stack_sums(moved)) == 1


@pytest.mark.parametrize("factors", [False, True])
@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_merged_gradients_against_central_differences(monkeypatch, rng, layer, factors):
    """The rewritten step in float64: the unrewritten step's numbers, and central
    differences of the step as traced (``MERGE_FACTORS``: all the products of a stack
    as one, with the sum)."""
    monkeypatch.setattr(loops, "MERGE_FACTORS", factors)
    g, params = _gradient_graph(layer, 4 if layer == "LSTM" else 6, 2)
    moved = loops.hoist_from_loops(g)
    verify(moved)
    assert _pads(moved)
    monkeypatch.setattr(loops, "MERGE_SUMS", False)
    monkeypatch.setattr(loops, "MERGE_FACTORS", False)
    plain = loops.hoist_from_loops(g)
    assert not _pads(plain)
    feeds = _feeds(g, rng, 3)
    out, want = interpret(moved, feeds, np.float64), interpret(plain, feeds, np.float64)
    for p in params:
        key = f"d/{p.name}"
        np.testing.assert_allclose(out[key], want[key], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(
            out[key], numeric_gradient(g, feeds, p.name), rtol=1e-4, atol=1e-6, err_msg=key
        )


@pytest.mark.parametrize(
    ("layer", "units", "features", "factors"),
    [
        pytest.param("LSTM", 13, 3, False, id="lstm-13x3"),
        pytest.param("GRU", 11, 3, False, id="gru-11x3"),
        pytest.param("LSTM", 13, 3, True, id="lstm-13x3-factors", marks=pytest.mark.slow),
    ],
)
def test_native_steps_match_the_reference(monkeypatch, rng, layer, units, features, factors):
    """Odd units and features (the product's rows: features + 1, not a whole tile), odd
    batches, 1 and 2 threads."""
    monkeypatch.setattr(loops, "MERGE_FACTORS", factors)
    g, params = _gradient_graph(layer, units, features)
    exe = make_executable(g, "llvm")
    assert _pads(exe.compiled.graph) or any(
        n.op == "fused" and _pads(n.attrs["body"]) for n in exe.compiled.graph.nodes
    )
    weights = _feeds(g, rng, 1, np.float32)
    for p in params:
        exe.bind(p.name, weights[p.name])
    for threads in (1, 2):
        with on_threads(threads):
            for n in (1, 7, 33):
                feeds = {**weights, **_feeds(g, rng, n, np.float32)}
                feeds.update({p.name: weights[p.name] for p in params})
                data = {v.name: feeds[v.name] for v in g.inputs if v.role == "data"}
                want, got = interpret(g, feeds), exe(data)
                for key in want:
                    np.testing.assert_allclose(
                        got[key], want[key], rtol=2e-4, atol=2e-5, err_msg=f"{key} n={n}"
                    )
