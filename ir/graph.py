"""SSA graph: values, nodes and graphs.

A ``Value`` is made by exactly one node (or is a graph input) and never changes.
Nodes live in a ``Graph`` in a valid execution order. Building a node runs the
op's shape rule at once, so a wrong shape is reported where it is made, with
the layer that made it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from kcompile.ir.registry import get_op
from kcompile.ir.traits import Traits
from kcompile.ir.types import ShapeError, TensorType

INPUT_ROLES = ("data", "param", "state", "opt", "carry", "step", "invariant")
"""data: fed per batch; param: trainable weight; state: non-trainable weight
(updated by the step, e.g. moving statistics); opt: optimizer state. The body of a
``scan`` has the last three: carry (passed from step to step), step (this step's
slice of a sequence) and invariant (the same at every step, e.g. a weight)."""
LOOP_ROLES = ("carry", "step", "invariant")


class IRError(ValueError):
    """A graph was built or used in a way the IR does not allow."""


class Value:
    __slots__ = ("graph", "index", "name", "node", "role", "type")

    def __init__(
        self,
        graph: Graph,
        type: TensorType,
        node: Node | None = None,
        index: int = 0,
        name: str | None = None,
        role: str | None = None,
    ) -> None:
        self.graph = graph
        self.type = type
        self.node = node
        self.index = index
        self.name = name
        self.role = role

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def rank(self) -> int:
        return self.type.rank

    def __repr__(self) -> str:
        where = self.name if self.node is None else f"{self.node.op}#{self.index}"
        return f"<Value {where}: {self.type}>"

    # Arithmetic sugar (``+ - * /``, negation) so that gradient rules read like math:
    # ``ir.build`` installs it, being the module that knows how to build those ops.

    __hash__ = object.__hash__


class Node:
    __slots__ = ("attrs", "inputs", "layer", "op", "outputs")

    def __init__(
        self, op: str, inputs: tuple[Value, ...], attrs: dict[str, Any], layer: str
    ) -> None:
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.layer = layer
        self.outputs: tuple[Value, ...] = ()

    def set_results(self, outputs: Sequence[Value]) -> None:
        """Replace the node's results (some added or dropped), renumbering them."""
        for index, v in enumerate(outputs):
            v.index = index
        self.outputs = tuple(outputs)

    @property
    def traits(self) -> Traits:
        """What passes and codegen know of this node's op (``ir.traits``)."""
        return get_op(self.op).traits

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise IRError(f"node {self.op} has {len(self.outputs)} outputs, not one")
        return self.outputs[0]

    def __repr__(self) -> str:
        return f"<Node {self.op} [{self.layer}]>"


_NUMBER_TYPES = {int, float, bool}


def check_attr(value: Any, where: str) -> Any:
    """Attributes are plain hashable data: None, bool, int, float, str, tuples of those;
    and a ``Graph``, the body of a fused node (a region, printed nested)."""
    if value is None or isinstance(value, bool | int | float | str | Graph):
        return value
    # A constant's data, a shape: a tuple of numbers alone is checked at C speed (element
    # by element, a million-entry table took seconds, at every copy of its node).
    if type(value) is tuple and set(map(type, value)) <= _NUMBER_TYPES:
        return value
    if isinstance(value, tuple | list):
        return tuple(check_attr(v, where) for v in value)
    raise IRError(f"{where}: attribute value {value!r} is not plain data")


class Graph:
    def __init__(self, name: str = "main") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[tuple[str, Value]] = []
        self._scope: list[str] = []
        self.memory = None  # an ir.memory.MemoryPlan, once plan_memory has run

    # --- building -----------------------------------------------------------

    def add_input(self, name: str, type: TensorType, role: str = "data") -> Value:
        if role not in INPUT_ROLES:
            raise IRError(f"input {name!r}: role {role!r} is not one of {INPUT_ROLES}")
        if any(v.name == name for v in self.inputs):
            raise IRError(f"graph {self.name} already has an input named {name!r}")
        value = Value(self, type, name=name, role=role)
        self.inputs.append(value)
        return value

    def emit(
        self,
        op: str,
        inputs: Sequence[Value],
        attrs: dict[str, Any] | None = None,
        layer: str | None = None,
        checked: bool = False,
    ) -> tuple[Value, ...]:
        """A node of ``op`` on ``inputs``; ``checked``: ``attrs`` are another node's (a
        copy), already plain data and sorted."""
        opdef = get_op(op)
        if checked:
            attrs = dict(attrs or {})
        else:
            attrs = {k: check_attr(v, f"op {op}") for k, v in sorted((attrs or {}).items())}
        for v in inputs:
            if not isinstance(v, Value):
                raise IRError(f"op {op}: operand {v!r} is not an IR value")
            if v.graph is not self:
                raise IRError(f"op {op}: operand {v!r} belongs to another graph")
        layer = self.current_layer if layer is None else layer
        try:
            out_types = opdef.infer([v.type for v in inputs], attrs)
        except ShapeError as e:
            shown = ", ".join(str(v.type) for v in inputs)
            where = f" in layer '{layer}'" if layer else ""
            raise ShapeError(f"op {op}{where}: {e} (operands: {shown})") from None
        node = Node(op, tuple(inputs), attrs, layer)
        node.outputs = tuple(Value(self, t, node, i) for i, t in enumerate(out_types))
        self.nodes.append(node)
        return node.outputs

    def emit1(self, op: str, inputs: Sequence[Value], **attrs: Any) -> Value:
        outs = self.emit(op, inputs, attrs)
        return outs[0]

    def drop_unused_nodes(self) -> set[Value]:
        """Remove the nodes that no output depends on; returns the values still used."""
        live = {v for _, v in self.outputs}
        kept = []
        for node in reversed(self.nodes):
            if any(v in live for v in node.outputs):
                kept.append(node)
                live.update(node.inputs)
        self.nodes = kept[::-1]
        return live

    def set_outputs(self, outputs: Sequence[tuple[str, Value]]) -> None:
        names = [n for n, _ in outputs]
        if len(set(names)) != len(names):
            raise IRError(f"graph {self.name}: output names repeat: {names}")
        for name, v in outputs:
            if v.graph is not self:
                raise IRError(f"output {name!r} belongs to another graph")
        self.outputs = list(outputs)

    @property
    def current_layer(self) -> str:
        return self._scope[-1] if self._scope else ""

    @contextlib.contextmanager
    def layer_scope(self, name: str) -> Iterator[None]:
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    # --- reading ------------------------------------------------------------

    def input(self, name: str) -> Value:
        for v in self.inputs:
            if v.name == name:
                return v
        raise KeyError(f"graph {self.name} has no input {name!r}")

    def output(self, name: str) -> Value:
        for n, v in self.outputs:
            if n == name:
                return v
        raise KeyError(f"graph {self.name} has no output {name!r}")

    @property
    def output_names(self) -> list[str]:
        return [n for n, _ in self.outputs]

    def inputs_with_role(self, role: str) -> list[Value]:
        return [v for v in self.inputs if v.role == role]

    def users(self) -> dict[Value, list[Node]]:
        users: dict[Value, list[Node]] = {}
        for node in self.nodes:
            for v in node.inputs:
                users.setdefault(v, []).append(node)
        return users

    # ``str(graph)`` is its text form; ``ir.printer`` installs ``__str__``.

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes>"
