"""A row kernel's ``exp(x - max(x))`` (softmax, log-softmax) takes the exponential of a
non-positive argument (codegen/lowering/row_loops.py): no overflow half, against the reference at
ragged widths, with -inf, NaN, huge and underflowing entries, on 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.codegen.lowering.row_loops import _exps_of_shifted_rows, plan_row
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.passes import PassManager, default_passes
from kcompile.runtime import make_executable
from tests.threads import on_threads

COLS = 37


def _rows_graph(log: bool) -> Graph:
    g = Graph("rows")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 5, COLS)), "data")
    shifted = x - B.stop_gradient(B.reduce_max(x, -1, keepdims=True))
    e = B.exp(shifted)
    total = B.reduce_sum(e, -1, keepdims=True)
    y = shifted - B.log(total) if log else e / total
    g.set_outputs([("y", y)])
    return g


@pytest.mark.parametrize("log", [False, True])
def test_the_shifted_exponential_is_found(log):
    g = PassManager(default_passes()).run(_rows_graph(log))
    (row,) = [n for n in g.nodes if n.op == "fused"]
    body = row.attrs["body"]
    plan = plan_row(body, row.attrs["row_shape"], row.attrs["cols"])
    assert [n.op for n in _exps_of_shifted_rows(body, plan)] == ["exp"]


@pytest.mark.parametrize("log", [False, True])
def test_rows_with_special_values_match_the_reference(rng, log):
    g = _rows_graph(log)
    exe = make_executable(g, "llvm")
    x = rng.normal(size=(7, 5, COLS)).astype(np.float32) * 30
    x[0, 0, 3] = -np.inf  # one entry out
    x[0, 1, :] = -1e30  # every entry equal and huge
    x[0, 1, 5] = 0.0  # ... but one: the rest underflow to 0
    x[1, 2, 7] = np.nan  # a NaN row stays NaN
    x[2, 3, :] = 1e30
    x[3, 4, ::2] = -95.0  # exp(-95 - max) below every normal float
    x[3, 4, 1::2] = 0.0
    want = interpret(g, {"x": x})["y"]
    for threads in (1, 2):
        with on_threads(threads):
            got = exe({"x": x})["y"]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=3e-6, atol=1e-30)
