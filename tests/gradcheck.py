"""Central differences in float64 on the reference interpreter."""

from __future__ import annotations

import numpy as np

from ir import Graph, Interpreter


def numeric_gradient(
    graph: Graph, feeds: dict, name: str, output: str = "loss", eps: float = 1e-6
) -> np.ndarray:
    """d(output)/d(feeds[name]) by central differences, the graph run in float64."""
    run = Interpreter(graph).run
    base = np.asarray(feeds[name], dtype=np.float64)
    grad = np.zeros_like(base)
    for idx in np.ndindex(base.shape):
        hi, lo = base.copy(), base.copy()
        hi[idx] += eps
        lo[idx] -= eps
        up = run({**feeds, name: hi}, np.float64)[output]
        down = run({**feeds, name: lo}, np.float64)[output]
        grad[idx] = (up - down) / (2 * eps)
    return grad


def assert_model_gradients(model, rng, batch: int, labels) -> None:
    """The autodiff pass on a compiled model's loss against central differences (float64).

    ``labels(rng, batch)`` makes the labels; every f32 input gets normal random values,
    non-trainable state (variances) is kept positive."""
    from ir import interpret, verify
    from passes import append_gradients, eliminate_dead_code

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
    feeds["y"] = labels(rng, batch)
    out = interpret(g, feeds, np.float64)
    for p in params:
        np.testing.assert_allclose(
            out[p.name], numeric_gradient(g, feeds, p.name), rtol=1e-4, atol=1e-6, err_msg=p.name
        )
