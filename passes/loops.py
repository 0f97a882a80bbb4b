"""Work moved out of loops: what a scan's step repeats that could run once.

- A weight gradient accumulated step by step (``acc + Pᵀ·Q``, the recurrent kernel's
  gradient in an RNN's backward loop) becomes one product over all steps after the
  loop: the body outputs ``P`` and ``Q`` per step (or the loop reads its own sequence
  when one of them is a step input), its accumulator passes through unchanged, and
  after the loop one product contracts the batch and the time axis together. One
  large product runs near the machine's peak where T small ones, each reading and
  writing the whole accumulator, did not.
- A product with a loop invariant's transpose (``x·Wᵀ``, the gradient through an RNN's
  recurrent kernel) reads ``W`` transposed once before the loop, so that no step packs
  its transpose again.
"""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.ir.graph import Graph, Node, Value
from kcompile.ir.ops.scan import split_operands
from kcompile.passes.rewrite import rebuild


def hoist_from_loops(graph: Graph) -> Graph:
    def visit(g: Graph, node: Node, ins: list[Value]):
        return _hoisted(g, node, ins) if node.op == "scan" else None

    return rebuild(graph, visit)


def _accumulations(body: Graph, carries: int) -> list[tuple[int, Node]]:
    """(carry index, its product) for each carry the step only grows by ``Pᵀ·Q``."""
    users = body.users()
    results = {v for _, v in body.outputs}
    found = []
    for k in range(carries):
        acc, out = body.inputs[k], body.outputs[k][1]
        add = out.node
        if add is None or add.op != "add" or acc not in add.inputs or users.get(acc) != [add]:
            continue
        others = [v for v in add.inputs if v is not acc]
        grown = others[0] if len(others) == 1 else None
        product = grown.node if grown is not None else None
        if (
            product is None
            or product.op != "matmul"
            or not product.attrs["transpose_a"]
            or users.get(grown) != [add]
            or grown in results
            or grown.type != acc.type
        ):
            continue
        found.append((k, product))
    return found


def _transposed_invariants(body: Graph, first_invariant: int) -> list[Node]:
    invariants = set(body.inputs[first_invariant:])
    return [
        n
        for n in body.nodes
        if n.op == "matmul"
        and n.attrs["transpose_b"]
        and n.inputs[1] in invariants
        and n.inputs[1].rank == 2
    ]


def _hoisted(g: Graph, node: Node, ins: list[Value]) -> list[Value] | None:
    attrs = node.attrs
    body: Graph = attrs["body"]
    c, s = attrs["carries"], attrs["sequences"]
    accumulations = _accumulations(body, c)
    transposed = _transposed_invariants(body, c + s)
    if not accumulations and not transposed:
        return None
    new = Graph(body.name)
    env = {v: new.add_input(v.name, v.type, v.role) for v in body.inputs}
    flipped = {}  # an invariant -> the body input holding its transpose
    for n in transposed:
        w = n.inputs[1]
        if w not in flipped:
            flipped[w] = new.add_input(f"{w.name}_t", w.type.with_shape(w.shape[::-1]), "invariant")
    swapped = set(transposed)
    for n in body.nodes:
        operands = [env[v] for v in n.inputs]
        if n in swapped:
            operands[1] = flipped[n.inputs[1]]
            attrs_n = {**n.attrs, "transpose_b": False}
        else:
            attrs_n = dict(n.attrs)
        for old, value in zip(n.outputs, new.emit(n.op, operands, attrs_n, layer=n.layer)):
            env[old] = value

    # Each factor of a hoisted product: a step input is the loop's own sequence, a
    # per-step result its stack; any other value becomes a new per-step result.
    steps = split_operands(attrs, list(body.inputs))[1]
    per_step = [v for _, v in body.outputs[c:]]
    extra: list[Value] = []

    def factor(v: Value) -> tuple[str, int]:
        if v in steps:
            return "sequence", steps.index(v)
        if v in per_step:
            return "result", per_step.index(v)
        if v not in extra:
            extra.append(v)
        return "extra", extra.index(v)

    factors = [(k, factor(p.inputs[0]), factor(p.inputs[1])) for k, p in accumulations]
    grown = {k for k, _ in accumulations}
    outputs = [
        (name, env[body.inputs[i]] if i in grown else env[v])
        for i, (name, v) in enumerate(body.outputs[:c])
    ]
    outputs += [(name, env[v]) for name, v in body.outputs[c:]]
    outputs += [(f"hoisted_{i}", env[v]) for i, v in enumerate(extra)]
    new.set_outputs(outputs)
    new.drop_unused_nodes()

    operands = ins + [B.transpose(ins[body.inputs.index(w)], (1, 0)) for w in flipped]
    results = g.emit("scan", operands, {**attrs, "body": new}, layer=node.layer)
    m = len(body.outputs) - c
    stacks = results[c + m : c + m + len(extra)]
    old_layout = list(results[: c + m]) + list(results[c + m + len(extra) :])

    def stacked(where: tuple[str, int]) -> Value:
        kind, i = where
        if kind == "sequence":
            return ins[c + i]
        return results[c + i] if kind == "result" else stacks[i]

    for k, p, q in factors:
        product = B.matmul(stacked(p), stacked(q), transpose_a=True)
        old_layout[k] = old_layout[k] + product
    return old_layout
