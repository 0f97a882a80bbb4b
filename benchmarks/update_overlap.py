"""What an Adam update costs per vector of 16 floats, alone and with a product's FMAs in the
same loop: whether a weight gradient's update can hide behind the products of the next
tile (``kc_sgemm``'s epilogue runs it after each tile's product).

    python benchmarks/update_overlap.py [--floats 1024] [--repeats 5]

Each variant is a loop over ``--floats`` floats of w, m, v and g (in L1 at the default)
that updates w, m and v as kcompile's Adam epilogue does (``m += (g - m)·(1 - β1)``,
``v += (g² - v)·(1 - β2)``, ``w -= lr·m / (√v + ε)``), and optionally carries ``F``
independent FMA accumulators through it (``+F``: the FMAs a micro-kernel issues while
one vector of the update would run beside it). Variants: ``exact`` (the epilogue's code:
vsqrtps, vdivps), ``split`` (the square root and division on 8-float halves), ``lean``
(rsqrt14/rcp14 and one Newton step each: not correctly rounded), ``none`` (no square
root or division: the rest of the update). Reports ns per 16 floats, single thread
(thread CPU time), best of the repeats.

Measured on the Xeon (Emerald Rapids) this project is timed on, 2026-12-06, at load
1.1, four runs agreeing within 0.4 ns: exact 9.3, split 9.2-9.4, lean 8.8, none 3.5-3.7;
exact+12 10.3-10.4, exact+24 12.9-13.3, none+12 5.7, none+24 7.6-7.8. The square root
and division are ~5.7 ns of the 9.3 (the 100k updates of the MLP's first layer: ~58 µs
of CPU a step, ~29 on each of two cores). 24 FMAs alone take ~4.1 ns and add 3.7 beside
the exact update, 12 add 1.0 of their 2.1: the divider's work hides about half of a
light product and almost none of a full one, so the update of one tile run beside the
next tile's product could save at most ~7% of the MLP's dW + Adam kernel. Tried (the
update of the previous tile interleaved into a 6-row micro-kernel's loop, a vector a k,
``kc_sgemm`` calling a tile function of the model's): that kernel 1.10x slower on one
thread (median of per-call ratios, 4000 calls, quartiles 1.02-1.19), and dropped. The
approximations (``lean``) trade the divider for as many FMA-port operations: no faster.
"""

from __future__ import annotations

import argparse
import ctypes
import time

import llvmlite.binding as llvm
import numpy as np

W = 16
V = f"<{W} x float>"


def _splat(x: str, width: int = W) -> str:
    return "<" + ", ".join([f"float {x}"] * width) + ">"


def _update(kind: str) -> list[str]:
    """The loop body: loads, the update of one vector, stores."""
    s = [
        f"%g = load {V}, ptr %pg, align 4",
        f"%m = load {V}, ptr %pm, align 4",
        f"%v = load {V}, ptr %pv, align 4",
        f"%w = load {V}, ptr %pw, align 4",
        f"%d1 = fsub {V} %g, %m",
        f"%m2 = call {V} @llvm.fma.v16f32({V} %d1, {V} {_splat('0.125')}, {V} %m)",
        f"%gg = fmul {V} %g, %g",
        f"%d2 = fsub {V} %gg, %v",
        f"%v2 = call {V} @llvm.fma.v16f32({V} %d2, {V} {_splat('0.0009765625')}, {V} %v)",
        f"%num = fmul {V} %m2, {_splat('0.0009765625')}",
    ]
    eps = _splat("0x3E7AD7F2A0000000")
    if kind == "exact":
        s += [
            f"%sq = call {V} @llvm.sqrt.v16f32({V} %v2)",
            f"%den = fadd {V} %sq, {eps}",
            f"%q = fdiv {V} %num, %den",
        ]
    elif kind == "split":
        lo = "<" + ", ".join(f"i32 {i}" for i in range(8)) + ">"
        hi = "<" + ", ".join(f"i32 {i}" for i in range(8, 16)) + ">"
        both = "<" + ", ".join(f"i32 {i}" for i in range(16)) + ">"
        v8 = "<8 x float>"
        for half, lanes in (("l", lo), ("h", hi)):
            s += [
                f"%v{half} = shufflevector {V} %v2, {V} poison, <8 x i32> {lanes}",
                f"%n{half} = shufflevector {V} %num, {V} poison, <8 x i32> {lanes}",
                f"%s{half} = call {v8} @llvm.sqrt.v8f32({v8} %v{half})",
                f"%e{half} = fadd {v8} %s{half}, {_splat('0x3E7AD7F2A0000000', 8)}",
                f"%q{half} = fdiv {v8} %n{half}, %e{half}",
            ]
        s.append(f"%q = shufflevector {v8} %ql, {v8} %qh, <16 x i32> {both}")
    elif kind == "lean":
        s += [
            f"%vm = call {V} @llvm.maxnum.v16f32({V} %v2, {V} {_splat('0x3810000000000000')})",
            f"%y = call {V} @llvm.x86.avx512.rsqrt14.ps.512({V} %vm, {V} zeroinitializer, i16 -1)",
            f"%t = fmul {V} %v2, %y",
            f"%ny = fmul {V} %y, {_splat('-0.5')}",
            f"%e = call {V} @llvm.fma.v16f32({V} %t, {V} %ny, {V} {_splat('0.5')})",
            f"%sq = call {V} @llvm.fma.v16f32({V} %t, {V} %e, {V} %t)",
            f"%den = fadd {V} %sq, {eps}",
            f"%r0 = call {V} @llvm.x86.avx512.rcp14.ps.512({V} %den, {V} zeroinitializer, i16 -1)",
            f"%nd = fneg {V} %den",
            f"%e1 = call {V} @llvm.fma.v16f32({V} %nd, {V} %r0, {V} {_splat('1.0')})",
            f"%r1 = call {V} @llvm.fma.v16f32({V} %r0, {V} %e1, {V} %r0)",
            f"%q = fmul {V} %num, %r1",
        ]
    else:
        s.append(f"%q = fadd {V} %num, %v2")
    s += [
        f"%w2 = fsub {V} %w, %q",
        f"store {V} %m2, ptr %pm, align 4",
        f"store {V} %v2, ptr %pv, align 4",
        f"store {V} %w2, ptr %pw, align 4",
    ]
    return s


