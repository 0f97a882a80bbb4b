"""Executables: what runs a step graph. ``reference`` is the numpy interpreter."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from ir import Graph, Interpreter
from ir.verify import check_round_trip
from passes import eliminate_dead_code

BACKENDS = ("reference", "llvm")


class Executable(Protocol):
    graph: Graph

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class ReferenceExecutable:
    """Runs the graph on the numpy reference interpreter."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._interpreter = Interpreter(graph)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._interpreter.run(feeds)


def prepare(graph: Graph) -> Graph:
    """The passes every step graph goes through before it runs."""
    graph = eliminate_dead_code(graph)
    if os.environ.get("KCOMPILE_VERIFY"):
        check_round_trip(graph)
    return graph


def make_executable(graph: Graph, backend: str) -> Executable:
    if backend == "reference":
        return ReferenceExecutable(prepare(graph))
    if backend == "llvm":
        raise NotImplementedError(
            "the LLVM backend is not built yet; compile with backend='reference' (the default)"
        )
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
