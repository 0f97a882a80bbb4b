"""Algebraic simplification: identities, reshape/transpose chains, broadcast folding.

Each rule looks at one node (with its operands already rewritten) and returns
a replacement value or None. A rule never changes a result's type.
"""

from __future__ import annotations

import itertools

from kcompile.ir import build as B
from kcompile.ir.graph import Graph, Node, Value
from kcompile.ir.ops.constant import splat_value
from kcompile.ir.registry import ops_in_families
from kcompile.ir.types import broadcast_shapes
from kcompile.passes.dce import eliminate_dead_code
from kcompile.passes.rewrite import copy_node, rebuild


def _same(node: Node, v: Value) -> Value | None:
    return v if v.type == node.outputs[0].type else None


def _identity_operand(node: Node, ins: list[Value], neutral: float, sides: tuple) -> Value | None:
    for keep, drop in sides:
        if splat_value(ins[drop]) == neutral:
            return _same(node, ins[keep])
    return None


def _rule_add(g, node, ins):
    return _identity_operand(node, ins, 0, ((0, 1), (1, 0))) or _adjacent_pads(node, ins)


def _adjacent_pads(node: Node, ins: list[Value]) -> Value | None:
    """A sum of zero pads along one axis whose ranges follow one another, in any order
    -> one pad of their concatenation: the gradient of slices that tile an axis (an
    LSTM's four gates) becomes one copy instead of padded copies summed."""
    pads = _add_leaves(ins)
    if pads is None or any(v.type != node.outputs[0].type for v in ins):
        return None
    axes = {
        tuple(i for i, (lo, hi) in enumerate(zip(p.attrs["low"], p.attrs["high"])) if lo or hi)
        for p in pads
    }
    if len(axes) != 1 or len(next(iter(axes))) != 1:
        return None
    axis = next(iter(axes))[0]
    size = node.outputs[0].shape[axis]
    pads.sort(key=lambda p: p.attrs["low"][axis])
    for before, after in itertools.pairwise(pads):
        if size - before.attrs["high"][axis] != after.attrs["low"][axis]:
            return None
    joined = B.concat([p.inputs[0] for p in pads], axis)
    return B.pad(joined, pads[0].attrs["low"], pads[-1].attrs["high"])


def _add_leaves(ins: list[Value]) -> list[Node] | None:
    """The pad nodes an add tree over ``ins`` sums, if every leaf is a zero pad."""
    leaves, stack = [], list(ins)
    while stack:
        v = stack.pop()
        node = v.node
        if node is not None and node.op == "add" and node.inputs[0].type == node.inputs[1].type:
            stack.extend(node.inputs)
        elif node is not None and node.op == "pad" and node.attrs["value"] == 0.0:
            leaves.append(node)
        else:
            return None
    return leaves


def _rule_pad(g, node, ins):
    """A pad that adds nothing is its operand."""
    if not any(node.attrs["low"]) and not any(node.attrs["high"]):
        return _same(node, ins[0])
    return None


def _rule_concat(g, node, ins):
    """concat(concat(a, b), c) along one axis -> concat(a, b, c)."""
    axis = node.attrs["axis"]
    if not any(
        v.node is not None and v.node.op == "concat" and v.node.attrs["axis"] == axis for v in ins
    ):
        return None
    parts = []
    for v in ins:
        inner = v.node
        nested = inner is not None and inner.op == "concat" and inner.attrs["axis"] == axis
        parts.extend(inner.inputs if nested else [v])
    return B.concat(parts, axis)


def _rule_sub(g, node, ins):
    return _identity_operand(node, ins, 0, ((0, 1),))


def _rule_mul(g, node, ins):
    return _identity_operand(node, ins, 1, ((0, 1), (1, 0))) or _scaled_product(g, node, ins)


