"""The optimized graphs of steps compiled before, cached on disk beside their code.

Running the pass pipeline on the example CNN's three steps takes ~70 ms, the bulk of a
warm compile once the machine code comes from the cache. The pipeline is a function of
the traced graph, the passes run and the source of ``passes`` and ``ir`` (and of the
host, as the code cache is): those make the key, and the entry is the pickled result.
The options the front end gives the passes (``target_options``: whether the CPU lowered
for has a bf16 engine) are part of the key. A pipeline that round-trips every stage
through text (``KCOMPILE_VERIFY``, which the tests set) caches its results under keys of
their own: a hit is a graph whose stages were all round-tripped when it was made, so
repeating them would check nothing new.
Stages that someone watches (dumps, printing, snapshots) run the pipeline:
an entry holds the result only, not every stage's text, so a dump asked for after a hit
is still complete. Keeping the stages would grow every entry several times over for a
rare debugging request that costs one run of the pipeline (tens of milliseconds).
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from kcompile.codegen.building.cache import cache_key, read_entry, source_digest, write_entry
from kcompile.ir import Graph, print_graph
from kcompile.passes.manager import PipelineOptions


@functools.cache
def _passes_digest() -> str:
    import kcompile.passes as passes

    return source_digest((Path(passes.__file__).resolve().parent,))


# The CPU graphs are prepared for when not the host's (``preparing_for``).
_PREPARING_FOR: ContextVar[Callable[[str], bool] | None] = ContextVar("for", default=None)


@contextmanager
def preparing_for(features: Callable[[str], bool]) -> Iterator[None]:
    """Within it, ``target_options`` tells the passes of a CPU with ``features``
    (``HostInfo.has``): an artifact's steps for another CPU level (``kcompile build
    --cpu``) are prepared for its engines, not the host's."""
    token = _PREPARING_FOR.set(features)
    try:
        yield
    finally:
        _PREPARING_FOR.reset(token)


def target_options(features: Callable[[str], bool] | None = None) -> PipelineOptions:
    """The pipeline's options for a CPU with ``features``; by default the one graphs are
    prepared for (``preparing_for``'s), else the one code is lowered for (the host's, or
    ``codegen.lowering.products.lowering_for``'s)."""
    from kcompile.codegen.library.bf16_gemm import has_engine
    from kcompile.codegen.lowering.products import target_features

    features = features or _PREPARING_FOR.get() or target_features()
    return PipelineOptions(bf16_engine=has_engine(features))


def key(graph: Graph, manager) -> str | None:
    """The cache key of the pipeline's result for ``graph``; None when someone watches
    the stages (the pipeline must then run). The options the passes read are part of it
    (``PassManager.options_read``): one graph prepared for two targets is two entries."""
    if manager.observed:
        return None
    names = ",".join(p.name for p in manager.passes)
    checked = "round-tripped" if manager.verify_each else ""
    options = manager.options_read()
    return cache_key("prepared", _passes_digest(), names, options, checked, print_graph(graph))


def load(entry: str) -> Graph | None:
    """The pipeline's result cached under ``entry``, if any."""
    payload = read_entry(entry)
    if payload is None:
        return None
    try:
        prepared = pickle.loads(payload)
    except Exception:  # an entry of another format: recompute it
        return None
    return prepared if isinstance(prepared, Graph) else None


def store(entry: str, prepared: Graph) -> None:
    """Cache the pipeline's result (a graph that does not pickle is not cached)."""
    try:
        payload = pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return
    write_entry(entry, payload)
