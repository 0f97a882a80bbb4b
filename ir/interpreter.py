"""The numpy reference interpreter: the oracle every other result is checked against.

Kept simple on purpose: each node calls its op's reference implementation.
``float_dtype=np.float64`` runs a graph in double precision (gradient checks).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from kcompile.ir.graph import Graph, Value
from kcompile.ir.parser import check_round_trip
from kcompile.ir.registry import RefContext, get_op
from kcompile.ir.types import BATCH, DType


class FeedError(ValueError):
    """An input array does not match the graph's declared input."""


def bind_batch(graph: Graph, feeds: Mapping[str, np.ndarray]) -> int | None:
    """The batch size ``N`` implied by the data inputs (None if no input has ``N``)."""
    batch = None
    for v in graph.inputs:
        if BATCH not in v.shape or v.name not in feeds:
            continue
        array = np.asarray(feeds[v.name])
        if array.ndim != v.rank:
            raise FeedError(
                f"input {v.name!r}: expected {v.type}, got an array of shape {array.shape}"
            )
        n = array.shape[v.shape.index(BATCH)]
        if batch is not None and n != batch:
            raise FeedError(f"input {v.name!r} has batch size {n}, other inputs have {batch}")
        batch = n
    return batch


def check_feed(v: Value, array: np.ndarray, batch: int | None) -> None:
    expected = v.type.concrete_shape(batch)
    if tuple(array.shape) != expected:
        raise FeedError(
            f"input {v.name!r}: expected shape {expected} ({v.type}), got {tuple(array.shape)}"
        )
    if _family(DType.from_numpy(array.dtype)) != _family(v.dtype):
        raise FeedError(f"input {v.name!r}: expected dtype {v.dtype.value}, got {array.dtype}")


def _family(dtype: DType) -> str:
    # Arrays of one family are converted to the input's dtype (float64 or bfloat16 data
    # into an f32 input); across families a feed is refused rather than reinterpreted.
    return "float" if dtype.is_float else "int" if dtype.is_int else dtype.value


class Interpreter:
    """Runs one graph many times; the per-node dispatch is prepared once."""

    def __init__(self, graph: Graph) -> None:
        if os.environ.get("KCOMPILE_VERIFY"):
            check_round_trip(graph)
        self.graph = graph
        slot: dict[Value, int] = {}
        for v in graph.inputs:
            slot[v] = len(slot)
        self.steps = []
        for node in graph.nodes:
            ins = [slot[v] for v in node.inputs]
            for v in node.outputs:
                slot[v] = len(slot)
            outs = [slot[v] for v in node.outputs]
            narrow = [v.dtype for v in node.outputs if v.dtype.is_narrow_float]
            narrow_in = any(v.dtype.is_narrow_float for v in node.inputs)
            fn = get_op(node.op).reference
            if narrow or narrow_in:
                fn = _in_f32(fn, [v.dtype for v in node.outputs])
            self.steps.append((fn, node.attrs, ins, outs, node))
        self.outputs = [(name, slot[v]) for name, v in graph.outputs]
        self.nslots = len(slot)

    def run(
        self,
        feeds: Mapping[str, np.ndarray],
        float_dtype: np.dtype | type = np.float32,
        batch: int | None = None,
    ) -> dict[str, np.ndarray]:
        """The outputs for ``feeds``; ``batch`` binds ``N`` when no input carries it (a
        kernel body run for its node)."""
        float_dtype = np.dtype(float_dtype)
        bound = bind_batch(self.graph, feeds)
        batch = batch if bound is None else bound
        ctx = RefContext(batch, float_dtype)
        env: list = [None] * self.nslots
        for i, v in enumerate(self.graph.inputs):
            if v.name not in feeds:
                raise FeedError(f"graph {self.graph.name} needs input {v.name!r} ({v.type})")
            array = np.asarray(feeds[v.name])
            check_feed(v, array if float_dtype == np.float32 else _as_f32_kind(array), batch)
            env[i] = array.astype(ctx.storage(v.dtype), copy=False)
        with np.errstate(all="ignore"):  # inf and nan propagate, as in compiled code
            self._execute(ctx, env)
        return {name: env[i] for name, i in self.outputs}

    def _execute(self, ctx: RefContext, env: list) -> None:
        for fn, attrs, ins, outs, node in self.steps:
            try:
                results = fn(ctx, [env[i] for i in ins], attrs)
            except Exception as e:
                raise RuntimeError(
                    f"reference {node.op} in layer '{node.layer}' failed: {e}"
                ) from e
            for j, r in zip(outs, results):
                env[j] = r


def _in_f32(reference, out_dtypes: list[DType]):
    """A reference run the way native code runs an op on narrow floats: its operands
    widened to the run's float dtype, computed there (products accumulate in it), each
    narrow result rounded once (round to nearest even, as ``ml_dtypes`` converts)."""

    def run(ctx: RefContext, args, attrs):
        wide = [_widen(a, ctx.float_dtype) for a in args]
        results = reference(ctx, wide, attrs)
        return [
            np.asarray(r).astype(ctx.storage(d), copy=False) for r, d in zip(results, out_dtypes)
        ]

    return run


def _widen(array, float_dtype: np.dtype):
    dtype = getattr(array, "dtype", None)
    if dtype is None or dtype == float_dtype:
        return array
    if DType.from_numpy(dtype).is_narrow_float:
        return array.astype(float_dtype)
    return array


def _as_f32_kind(array: np.ndarray) -> np.ndarray:
    # In float64 runs, float inputs are checked as if they were f32.
    return array.astype(np.float32) if array.dtype.kind == "f" else array


def interpret(
    graph: Graph, feeds: Mapping[str, np.ndarray], float_dtype: np.dtype | type = np.float32
) -> dict[str, np.ndarray]:
    """Run ``graph`` once on named inputs; returns its named outputs."""
    return Interpreter(graph).run(feeds, float_dtype)
