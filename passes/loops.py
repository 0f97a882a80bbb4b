"""Work moved out of loops: what a scan's step repeats that could run once.

- A weight gradient accumulated step by step (``acc + Pᵀ·Q``, the recurrent kernel's
  gradient in an RNN's backward loop) becomes one product over all steps after the
  loop: the body outputs ``P`` and ``Q`` per step (or the loop reads its own sequence
  when one of them is a step input), its accumulator passes through unchanged, and
  after the loop one product contracts the batch and the time axis together. One
  large product runs near the machine's peak where T small ones, each reading and
  writing the whole accumulator, did not.
- So does a sum over the batch accumulated step by step (``acc + sum_rows(P)``, the
  gradient of a bias the step adds, a GRU's recurrent bias): the body outputs ``P``
  per step and one reduction over the batch and the time axis follows the loop. The
  body left then computes each batch row alone, so the loop can run on slices of the
  batch side by side (``codegen.lowering.scan``).
- What the body computes from invariants alone (a slice of a bias) runs once before
  the loop and comes in as an invariant.
- A sequence or invariant that the body no longer reads is no longer an operand.
- A product with a loop invariant's transpose (``x·Wᵀ``, the gradient through an RNN's
  recurrent kernel) reads ``W`` transposed once before the loop, so that no step packs
  its transpose again: unless the loop runs on slices of the batch (``ir.rows``), whose
  lowering packs ``W`` once per loop itself, from its transpose as readily
  (``codegen.lowering.packed_products``), and the transposed copy would only cost a kernel.

And work moved into a loop: a time-major loop on slices of the batch whose step adds
its input to a product (an LSTM's ``x_t + h·U``), where that input is the projection of
another sequence (``x·W + b``, computed for every step before the loop), computes the
projection in its step instead (``project_in_loops``): the loop's lowering runs both
products on each tile of the step and the projection's epilogue in the tile's epilogue
(``codegen.lowering.packed_products.paired``), so the projection is never written out (3.6 MB
for the LSTM(128) at batch 64) and runs on the thread whose rows it is. The numbers are
those of the projection before the loop up to its GEMM's order of summation in some
ragged tiles (a last bit).

Last, the weight gradients after a loop that read one of its stacks (``dz``) share it
(``merge_stack_products``): a bias's gradient, the sum of ``dz`` over the batch and the
steps, is the last row of the input kernel's product ``xᵀ·dz`` over ``x`` with a column
of ones beside it, so ``dz`` is read once for both, at the product's rate (where ``x``
is narrow next to ``dz``: the column of ones costs a copy of ``x``).
"""

from __future__ import annotations

from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.ir.graph import Graph, Node, Value
from kcompile.ir.ops.constant import constant_value
from kcompile.ir.ops.scan import is_time_major, split_operands, step_type
from kcompile.ir.rows import splits_by_rows
from kcompile.ir.types import BATCH
from kcompile.passes.dce import eliminate_dead_code
from kcompile.passes.rewrite import rebuild

# Off: a loop's step input stays the projection computed before the loop (A/B).
PROJECT_IN_LOOP = True
# Off: a sum over a loop's stack that a product after the loop also reads stays a
# reduction of its own (A/B of ``merge_stack_products``). The LSTM(128) train step at
# batch 64 (``python benchmarks/loop_flag_ab.py kcompile.passes.loops MERGE_SUMS``, a
# loaded host, kernel mins): one thread, x's product with its Adam update 461 µs and
# the bias sum 135 -> the product of 29 rows 417, the pad 28, the update ~10 (CPU min
# 6.78 -> 6.62 ms); two threads 256 + 79 -> 270 + 28 + ~10. The GRU's: even.
MERGE_SUMS = True
# ... where the product's other factor has at most 1/SUM_WIDTH_RATIO of the stack's
# columns: the pad copies it at ~7 GB/s, the sum reads the stack at ~30.
SUM_WIDTH_RATIO = 8
# On: all the products after a loop that read one of its stacks are one product over
# their other factors side by side (``[x | h | 1]ᵀ·dz``, A/B). Off: the LSTM's 157-row
# product took 1053-1162 µs where its 128- and 29-row ones took 1122-1302, but the
# concat and pad that join x and h cost 179 + 193 µs and the updates lose their fused
# epilogue (+43): a loss until the factors are joined where they are written.
MERGE_FACTORS = False


