"""The pass manager: runs named ``Graph -> Graph`` passes with verification, timing,
numbered dumps and printing after selected passes.

Environment (read when a ``PassManager`` is made):

- ``KCOMPILE_DUMP=dir``: write ``dir/<graph>/NNN_<stage>.kir`` after every stage.
- ``KCOMPILE_PRINT_AFTER=fuse,plan_memory``: print the graph after those passes (stderr).
- ``KCOMPILE_DEBUG=N``: 1 pass names and times, 2 also the IR after each pass.
- ``KCOMPILE_VERIFY=1``: verify (and round-trip through text) after every pass; the
  tests set it.
"""

from __future__ import annotations

import os
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
class Pass:
    name: str
    fn: PassFn


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


class PassManager:
    def __init__(
        self,
        passes: list[Pass],
        verify_each: bool | None = None,
        dump_dir: str | None = None,
        print_after: set[str] | None = None,
        keep: bool = False,
    ) -> None:
        self.passes = passes
        self.keep = keep
        self.snapshots: list[tuple[str, str]] = []  # (stage, text) when keep=True
        self.verify_each = (
            bool(os.environ.get("KCOMPILE_VERIFY")) if verify_each is None else verify_each
        )
        self.dump_dir = dump_dir if dump_dir is not None else os.environ.get("KCOMPILE_DUMP")
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
        self.print_after = print_after
        self.report = PipelineReport()
        self._index = 0

    def stage(self, name: str, graph: Graph, seconds: float = 0.0) -> None:
        """Record a stage made outside the manager (tracing, autodiff)."""
        self._after(name, graph, seconds)

    def run(self, graph: Graph, stop_after: str | None = None) -> Graph:
        if any(node.traits.nested_graph for node in graph.nodes):
            graph = clone(graph)  # passes rewrite loop bodies in place: keep the caller's
        for p in self.passes:
            start = time.perf_counter()
            graph = apply_with_loop_bodies(p.fn, graph)
            self._after(p.name, graph, time.perf_counter() - start)
            if p.name == stop_after:
                break
        return graph

    def _after(self, name: str, graph: Graph, seconds: float) -> None:
        if self.verify_each:
            check_round_trip(graph)
        else:
            verify(graph)
        self.report.stages.append((name, seconds, len(graph.nodes)))
        if self.keep:
            self.snapshots.append((name, print_graph(graph)))
        level = debug_level()
        if level >= 1:
            print(
                f"[kcompile] {graph.name}: {name:<28} {seconds * 1e3:8.2f} ms "
                f"{len(graph.nodes):5d} nodes",
                file=sys.stderr,
            )
        if level >= 2 or name in self.print_after:
            print(f"// after {name}\n{print_graph(graph)}", file=sys.stderr)
        if self.dump_dir:
            folder = os.path.join(self.dump_dir, graph.name)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{self._index:03d}_{name}.kir")
            with open(path, "w") as f:
                f.write(print_graph(graph))
        self._index += 1

    @property
    def next_index(self) -> int:
        return self._index
