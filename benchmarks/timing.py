"""Timing samples and their summary, shared by the benchmarks."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


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


@dataclass
class Measure:
    """One workload a benchmark worker times in blocks of samples: a sample is the mean
    of ``group`` consecutive calls of ``fn``. ``prepare`` runs before the warm-up and
    before each block (a PyTorch module's train or eval mode, where a train step and a
    predict share the module and their blocks alternate)."""

    fn: Callable[[], object]
    group: int = 1
    warmup: int = 2
    prepare: Callable[[], object] | None = None

    def warm(self) -> float:
        """Runs the warm-up calls (at least one: compiles, first-touch allocations) and
        returns the seconds the last one took."""
        if self.prepare is not None:
            self.prepare()
        last = 0.0
        for _ in range(max(1, self.warmup)):
            start = time.perf_counter()
            self.fn()
            last = time.perf_counter() - start
        return last

    def block(self, count: int, warmup: int = 0) -> list[float]:
        """``count`` samples after ``warmup`` untimed calls."""
        if self.prepare is not None:
            self.prepare()
        return samples(self.fn, count, warmup=warmup, group=self.group)


@dataclass
class Alternated:
    """Per variant: each call's wall and CPU seconds, and each kernel's seconds a call."""

    wall: dict[bool, list[float]]
    cpu: dict[bool, list[float]]
    kernels: dict[bool, dict[str, list[float]]]


def profiled_train_step(model, tag: str, batch: int) -> tuple:
    """``model``'s optimized train step as a native executable with its kernels' profile
    counters on (``tag`` in its version keeps variants apart in the code cache), its
    parameters bound to copies of the probe's, and its data feeds at ``batch``, called
    once; (executable, data feeds), what ``alternate`` takes."""
    from kcompile.runtime.native import NativeExecutable
    from kcompile.tools.inspect import parse_graph, pipeline_stages, probe_feeds
    from kcompile.version import __version__

    graph = parse_graph(pipeline_stages(model, "train")[-1][1])
    exe = NativeExecutable(graph, version=f"{__version__}-{tag}", capacity=batch, profile=True)
    feeds = probe_feeds(model, graph, batch)
    data = {v.name for v in graph.inputs if v.role == "data"}
    for key, array in feeds.items():
        if key not in data:
            exe.bind(key, array.copy())
    inputs = {key: feeds[key] for key in data}
    exe(inputs)
    return exe, inputs


def alternate(runs: dict, calls: int) -> Alternated:
    """Calls the compiled steps of ``runs`` (variant -> (executable, feeds)) in turn,
    ``calls`` times each, the order flipping every call so neither variant always runs
    second; the executables' profile counters give each kernel's time."""
    out = Alternated({v: [] for v in runs}, {v: [] for v in runs}, {v: {} for v in runs})
    order = list(runs)
    for i in range(calls):
        for value in order if i % 2 else order[::-1]:
            exe, feeds = runs[value]
            exe.compiled.reset_profile()
            w0, c0 = time.perf_counter(), time.process_time()
            exe(feeds)
            out.wall[value].append(time.perf_counter() - w0)
            out.cpu[value].append(time.process_time() - c0)
            for k in exe.compiled.profile():
                out.kernels[value].setdefault(k.name, []).append(k.seconds)
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