def hoist_from_loops(graph: Graph) -> Graph:
    redone = []

    def visit(g: Graph, node: Node, ins: list[Value]):
        if node.op != "scan":
            return None
        values, attrs = _hoisted(g, node, ins, flip=set())
        body = node.attrs["body"]
        first = node.attrs["carries"] + node.attrs["sequences"]
        flip = {n.inputs[1] for n in _transposed_invariants(body, first)}
        if splits_by_rows(attrs, unfused=True):
            flip = {w for w in flip if not _only_products_read(body, w)}
        if not flip:
            return values
        redone.append(node)  # what the first attempt emitted is left unused
        return _hoisted(g, node, ins, flip=flip)[0]

    new = rebuild(graph, visit)
    new = eliminate_dead_code(new) if redone else new
    new = project_in_loops(new) if PROJECT_IN_LOOP else new
    return merge_stack_products(new) if MERGE_SUMS or MERGE_FACTORS else new


def project_in_loops(graph: Graph) -> Graph:
    """Each qualifying loop with its input's projection computed in its step (see the
    module's docstring); the graph unchanged when no loop qualifies."""
    users = graph.users()
    for _, v in graph.outputs:  # a result is read after the step: not the loop's alone
        users.setdefault(v, []).append(None)
    moved = []

    def visit(g: Graph, node: Node, ins: list[Value]):
        if node.op != "scan":
            return None
        found = _projection(node, users)
        if found is None:
            return None
        j, product, bias = found
        moved.append(node)
        return _projected_in_step(g, node, ins, j, product, bias)

    new = rebuild(graph, visit)
    return eliminate_dead_code(new) if moved else graph


def merge_stack_products(graph: Graph) -> Graph:
    """The weight gradients after a loop that read one of its stacks ``Q`` (its ``dz``),
    computed as one product (see the module's docstring): a sum of ``Q`` over all but its
    last axis (a bias's gradient) is the last row of a product ``Pᵀ·Q`` with a column of
    ones beside ``P`` (``MERGE_SUMS``: the narrowest ``P``'s); with ``MERGE_FACTORS``, the
    products ``Pᵢᵀ·Q`` are one over the ``Pᵢ`` side by side. Each former result is a slice
    of the product. The graph unchanged when nothing qualifies."""
    position = {n: i for i, n in enumerate(graph.nodes)}
    group_of: dict[Node, list[Node]] = {}
    for products, sums in _stack_products(graph):
        narrowest = min(products, key=lambda n: n.inputs[0].shape[-1])
        merged = list(products) if MERGE_FACTORS else [narrowest]
        # The column of ones is a copy of the factors: it pays where they are narrow
        # next to Q, which the sum would read whole (the LSTM's x: 28 columns to dz's 512).
        q_width = narrowest.inputs[1].shape[-1]
        width = sum(n.inputs[0].shape[-1] for n in merged)
        if MERGE_SUMS and sums and (MERGE_FACTORS or width * SUM_WIDTH_RATIO <= q_width):
            merged.append(sums[0])
        first = min(position[n] for n in merged)
        # the product is emitted where the group's first node stood: its factors before
        ready = all(n.inputs[0].node is None or position[n.inputs[0].node] < first for n in merged)
        if len(merged) > 1 and ready:
            group_of.update((n, merged) for n in merged)
    if not group_of:
        return graph
    env: dict[Value, Value] = {}
    made: dict[Node, Value] = {}  # each merged node's slice of its group's product

    def visit(g: Graph, node: Node, ins: list[Value]):
        merged = group_of.get(node)
        if merged is None:
            return None
        if node not in made:  # the group's first node: emit the product
            made.update(zip(merged, _merged_product(merged, env)))
        return [made[node]]

    return rebuild(graph, visit, env)


