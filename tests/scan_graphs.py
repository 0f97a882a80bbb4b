"""Hand-built ``scan`` loops in the tests: their attributes, and a compiled loop checked
against the reference."""

from __future__ import annotations

import numpy as np

from kcompile.ir import Graph, interpret
from tests.threads import on_threads


def scan_attrs(
    body: Graph,
    length: int,
    carries: int = 1,
    sequences: int = 1,
    reverse: bool = False,
    saved: bool = False,
) -> dict:
    """A scan of ``body`` over ``length`` steps (no workspace: the planner sizes it)."""
    return {
        "body": body,
        "carries": carries,
        "sequences": sequences,
        "length": length,
        "reverse": reverse,
        "saved": saved,
        "workspace": (0, 0),
    }


def assert_loop_matches_reference(
    exe, graph: Graph, rng, u, shape: tuple, batches=(1, 9, 33), atol: float = 2e-5
) -> None:
    """``exe`` (``graph`` compiled, its invariant ``u`` bound here) against the reference
    on 1 and 2 threads, for inputs ``x`` of ``(n, *shape)`` at each batch size ``n``."""
    exe.bind("u", u)
    for threads in (1, 2):
        with on_threads(threads):
            for n in batches:
                x = rng.normal(size=(n, *shape)).astype(np.float32)
                want, got = interpret(graph, {"x": x, "u": u}), exe({"x": x})
                for key in want:
                    np.testing.assert_allclose(
                        got[key], want[key], rtol=2e-5, atol=atol, err_msg=f"{key} n={n}"
                    )