def _module(kind: str, fmas: int) -> str:
    phis = [f"%a{c} = phi {V} [zeroinitializer, %outer], [%b{c}, %loop]" for c in range(fmas)]
    steps = [f"%b{c} = call {V} @llvm.fma.v16f32({V} %g, {V} %m, {V} %a{c})" for c in range(fmas)]
    keep = []
    for c in range(fmas):  # the accumulators live past the loop (else they are dropped)
        keep += [f"%k{c} = getelementptr float, ptr %acc, i64 {16 * c}"]
        keep += [f"store {V} %b{c}, ptr %k{c}, align 4"]
    body = "\n  ".join([*_update(kind), *steps])
    after = "\n  ".join(keep)
    phi_lines = "\n  ".join(phis)
    return f"""
declare {V} @llvm.fma.v16f32({V}, {V}, {V})
declare {V} @llvm.sqrt.v16f32({V})
declare <8 x float> @llvm.sqrt.v8f32(<8 x float>)
declare {V} @llvm.maxnum.v16f32({V}, {V})
declare {V} @llvm.x86.avx512.rsqrt14.ps.512({V}, {V}, i16)
declare {V} @llvm.x86.avx512.rcp14.ps.512({V}, {V}, i16)
define void @run(ptr noalias %G, ptr noalias %M, ptr noalias %Vv, ptr noalias %Wt,
                 ptr noalias %acc, i64 %n, i64 %reps) {{
entry:
  br label %outer
outer:
  %rep = phi i64 [0, %entry], [%rep1, %latch]
  br label %loop
loop:
  %i = phi i64 [0, %outer], [%i1, %loop]
  {phi_lines}
  %pg = getelementptr float, ptr %G, i64 %i
  %pm = getelementptr float, ptr %M, i64 %i
  %pv = getelementptr float, ptr %Vv, i64 %i
  %pw = getelementptr float, ptr %Wt, i64 %i
  {body}
  %i1 = add i64 %i, {W}
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %loop, label %latch
latch:
  {after}
  %rep1 = add i64 %rep, 1
  %again = icmp slt i64 %rep1, %reps
  br i1 %again, label %outer, label %done
done:
  ret void
}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floats", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    if "+avx512f" not in llvm.get_host_cpu_features().flatten():
        raise SystemExit("update_overlap: needs AVX-512 (the variants use 16-float vectors)")
    target = llvm.Target.from_triple(llvm.get_process_triple())
    n = args.floats - args.floats % W
    rng = np.random.default_rng(0)
    arrays = [(rng.random(n) * 1e-3).astype(np.float32) for _ in range(4)]
    acc = np.zeros(16 * 24, np.float32)
    reps = max(1, 4_000_000 // n)
    engines = []
    for kind, fmas in [(k, f) for f in (0, 12, 24) for k in ("exact", "split", "lean", "none")]:
        module = llvm.parse_assembly(_module(kind, fmas))
        machine = target.create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3
        )
        engine = llvm.create_mcjit_compiler(module, machine)
        engine.finalize_object()
        engines.append(engine)
        run = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 5, ctypes.c_int64, ctypes.c_int64)(
            engine.get_function_address("run")
        )
        pointers = [a.ctypes.data for a in arrays] + [acc.ctypes.data]
        best = float("inf")
        for _ in range(args.repeats):
            start = time.thread_time()
            run(*pointers, n, reps)
            best = min(best, time.thread_time() - start)
        name = f"{kind}+{fmas}" if fmas else kind
        print(f"{name:<9} {best / (reps * n / W) * 1e9:6.2f} ns per 16 floats", flush=True)


if __name__ == "__main__":
    main()
