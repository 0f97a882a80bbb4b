"""What the generated code looks like: vector width, FMA, no libm calls in loops; dumps."""

from __future__ import annotations

import numpy as np

from kcompile.codegen.building.target import assembly, host
from kcompile.codegen.lowering.module import lower_graph
from kcompile.ir import BATCH, DType, Graph, TensorType
from kcompile.ir import build as B
from kcompile.runtime.native import NativeExecutable
from kcompile.tools import cli


def elementwise_graph() -> Graph:
    g = Graph("vec")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 300)), "data")
    y = g.add_input("y", TensorType(DType.f32, (300,)), "data")
    g.set_outputs([("fma", x * y + 1.0), ("e", B.exp(x)), ("t", B.tanh(x) + B.log(y))])
    return g


def test_loops_are_vectorized_with_fma_and_no_libm_calls():
    asm = assembly(lower_graph(elementwise_graph()).llvm_ir)
    if host().has("avx512f"):
        assert "zmm" in asm  # 16 x f32: LLVM's preference for 256-bit vectors is dropped
    elif host().has("avx2"):
        assert "ymm" in asm  # 8 x f32 vectors
    if host().has("fma"):
        assert "vfmadd" in asm
    for libm in ("expf", "logf", "tanhf"):
        assert f"call{chr(9)}{libm}" not in asm and f"@{libm}" not in asm


def test_dumps_of_llvm_ir_and_assembly(tmp_path, monkeypatch):
    monkeypatch.setenv("KCOMPILE_DUMP", str(tmp_path))
    exe = NativeExecutable(elementwise_graph(), "test")
    out = exe({"x": np.ones((3, 300), np.float32), "y": np.full(300, 2.0, np.float32)})
    np.testing.assert_allclose(out["fma"], 3.0)
    names = sorted(p.name for p in (tmp_path / "vec").iterdir())
    assert names == ["000_llvm.ll", "001_llvm.opt.ll", "002_asm.s"]
    assert (
        'define void @"kc_entry"(ptr noalias %"buffers", i64 %"n")'
        in (tmp_path / "vec" / "000_llvm.ll").read_text()
    )
    assert "<8 x float>" in (tmp_path / "vec" / "001_llvm.opt.ll").read_text()


def test_cli_compile_reports_times(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KCOMPILE_CACHE_DIR", str(tmp_path / "cache"))
    from tests.test_datasets_cli import EXAMPLE

    assert cli.main(["ir", EXAMPLE, "--stage", "eval", "-o", str(tmp_path / "e.kir")]) == 0
    assert cli.main(["compile", str(tmp_path / "e.kir")]) == 0
    out = capsys.readouterr().out
    assert "eval_step:" in out and "compiled in" in out
    assert "llvm optimize (O2)" in out and "machine code" in out
    assert cli.main(["compile", str(tmp_path / "e.kir")]) == 0
    assert "from the cache" in capsys.readouterr().out
