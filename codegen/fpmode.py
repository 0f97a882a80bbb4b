"""The floating-point mode compiled code runs in: denormals flushed to zero.

On x86-64 the step, the epoch loop and the thread pool's workers set MXCSR's
flush-to-zero (FTZ) and denormals-are-zero (DAZ) bits, as TensorFlow's threads and
XLA's CPU runtime do, so Keras (TensorFlow or JAX on CPU) computes with the same
mode. Without them a training step slows down as Adam's second moments and the
gradients of idle units decay into denormals: on Intel cores every operation on
one takes a microcode assist (measured here: the example MLP's step went from 170
to 470 µs as its first-layer velocities became 99% denormal). The caller's mode is
restored when the step returns.
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.loops import I32, PTR

FTZ_DAZ = 0x8040  # MXCSR bits 15 (flush to zero) and 6 (denormals are zero)


def _intrinsic(module: ir.Module, name: str) -> ir.Function:
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR]), name)
    return fn


def on_x86() -> bool:
    from kcompile.codegen.building.target import host

    return host().triple.startswith(("x86_64", "amd64"))


def flush_denormals(b: ir.IRBuilder) -> ir.Value | None:
    """Set FTZ and DAZ; returns the slot holding the previous MXCSR (None off x86-64)."""
    if not on_x86():
        return None
    module = b.module
    saved, mode = b.alloca(I32, name="mxcsr.saved"), b.alloca(I32, name="mxcsr")
    saved.type = mode.type = PTR  # llvmlite types an alloca's pointer; the module's are opaque
    b.call(_intrinsic(module, "llvm.x86.sse.stmxcsr"), [saved])
    b.store(b.or_(b.load(saved, typ=I32), ir.Constant(I32, FTZ_DAZ)), mode)
    b.call(_intrinsic(module, "llvm.x86.sse.ldmxcsr"), [mode])
    return saved


def restore_mode(b: ir.IRBuilder, saved: ir.Value | None) -> None:
    if saved is not None:
        b.call(_intrinsic(b.module, "llvm.x86.sse.ldmxcsr"), [saved])
