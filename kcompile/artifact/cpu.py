"""The CPU features an artifact's code needs, and whether this machine has them.

Code is compiled for the building machine's CPU and features, so LLVM may use any
instruction they allow. The manifest lists, by the names Linux's
``/proc/cpuinfo`` gives them, every instruction-set extension that code
generation can choose from (vector, FMA, bit manipulation); loading refuses an
artifact that needs one this machine lacks, rather than dying of SIGILL later.
"""

from __future__ import annotations

import functools
import platform

# LLVM feature name -> /proc/cpuinfo flag
CPUINFO_FLAG = {
    "sse": "sse",
    "sse2": "sse2",
    "sse3": "pni",
    "ssse3": "ssse3",
    "sse4.1": "sse4_1",
    "sse4.2": "sse4_2",
    "sse4a": "sse4a",
    "avx": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "bmi": "bmi1",
    "bmi2": "bmi2",
    "lzcnt": "abm",
    "popcnt": "popcnt",
    "movbe": "movbe",
    "adx": "adx",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512cd": "avx512cd",
    "avx512dq": "avx512dq",
    "avx512vl": "avx512vl",
    "avx512vnni": "avx512_vnni",
    "avx512bf16": "avx512_bf16",
    "avx512fp16": "avx512_fp16",
    "avx512vbmi": "avx512vbmi",
    "avx512ifma": "avx512ifma",
    "avxvnni": "avx_vnni",
    "gfni": "gfni",
    # The matrix engines: their code runs only once Linux grants the tile state (else the
    # next path), but an artifact built with them is for CPUs that have them.
    "amx-tile": "amx_tile",
    "amx-bf16": "amx_bf16",
    "amx-int8": "amx_int8",
}


def required_flags(llvm_features: str) -> list[str]:
    """The cpuinfo flags of the enabled features in an LLVM feature string."""
    enabled = [f[1:] for f in llvm_features.split(",") if f.startswith("+")]
    return sorted(CPUINFO_FLAG[f] for f in enabled if f in CPUINFO_FLAG)


@functools.cache
def machine_flags() -> frozenset[str]:
    """This machine's cpuinfo flags (empty when ``/proc/cpuinfo`` cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def missing_flags(required: list[str]) -> list[str]:
    """The required flags this machine lacks; none when its flags cannot be read."""
    have = machine_flags()
    return [f for f in required if f not in have] if have else []


def machine_arch() -> str:
    return platform.machine()
