"""Lowering graphs to native code through LLVM (llvmlite). Imports only ``ir`` and llvmlite.

``compile_graph`` is the one entry point: it plans the buffers, and either
loads the object code from the on-disk cache or lowers, optimizes and emits it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from codegen.cache import cache_key, read_entry, write_entry
from codegen.module import ENTRY, BufferPlan, BufferSpec, lower_graph, plan_buffers
from codegen.runtime import runtime
from codegen.target import CompileTimes, LoadedCode, compile_module, host
from ir import Graph, print_graph


@dataclass
class CompiledGraph:
    plan: BufferPlan
    code: LoadedCode
    times: CompileTimes
    cache_hit: bool

    @property
    def entry_address(self) -> int:
        return self.code.address(ENTRY)


def compile_graph(
    graph: Graph, version: str = "", times: CompileTimes | None = None, dump=None
) -> CompiledGraph:
    """Native code for ``graph``; ``version`` (the caller's) is part of the cache key.

    ``dump(name, text)``, when given, receives the LLVM IR before and after
    optimization and the assembly (which bypasses the cache).
    """
    times = times or CompileTimes()
    t0 = time.perf_counter()
    text = print_graph(graph)
    plan = plan_buffers(graph)
    key = cache_key(version, text)
    times.add("plan buffers + key", time.perf_counter() - t0)
    payload = None if dump else read_entry(key)
    hit = payload is not None
    if payload is None:
        lowered = lower_graph(graph, times)
        compiled = compile_module(lowered.llvm_ir, times, want_ir=dump is not None)
        payload = compiled.object_code
        write_entry(key, payload)
        if dump:
            from codegen.target import assembly

            dump("llvm.ll", lowered.llvm_ir)
            dump("llvm.opt.ll", compiled.optimized_ir)
            dump("asm.s", assembly(lowered.llvm_ir))
    t1 = time.perf_counter()
    runtime()  # the model's code calls into it: its symbols must be registered first
    code = LoadedCode(payload)
    times.add("load object", time.perf_counter() - t1)
    return CompiledGraph(plan, code, times, hit)


__all__ = ["BufferSpec", "CompileTimes", "CompiledGraph", "compile_graph", "host"]
