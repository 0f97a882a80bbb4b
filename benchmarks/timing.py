"""Timing samples and their summary, shared by the benchmarks."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable


def samples(fn: Callable[[], object], count: int, warmup: int = 2, group: int = 1) -> list[float]:
    """``count`` samples of seconds per call of ``fn``, each the mean over ``group``
    consecutive calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(count):
        start = time.perf_counter()
        for _ in range(group):
            fn()
        out.append((time.perf_counter() - start) / group)
    return out


def median_time(fn: Callable[[], object], count: int) -> float:
    """Median seconds of ``fn`` over ``count`` calls, after two warm-up calls."""
    return statistics.median(samples(fn, count))


def summary(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """``median (min–max)`` of ``values`` times ``scale``."""
    med = statistics.median(values) * scale
    lo, hi = min(values) * scale, max(values) * scale
    return f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (every figure is reported with it)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
