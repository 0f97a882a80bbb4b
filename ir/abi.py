"""The native ABI: the symbols that generated code exports and the runtime library
provides, their signatures, and the thread-count setting.

``codegen`` declares these functions in LLVM (``codegen.loops.function_type``) and the
runtimes call them through ctypes (``ctypes_type``); both read this one definition. It
imports neither llvmlite nor the compiler, so a process that only loads an artifact
can use it.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

# The ABI's scalar types, by name: pointers, 32- and 64-bit integers.
_CTYPES = {"ptr": ctypes.c_void_p, "i32": ctypes.c_int32, "i64": ctypes.c_int64}


@dataclass(frozen=True)
class Signature:
    """A C function of the ABI: its symbol, its result (None for void) and parameters."""

    symbol: str
    result: str | None
    params: tuple[str, ...]


# A step: ``void kc_entry(ptr buffers[], i64 n)``.
ENTRY = Signature("kc_entry", None, ("ptr", "i64"))
# The native epoch loop (``codegen.lowering.epoch_loop``): buffers, sources, order, batch, total,
# first, steps, logs, progress, stop; returns the steps run.
EPOCH = Signature("kc_epoch", "i64", ("ptr",) * 3 + ("i64",) * 4 + ("ptr",) * 3)
# The checking mode's state (``codegen.lowering.guards``): zones, count, first failing kernel.
GUARD_STATE = Signature("kc_guard_state", "ptr", ())
# Profiling: the counter table of a step (``_<owner>`` for a loop body's) and the clock.
PROFILE_COUNTERS = Signature("kc_profile_counters", "ptr", ())
CYCLES = Signature("kc_cycles", "i64", ())

# The runtime library (``codegen.library.parallel``, ``codegen.library.gemm``).
SET_THREADS = Signature("kc_set_threads", None, ("i32",))
GET_THREADS = Signature("kc_get_threads", "i32", ())
PARALLEL_FOR = Signature("kc_parallel_for", None, ("ptr", "ptr", "i64"))
# C (+)= A @ B with any strides: M, N, K, A, rsA, csA, B, rsB, csB, C, ldc, accumulate,
# epilogue, epilogue context.
GEMM = Signature(
    "kc_sgemm", None, ("i64",) * 3 + ("ptr", "i64", "i64") * 2 + ("ptr", "i64", "i64", "ptr", "ptr")
)
# Convolution as implicit GEMM (``codegen.library.conv``): geometry (i64s), X, W, C, flags,
# epilogue, epilogue context.
CONV = Signature("kc_sconv", None, ("ptr",) * 4 + ("i64", "ptr", "ptr"))
# Its kernel's gradient (``codegen.library.conv``): geometry, X, dY, dW, flags.
CONV_FILTER = Signature("kc_sconv_filter", None, ("ptr",) * 4 + ("i64",))
# The sum of a buffer over the replicas of a data-parallel job, in place (``replica_sum``
# ops call it): data, floats. Without a hook (one process) it leaves the buffer as it is.
REPLICA_SUM = Signature("kc_replica_sum", None, ("ptr", "i64"))
SET_REPLICA_HOOK = Signature("kc_set_replica_hook", None, ("ptr",))  # fn(data, floats)
RUNTIME_EXPORTS = (
    PARALLEL_FOR,
    SET_THREADS,
    GET_THREADS,
    GEMM,
    CONV,
    CONV_FILTER,
    REPLICA_SUM,
    SET_REPLICA_HOOK,
)


def ctypes_type(signature: Signature) -> type:
    """The ctypes function type to call ``signature`` at an address."""
    result = None if signature.result is None else _CTYPES[signature.result]
    return ctypes.CFUNCTYPE(result, *(_CTYPES[p] for p in signature.params))


def bind(signature: Signature, address: int):
    """The function at ``address``, callable from Python."""
    return ctypes_type(signature)(address)


THREADS_VARIABLE = "KCOMPILE_NUM_THREADS"


def processes_on_this_machine() -> int:
    """How many processes of an MPI job share this machine (MPICH's and Open MPI's
    launchers say so in the environment); 1 outside a job."""
    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def default_threads() -> int:
    """``$KCOMPILE_NUM_THREADS``, else the cores this process may run on, shared among the
    processes of an MPI job on this machine."""
    setting = os.environ.get(THREADS_VARIABLE)
    if not setting:
        return max(1, len(os.sched_getaffinity(0)) // processes_on_this_machine())
    try:
        count = int(setting)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{THREADS_VARIABLE} must be a positive integer, got {setting!r}")
    return count