def _stack_products(graph: Graph) -> list[tuple[list[Node], list[Node]]]:
    """For each f32 stack ``Q`` of a loop read by products ``Pᵀ·Q`` (an f32 ``P`` of its
    leading shape): (those products, the sums of ``Q`` over its leading axes)."""
    users = graph.users()
    found = []
    for node in graph.nodes:
        if node.op != "scan":
            continue
        for q in node.outputs:
            if q.rank < 3 or q.dtype != DType.f32:
                continue
            readers = users.get(q, [])
            products = [
                n
                for n in readers
                if n.op == "matmul"
                and n.inputs[1] is q
                and n.inputs[0] is not q
                and n.attrs["transpose_a"]
                and not n.attrs["transpose_b"]
                and n.inputs[0].dtype == DType.f32
                and n.inputs[0].shape[:-1] == q.shape[:-1]
            ]
            leading = tuple(range(q.rank - 1))
            sums = [
                n
                for n in readers
                if n.op == "reduce_sum"
                and tuple(n.attrs["axes"]) == leading
                and not n.attrs["keepdims"]
            ]
            if products:
                found.append((products, sums))
    return found


def _merged_product(merged: list[Node], env: dict[Value, Value]) -> list[Value]:
    """Each node of ``merged`` (products ``Pᵢᵀ·Q``, then perhaps a sum of ``Q``) as a
    slice of one product ``[P₁ | P₂ | … | 1]ᵀ·Q``, emitted in the graph of ``env``'s
    values (the operands of every node of ``merged`` precede the first one)."""
    products = [n for n in merged if n.op == "matmul"]
    q = env[products[0].inputs[1]]
    factors = [env[n.inputs[0]] for n in products]
    joined = factors[0] if len(factors) == 1 else B.concat(factors, -1)
    if len(products) < len(merged):  # the sum's row: a column of ones beside the factors
        rank = joined.rank
        joined = B.pad(joined, (0,) * rank, (0,) * (rank - 1) + (1,), value=1.0)
    total = B.matmul(joined, q, transpose_a=True)
    n = q.shape[-1]
    out, start = [], 0
    for p in factors:
        out.append(B.slice_(total, (start, 0), (start + p.shape[-1], n)))
        start += p.shape[-1]
    if len(products) < len(merged):
        out.append(B.reshape(B.slice_(total, (start, 0), (start + 1, n)), (n,)))
    return out


def _projection(node: Node, users: dict) -> tuple[int, Node, Node | None] | None:
    """(sequence index, the projection's product, its bias add or None) of a scan whose
    step input is only added to a product with an invariant, and is ``x·W (+ b)`` of a
    time-major ``x`` that nothing else reads (``users``: a graph result's list holds None);
    None when there is none."""
    attrs = node.attrs
    if not is_time_major(attrs) or not splits_by_rows(attrs, unfused=True):
        return None
    body: Graph = attrs["body"]
    c, s = attrs["carries"], attrs["sequences"]
    body_users = body.users()
    invariants = set(body.inputs[c + s :])
    outputs = {v for _, v in body.outputs}
    for j in range(s):
        step = body.inputs[c + j]
        readers = body_users.get(step, [])
        if step in outputs or len(readers) != 1 or readers[0].op != "add":
            continue
        add = readers[0]
        (other,) = [v for v in add.inputs if v is not step] or [None]
        if other is None or other.node is None or other.type != add.outputs[0].type:
            continue
        recurrent = other.node
        if not (
            recurrent.op == "matmul"
            and not recurrent.attrs["transpose_a"]
            and recurrent.inputs[1] in invariants
            and recurrent.inputs[0].rank == 2
        ):
            continue
        outer = node.inputs[c + j]
        if users.get(outer, []) != [node] or list(node.inputs).count(outer) != 1:
            continue
        bias, product = None, outer.node
        if product is not None and product.op == "add":
            bias = product
            a, b = product.inputs
            product, b = (a.node, b) if a.rank == 3 else (b.node, a)
            if product is None or b.rank != 1 or users.get(product.outputs[0], []) != [bias]:
                continue
        if product is None or product.op != "matmul" or any(product.attrs.values()):
            continue
        x, w = product.inputs
        # f32 only: a narrow projection is rounded where it is stored (``narrow_floats``)
        if x.rank != 3 or w.rank != 2 or not x.dtype == w.dtype == outer.dtype == DType.f32:
            continue
        return j, product, bias
    return None


