"""bf16 values stored in bf16: half the bytes of the f32 that holds them.

``narrow_floats.hold_narrow_floats`` computes every bf16 value in f32 and rounds it once;
the f32 buffer between two kernels then holds a number a bf16 holds exactly, in twice
its bytes. After fusion, this pass stores such a value in a bf16 buffer where the kernel
that makes it and every kernel that reads it can say so: the maker's body ends in a cast
to ``bf16`` (the rounding it did, now a narrowing store: ``codegen.lowering.kernel.LOWERED``),
each reader's body starts with a cast back to ``f32`` (exact: the load widens). The
numbers are the same bits either way; the bytes written and read, and the arena, are
halved for those values.

Which kernels may make or read a bf16 buffer is the table below: fused loops (their
loads and stores go through ``codegen.lowering.kernel.Kernel``), the epilogue of a fused product,
a rounding of its own, and, as operands, the bf16 products the CPU's engines take
(``codegen.lowering.products`` passes the kernels' bits for them). A reshape passes the storage on
to its readers. Graph inputs and outputs, values inside loops and the results of pooling
epilogues stay f32.
"""

from __future__ import annotations

from kcompile.ir import DType, Graph, Node, Value
from kcompile.ir.engines import engine_sized
from kcompile.ir.graph import LOOP_ROLES
from kcompile.ir.ops.fused import product_of

BF16 = DType.bf16
# Fused kinds whose kernels load and store any operand through ``codegen.lowering.kernel.Kernel``:
# they may make a bf16 buffer and read one.
LOOPS = frozenset({"elementwise", "reduce", "matmul"})
# Products that read operands stored in bf16 (``codegen.lowering.products``: ``kc_bgemm``,
# ``kc_sconv_bf16`` and its filter gradient, each with the operand's bit).
PRODUCTS = frozenset({"matmul", "conv2d", "conv2d_filter"})
# Off: products' operands stay f32 (an A/B of what reading them in bf16 buys).
PRODUCT_OPERANDS = True


def store_narrow(graph: Graph, bf16_engine: bool = True) -> Graph:
    """``graph`` with the bf16 values that qualify (see the module's docstring) in bf16
    buffers; the same graph when none does. ``bf16_engine`` (``PipelineOptions``): whether
    the CPU lowered for has a bf16 engine; without one, or for a product too small for it
    (``ir.engines``), a product's operands stay f32: the bf16 kernels' portable paths
    would widen a bf16 operand into a copy on every call (the mixed CNN's stem
    convolution: predict 3.05 -> 4.38 ms at batch 256)."""
    if any(v.role in LOOP_ROLES for v in graph.inputs):
        return graph  # a loop's body: its lowerings (codegen.lowering.scan) read f32
    users = graph.users()
    outputs = {v for _, v in graph.outputs}
    narrow = {
        v
        for node in graph.nodes
        for v in node.outputs
        if _made_rounded(node, v) and _read_widened(v, users, outputs, bf16_engine)
    }
    if not narrow:
        return graph
    return _rewrite(graph, narrow)


def _made_rounded(node: Node, v: Value) -> bool:
    """Whether ``v`` is made by a bf16 rounding in a kernel that can store it narrow."""
    if v.dtype is not DType.f32:
        return False
    if node.op == "round_to":
        return node.attrs["dtype"] == BF16.value
    if node.op != "fused" or node.attrs["kind"] not in LOOPS:
        return False
    if node.attrs.get("pool"):
        # A pooling epilogue's result buffer holds each window's running maximum of raw
        # products between rows (``codegen.lowering.fused._pooled_epilogue`` pools before a
        # monotone body): not bf16 values, which a narrowing store would truncate. (Stored
        # in bf16 it also ran at half the speed: the mixed CNN's predict at batch 256,
        # first convolution 1133 -> 2136 us.) Kept f32, the mixed CNN's step is 1.03x
        # faster predicting and 1.06x training with the pass than without.
        return False
    body = node.attrs["body"]
    inner = body.outputs[node.outputs.index(v)][1]
    made = inner.node
    if made is None or made.op != "round_to" or made.attrs["dtype"] != BF16.value:
        return False
    # Once per kernel: an output written twice (two names for one body value) stays f32.
    return sum(1 for _, w in body.outputs if w is inner) == 1


