"""A bias gradient of a product over [N, T, F] joins the product's kernel when F is wide
(``passes/fuse.py``'s ``WIDE_SUM_COLUMNS``): the epilogue sums the columns row by row,
and the result matches the reference interpreter on any batch, thread count and width."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.passes import PassManager, eliminate_dead_code, fuse
from kcompile.runtime import make_executable

T = 7  # rows of a batch row: N * 7 rows in all, never a multiple of the GEMM's 12


def _graph(columns: int) -> Graph:
    g = Graph("wide_colsum")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, T, 6)), "data")
    w = g.add_input("w", TensorType(DType.f32, (columns, 6)), "param")
    mask = g.add_input("m", TensorType(DType.f32, (BATCH, T, columns)), "data")
    grad = B.matmul(x, w, transpose_b=True) * mask
    g.set_outputs([("g", grad), ("bias_grad", B.reduce_sum(grad, [0, 1]))])
    return g


def test_a_wide_products_column_sum_is_in_its_kernel_a_narrow_ones_is_not():
    wide = eliminate_dead_code(fuse(_graph(520)))
    assert [n.op for n in wide.nodes] == ["fused"]
    assert wide.nodes[0].attrs["kind"] == "matmul"
    narrow = eliminate_dead_code(fuse(_graph(40)))
    assert len(narrow.nodes) == 2  # [N, T, 40]: the GEMM keeps splitting its rows


@pytest.mark.parametrize("columns", [520, 547])
def test_wide_column_sums_match_the_interpreter(columns, threads):
    g = _graph(columns)
    out = eliminate_dead_code(fuse(g))
    assert [n.op for n in out.nodes] == ["fused"]
    exe = make_executable(out, "llvm", PassManager([]))
    rng = np.random.default_rng(columns)
    weights = rng.normal(size=(columns, 6)).astype(np.float32)
    exe.bind("w", weights)
    for n in (1, 5, 13):
        feeds = {
            "x": rng.normal(size=(n, T, 6)).astype(np.float32),
            "m": (rng.random((n, T, columns)) > 0.5).astype(np.float32),
        }
        want = interpret(g, {**feeds, "w": weights})
        got = exe(feeds)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-5)
