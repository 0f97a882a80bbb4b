"""The JIT's executable: compiles a planned step graph with codegen and runs it."""

from __future__ import annotations

import os
import sys

from kcompile.codegen import compile_graph, kernel_nodes
from kcompile.codegen.lowering.epoch_loop import EPOCH, has_epoch_loop
from kcompile.ir import Graph
from kcompile.passes.manager import debug_level, write_dump
from kcompile.runtime.guarded import GuardedBuffers, checking
from kcompile.runtime.program import NativeProgram


class NativeExecutable(NativeProgram):
    def __init__(
        self,
        graph: Graph,
        version: str,
        capacity: int = 32,
        dump_index: int | None = None,
        profile: bool = False,
        dump_dir: str | None = None,
    ) -> None:
        """``dump_dir`` (else ``KCOMPILE_DUMP``; "" for none) receives the LLVM IR and
        assembly in the step's folder, numbered from ``dump_index`` (after its passes')."""
        check = checking()
        dump = _dumper(graph, dump_index or 0, dump_dir)
        compiled = compile_graph(graph, version, dump=dump, profile=profile, check=check)
        self.compiled = compiled
        self.compile_times = compiled.times
        self.cache_hit = compiled.cache_hit
        if debug_level() >= 1:
            _report(graph, compiled)
        epoch = compiled.code.address(EPOCH) if has_epoch_loop(graph) else 0
        code = compiled.code
        guards = None
        if check:
            names = [
                f"{name} ({node.op}, layer '{node.layer}')"
                for name, node in kernel_nodes(graph, compiled.plan)
            ]
            guards = GuardedBuffers(compiled.guard_state(), names)
        super().__init__(
            graph, compiled.entry_address, epoch, code, capacity, compiled.plan, guards
        )


def _dumper(graph: Graph, index: int, folder: str | None = None):
    """Writes LLVM IR (before and after optimization) and assembly after the graph dumps,
    into ``folder/<graph>/`` (``folder`` None: ``$KCOMPILE_DUMP``); ``KCOMPILE_DEBUG`` 3
    prints the LLVM IR, 4 the assembly too."""
    folder = os.environ.get("KCOMPILE_DUMP") if folder is None else folder
    level = debug_level()
    if not folder and level < 3:
        return None
    counter = [index]

    def dump(name: str, text: str) -> None:
        if folder:
            write_dump(folder, graph.name, counter[0], name, text)
        counter[0] += 1
        if level >= 4 or (level >= 3 and name != "asm.s"):
            print(f"// {graph.name}: {name}\n{text}", file=sys.stderr)

    return dump


def _report(graph: Graph, compiled) -> None:
    total = sum(compiled.times.stages.values())
    source = "cache hit" if compiled.cache_hit else "compiled"
    print(
        f"[kcompile] {graph.name}: {len(graph.nodes)} nodes, {source}, {total * 1e3:.1f} ms",
        file=sys.stderr,
    )
    for stage, seconds in compiled.times.stages.items():
        print(f"[kcompile]   {stage:<22} {seconds * 1e3:8.1f} ms", file=sys.stderr)
