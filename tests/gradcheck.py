"""Whole-model gradients against central differences (`ir.differences`), in float64."""

from __future__ import annotations

import numpy as np

from kcompile.ir.differences import numeric_gradient


def assert_model_gradients(model, rng, batch: int, labels, inputs: dict | None = None) -> None:
    """The autodiff pass on a compiled model's loss against central differences (float64).

    ``labels(rng, batch)`` makes the labels; every f32 input gets normal random values
    unless ``inputs`` gives it (integer ids must be given), non-trainable state
    (variances) is kept positive."""
    from kcompile.ir import interpret, verify
    from kcompile.passes import append_gradients, eliminate_dead_code

    g = model.step_graph("eval")
    params = g.inputs_with_role("param")
    grads = append_gradients(g, g.output("loss"), params)
    g.set_outputs([("loss", g.output("loss"))] + [(p.name, d) for p, d in zip(params, grads)])
    eliminate_dead_code(g)
    verify(g)
    feeds = {
        v.name: rng.normal(size=v.type.concrete_shape(batch))
        for v in g.inputs
        if v.dtype.value == "f32"
    }
    for v in g.inputs_with_role("state"):
        feeds[v.name] = np.abs(feeds[v.name]) + 0.5
    feeds.update(inputs or {})
    feeds["y"] = labels(rng, batch)
    out = interpret(g, feeds, np.float64)
    for p in params:
        np.testing.assert_allclose(
            out[p.name], numeric_gradient(g, feeds, p.name), rtol=1e-4, atol=1e-6, err_msg=p.name
        )


def input_gradient(model, x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """d(sum(model(x) * c))/dx by kcompile's autodiff on the reference interpreter (a
    quantized model's custom input gradient, against Keras's or the float proxy's)."""
    from kcompile.ir import DType, Graph, Interpreter, TensorType
    from kcompile.ir import build as B
    from kcompile.layers.layer import TraceContext
    from kcompile.passes.autodiff import differentiate

    graph = Graph("probe")
    ctx = TraceContext(graph, training=False)
    inp = graph.add_input("x", TensorType(DType.f32, x.shape), "data")
    (out,) = model.trace(ctx, [inp])
    weights = B.const_array(graph, c.ravel().tolist(), DType.f32, c.shape)
    graph.set_outputs([("loss", B.reduce_sum(B.mul(B.cast(out, DType.f32), weights)))])
    differentiate(graph, "loss", role="data")
    feeds = {"x": x, **{v.name: var.value for var, v in ctx.weights.items()}}
    return Interpreter(graph).run(feeds)["grad/x"]
