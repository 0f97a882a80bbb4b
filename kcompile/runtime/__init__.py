"""Executables: what runs a step graph.

Both backends share one protocol: ``bind(name, array)`` once for every weight,
state and optimizer input (the step updates these arrays in place), then
``exe(data)`` per batch with the data inputs, returning the other outputs.
``llvm`` runs native code; ``reference`` runs the numpy interpreter.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np

from kcompile.ir import Graph, Interpreter
from kcompile.ir.interpreter import FeedError
from kcompile.runtime.epoch import EpochLoop

BACKENDS = ("llvm", "reference")


class ReferenceExecutable(EpochLoop):
    """Runs the graph on the numpy reference interpreter."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.lock = threading.RLock()
        self._interpreter = Interpreter(graph)
        self._bound: dict[str, np.ndarray] = {}
        names = {v.name for v in graph.inputs}
        self._aliased = [name for name, _ in graph.outputs if name in names]

    def bind(self, name: str, array: np.ndarray) -> None:
        if any(v.name == name for v in self.graph.inputs):
            self._bound[name] = array

    def __call__(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_data(data)
        out = self._interpreter.run({**self._bound, **data})
        for name in self._aliased:
            if name not in self._bound:
                raise FeedError(f"output {name!r} updates an input that is not bound")
            np.copyto(self._bound[name], out.pop(name))
        return out


def prepare(graph: Graph, manager=None) -> Graph:
    """Run the optimization pipeline (``passes.PIPELINE``) on a step graph, or take its
    result from the compile cache (``runtime.prepared``)."""
    from kcompile.passes import PassManager, default_passes
    from kcompile.runtime import prepared

    manager = manager or PassManager(default_passes())
    if manager.options is None:  # the passes are told of the CPU the code is lowered for
        manager.options = prepared.target_options()
    entry = prepared.key(graph, manager)
    cached = prepared.load(entry) if entry else None
    if cached is not None:
        return cached
    result = manager.run(graph)
    if entry:
        prepared.store(entry, result)
    return result


def make_executable(graph: Graph, backend: str, manager=None):
    """The ``backend``'s executable of ``graph`` after the optimization pipeline
    (``manager``, a ``passes.PassManager``, else the default one)."""
    from kcompile.passes import PassManager, default_passes

    manager = manager or PassManager(default_passes())
    graph = prepare(graph, manager)
    if backend == "reference":
        return ReferenceExecutable(graph)
    if backend == "llvm":
        from kcompile.runtime.native import NativeExecutable
        from kcompile.version import __version__

        # The manager decides where the step's dumps go, its code's too ("": nowhere).
        return NativeExecutable(
            graph,
            version=__version__,
            dump_index=manager.next_index,
            dump_dir=manager.dump_dir or "",
        )
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