def _projected_in_step(
    g: Graph, node: Node, ins: list[Value], j: int, product: Node, bias: Node | None
) -> list[Value]:
    """The scan with sequence ``j`` replaced by the projection's input ``x``, and the
    projection's weights (and bias) its last invariants, its step computing ``x_t·W + b``
    where it read the projection."""
    attrs = node.attrs
    body: Graph = attrs["body"]
    c = attrs["carries"]
    # the projection's operands as the rebuilt graph holds them
    outer = ins[c + j].node
    if bias is not None:
        first, second = outer.inputs
        projected, b = (first, second) if first.rank == 3 else (second, first)
        outer = projected.node
    x, w = outer.inputs
    new = Graph(body.name)
    env = {}
    for i, v in enumerate(body.inputs):
        if i == c + j:
            env[v] = new.add_input(v.name, step_type(x.type, True), v.role)
        else:
            env[v] = new.add_input(v.name, v.type, v.role)
    kernel = new.add_input(f"{body.inputs[c + j].name}_kernel", w.type, "invariant")
    operands = [*ins[: c + j], x, *ins[c + j + 1 :], w]
    with new.layer_scope(product.layer):
        value = new.emit("matmul", [env[body.inputs[c + j]], kernel], dict(product.attrs))[0]
        if bias is not None:
            added = new.add_input(f"{body.inputs[c + j].name}_bias", b.type, "invariant")
            operands.append(b)
            order = [value, added] if bias.inputs[0].rank == 3 else [added, value]
            value = new.emit("add", order, dict(bias.attrs))[0]
    projected = {body.inputs[c + j]: value}
    for n in body.nodes:
        operands_n = [projected.get(v, env.get(v)) for v in n.inputs]
        for old, out in zip(n.outputs, new.emit(n.op, operands_n, dict(n.attrs), layer=n.layer)):
            env[old] = out
    new.set_outputs([(name, env[v]) for name, v in body.outputs])
    return list(g.emit("scan", operands, {**attrs, "body": new}, layer=node.layer))


def _accumulations(body: Graph, carries: int) -> list[tuple[int, Node]]:
    """(carry index, its growth) for each carry the step only grows by ``Pᵀ·Q`` (a
    ``matmul``) or by a sum over the batch (a ``reduce_sum``)."""
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
            or not (_is_product(product) or _is_batch_sum(product))
            or users.get(grown) != [add]
            or grown in results
            or grown.type != acc.type
        ):
            continue
        found.append((k, product))
    return found


def _invariant_nodes(body: Graph, first_invariant: int) -> set[Node]:
    """The nodes that compute from invariants (and one-number constants) alone: the
    same at every step, so they run once before the loop. Constants stay (a fused
    kernel holds them as numbers), and so does what draws random numbers."""
    known = set(body.inputs[first_invariant:])
    found = set()
    for n in body.nodes:
        if not n.inputs or not n.traits.folds or n.traits.nested_graph:
            continue
        constant = [v for v in n.inputs if v.node is not None and v.node.op == "constant"]
        if all(v in known or v in constant for v in n.inputs) and len(constant) < len(n.inputs):
            found.add(n)
            known.update(n.outputs)
    return found


def _unused_inputs(body: Graph, carries: int) -> set[Value]:
    """The body's sequence steps and invariants that nothing in it reads (the backward
    step's inputs whose use the residuals or the hoisting replaced): their operands
    need not be copied in at every step."""
    used = {v for n in body.nodes for v in n.inputs} | {v for _, v in body.outputs}
    return {v for v in body.inputs[carries:] if v not in used}


def _is_product(node: Node) -> bool:
    return node.op == "matmul" and node.attrs["transpose_a"]


def _is_batch_sum(node: Node) -> bool:
    x = node.inputs[0] if node.inputs else None
    return (
        node.op == "reduce_sum"
        and 0 in node.attrs["axes"]
        and not node.attrs["keepdims"]
        and x.rank >= 1
        and x.shape[0] == BATCH
        and x.shape.count(BATCH) == 1
    )


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


def _only_products_read(body: Graph, w: Value) -> bool:
    """Whether only products read the invariant ``w``, as their B (what a split loop's
    lowering packs once per loop)."""
    return all(
        n.op == "matmul"
        and n.inputs[1] is w
        and n.inputs[0] is not w
        and not n.attrs["transpose_a"]
        for n in body.users().get(w, [])
    )


