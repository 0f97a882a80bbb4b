"""What the generated code looks like: vector width, FMA, no libm calls in loops; dumps."""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from kcompile.codegen.building.target import assembly, host
from kcompile.codegen.library.runtime_library import runtime_ir
from kcompile.codegen.loops import I64, UNROLL_COUNTS_UP_TO, for_range, i64, unroll_freely
from kcompile.codegen.lowering.module import lower_graph
from kcompile.ir import BATCH, DType, Graph, TensorType
from kcompile.ir import build as B
from kcompile.passes import PassManager, default_passes
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


def _loop_hints(counts, free: bool = False) -> list[str | None]:
    """The ``!llvm.loop`` ID of the loop ``for_range`` builds over each of ``counts`` (an
    int: a constant count; None: the function's argument), one function each; None for a
    loop without one."""
    module = ir.Module("loops")
    for n, count in enumerate(counts):
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64]), f"f{n}")
        if free:
            unroll_freely(fn)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        with for_range(b, fn.args[0] if count is None else i64(count)):
            pass
        b.ret_void()
    text = str(module)
    functions = text.split('define void @"f')[1:]
    return [f.split("!llvm.loop ")[1].split()[0] if "!llvm.loop" in f else None for f in functions]


def test_loops_of_run_time_or_large_counts_stay_rolled_and_tiles_unroll():
    """Loops of a run-time count or one over ``UNROLL_COUNTS_UP_TO`` say
    ``llvm.loop.unroll.disable``, each with an ID of its own that names itself; small
    constant counts, code marked ``unroll_freely`` and the runtime library (but for its
    micro-kernels kept rolled) say nothing."""
    ids = _loop_hints([None, UNROLL_COUNTS_UP_TO + 1, 8, UNROLL_COUNTS_UP_TO])
    assert ids[0] and ids[1] and ids[0] != ids[1] and ids[2:] == [None, None]
    assert _loop_hints([None, 5000], free=True) == [None, None]
    text = lower_graph(elementwise_graph()).llvm_ir
    for loop_id in {
        line.split("!llvm.loop ")[1] for line in text.splitlines() if "!llvm.loop" in line
    }:
        hint = next(line for line in text.splitlines() if line.startswith(f"{loop_id} = "))
        assert hint.startswith(f"{loop_id} = !{{ {loop_id}, ")
    assert "llvm.loop.unroll.disable" in text
    # The runtime library's loops unroll freely but for the micro-kernels kept rolled
    # (their accumulators fill the registers: ``unroll_freely(fn, False)``).
    rolled = {"kc_igemm_ukr_quads", "kc_bgemm_dp_block"}
    for function in runtime_ir().split("\ndefine ")[1:]:
        name = function.split("(")[0].split("@")[-1].strip('"')
        if "!llvm.loop " in function:
            assert any(name.startswith(prefix) for prefix in rolled), name
    # Compiled, the hints hold: the elementwise graph's loops still run right.
    exe = NativeExecutable(elementwise_graph(), "test")
    out = exe({"x": np.ones((5, 300), np.float32), "y": np.full(300, 2.0, np.float32)})
    np.testing.assert_allclose(out["fma"], 3.0)


def _nest_hints(outer: int, inner: int | None) -> int:
    """How many loops of a nest (a loop of ``outer`` around one of ``inner``; None: a
    run-time count) say ``llvm.loop.unroll.disable``."""
    module = ir.Module("nest")
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64]), "f")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with for_range(b, i64(outer)), for_range(b, fn.args[0] if inner is None else i64(inner)):
        pass
    b.ret_void()
    return str(module).count("!llvm.loop")


def test_a_loop_around_a_rolled_loop_stays_rolled_too():
    # Unrolled, the outer loop would only copy the inner one (a bool transpose [7, N] to
    # [N, 7] became seven vectorized copies of its inner loop).
    assert _nest_hints(7, None) == 2
    assert _nest_hints(7, UNROLL_COUNTS_UP_TO + 1) == 2
    assert _nest_hints(2, 2) == 0  # a pooling window's rows and columns


def test_a_products_epilogue_is_left_to_unroll():
    g = Graph("dense")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 64)), "data")
    w = g.add_input("w", TensorType(DType.f32, (64, 48)), "data")
    g.set_outputs([("y", B.maximum(B.matmul(x, w) + 1.0, 0.0))])
    fused = PassManager(default_passes()).run(g)
    text = lower_graph(fused).llvm_ir
    epilogue = text.split("_epilogue_inner")[1].split("\n}\n")[0]
    assert "br label" in epilogue and "!llvm.loop" not in epilogue
    exe = NativeExecutable(fused, "test")
    data, weights = np.ones((7, 64), np.float32), np.full((64, 48), 0.5, np.float32)
    np.testing.assert_allclose(exe({"x": data, "w": weights})["y"], 33.0)
