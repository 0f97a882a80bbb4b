"""Compiling a split module's parts on several cores.

The first part compiles in this process while forked children compile the others and
send their object code back through pipes (llvmlite serializes LLVM within a process, so
threads would take turns). Without ``fork``, or with other Python threads running
(forking those risks a child stuck on a lock one of them held), the parts compile here
one after another. A child that fails has its part compiled here instead.
"""

from __future__ import annotations

import os
import time

from kcompile.codegen.building import forking
from kcompile.codegen.building.target import MODEL_SPEED_LEVEL, CompileTimes, compile_module
from kcompile.codegen.library.runtime_library import building
from kcompile.ir.abi import processes_on_this_machine

# Below this many lines of LLVM IR a module compiles in a few tens of milliseconds; at
# 500 lines (the example MLP's predict step) two parts took 57 ms against 83 ms whole.
MIN_SPLIT_LINES = 400
MAX_JOBS = 4


def compile_jobs() -> int:
    """How many processes compile a model: ``$KCOMPILE_COMPILE_JOBS``, else this
    process's cores (at most ``MAX_JOBS``; an MPI job's processes on one machine share
    them)."""
    setting = os.environ.get("KCOMPILE_COMPILE_JOBS")
    if setting:
        try:
            jobs = int(setting)
        except ValueError:
            raise ValueError(
                f"KCOMPILE_COMPILE_JOBS must be a positive integer, got {setting!r}"
            ) from None
        if jobs < 1:
            raise ValueError(f"KCOMPILE_COMPILE_JOBS must be a positive integer, got {jobs}")
        return jobs
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_JOBS, (cores or 1) // processes_on_this_machine()))


def parts_for(llvm_ir: str) -> int:
    """How many parts to cut a module of this text into: one per core, less the core
    a child building the runtime library holds (more processes than cores would only
    delay the step that waits for that library)."""
    if llvm_ir.count("\n") < MIN_SPLIT_LINES or not forking.can_fork():
        return 1
    return max(1, compile_jobs() - building())


def compile_parts(
    texts: list[str], times: CompileTimes, speed: int = MODEL_SPEED_LEVEL
) -> list[bytes]:
    """The object code of each module text, in order."""
    if len(texts) == 1 or not forking.can_fork():
        return [compile_module(text, times, speed=speed).object_code for text in texts]
    children = [_start(text, speed) for text in texts[1:]]
    try:
        objects = [compile_module(texts[0], times, speed=speed).object_code]
    except BaseException:
        for child in children:  # reaped, not left as zombies holding the heap frozen
            _finish(child)
        raise
    t0 = time.perf_counter()
    done = [_finish(child) for child in children]
    times.add(f"wait for {len(children)} more processes", time.perf_counter() - t0)
    for text, code in zip(texts[1:], done):
        objects.append(code or compile_module(text, times, speed=speed).object_code)
    return objects


def _start(text: str, speed: int) -> tuple[int, int]:
    """A forked child compiling ``text``: (its pid, the pipe it writes the object to)."""
    read_end, write_end = os.pipe()

    def send() -> None:
        os.close(read_end)
        payload = memoryview(compile_module(text, CompileTimes(), speed=speed).object_code)
        while payload:
            payload = payload[os.write(write_end, payload) :]

    pid = forking.spawn(send)
    os.close(write_end)
    return pid, read_end


def _finish(child: tuple[int, int]) -> bytes | None:
    """The child's object code, or None if it failed."""
    pid, read_end = child
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        while chunk := pipe.read(1 << 20):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    forking.reaped()
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0 or not chunks:
        return None
    return b"".join(chunks)
