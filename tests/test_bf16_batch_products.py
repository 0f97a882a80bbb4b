"""``batch_matmul`` on bf16 operands (attention under ``mixed_bfloat16``): marked
``precision="bf16"`` by ``hold_narrow_floats``, each matrix on ``kc_bgemm`` where the CPU
has a bf16 engine, every dimension is at least ``BGEMM_MIN_DIM`` and the matrices are too
large for the small kernels (``codegen.lowering.small_products``), on the f32 kernels elsewhere; against the reference at ragged sizes (transposed, permuted, scaled), on 1
and 2 threads, through each path of ``kc_bgemm`` this CPU has (the test ids say which;
the others are skipped with the reason)."""

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
import pytest

import kcompile.codegen.lowering.batch_products as batch_products
import kcompile.codegen.lowering.products as products
from kcompile.codegen.building.target import host
from kcompile.codegen.library.bf16_gemm import has_amx, has_dp, has_engine
from kcompile.codegen.library.runtime_library import runtime
from kcompile.codegen.loops import PTR
from kcompile.codegen.lowering.batch_products import batch_on_bf16_engine
from kcompile.codegen.lowering.module import lower_graph
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret, verify
from kcompile.ir import build as B
from kcompile.passes import PassManager, default_passes
from kcompile.runtime import make_executable, prepare
from tests.threads import on_threads

F32 = DType.f32


def _graph(m: int, depth: int, n: int, heads: int = 3) -> Graph:
    """Attention's two products at [BATCH, heads] of ``m x depth x n``: scores
    q·kᵀ·alpha from [BATCH, m, heads, depth] operands (transposes folded into the
    product), then probabilities-like values times v, and a plain product of transposed
    operands; each on bf16 operands, the results widened."""
    g = Graph("bf16_batch")
    q = g.add_input("q", TensorType(F32, (BATCH, m, heads, depth)), "data")
    k = g.add_input("k", TensorType(F32, (BATCH, n, heads, depth)), "data")
    v = g.add_input("v", TensorType(F32, (BATCH, heads, n, depth)), "data")
    a = g.add_input("a", TensorType(F32, (BATCH, depth, m)), "data")
    b = g.add_input("b", TensorType(F32, (BATCH, n, depth)), "data")
    qb, kb = (B.transpose(B.cast(x, DType.bf16), (0, 2, 1, 3)) for x in (q, k))
    scores = B.batch_matmul(qb, kb, transpose_b=True) * 0.25  # [BATCH, heads, m, n]
    mixed = B.batch_matmul(B.tanh(scores), B.cast(v, DType.bf16))  # [BATCH, heads, m, depth]
    ab, bb = B.cast(a, DType.bf16), B.cast(b, DType.bf16)
    plain = B.batch_matmul(ab, bb, transpose_a=True, transpose_b=True)  # [BATCH, m, n]
    g.set_outputs(
        [
            ("scores", B.cast(scores, F32)),
            ("mixed", B.cast(mixed, F32)),
            ("plain", B.cast(plain, F32)),
        ]
    )
    verify(g)
    return g


def _feeds(rng, graph: Graph, n: int) -> dict:
    return {v.name: rng.standard_normal((n, *v.shape[1:])).astype(np.float32) for v in graph.inputs}


def _products(graph: Graph) -> list:
    found, pending = [], list(graph.nodes)
    while pending:
        node = pending.pop()
        if node.traits.kernel_body:
            pending += node.attrs["body"].nodes
        elif node.op == "batch_matmul":
            found.append(node)
    return found


def _path_entry(monkeypatch, path: str) -> None:
    """Make codegen call ``kc_bgemm``'s ``path`` entry for every bf16 batch product (the
    entry registered with LLVM's linker, as the runtime does ``kc_bgemm``)."""
    if path == "amx" and (not has_amx(host().has) or runtime().bgemm_path() != "amx"):
        pytest.skip("this CPU (or Linux, for this process) gives no AMX-BF16")
    if path == "dp" and not has_dp(host().has):
        pytest.skip("this CPU has no AVX512_BF16")
    name = f"kc_bgemm_{path}"
    llvm.add_symbol(name, runtime().address(name))

    def declare(module):
        from llvmlite import ir

        fn = module.globals.get(name)
        args = [ir.IntType(64)] * 3 + [PTR, ir.IntType(64), ir.IntType(64)] * 2
        args += [PTR, ir.IntType(64), ir.IntType(64), PTR, PTR]
        return fn or ir.Function(module, ir.FunctionType(ir.VoidType(), args), name)

    monkeypatch.setattr(batch_products, "declare_bgemm", declare)
    monkeypatch.setattr(products, "has_engine", lambda features: True)


# (m, depth, n) -> whether the products take kc_bgemm on an engine: ragged sizes past the
# small kernels' B (depth x n over SMALL_MAX_B) do; a dimension below BGEMM_MIN_DIM or
# matrices the small kernels take do not.
SIZES = {(37, 260, 70): True, (37, 260, 20): False, (20, 260, 70): False, (37, 33, 45): False}


def test_bf16_batch_products_are_marked_and_choose_kc_bgemm_by_engine_and_size(monkeypatch):
    for engine in (True, False):
        monkeypatch.setattr(products, "has_engine", lambda features, engine=engine: engine)
        for (m, depth, n), pays in SIZES.items():
            graph = prepare(_graph(m, depth, n), PassManager(default_passes()))
            found = _products(graph)
            assert len(found) == 3 and all(p.attrs.get("precision") == "bf16" for p in found)
            assert all(batch_on_bf16_engine(p) == (engine and pays) for p in found)
            code = lower_graph(graph).llvm_ir
            assert ('@"kc_bgemm"(' in code) == (engine and pays), (engine, m, depth, n)


ISA = ["amx", "dp", "round", "f32"]


@pytest.mark.slow
@pytest.mark.parametrize("path", ISA)
def test_bf16_batch_products_against_the_reference(rng, monkeypatch, path):
    """``path``: one of ``kc_bgemm``'s (AMX, AVX512_BF16, the portable rounding one) for
    every product, or f32 (codegen told the CPU has no engine: ``kc_sgemm``), on 1 and 2
    threads. Native results within a bf16 rounding or two of the reference's (f32 sums
    in another order may round a bf16 result the other way)."""
    monkeypatch.setenv("KCOMPILE_CACHE", "0")
    if path == "f32":
        monkeypatch.setattr(products, "has_engine", lambda features: False)
    else:
        _path_entry(monkeypatch, path)
    graph = _graph(37, 260, 70, heads=2)
    exe = make_executable(graph, "llvm", PassManager(default_passes()))
    code = lower_graph(exe.graph).llvm_ir
    assert (f'@"kc_bgemm_{path}"(' in code) == (path != "f32")
    for threads in (1, 2):
        with on_threads(threads):
            for batch in (1, 3):
                feeds = _feeds(rng, graph, batch)
                got, want = exe(feeds), interpret(graph, feeds)
                for name in want:
                    scale = np.abs(want[name]).max()
                    what = f"{name} batch {batch} threads {threads}"
                    np.testing.assert_allclose(
                        got[name], want[name], rtol=2**-7, atol=2**-8 * scale, err_msg=what
                    )


def test_a_cpu_without_an_engine_keeps_bf16_batch_products_on_the_f32_kernels():
    """The host's own choice: kc_bgemm only where it has an engine."""
    graph = prepare(_graph(37, 260, 70), PassManager(default_passes()))
    assert ('@"kc_bgemm"(' in lower_graph(graph).llvm_ir) == has_engine(host().has)
