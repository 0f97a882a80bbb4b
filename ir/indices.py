"""Data inputs whose values index something: class ids that a ``one_hot`` expands,
ids that a ``take`` looks up. Native code does not check an index (an id past the end
would read another row, or add nothing to a loss), so the runtimes check the data against
these bounds before it runs, for every executable of a graph alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from kcompile.ir.graph import Graph, Value
from kcompile.ir.interpreter import FeedError


@dataclass(frozen=True)
class IndexUse:
    input: str  # the data input
    bound: int  # valid values are 0 .. bound - 1
    use: str  # what the values are to the op ("class ids", "ids looked up")
    layer: str  # where it is used

    def what(self) -> str:
        return f"{self.use} in layer '{self.layer}'" if self.layer else self.use


def index_uses(graph: Graph) -> list[IndexUse]:
    """Every (data input, bound) pair, through views, casts and fused bodies."""
    uses = []
    users = {graph: graph.users()}
    for v in graph.inputs:
        if v.role == "data":
            found = _reached(graph, v, users)
            uses += [IndexUse(v.name, bound, use, layer) for bound, use, layer in found]
    return uses


def _reached(graph: Graph, value: Value, users: dict) -> list[tuple[int, str, str]]:
    """(bound, use, layer) of every index use of ``value``, through the ops that carry
    values and into kernel bodies; ``users`` holds each graph's users map, made once."""
    if graph not in users:
        users[graph] = graph.users()
    found = []
    for user in users[graph].get(value, []):
        traits = user.traits
        for position, operand in enumerate(user.inputs):
            use = traits.index_use(user, position) if traits.index_use else None
            if operand is value and use is not None:
                found.append((*use, user.layer))
        if traits.carries_values:
            found += _reached(graph, user.outputs[0], users)
        if traits.kernel_body:
            body = user.attrs["body"]
            for operand, inner in zip(user.inputs, body.inputs):
                if operand is value:
                    found += _reached(body, inner, users)
    return found


def check_indices(uses: list[IndexUse], data: Mapping[str, np.ndarray]) -> None:
    """Refuse data with an index outside its bound (or, given as floats, not whole),
    naming the input, the first bad value and its row."""
    for use in uses:
        array = data.get(use.input)
        if array is None or array.size == 0:
            continue
        if array.dtype.kind == "f":
            fractional = np.mod(array, 1) != 0
            if fractional.any():
                row = int(np.argwhere(fractional)[0][0])
                raise FeedError(
                    f"input {use.input!r} ({use.what()}): expected whole numbers, got "
                    f"{float(array[fractional][0])} at row {row}"
                )
        low, high = array.min(), array.max()
        if low >= 0 and high < use.bound:
            continue
        bad = (array < 0) | (array >= use.bound)
        row = int(np.argwhere(bad)[0][0])
        value = array[bad][0]
        raise FeedError(
            f"input {use.input!r} ({use.what()}): {value:g} at row {row} is outside "
            f"[0, {use.bound})"
        )