def _hoisted(
    g: Graph, node: Node, ins: list[Value], flip: set[Value]
) -> tuple[list[Value] | None, dict]:
    """The scan's results with its work moved out (None: nothing to move) and the
    attributes of the scan that computes them; its products with the transpose of an
    invariant in ``flip`` read a transposed copy made before the loop."""
    attrs = node.attrs
    body: Graph = attrs["body"]
    c, s = attrs["carries"], attrs["sequences"]
    accumulations = _accumulations(body, c)
    transposed = [n for n in _transposed_invariants(body, c + s) if n.inputs[1] in flip]
    lifted = _invariant_nodes(body, c + s)
    if not (accumulations or transposed or lifted or _unused_inputs(body, c)):
        return None, attrs
    new = Graph(body.name)
    env = {v: new.add_input(v.name, v.type, v.role) for v in body.inputs}
    outer = dict(zip(body.inputs, ins))  # body values computed outside: their outer value
    lifted_operands: list[Value] = []

    def inside(v: Value) -> Value:
        """``v`` as the new body reads it: a value computed before the loop comes in as
        an invariant."""
        if v not in env:
            env[v] = new.add_input(f"invariant_{len(lifted_operands)}", v.type, "invariant")
            lifted_operands.append(outer[v])
        return env[v]

    flipped = {}  # an invariant -> the body input holding its transpose
    for n in transposed:
        w = n.inputs[1]
        if w not in flipped:
            flipped[w] = new.add_input(f"{w.name}_t", w.type.with_shape(w.shape[::-1]), "invariant")
    swapped = set(transposed)
    for n in body.nodes:
        if n in lifted:
            operands = [
                outer[v] if v in outer else g.emit("constant", [], dict(v.node.attrs))[0]
                for v in n.inputs
            ]
            outer.update(zip(n.outputs, g.emit(n.op, operands, dict(n.attrs), layer=n.layer)))
            continue
        operands = [inside(v) for v in n.inputs]
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

    factors = [(k, p, [factor(v) for v in p.inputs]) for k, p in accumulations]
    grown = {k for k, _ in accumulations}
    # A grown carry now passes through the loop unchanged: it leaves the loop (but for a
    # forward loop, whose carries entering each step are saved for the gradient).
    dropped = set() if attrs["saved"] else grown
    outputs = [
        (name, env[body.inputs[i]] if i in grown else inside(v))
        for i, (name, v) in enumerate(body.outputs[:c])
        if i not in dropped
    ]
    outputs += [(name, inside(v)) for name, v in body.outputs[c:]]
    outputs += [(f"hoisted_{i}", inside(v)) for i, v in enumerate(extra)]
    new.set_outputs(outputs)
    new.drop_unused_nodes()

    operands = ins + [B.transpose(ins[body.inputs.index(w)], (1, 0)) for w in flipped]
    operands += lifted_operands
    operands = [x for i, x in enumerate(operands) if i not in dropped]
    new.inputs = [v for i, v in enumerate(new.inputs) if i not in dropped]
    carries = c - len(dropped)
    new_attrs = {**attrs, "body": new, "carries": carries}
    keep = [i for i, v in enumerate(new.inputs) if v not in _unused_inputs(new, carries)]
    dropped_steps = sum(1 for i in range(carries, carries + s) if i not in keep)
    new.inputs = [new.inputs[i] for i in keep]
    new_attrs["sequences"] = s - dropped_steps
    operands = [operands[i] for i in keep]
    results = g.emit("scan", operands, new_attrs, layer=node.layer)
    m = len(body.outputs) - c
    left = iter(results[:carries])
    finals = [ins[i] if i in dropped else next(left) for i in range(c)]
    per_step = results[carries : carries + m]
    stacks = results[carries + m : carries + m + len(extra)]
    old_layout = finals + list(per_step) + list(results[carries + m + len(extra) :])

    def stacked(where: tuple[str, int]) -> Value:
        kind, i = where
        if kind == "sequence":
            return ins[c + i]
        return per_step[i] if kind == "result" else stacks[i]

    for k, grown, (p, *q) in factors:
        if grown.op == "matmul":
            total = B.matmul(stacked(p), stacked(q[0]), transpose_a=True)
        else:  # the batch and the time axis (axes 0 and 1 of a stack) summed together
            axes = (0, 1, *(a + 1 for a in grown.attrs["axes"] if a != 0))
            total = B.reduce_sum(stacked(p), axes)
        start = old_layout[k]
        old_layout[k] = total if constant_value(start) == 0.0 else start + total
    return old_layout, new_attrs
