"""A split loop's concatenation written in place by the kernel that computes its parts
(``codegen.lowering.concat_in_place``): which concats qualify, and native loops against the
reference at odd batch sizes on 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from llvmlite import ir

from kcompile.codegen.lowering.concat_in_place import concats_in_place
from kcompile.codegen.lowering.mathfn import MathLib
from kcompile.codegen.lowering.scan import splits_by_rows
from kcompile.ir import BATCH, DType, Graph, TensorType
from kcompile.ir import build as B
from kcompile.runtime import make_executable
from tests.scan_graphs import assert_loop_matches_reference, scan_attrs

F32 = DType.f32
U = 5


def _loop(shared_part: bool) -> Graph:
    """h' = [tanh(h), h·x_t, h + x_t]·u (the parts joined in that order); with
    ``shared_part`` the step also outputs h·x_t itself, which then keeps its buffer."""
    g = Graph("joined")
    x = g.add_input("x", TensorType(F32, (BATCH, 4, U)))
    u = g.add_input("u", TensorType(F32, (3 * U, U)), "param")
    body = Graph("step")
    h = body.add_input("h", TensorType(F32, (BATCH, U)), "carry")
    xt = body.add_input("x", TensorType(F32, (BATCH, U)), "step")
    ub = body.add_input("u", TensorType(F32, (3 * U, U)), "invariant")
    product = h * xt
    joined = B.concat([B.tanh(h), product, h + xt], 1)
    hn = B.matmul(joined, ub)
    body.set_outputs([("h", hn), ("y", product if shared_part else joined)])
    attrs = scan_attrs(body, 4)
    h_t, ys, *_ = g.emit("scan", [B.const(g, 0.1, F32, (BATCH, U)), x, u], attrs)
    g.set_outputs([("h", h_t), ("ys", ys)])
    return g


@pytest.mark.parametrize("shared_part", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_concat_of_one_kernels_parts_is_written_in_place(rng, shared_part):
    g = _loop(shared_part)
    exe = make_executable(g, "llvm")
    scan = next(n for n in exe.compiled.graph.nodes if n.op == "scan")
    assert splits_by_rows(scan)
    body = scan.attrs["body"]
    found = concats_in_place(body, MathLib(ir.Module("probe")))
    ops = sorted(n.op for n in found)
    # a part that the step also outputs is stored in its own buffer too
    assert ops == ["concat", "fused"]
    u = (rng.normal(size=(3 * U, U)) * 0.3).astype(np.float32)
    assert_loop_matches_reference(exe, g, rng, u, (4, U), atol=2e-6)
