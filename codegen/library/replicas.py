"""The runtime library's hook for sums over the replicas of a data-parallel job.

    void kc_set_replica_hook(ptr fn)           # fn(ptr data, i64 floats), or null
    void kc_replica_sum(ptr data, i64 floats)  # fn(data, floats) if set, else nothing

A ``replica_sum`` op's kernel calls ``kc_replica_sum`` on its result; the Python side of
a data-parallel job (``kcompile.distribution.hooks``) sets the hook to an allreduce. One
hook per process, as there is one MPI job per process.
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.loops import I64, PTR, abi_function
from kcompile.ir import abi

HOOK_FN = ir.FunctionType(ir.VoidType(), [PTR, I64])


def add_replica_hook(module: ir.Module) -> None:
    """Define ``kc_set_replica_hook`` and ``kc_replica_sum`` in ``module``."""
    slot = ir.GlobalVariable(module, PTR, "kc_replica_hook_fn")
    slot.initializer = ir.Constant(PTR, None)
    slot.linkage = "internal"
    slot.type = PTR  # llvmlite types globals as typed pointers; the module uses opaque
    setter = abi_function(module, abi.SET_REPLICA_HOOK)
    b = ir.IRBuilder(setter.append_basic_block("entry"))
    b.store(setter.args[0], slot)  # set before any step runs, from the same thread
    b.ret_void()
    call = abi_function(module, abi.REPLICA_SUM)
    b = ir.IRBuilder(call.append_basic_block("entry"))
    hook = b.load(slot, typ=ir.PointerType(HOOK_FN))
    with b.if_then(b.icmp_unsigned("!=", b.ptrtoint(hook, I64), ir.Constant(I64, 0))):
        b.call(hook, list(call.args))
    b.ret_void()


def declare_replica_sum(module: ir.Module) -> ir.Function:
    """``kc_replica_sum`` as an external function of a model's module."""
    existing = module.globals.get(abi.REPLICA_SUM.symbol)
    return existing if existing is not None else abi_function(module, abi.REPLICA_SUM)
