"""Ahead-of-time code: position-independent object code for step graphs and for the
runtime library, linked into shared libraries with the system C compiler.

The runtime (thread pool, matrix product) becomes ``libkc_runtime-<hash>.so``
(its soname names its content, so two artifacts with different runtimes in one
process never share one by name); each step becomes ``<step>.so``, which needs
the runtime and finds it next to itself (``$ORIGIN``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

from kcompile.codegen.building.cache import cache_key, read_entry, write_entry
from kcompile.codegen.building.target import (
    RUNTIME_SPEED_LEVEL,
    CompileTimes,
    HostInfo,
    compile_module,
)
from kcompile.codegen.library.gemm import Tile
from kcompile.codegen.library.runtime_library import runtime_ir
from kcompile.codegen.lowering.module import lower_graph
from kcompile.codegen.lowering.packed_products import linked_with
from kcompile.codegen.lowering.products import lowering_for
from kcompile.ir import Graph, print_graph


class LinkError(RuntimeError):
    """The system C compiler could not link the shared libraries."""


def graph_object(graph: Graph, target: HostInfo, times: CompileTimes | None = None) -> bytes:
    """``graph``'s kernels, entry and epoch loop as position-independent object code
    for ``target`` (from the compile cache when built before)."""
    key = cache_key("aot step", target.fingerprint, print_graph(graph))
    cached = read_entry(key)
    if cached is not None:
        return cached
    times = times or CompileTimes()
    # packed products call its micro-kernels; products choose kc_bgemm by its engines
    with linked_with(Tile.for_host(target.has)), lowering_for(target.has):
        llvm_ir = lower_graph(graph, times).llvm_ir
    code = compile_module(llvm_ir, times, pic=True, target=target).object_code
    write_entry(key, code)
    return code


def runtime_object(target: HostInfo, times: CompileTimes | None = None) -> bytes:
    """The whole runtime library (``codegen.library.runtime_library``: its base and every piece)
    for ``target``, with the matrix-product tile its vectors fit. Cached: it is the same
    for every artifact of a target, and takes 3 s of LLVM (the base, the bf16 product and
    the convolutions with their Winograd paths)."""
    key = cache_key("aot runtime", target.fingerprint)
    cached = read_entry(key)
    if cached is not None:
        return cached
    llvm_ir = runtime_ir(Tile.for_host(target.has), target.has)
    times = times or CompileTimes()
    code = compile_module(llvm_ir, times, pic=True, target=target, speed=RUNTIME_SPEED_LEVEL)
    write_entry(key, code.object_code)
    return code.object_code


def find_linker() -> str | None:
    """``$KCOMPILE_CC`` (empty or ``none``: no linker), else ``cc``, ``gcc`` or ``clang``."""
    setting = os.environ.get("KCOMPILE_CC")
    if setting is not None:
        return None if setting in ("", "none") else shutil.which(setting)
    return next((p for p in map(shutil.which, ("cc", "gcc", "clang")) if p), None)


def runtime_library_name(runtime: bytes) -> str:
    return f"libkc_runtime-{hashlib.sha256(runtime).hexdigest()[:12]}.so"


def link_shared(linker: str, runtime: bytes, steps: dict[str, bytes]) -> dict[str, bytes]:
    """Shared libraries: the runtime's, and ``<step>.so`` for each step object; returns
    file name -> bytes."""
    runtime_name = runtime_library_name(runtime)
    with tempfile.TemporaryDirectory(prefix="kcompile-link-") as folder:

        def run(*args: str) -> None:
            done = subprocess.run([linker, *args], cwd=folder, capture_output=True, text=True)
            if done.returncode:
                raise LinkError(f"{linker} {' '.join(args)} failed:\n{done.stderr.strip()}")

        with open(os.path.join(folder, "runtime.o"), "wb") as f:
            f.write(runtime)
        run("-shared", "-pthread", f"-Wl,-soname,{runtime_name}", "-o", runtime_name, "runtime.o")
        out = {runtime_name: _read(folder, runtime_name)}
        for step, code in steps.items():
            with open(os.path.join(folder, f"{step}.o"), "wb") as f:
                f.write(code)
            run("-shared", "-o", f"{step}.so", f"{step}.o", runtime_name, "-Wl,-rpath,$ORIGIN")
            out[f"{step}.so"] = _read(folder, f"{step}.so")
    return out


def _read(folder: str, name: str) -> bytes:
    with open(os.path.join(folder, name), "rb") as f:
        return f.read()
