"""The pass manager: runs named ``Graph -> Graph`` passes with verification, timing,
numbered dumps and printing after selected passes.

Environment (read when a ``PassManager`` is made):

- ``KCOMPILE_DUMP=dir``: write ``dir/<graph>/NNN_<stage>.kir`` after every stage (the
  runtime then adds the step's ``NNN_llvm.ll``, ``NNN_llvm.opt.ll`` and ``NNN_asm.s``
  there, numbered on from ``PassManager.next_index``; see ``write_dump``).
- ``KCOMPILE_PRINT_AFTER=fuse,plan_memory``: print the graph after those passes (stderr).
- ``KCOMPILE_DEBUG=N``: 1 pass names and times, 2 also the IR after each pass.
- ``KCOMPILE_VERIFY=1``: verify (and round-trip through text) after every pass; the
  tests set it.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kcompile.ir import Graph, print_graph
from kcompile.ir.build import clone
from kcompile.ir.parser import check_round_trip
from kcompile.ir.verify import verify

PassFn = Callable[[Graph], Graph]


@dataclass(frozen=True)
class PipelineOptions:
    """What the passes are told of the CPU the code is lowered for: passes do not import
    codegen, so the front end, which knows the target (``kcompile.runtime.prepared``'s
    ``target_options``), fills these in; a manager made without them runs the defaults.

    ``bf16_engine``: the CPU multiplies bf16 on a matrix engine (AMX), which rounds a
    product's operands while packing them (``round_in_products``)."""

    bf16_engine: bool = True


@dataclass(frozen=True)
class Pass:
    """A named pass; ``options``: the ``PipelineOptions`` fields it reads, given to
    ``fn`` as keyword arguments of those names (part of the compile cache's key)."""

    name: str
    fn: PassFn
    options: tuple[str, ...] = ()

    def bound(self, options: PipelineOptions) -> PassFn:
        """``fn`` with the options it reads."""
        if not self.options:
            return self.fn
        return functools.partial(self.fn, **{k: getattr(options, k) for k in self.options})


def apply_with_loop_bodies(fn: PassFn, graph: Graph) -> Graph:
    """Run ``fn`` on the body of every ``scan`` (innermost first), then on ``graph``:
    a loop body is optimized, fused and planned like any graph."""
    for node in graph.nodes:
        if node.traits.nested_graph:
            node.attrs["body"] = apply_with_loop_bodies(fn, node.attrs["body"])
    return fn(graph)


@dataclass
class PipelineReport:
    """What a run did: seconds and node counts per stage, in order."""

    stages: list[tuple[str, float, int]] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"{'stage':<28}{'ms':>9}{'nodes':>8}"]
        for name, seconds, nodes in self.stages:
            lines.append(f"{name:<28}{seconds * 1e3:>9.2f}{nodes:>8}")
        return "\n".join(lines)


def debug_level() -> int:
    try:
        return int(os.environ.get("KCOMPILE_DEBUG", "0") or 0)
    except ValueError:
        return 1


class PassInstrument:
    """Hooks around every stage, as TVM's ``PassInstrument``: the manager runs passes;
    verifying, timing, keeping, printing and dumping are instruments."""

    def before_pass(self, name: str, graph: Graph) -> None:
        """Called before a pass of the manager runs (not for recorded stages)."""

    def after_pass(self, name: str, graph: Graph, seconds: float) -> None:
        """Called after every stage, with the graph it made and how long it took."""


class Verify(PassInstrument):
    """Verify the graph after every stage; with ``round_trip``, also check that its text
    parses back to an equal graph."""

    def __init__(self, round_trip: bool) -> None:
        self.round_trip = round_trip

    def after_pass(self, name: str, graph: Graph, seconds: float) -> None:
        if self.round_trip:
            check_round_trip(graph)
        else:
            verify(graph)


class Timing(PassInstrument):
    """Seconds and node counts per stage, in ``report``."""

    def __init__(self) -> None:
        self.report = PipelineReport()

    def after_pass(self, name: str, graph: Graph, seconds: float) -> None:
        self.report.stages.append((name, seconds, len(graph.nodes)))


class Snapshots(PassInstrument):
    """The text of the graph after every stage, in ``snapshots``."""

    def __init__(self) -> None:
        self.snapshots: list[tuple[str, str]] = []

    def after_pass(self, name: str, graph: Graph, seconds: float) -> None:
        self.snapshots.append((name, print_graph(graph)))


class Print(PassInstrument):
    """To stderr: at ``KCOMPILE_DEBUG`` level 1 each stage's time and size, at level 2
    (or for the stages named in ``after``) the graph."""

    def __init__(self, after: set[str]) -> None:
        self.after = after

    def after_pass(self, name: str, graph: Graph, seconds: float) -> None:
        level = debug_level()
        if level >= 1:
            print(
                f"[kcompile] {graph.name}: {name:<28} {seconds * 1e3:8.2f} ms "
                f"{len(graph.nodes):5d} nodes",
                file=sys.stderr,
            )
        if level >= 2 or name in self.after:
            print(f"// after {name}\n{print_graph(graph)}", file=sys.stderr)


# The files of a dump: ``NNN_<stage>.kir`` of the passes, ``NNN_llvm.ll``,
# ``NNN_llvm.opt.ll`` and ``NNN_asm.s`` of codegen.
DUMP_FILE = re.compile(r"^\d{3}_[\w.]+\.(kir|ll|s)$")


def write_dump(folder: str, graph: str, index: int, name: str, text: str) -> str:
    """Write ``folder/<graph>/NNN_<name>``, a file of a step's dump; its path. The folder
    is named after the step graph (``train_step``, ``eval_step``, ``predict``), whoever
    writes (``KCOMPILE_DUMP``, ``kcompile ir --all``, ``inspect.dump_all``)."""
    os.makedirs(os.path.join(folder, graph), exist_ok=True)
    path = os.path.join(folder, graph, f"{index:03d}_{name}")
    with open(path, "w") as f:
        f.write(text)
    return path