def _read_widened(v: Value, users, outputs, engine: bool) -> bool:
    """Whether every reader of ``v`` (through reshapes) can load it from bf16."""
    if v in outputs or not users.get(v):
        return False
    for user in users[v]:
        if user.op == "reshape":
            if not _read_widened(user.outputs[0], users, outputs, engine):
                return False
        elif not _reads_narrow(user, v, engine):
            return False
    return True


def _reads_narrow(node: Node, v: Value, engine: bool) -> bool:
    if node.op in PRODUCTS:
        return engine and _bf16_product(node)
    if node.op != "fused" or node.attrs["kind"] not in LOOPS:
        return False
    if node.attrs["kind"] != "matmul":
        return True
    body = node.attrs["body"]
    product = product_of(body)
    inner = {body.inputs[i] for i, w in enumerate(node.inputs) if w is v}
    return not inner & set(product.inputs) or (engine and _bf16_product(product))


def _bf16_product(node: Node) -> bool:
    """A product of bf16 values the engines take (``codegen.lowering.products`` reads its bf16
    operands there)."""
    return (
        PRODUCT_OPERANDS
        and node.op in PRODUCTS
        and node.attrs.get("precision") == BF16.value
        and engine_sized(node)
    )


def _rewrite(graph: Graph, narrow: set[Value]) -> Graph:
    new = Graph(graph.name)
    env: dict[Value, Value] = {v: new.add_input(v.name, v.type, v.role) for v in graph.inputs}
    for node in graph.nodes:
        args = [env[v] for v in node.inputs]
        attrs = dict(node.attrs)
        made = [i for i, v in enumerate(node.outputs) if v in narrow]
        read = [i for i, v in enumerate(args) if v.dtype is BF16]
        if node.op == "round_to" and made:
            outs = new.emit("cast", args, {"dtype": BF16.value}, node.layer)
        else:
            if node.op == "fused" and (made or read):
                attrs["body"] = _narrowed_body(attrs["body"], made, read)
            outs = new.emit(node.op, args, attrs, node.layer)
        env.update(zip(node.outputs, outs))
    new.set_outputs([(name, env[v]) for name, v in graph.outputs])
    return new


def _narrowed_body(body: Graph, made: list[int], read: list[int]) -> Graph:
    """``body`` reading its inputs ``read`` from bf16 and making its outputs ``made`` in
    bf16: a rounding that made such an output alone becomes the cast that stores it."""
    new = Graph(body.name)
    env: dict[Value, Value] = {}
    narrow: dict[Value, Value] = {}  # a body input read from bf16: its bf16 input
    for i, v in enumerate(body.inputs):
        if i in read:
            narrow[v] = new.add_input(v.name, v.type.with_dtype(BF16), v.role)
        else:
            env[v] = new.add_input(v.name, v.type, v.role)

    def widened(v: Value) -> Value:
        # Cast where something reads it whole: a loop reads an operand only sliced when
        # slices alone read it (``codegen.lowering.fused``).
        if v not in env:
            env[v] = new.emit("cast", [narrow[v]], {"dtype": DType.f32.value}, "")[0]
        return env[v]

    stored = {body.outputs[i][1] for i in made}
    users = body.users()
    for node in body.nodes:
        out = node.outputs[0]
        if node.op == "slice" and node.inputs[0] in narrow:
            # A slice reads its operand in place (codegen.lowering.fused): it slices the bf16
            # input, and the cast widens what it reads.
            part = new.emit("slice", [narrow[node.inputs[0]]], dict(node.attrs), node.layer)
            env[out] = new.emit("cast", list(part), {"dtype": DType.f32.value}, node.layer)[0]
            continue
        if node.op in PRODUCTS:  # reads the operand as stored (``codegen.lowering.products``)
            args = [narrow[v] if v in narrow else env[v] for v in node.inputs]
        else:
            args = [widened(v) if v in narrow else env[v] for v in node.inputs]
        if out in stored and not users.get(out):
            # Only the store reads the rounding: the cast rounds as it did.
            env[out] = new.emit("cast", args, {"dtype": BF16.value}, node.layer)[0]
            continue
        env.update(zip(node.outputs, new.emit(node.op, args, dict(node.attrs), node.layer)))
    narrowed = []
    for i, (name, v) in enumerate(body.outputs):
        held = widened(v) if v in narrow else env[v]
        if i in made and held.dtype is not BF16:
            held = new.emit("cast", [held], {"dtype": BF16.value}, v.node.layer)[0]
        narrowed.append((name, held))
    new.set_outputs(narrowed)
    return new
