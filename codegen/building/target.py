"""The host target: the only module that touches ``llvmlite.binding``.

It makes target machines for the host CPU and its features, runs LLVM's new
pass manager at O3 with loop and SLP vectorization, emits object code and
assembly, and loads object code into an MCJIT engine.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass, field

import llvmlite
import llvmlite.binding as llvm


@functools.cache
def _init() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()


@dataclass(frozen=True)
class HostInfo:
    triple: str
    cpu: str
    features: str

    @property
    def fingerprint(self) -> str:
        text = f"{self.triple}|{self.cpu}|{self.features}|llvmlite {llvmlite.__version__}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def has(self, feature: str) -> bool:
        return f"+{feature}" in self.features.split(",")


# The x86-64 micro-architecture levels, as LLVM features: code built for a level
# runs on every CPU that has it, Intel's or AMD's.
_V2 = "+cx16,+popcnt,+sahf,+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2"
_V3 = _V2 + ",+avx,+avx2,+bmi,+bmi2,+f16c,+fma,+lzcnt,+movbe,+xsave"
LEVELS = {
    "x86-64-v2": _V2,
    "x86-64-v3": _V3,
    "x86-64-v4": _V3 + ",+avx512f,+avx512bw,+avx512cd,+avx512dq,+avx512vl",
}


def for_cpu(cpu: str) -> HostInfo:
    """The host (``"host"``) or an x86-64 level (``LEVELS``) as a target."""
    if cpu == "host":
        return host()
    if cpu not in LEVELS:
        raise ValueError(f"unknown target CPU {cpu!r}; expected host or one of {sorted(LEVELS)}")
    return HostInfo(host().triple, cpu, LEVELS[cpu])


@functools.cache
def host() -> HostInfo:
    _init()
    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        # LLVM tunes many AVX-512 CPUs to prefer 256-bit vectors (against clock drops of
        # older parts): the loop vectorizer would use half the registers' width.
        features += ",-prefer-256-bit"
    return HostInfo(llvm.get_process_triple(), llvm.get_host_cpu_name(), features)


def target_machine(jit: bool = True, info: HostInfo | None = None):
    """A fresh target machine for the host, or for ``info`` (MCJIT takes ownership of
    the one it gets)."""
    _init()
    info = info or host()
    target = llvm.Target.from_triple(info.triple)
    if jit:
        return target.create_target_machine(
            cpu=info.cpu, features=info.features, opt=3, codemodel="jitdefault"
        )
    return target.create_target_machine(
        cpu=info.cpu, features=info.features, opt=3, reloc="pic", codemodel="default", jit=False
    )


# Model code and the runtime library go through LLVM's O2 pipeline: O3 took 26% longer
# on the example CNN's three steps (1.67 against 1.23 s) and 15% longer on the runtime
# library (0.91 against 0.78 s) for no difference in speed the benchmarks could measure
# (the products at 32x784x128, 128x784x128, 256x288x64 and 512^3 within 2%, alternating
# runs; O3's extra passes find little in loops already written to vectorize).
MODEL_SPEED_LEVEL = 2
RUNTIME_SPEED_LEVEL = 2


@dataclass
class CompileTimes:
    """Seconds per stage, for KCOMPILE_DEBUG and the CLI."""

    stages: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + seconds


@dataclass
class Compiled:
    object_code: bytes
    optimized_ir: str


def compile_module(
    llvm_ir: str,
    times: CompileTimes,
    want_ir: bool = False,
    pic: bool = False,
    target: HostInfo | None = None,
    speed: int = MODEL_SPEED_LEVEL,
) -> Compiled:
    """Parse, verify, optimize (LLVM's pipeline at ``speed``, with loop and SLP
    vectorization) and emit object code; ``pic``: position-independent code for a shared
    library, else code for MCJIT; ``target``: another CPU than the host's (with ``pic``
    only: MCJIT runs here)."""
    _init()
    t0 = time.perf_counter()
    module = llvm.parse_assembly(llvm_ir)
    module.verify()
    tm = target_machine(jit=not pic, info=target if pic else None)
    module.triple = host().triple
    module.data_layout = str(tm.target_data)
    t1 = time.perf_counter()
    times.add("llvm parse+verify", t1 - t0)
    _optimize(module, tm, speed)
    t2 = time.perf_counter()
    times.add(f"llvm optimize (O{speed})", t2 - t1)
    optimized = str(module) if want_ir else ""
    obj = tm.emit_object(module)
    times.add("machine code", time.perf_counter() - t2)
    return Compiled(obj, optimized)


def assembly(llvm_ir: str, info: HostInfo | None = None) -> str:
    """Optimized assembly of a module, for dumps (for the host, or for ``info``)."""
    _init()
    module = llvm.parse_assembly(llvm_ir)
    tm = target_machine(info=info)
    module.triple = (info or host()).triple
    module.data_layout = str(tm.target_data)
    _optimize(module, tm)
    return tm.emit_assembly(module)


def _optimize(module, tm, speed: int = MODEL_SPEED_LEVEL) -> None:
    """LLVM's pipeline at ``speed`` with loop and SLP vectorization and unrolling."""
    pto = llvm.create_pipeline_tuning_options(speed_level=speed)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


# Several object files as one payload (a module compiled in parts): the marker, the
# count, then each file's length and bytes.
_PARTS = b"KCPARTS\n"


def pack_objects(objects: list[bytes]) -> bytes:
    """One payload of ``objects`` (a single object file is stored as it is)."""
    if len(objects) == 1:
        return objects[0]
    header = [_PARTS, len(objects).to_bytes(4, "little")]
    return b"".join(header + [len(o).to_bytes(8, "little") + o for o in objects])


def unpack_objects(payload: bytes) -> list[bytes]:
    """The object files of a payload of ``pack_objects``."""
    if not payload.startswith(_PARTS):
        return [payload]
    at = len(_PARTS) + 4
    objects = []
    for _ in range(int.from_bytes(payload[len(_PARTS) : at], "little")):
        size = int.from_bytes(payload[at : at + 8], "little")
        objects.append(payload[at + 8 : at + 8 + size])
        at += 8 + size
    if at != len(payload) or any(not o for o in objects):
        raise ValueError("object payload: its parts do not add up to its length")
    return objects


class LoadedCode:
    """Object code loaded into an MCJIT engine; keeps the engine alive. A payload of
    several object files (``pack_objects``) is linked in the engine: calls between the
    files resolve to each other."""

    def __init__(self, object_code: bytes) -> None:
        _init()
        empty = llvm.parse_assembly("")
        empty.triple = host().triple
        self._engine = llvm.create_mcjit_compiler(empty, target_machine())
        for part in unpack_objects(object_code):
            self._engine.add_object_file(llvm.ObjectFileRef.from_data(part))
        self._engine.finalize_object()

    def address(self, name: str) -> int:
        address = self._engine.get_function_address(name)
        if not address:
            raise RuntimeError(f"compiled code has no function {name!r}")
        return address
