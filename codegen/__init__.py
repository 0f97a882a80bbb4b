"""Lowering graphs to native code through LLVM (llvmlite). Imports only ``ir`` and llvmlite.

``compile_graph`` is the one entry point: it plans the buffers, and either
loads the object code from the on-disk cache or lowers, optimizes and emits it; ``aot``
builds artifacts' shared libraries. The folders hold its three concerns:

- ``lowering/``: a graph to LLVM IR, a kernel per node, each op family's emitter;
- ``library/``: the runtime library every model calls (thread pool, matrix products,
  convolutions), built once per machine;
- ``building/``: LLVM IR to object code (the host's or another CPU's), in parts on
  several cores, and the on-disk cache.

``loops`` and ``fpmode`` (LLVM IR's loops, types and bf16 bits; the floating-point mode)
serve all three.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass

from kcompile.codegen.building.cache import building, cache_key, read_entry, write_entry
from kcompile.codegen.building.jobs import compile_parts
from kcompile.codegen.building.target import (
    CompileTimes,
    LoadedCode,
    compile_module,
    host,
    pack_objects,
)
from kcompile.codegen.library.runtime_library import build_ahead, runtime_for
from kcompile.codegen.lowering.guards import GUARD_STATE
from kcompile.codegen.lowering.module import (
    CYCLES,
    ENTRY,
    PROFILE_COUNTERS,
    BufferPlan,
    BufferSpec,
    kernel_nodes,
    lower_graph,
    plan_buffers,
)
from kcompile.ir import Graph, Node, abi, print_graph


@dataclass
class CompiledGraph:
    plan: BufferPlan
    code: LoadedCode
    times: CompileTimes
    cache_hit: bool

    graph: Graph
    profiled: bool = False
    checked: bool = False

    def guard_state(self) -> int:
        """Address of the checking mode's state (``codegen.lowering.guards``); 0 without it."""
        if not self.checked:
            return 0
        return abi.bind(abi.GUARD_STATE, self.code.address(GUARD_STATE))()

    @property
    def entry_address(self) -> int:
        return self.code.address(ENTRY)

    def profile(self) -> list[KernelTime]:
        """Seconds and calls of each kernel since the code was loaded (or last reset)."""
        if not self.profiled:
            raise ValueError("this graph was compiled without profile=True")
        hz = cycles_per_second(self.code)
        out = []
        for table, kernels, inside in self._tables():
            for i, (name, node) in enumerate(kernels):
                out.append(KernelTime(name, node, table[2 * i] / hz, table[2 * i + 1], inside))
        return out

    def reset_profile(self) -> None:
        for table, *_ in self._tables():
            ctypes.memset(table, 0, ctypes.sizeof(table))

    def _tables(self):
        """(counter table, its kernels as (name, node), enclosing loop kernel) for the
        step and for each loop body."""
        kernels = kernel_nodes(self.graph, self.plan)
        tables = [(self._counters(self.graph, ""), kernels, None)]
        for name, node in kernels:
            if node.traits.nested_graph:
                body = node.attrs["body"]
                inner = kernel_nodes(body, plan_buffers(body), f"{name}_")
                tables.append((self._counters(body, name), inner, name))
        return tables

    def _counters(self, graph: Graph, owner: str):
        symbol = PROFILE_COUNTERS + (f"_{owner}" if owner else "")
        get = abi.bind(abi.PROFILE_COUNTERS, self.code.address(symbol))
        return (ctypes.c_int64 * (2 * len(graph.nodes))).from_address(get())


@dataclass(frozen=True)
class KernelTime:
    name: str
    node: Node
    seconds: float
    calls: int
    inside: str | None = None  # the loop kernel whose body this kernel is part of


def cycles_per_second(code: LoadedCode, interval: float = 0.02) -> float:
    """The rate of the cycle counter that profiles count in, measured against the clock."""
    clock = abi.bind(abi.CYCLES, code.address(CYCLES))
    start, t0 = clock(), time.perf_counter()
    time.sleep(interval)
    return (clock() - start) / (time.perf_counter() - t0)


def compile_graph(
    graph: Graph,
    version: str = "",
    times: CompileTimes | None = None,
    dump=None,
    profile: bool = False,
    check: bool = False,
) -> CompiledGraph:
    """Native code for ``graph``; ``version`` (the caller's) is part of the cache key.

    ``dump(name, text)``, when given, receives the LLVM IR before and after
    optimization and the assembly (which bypasses the cache). ``profile`` adds
    per-kernel cycle counters (``CompiledGraph.profile``); ``check`` a check of every
    buffer's guard zones after each kernel (``CompiledGraph.guard_state``).
    """
    times = times or CompileTimes()
    build_ahead()  # the runtime library, on the other core, if it is not cached yet
    t0 = time.perf_counter()
    text = print_graph(graph)
    plan = plan_buffers(graph)
    key = cache_key(version, text, "profile" if profile else "", *(("check",) if check else ()))
    times.add("plan buffers + key", time.perf_counter() - t0)
    # A dump bypasses the cache (and refills it) rather than storing the LLVM IR and
    # assembly in every entry: those texts are megabytes per step, wanted rarely, and
    # only a compile of the whole module in one part produces the .ll a reader wants
    # (the normal path splits the module across processes). A dump costs one compile.
    payload = None if dump else read_entry(key)
    hit = payload is not None
    if payload is None and dump:
        payload = _compile_dumped(graph, times, profile, check, dump)
        write_entry(key, payload)
    elif payload is None:
        # Another process compiling the same code (a rank of the same job) finishes it;
        # this one then reads it from the cache.
        with building(key):
            payload = read_entry(key)
            hit = payload is not None
            if payload is None:
                lowered = lower_graph(graph, times, profile, check, parts=None)
                build_ahead(lowered.llvm_ir)  # the library's pieces it calls, if not cached
                payload = pack_objects(compile_parts(lowered.parts, times))
                write_entry(key, payload)
    t1 = time.perf_counter()
    runtime_for(payload)  # the code calls the library (and pieces it names): registered first
    code = LoadedCode(payload)
    times.add("load object", time.perf_counter() - t1)
    return CompiledGraph(plan, code, times, hit, graph, profile, check)


def _compile_dumped(graph: Graph, times: CompileTimes, profile: bool, check: bool, dump) -> bytes:
    """The object code of ``graph`` compiled as one module, its LLVM IR before and after
    optimization and its assembly handed to ``dump``."""
    from kcompile.codegen.building.target import assembly

    lowered = lower_graph(graph, times, profile, check, parts=1)
    build_ahead(lowered.llvm_ir)
    compiled = compile_module(lowered.llvm_ir, times, want_ir=True)
    dump("llvm.ll", lowered.llvm_ir)
    dump("llvm.opt.ll", compiled.optimized_ir)
    dump("asm.s", assembly(lowered.llvm_ir))
    return compiled.object_code


__all__ = ["BufferSpec", "CompileTimes", "CompiledGraph", "KernelTime", "compile_graph", "host"]
