"""``write_report``: compile a model's step with every stage kept, profile its kernels,
build each section of the report and write the page, atomically."""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass

from kcompile.ir import Graph, parse_graph
from kcompile.passes.manager import PipelineReport
from kcompile.report.memory_chart import memory_section
from kcompile.report.model_section import model_section
from kcompile.report.page import render_page
from kcompile.report.pass_diffs import pass_section
from kcompile.report.roofline import kernel_times, profile_section
from kcompile.report.section import Section
from kcompile.report.stages import stage_section
from kcompile.tools.inspect import STEPS, KernelProfile, profile_graph
from kcompile.utils.atomic import atomic_write

DEFAULT_CALLS = 20


@dataclass
class Compiled:
    """What the report shows of one step: every stage's text, the pass manager's times,
    the planned graph, its kernel profile and the codegen times of that compile."""

    stages: list[tuple[str, str]]
    pipeline: PipelineReport
    graph: Graph
    profile: KernelProfile
    codegen_times: dict[str, float]
    cache_hit: bool


def write_report(
    model,
    path: str | os.PathLike,
    step: str = "train",
    batch: int = 32,
    calls: int = DEFAULT_CALLS,
    input_shapes: tuple = (),
) -> str:
    """Write the report of ``model``'s ``step`` (``train``, ``eval`` or ``predict``),
    profiled over ``calls`` calls at ``batch`` rows, to ``path`` (an HTML file). Nothing
    is written unless all of it was built; an earlier file at ``path`` is replaced whole
    or left as it was. The path."""
    check_arguments(step, batch, calls)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot write the report {path}: no folder {folder}")
    compiled = compile_step(model, step, batch, calls, input_shapes)
    sections = build_sections(model, compiled)
    title = f"kcompile report: {model.name}, {step} step"
    page = render_page(title, sections, facts(model, compiled), kernel_times(compiled.profile))
    write_atomically(path, page)
    return path


def facts(model, compiled: Compiled) -> dict[str, str | int]:
    """What the page says under its title."""
    profile = compiled.profile
    return {
        "model": model.name,
        "step": profile.step,
        "graph": compiled.graph.name,
        "nodes": len(compiled.graph.nodes),
        "batch": profile.batch,
        "calls": profile.calls,
        "written": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }


def check_arguments(step: str, batch: int, calls: int) -> None:
    """Clear errors for a step, batch or call count the report cannot use."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}: expected one of {', '.join(STEPS)}")
    for name, value in (("batch", batch), ("calls", calls)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def compile_step(model, step: str, batch: int, calls: int, input_shapes: tuple = ()) -> Compiled:
    """Trace ``step``, run the pipeline keeping every stage (as ``inspect.pipeline_stages``
    does, with the manager's timings kept too), compile the planned graph with cycle
    counters and profile it (as ``inspect.profile_step`` does, keeping the codegen
    times)."""
    from kcompile.models import graphs as G
    from kcompile.passes import PassManager, default_passes
    from kcompile.runtime.prepared import target_options

    manager = PassManager(default_passes(), keep=True, options=target_options())
    manager.run(G.trace_step(model, step, None, _timed(manager.stage), input_shapes).graph)
    stages = manager.snapshots
    graph = parse_graph(stages[-1][1], f"<{step}:{stages[-1][0]}>")
    profile, exe = profile_graph(model, graph, step, batch, calls)
    return Compiled(
        stages, manager.report, graph, profile, dict(exe.compile_times.stages), exe.cache_hit
    )


def _timed(record):
    """``record(stage, graph, seconds)`` called as the front end calls it, ``(stage,
    graph)``, with the seconds since the previous stage was recorded (or since this was
    made): the front end does not time tracing and autodiff itself."""
    clock = [time.perf_counter()]

    def timed(name: str, graph: Graph) -> None:
        record(name, graph, time.perf_counter() - clock[0])
        clock[0] = time.perf_counter()  # the recording's own work is not the next stage's

    return timed


def build_sections(model, compiled: Compiled) -> list[Section]:
    """Every section, in the page's order: graphs, passes, memory, profile, model."""
    machine = compiled.profile.machine
    return [
        stage_section(compiled.stages, kernel_times(compiled.profile)),
        pass_section(compiled.stages),
        memory_section(compiled.graph),
        profile_section(compiled.profile),
        model_section(
            model,
            compiled.pipeline.stages,
            compiled.codegen_times,
            compiled.cache_hit,
            machine.describe() if machine else None,
        ),
    ]


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to a new file beside ``path`` and rename it over ``path``
    (``kcompile.utils.atomic``): a reader sees the old file or the new one whole, never a
    part, and a failure leaves the old."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