def clear_dump(folder: str) -> None:
    """Remove the dump files of an earlier compile from ``folder`` (a step's folder), so
    that it holds one compile's stages: a pipeline of fewer passes, or a compile that
    stops early, must not leave another run's later stages beside its own."""
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if DUMP_FILE.match(name):
                os.remove(os.path.join(folder, name))


class Dump(PassInstrument):
    """``folder/<graph>/NNN_<stage>.kir`` after every stage, numbered in order; a graph's
    folder is cleared of an earlier dump when this instrument first writes to it."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.index = 0
        self._started: set[str] = set()

    def after_pass(self, name: str, graph: Graph, seconds: float) -> None:
        if graph.name not in self._started:
            clear_dump(os.path.join(self.folder, graph.name))
            self._started.add(graph.name)
        write_dump(self.folder, graph.name, self.index, f"{name}.kir", print_graph(graph))
        self.index += 1


class PassManager:
    """Runs named passes (each on loop bodies first) and calls its instruments around
    every stage. The default instruments come from the arguments and the environment:
    verification always (with a text round trip under ``KCOMPILE_VERIFY``), timing,
    printing, snapshots with ``keep``, dumps with ``KCOMPILE_DUMP``."""

    def __init__(
        self,
        passes: list[Pass],
        verify_each: bool | None = None,
        dump_dir: str | None = None,
        print_after: set[str] | None = None,
        keep: bool = False,
        instruments: list[PassInstrument] | None = None,
        options: PipelineOptions | None = None,
    ) -> None:
        self.passes = passes
        # None until someone says (the front end sets the target's): the defaults run.
        self.options = options
        if print_after is None:
            text = os.environ.get("KCOMPILE_PRINT_AFTER", "")
            print_after = {p.strip() for p in text.split(",") if p.strip()}
        unknown = print_after - {p.name for p in passes} - {"traced", "autodiff"}
        if unknown:
            known = ", ".join(p.name for p in passes)
            raise ValueError(
                f"KCOMPILE_PRINT_AFTER names unknown passes {sorted(unknown)}; "
                f"the pipeline has: {known}"
            )
        if verify_each is None:
            verify_each = bool(os.environ.get("KCOMPILE_VERIFY"))
        dump_dir = dump_dir if dump_dir is not None else os.environ.get("KCOMPILE_DUMP")
        self.timing = Timing()
        self._snapshots = Snapshots() if keep else None
        self._dump = Dump(dump_dir) if dump_dir else None
        defaults = [Verify(verify_each), self.timing, self._snapshots, Print(print_after)]
        self.instruments = [i for i in (*defaults, self._dump) if i is not None]
        self.instruments += instruments or []
        self._recorded: list[tuple[str, Graph, float]] = []
        self.verify_each = verify_each
        # Only timing and verification watch the stages: their result alone matters. A
        # round trip of every stage (``verify_each``) does not make the pipeline run
        # again either: a result the compile cache gives back under it was made by the
        # same pipeline from the same graph with every stage round-tripped
        # (``runtime.prepared`` keys it apart).
        self.observed = bool(keep or print_after or dump_dir or instruments or debug_level())

    def options_read(self) -> str:
        """The options the passes read, as text (``bf16_engine=False``), for the cache's
        key: a pipeline told of another target is another pipeline."""
        options = self.options or PipelineOptions()
        names = dict.fromkeys(k for p in self.passes for k in p.options)
        return ",".join(f"{k}={getattr(options, k)}" for k in names)

    @property
    def report(self) -> PipelineReport:
        return self.timing.report

    @property
    def snapshots(self) -> list[tuple[str, str]]:
        """(stage, text) of every stage, when made with ``keep``."""
        return self._snapshots.snapshots if self._snapshots else []

    def stage(self, name: str, graph: Graph, seconds: float = 0.0) -> None:
        """Record a stage made outside the manager (tracing, autodiff). Unless someone
        watches the stages (``observed``), its instruments (verification, timing) wait
        for the pipeline to run: a result taken from the compile cache instead
        (``runtime.prepared``) was made from the same graph, verified then."""
        if self.observed:
            self._after(name, graph, seconds)
        else:
            self._recorded.append((name, graph, seconds))

    def run(self, graph: Graph, stop_after: str | None = None) -> Graph:
        recorded, self._recorded = self._recorded, []
        for name, staged, seconds in recorded:
            self._after(name, staged, seconds)
        if any(node.traits.nested_graph for node in graph.nodes):
            graph = clone(graph)  # passes rewrite loop bodies in place: keep the caller's
        for p in self.passes:
            for instrument in self.instruments:
                instrument.before_pass(p.name, graph)
            start = time.perf_counter()
            graph = apply_with_loop_bodies(p.bound(self.options or PipelineOptions()), graph)
            self._after(p.name, graph, time.perf_counter() - start)
            if p.name == stop_after:
                break
        return graph

    def _after(self, name: str, graph: Graph, seconds: float) -> None:
        for instrument in self.instruments:
            instrument.after_pass(name, graph, seconds)

    @property
    def dump_dir(self) -> str | None:
        """Where this manager dumps (from ``dump_dir`` or ``KCOMPILE_DUMP``); None when it
        does not. The runtime writes the step's LLVM IR and assembly there too."""
        return self._dump.folder if self._dump else None

    @property
    def next_index(self) -> int:
        """The number the next dump gets (a later dump continues the numbering)."""
        return self._dump.index if self._dump else 0