def _scaled_product(g, node, ins):
    """batch_matmul(...) · c -> the product with alpha · c, when the multiply is the
    product's only use (attention's logits scaled by 1/sqrt(d): one pass fewer)."""
    for i, scale in ((0, 1), (1, 0)):
        c, made = splat_value(ins[scale]), node.inputs[i].node
        if (
            c is None
            or made is None
            or made.op != "batch_matmul"
            or ins[i].type != node.outputs[0].type
            or not _sole_user(node.inputs[i], node)
        ):
            continue
        product = ins[i].node
        attrs = dict(product.attrs)
        attrs["alpha"] = float(attrs.get("alpha", 1.0)) * float(c)
        return g.emit("batch_matmul", list(product.inputs), attrs)[0]
    return None


def _rule_div(g, node, ins):
    return _identity_operand(node, ins, 1, ((0, 1),))


def _rule_matmul(g, node, ins):
    """A product with a zero splat is zeros (an RNN's first step multiplies its zero state).
    Like ``x * 0 -> 0`` under fast-math, it does not propagate an inf or NaN weight."""
    if any(splat_value(v) == 0 for v in ins):
        out = node.outputs[0].type
        return B.const(g, 0.0, out.dtype, out.shape)
    return None


def _rule_neg(g, node, ins):
    x = ins[0]
    if x.node is not None and x.node.op == "neg":
        return x.node.inputs[0]
    return None


def _rule_reverse(g, node, ins):
    x = ins[0]
    if x.node is not None and x.node.op == "reverse" and x.node.attrs == node.attrs:
        return x.node.inputs[0]
    return None


def _rule_reshape(g, node, ins):
    x = ins[0]
    if x.shape == node.attrs["shape"]:
        return x
    if x.node is not None and x.node.op == "reshape":
        return B.reshape(x.node.inputs[0], node.attrs["shape"])
    value = splat_value(x)
    if value is not None and x.type.is_static:
        # A splat reshaped is the same splat, so the rules after it see one (the 1.0 that
        # seeds a loop body's gradient, reshaped to [1, 1], then multiplies nothing).
        out = node.outputs[0].type
        return B.const(g, value, out.dtype, out.shape)
    return None


def _rule_transpose(g, node, ins):
    folded = _fold_into_product(g, node, ins)
    if folded is not None:
        return folded
    x, perm = ins[0], node.attrs["perm"]
    if x.node is not None and x.node.op == "transpose":
        inner = x.node.attrs["perm"]
        perm = tuple(inner[p] for p in perm)
        x = x.node.inputs[0]
    if perm == tuple(range(len(perm))):
        return x
    if x is not ins[0]:
        return B.transpose(x, perm)
    return None


def _perms(node: Node) -> dict:
    return {p: node.attrs.get(p) for p in ("perm_a", "perm_b", "perm_out")}


def _rule_batch_matmul(g, node, ins):
    """A transposed operand is read through strides: its transpose folds into perm_a or
    perm_b (attention's heads split out of [B, T, heads, H] without a copy)."""
    perms, ins, changed = _perms(node), list(ins), False
    alpha = float(node.attrs.get("alpha", 1.0))
    for i, name in enumerate(("perm_a", "perm_b")):
        x = ins[i]
        if x.node is not None and x.node.op == "transpose":
            inner, outer = x.node.attrs["perm"], perms[name] or tuple(range(x.rank))
            perms[name] = tuple(inner[p] for p in outer)
            ins[i], changed = x.node.inputs[0], True
        elif x.node is not None and x.node.op == "mul":
            # An operand scaled by a constant: the scale moves onto the product.
            for keep, scale in ((0, 1), (1, 0)):
                c = splat_value(x.node.inputs[scale])
                if c is not None and x.node.inputs[keep].type == x.type:
                    alpha *= float(c)
                    ins[i], changed = x.node.inputs[keep], True
                    break
    if not changed:
        return None
    ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
    return _batch_matmul(g, node, ins, perms, ta, tb, alpha)


def _batch_matmul(g, node, ins, perms, transpose_a, transpose_b, alpha: float = 1.0):
    identity = tuple(range(ins[0].rank))
    attrs = {"transpose_a": transpose_a, "transpose_b": transpose_b}
    attrs.update({k: tuple(v) for k, v in perms.items() if v and tuple(v) != identity})
    if alpha != 1.0:
        attrs["alpha"] = alpha
    return g.emit("batch_matmul", list(ins), attrs)[0]


def _sole_user(v: Value, user: Node) -> bool:
    graph = v.graph
    if any(out is v for _, out in graph.outputs):
        return False
    return all(n is user for n in graph.nodes if any(i is v for i in n.inputs))


def _fold_into_product(g, node, ins):
    """transpose(batch_matmul(...)) -> the product writing through strides, when the
    product's last axis stays last (rows, then contiguous columns) or the transposition
    swaps the matrices' axes (then the product of the swapped, transposed operands:
    (A·B)ᵀ = Bᵀ·Aᵀ)."""
    made = node.inputs[0].node
    if made is None or made.op != "batch_matmul" or not _sole_user(node.inputs[0], node):
        return None
    product = ins[0].node
    rank = ins[0].rank
    outer = product.attrs.get("perm_out") or tuple(range(rank))
    perm = tuple(outer[p] for p in node.attrs["perm"])
    perms = _perms(product)
    ta, tb = product.attrs["transpose_a"], product.attrs["transpose_b"]
    operands = list(product.inputs)
    if perm[-1] == rank - 2:
        swap = {rank - 1: rank - 2, rank - 2: rank - 1}
        perm = tuple(swap.get(p, p) for p in perm)
        operands.reverse()
        perms["perm_a"], perms["perm_b"] = perms["perm_b"], perms["perm_a"]
        ta, tb = not tb, not ta
    if perm[-1] != rank - 1:
        return None
    perms["perm_out"] = perm
    return _batch_matmul(g, node, operands, perms, ta, tb, float(product.attrs.get("alpha", 1.0)))


def _rule_broadcast_to(g, node, ins):
    return ins[0] if ins[0].shape == node.attrs["shape"] else None


def _rule_select(g, node, ins):
    return _same(node, ins[1]) if ins[1] is ins[2] else None


def _rule_stop_gradient(g, node, ins):
    # The pipeline runs after autodiff: nothing is left for stop_gradient to stop, nor
    # for gradient_via to redirect (its proxy's forward computation becomes dead code).
    return ins[0]


def _fold_broadcasts(g: Graph, node: Node, ins: list[Value]) -> Value | None:
    """op(x, broadcast_to(y)) -> op(x, y) when implicit broadcasting gives the same shape."""
    changed = list(ins)
    for i, v in enumerate(ins):
        if v.node is not None and v.node.op == "broadcast_to":
            candidate = [*changed[:i], v.node.inputs[0], *changed[i + 1 :]]
            try:
                shape = broadcast_shapes(*(c.shape for c in candidate))
            except ValueError:
                continue
            if shape == node.outputs[0].shape:
                changed = candidate
    if changed == ins:
        return None
    return g.emit(node.op, changed, dict(node.attrs))[0]


RULES = {
    "add": _rule_add,
    "sub": _rule_sub,
    "mul": _rule_mul,
    "div": _rule_div,
    "neg": _rule_neg,
    "reverse": _rule_reverse,
    "pad": _rule_pad,
    "concat": _rule_concat,
    "matmul": _rule_matmul,
    "batch_matmul": _rule_batch_matmul,
    "reshape": _rule_reshape,
    "transpose": _rule_transpose,
    "broadcast_to": _rule_broadcast_to,
    "select": _rule_select,
    "stop_gradient": _rule_stop_gradient,
    "gradient_via": _rule_stop_gradient,
}
BROADCASTING = ops_in_families("binary", "compare", "select")


def _visit(g: Graph, node: Node, ins: list[Value]):
    rule = RULES.get(node.op)
    if rule is not None:
        out = rule(g, node, ins)
        if out is not None:
            return [out]
    if node.op in BROADCASTING:
        out = _fold_broadcasts(g, node, ins)
        if out is not None:
            return [out]
    return None


# Ops computed right after their operands rather than where autodiff put them: gelu's
# derivative next to gelu, so that fusion gives both to the kernel computing gelu and the
# backward pass reads the derivative instead of recomputing it from the pre-activation.
PLACED_BY_OPERANDS = {"gelu_grad"}


def _place_by_operands(graph: Graph) -> None:
    """Move each node of ``PLACED_BY_OPERANDS`` to just after the node making its last
    operand (still before all its users: the order stays topological)."""
    moving = [n for n in graph.nodes if n.op in PLACED_BY_OPERANDS]
    if not moving:
        return
    moved = set(moving)
    after: dict[Node | None, list[Node]] = {}
    position = {node: i for i, node in enumerate(graph.nodes)}
    for node in moving:
        makers = [v.node for v in node.inputs if v.node is not None]
        last = max(makers, key=position.__getitem__) if makers else None
        after.setdefault(last, []).append(node)
    order: list[Node] = []

    def place(node: Node) -> None:
        order.append(node)
        for follower in after.get(node, []):
            place(follower)

    for node in after.get(None, []):
        place(node)
    for node in graph.nodes:
        if node not in moved:
            place(node)
    graph.nodes = order


def _normalized_exps(graph: Graph) -> dict[Node, tuple[Node, Node]]:
    """Each ``e = exp(..)`` normalized as ``y = e / sum(e)`` (a softmax) that is also used
    elsewhere (by the softmax's gradient), with the nodes making its sum and ``y``."""
    users = graph.users()
    position = {n: i for i, n in enumerate(graph.nodes)}
    found: dict[Node, tuple[Node, Node]] = {}
    for node in graph.nodes:
        if node.op != "div" or node.inputs[0].node is None or node.inputs[1].node is None:
            continue
        e, total = node.inputs[0], node.inputs[1]
        summed = total.node
        if (
            e.node.op != "exp"
            or summed.op != "reduce_sum"
            or summed.inputs[0] is not e
            or not summed.attrs["keepdims"]
            or node.outputs[0].type != e.type
        ):
            continue
        others = [u for u in users.get(e, []) if u not in (node, summed)]
        if others and all(position[u] > position[node] for u in others):
            found[e.node] = (summed, node)
    return found


def _exps_from_softmax(graph: Graph) -> Graph:
    """A softmax's gradient reads its exponentials ``e``; it reads ``y · sum(e)`` instead,
    so that only ``y`` (the softmax) and its row sums are kept from the forward pass, not
    ``e`` as well: attention's scores are one [B, heads, T, S] tensor written and kept
    fewer. (Within two float32 roundings of ``e``.)"""
    found = _normalized_exps(graph)
    if not found:
        return graph
    made: dict[Node, tuple] = {}  # the new graph's results of the sums and softmaxes
    rebuilt: dict[Value, Value] = {}  # each e as y · sum, in the new graph
    marks = {n for pair in found.values() for n in pair}
    exps = {e.outputs[0]: e for e in found}

    def visit(g: Graph, node: Node, ins: list[Value]):
        if node in marks:
            outs = copy_node(g, node, ins)
            made[node] = outs
            return outs
        if node in found or not any(v in exps for v in node.inputs):
            return None
        if any(v in exps and exps[v] in found for v in node.inputs):
            if node.op == "mul" and sum(v in exps for v in node.inputs) == 1:
                # a · e as (a · y) · sum: made from the gradient a, the product cannot join
                # the forward row kernel (which would then write y · sum, as big as e).
                i = 0 if node.inputs[0] in exps else 1
                summed, softmax = found[exps[node.inputs[i]]]
                return [B.mul(B.mul(ins[1 - i], made[softmax][0]), made[summed][0])]
            ins = list(ins)
            for i, v in enumerate(node.inputs):
                if v not in exps:
                    continue
                if v not in rebuilt:
                    summed, softmax = found[exps[v]]
                    rebuilt[v] = B.mul(made[softmax][0], made[summed][0])
                ins[i] = rebuilt[v]
            return copy_node(g, node, ins)
        return None

    return rebuild(graph, visit)


def simplify(graph: Graph) -> Graph:
    """Apply the rules until nothing changes (at most a few rounds)."""
    for _ in range(4):
        before = len(graph.nodes)
        graph = eliminate_dead_code(rebuild(graph, _visit))
        if len(graph.nodes) == before:
            break
    graph = _exps_from_softmax(graph)
    _place_by_operands(graph)
    return graph
