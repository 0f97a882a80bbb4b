"""Fusion: elementwise chains (with their broadcasts and constants) into one loop
nest, and elementwise consumers of a matrix product into its epilogue.

Groups are found greedily from the outputs backwards, as XLA's loop fusion
does: a node joins the group of its consumers when every node that uses it is
in that one group and it computes over the group's loop shape. Values that
are also needed outside (a graph output, another kernel) become extra outputs
of the fused node, so an optimizer's update of one weight — moments and the
weight itself — is one kernel. Each group becomes a ``fused`` node holding
its nodes as a subgraph; codegen reads the body, not this module.
"""

from __future__ import annotations

import math

from kcompile.ir.graph import Graph, Node, Value
from kcompile.ir.memory import ELEMENT_BYTES
from kcompile.ir.ops.constant import constant_value
from kcompile.ir.ops.fused import body_may_hold
from kcompile.ir.traits import Pattern
from kcompile.ir.types import BATCH, DType
from kcompile.passes.rewrite import copy_node


def is_elementwise(node: Node) -> bool:
    """The ops a loop grows by: elementwise, with or without broadcasting."""
    return node.traits.is_elementwise


def _is_product(node: Node) -> bool:
    """A matrix product whose kernel can run an epilogue (of no constant operand)."""
    return (
        node.traits.pattern is Pattern.PRODUCT
        and "matmul" in node.traits.loop_bodies
        and all(constant_value(v) is None for v in node.inputs)
    )


def _is_strided_read(node: Node) -> bool:
    """A rearrangement that an elementwise loop holds as a strided read of its operand."""
    return node.traits.pattern is Pattern.INJECTIVE and "elementwise" in node.traits.loop_bodies


def _is_splat(v: Value) -> bool:
    """A constant the body can hold: one value, of a static shape (a batch-sized one would
    leave the body's ``N`` unbound when no operand carries it)."""
    value = constant_value(v)
    return value is not None and not isinstance(value, tuple) and v.type.is_static


def _loop_shape(node: Node):
    return node.outputs[0].shape


def find_groups(graph: Graph) -> tuple[dict[Node, int], dict[int, str]]:
    """Group id of each fusible node, and each group's kind.

    A node joins a consumer's group when it computes over the group's loop shape
    and every other user of its results runs after the group's last node (the
    group is emitted there), so no user ever waits on a value the group makes later.
    """
    users: dict[Value, list[Node]] = graph.users()
    position = {node: i for i, node in enumerate(graph.nodes)}
    group: dict[Node, int] = {}
    root: dict[int, Node] = {}
    kind_of: dict[int, str] = {}
    shape_of: dict[int, tuple] = {}  # each group's loop shape
    for node in reversed(graph.nodes):
        product = _is_product(node)
        if not (is_elementwise(node) or _is_strided_read(node) or product):
            continue
        node_users = [u for v in node.outputs for u in users.get(v, [])]
        for gid in sorted({group[u] for u in node_users if u in group}, reverse=True):
            fits = (
                shape_of[gid] == _loop_shape(node)
                and kind_of[gid] != "matmul"
                and (not product or kind_of[gid] == "elementwise")
                # A strided read is of a value made outside the loop.
                and not any(_is_strided_read(u) and group.get(u) == gid for u in node_users)
                and _may_join(node, [n for n, g in group.items() if g == gid], kind_of[gid])
                and all(
                    group.get(u) == gid or position[u] > position[root[gid]] for u in node_users
                )
                and (
                    not product
                    or _epilogue_fits(
                        [n for n, g in group.items() if g == gid],
                        _loop_shape(node),
                        node.op == "matmul",
                    )
                )
            )
            if fits:
                group[node] = gid
                if product:
                    kind_of[gid] = "matmul"  # a product's epilogue: nothing fuses above it
                break
        else:
            if _is_strided_read(node):
                continue  # a strided read on its own stays a copy
            gid = len(root)
            group[node] = gid
            root[gid] = node
            shape_of[gid] = _loop_shape(node)
            kind_of[gid] = "matmul" if product else "elementwise"
    _reduction_groups(graph, group, root, kind_of, users, position)
    return group, kind_of


def _reduction_groups(graph, group, root, kind_of, users, position) -> None:
    """A reduction whose operand is made by an elementwise chain that no other kernel took
    roots a loop over that operand: the chain is computed and reduced in one pass."""
    sizes: dict[int, int] = {}
    for g in group.values():
        sizes[g] = sizes.get(g, 0) + 1
    for node in reversed(graph.nodes):
        if node.traits.reduction is None or node in group:
            continue
        loop = node.inputs[0].shape
        gid = len(root)
        made_by = node.inputs[0].node
        taken = group.get(made_by)
        if taken is not None and sizes.get(taken, 0) > 1:
            # The operand comes out of an elementwise loop: the reduction absorbs the
            # whole loop when nothing else needs its values before the reduction runs.
            members = {n for n, g in group.items() if g == taken}
            absorbable = (
                kind_of[taken] == "elementwise"
                and root[taken] is made_by
                and _loop_shape(made_by) == loop
                and all(body_may_hold("reduce", m.op) for m in members)
            )
            for member in members if absorbable else ():
                for u in (u for v in member.outputs for u in users.get(v, [])):
                    if u not in members and u is not node and position[u] < position[node]:
                        absorbable = False
            if not absorbable:
                continue
            members.add(node)
        else:
            members = _chain_into(node, group, sizes, users, position)
        if len(members) > 1:
            for n in members:
                group[n] = gid
            root[gid] = node
            kind_of[gid] = "reduce"


def _chain_into(node, group, sizes, users, position) -> set:
    """The reduction and the unfused elementwise nodes that make its operand."""
    loop = node.inputs[0].shape
    members = {node}
    frontier = [node.inputs[0].node] if node.inputs[0].node is not None else []
    while frontier:
        producer = frontier.pop()
        if producer in members or not is_elementwise(producer):
            continue
        if producer in group and sizes.get(group[producer], 0) > 1:
            continue  # already fused elsewhere
        if _loop_shape(producer) != loop:
            continue
        node_users = [u for v in producer.outputs for u in users.get(v, [])]
        if not all(u in members or position[u] > position[node] for u in node_users):
            continue
        members.add(producer)
        frontier.extend(v.node for v in producer.inputs if v.node is not None)
    return members


def _is_column_sum(node: Node) -> bool:
    """A sum over the rows of a matrix (or over every axis but the last of an image: a
    convolution's result as a matrix), which a product's kernel accumulates row by row."""
    reduction = node.traits.reduction
    if reduction is None or not node.inputs or "axes" not in node.attrs:
        return False
    rank = node.inputs[0].rank
    return (
        reduction.combine == "add"
        and rank >= 2
        and tuple(node.attrs["axes"]) == tuple(range(rank - 1))
    )


# Whether a convolution's result summed by channel joins the convolution's kernel (off
# only to measure against).
CONV_SUMS = True


def _is_conv(node: Node) -> bool:
    """A product of the runtime's convolution, whose column sums run on every thread."""
    return CONV_SUMS and _is_product(node) and node.op == "conv2d"


def _may_join(node: Node, members: list[Node], kind: str) -> bool:
    """Whether the group's body, of the kind it becomes with ``node``, can hold them all."""
    kind = "matmul" if _is_product(node) else kind
    return all(body_may_hold(kind, n.op) for n in [node, *members])


def _epilogue_fits(nodes: list[Node], out_shape: tuple, rows: bool = False) -> bool:
    """Whether every operand of an epilogue is read per output row and column: the
    whole output shape, one value per column (a bias), one value, or, with ``rows`` (a
    matmul's, whose epilogue gets tiles of its rows in order: not a pooled convolution's),
    one value per row (a quantized layer's input scale)."""
    columns = out_shape[-1]
    for node in nodes:
        for v in node.inputs:
            if v.shape == out_shape or all(d == 1 for d in v.shape):
                continue
            if v.shape[-1] == columns and all(d == 1 for d in v.shape[:-1]):
                continue
            if rows and v.shape == (*out_shape[:-1], 1):
                continue
            return False
    return True


# Whether a cheap value read by several loops is computed by each (off only to measure).
RECOMPUTE = True


def _recomputable(node: Node, users: dict, outputs: set) -> bool:
    """A cheap elementwise value (``x - mean``) of one full-size operand that a product
    writes anyway (or an input), read by several loops: each loop computes it from that operand,
    instead of one writing it for the others to read (BatchNormalization's centred
    value: written once, then read by the variance, the normalization and two loops of
    the gradient)."""
    if not (is_elementwise(node) and node.traits.cost <= 1 and len(node.outputs) == 1):
        return False
    out = node.outputs[0]
    readers = users.get(out, [])
    full = [v for v in node.inputs if v.shape == out.shape]
    if out in outputs or len(readers) < 2 or len(full) != 1 or _is_splat(full[0]):
        return False
    source = full[0]
    if source.node is not None and (not _is_product(source.node) or len(users.get(source, [])) < 2):
        return False  # the operand might otherwise never be written (an epilogue's value)
    if ELEMENT_BYTES[source.dtype] > ELEMENT_BYTES[out.dtype]:
        return False  # a ReLU's mask: reading its f32 operand again costs more
    return all(
        (is_elementwise(u) and u.outputs[0].shape == out.shape)
        or (u.traits.reduction is not None and u.inputs[0] is out)
        for u in readers
    )


def _recompute_cheap(graph: Graph) -> Graph:
    """Each reader of a recomputable value (``_recomputable``) gets its own copy of the
    node, emitted just before it, which then fuses into the reader's loop."""
    users = graph.users()
    outputs = {v for _, v in graph.outputs}
    cheap = {n for n in graph.nodes if _recomputable(n, users, outputs)} if RECOMPUTE else ()
    if not cheap:
        return graph
    new = Graph(graph.name)
    env: dict[Value, Value] = {v: new.add_input(v.name, v.type, v.role) for v in graph.inputs}
    for node in graph.nodes:
        if node in cheap:
            continue
        copies: dict[Value, Value] = {}
        inputs = [_copied(new, v, cheap, env, copies) for v in node.inputs]
        with new.layer_scope(node.layer):
            env.update(zip(node.outputs, copy_node(new, node, inputs)))
    new.set_outputs([(name, env[v]) for name, v in graph.outputs])
    return new


def _copied(new: Graph, v: Value, cheap, env: dict, copies: dict) -> Value:
    """``v`` in ``new`` for one reader: a fresh copy of a recomputable value (a chain of
    them copied whole), once per reader."""
    if v.node not in cheap:
        return env[v]
    if v not in copies:
        made = v.node
        with new.layer_scope(made.layer):
            inputs = [_copied(new, u, cheap, env, copies) for u in made.inputs]
            copies[v] = copy_node(new, made, inputs)[0]
    return copies[v]


def fuse(graph: Graph) -> Graph:
    """Replace each group of two or more nodes by one ``fused`` node."""
    graph = _recompute_cheap(graph)
    group, kind_of = find_groups(graph)
    members: dict[int, list[Node]] = {}
    for node in graph.nodes:
        if node in group:
            members.setdefault(group[node], []).append(node)
    members = {
        gid: nodes
        for gid, nodes in members.items()
        # Broadcasts compute nothing (cost 0): two of them are not worth a kernel.
        if sum(1 for n in nodes if n.traits.cost > 0) >= 2
    }
    # A matmul group needs the product first; a group with only elementwise nodes
    # and no product is an elementwise loop.
    for gid, nodes in list(members.items()):
        if kind_of[gid] == "matmul" and not _is_product(nodes[0]):
            del members[gid]
    users = graph.users()
    _add_column_sums(graph, members, kind_of, users)
    _add_summing_loops(graph, members, kind_of, users)
    _merge_siblings(graph, members, kind_of, users)
    _add_batch_sums(graph, members, kind_of)
    outputs = {v for _, v in graph.outputs}
    pools = _pools(members, kind_of, users, outputs)
    skipped = {n for reshape, pool_node, _ in pools.values() for n in (reshape, pool_node)}
    last = {nodes[-1]: gid for gid, nodes in members.items()}
    in_group = {n: gid for gid, nodes in members.items() for n in nodes}

    new = Graph(graph.name)
    env: dict[Value, Value] = {v: new.add_input(v.name, v.type, v.role) for v in graph.inputs}
    for node in graph.nodes:
        gid = in_group.get(node)
        if node in skipped:
            continue  # a pooling its convolution's kernel computes
        if gid is None:
            outs = copy_node(new, node, [env[v] for v in node.inputs])
            env.update(zip(node.outputs, outs))
        elif node in last:
            pool = pools.get(gid)
            extra = None if pool is None else {"pool": pool[2]}
            _emit_group(new, env, members[gid], kind_of[gid], users, outputs, extra)
            if pool is not None:
                env[pool[1].outputs[0]] = env[pool[0].inputs[0]]
    new.set_outputs([(name, env[v]) for name, v in graph.outputs])
    return new


# A reduction over the batch axis into at most this many elements runs in chunks of rows on
# every thread, into partials (codegen/lowering/fused.py's ``PARTIALS_MAX``).
BATCH_SUM_MAX = 4096
# Off: such reductions stay plain reduction kernels (for A/B measurements).
BATCH_SUMS = True


def _add_batch_sums(graph: Graph, members: dict, kind_of: dict) -> None:
    """A reduction over the batch left on its own (a bias gradient of a product no epilogue
    took): a one-node reduce loop, which runs on every thread in chunks of rows into
    partials added in chunk order (the same bits on any thread count); a plain reduction
    kernel runs on one."""
    if not BATCH_SUMS:
        return
    taken = {n for nodes in members.values() for n in nodes}
    for node in graph.nodes:
        if node in taken or node.traits.reduction is None or len(node.outputs) != 1:
            continue
        total, operand = node.outputs[0], node.inputs[0]
        axes = node.attrs.get("axes", ())
        # The batch may follow the time axis (a recurrent layer's stacked [T, N, F] bias
        # gradient, summed over both): the chunks then split the steps.
        if (
            0 not in axes
            or BATCH not in [operand.shape[a] for a in axes]
            or not total.type.is_static
            or total.dtype is not DType.f32
            or not body_may_hold("reduce", node.op)
            or math.prod(total.shape) > BATCH_SUM_MAX
        ):
            continue
        gid = max([*members, *kind_of], default=-1) + 1
        members[gid] = [node]
        kind_of[gid] = "reduce"


def _pools(members: dict, kind_of: dict, users, outputs) -> dict:
    """The convolutions whose one result only a max pooling reads, by group: the pooling
    over non-overlapping windows (``reshape`` [N, H/ph, ph, W/pw, pw, C] then
    ``reduce_max`` over the window axes) joins the kernel, whose epilogue pools each
    tile, so the full-size result is never written (inference: training keeps it for
    the pooling's gradient). The epilogue may read only per-channel or scalar operands
    (its rows run window by window, not in the result's order)."""
    pools = {}
    for gid, nodes in members.items():
        if kind_of[gid] != "matmul" or nodes[0].op != "conv2d":
            continue
        inside = set(nodes)
        results = [
            v
            for n in nodes
            for v in n.outputs
            if v in outputs or any(u not in inside for u in users.get(v, ()))
        ]
        if len(results) != 1 or results[0] in outputs or len(users.get(results[0], ())) != 1:
            continue
        v = results[0]
        reshape = users[v][0]
        pool = _pool_window(v, reshape, users)
        if pool is None or any(n.traits.reduction is not None for n in nodes):
            continue
        made_inside = {o for n in nodes for o in n.outputs}
        channels = v.shape[-1]
        per_channel = all(
            u in made_inside
            or all(d == 1 for d in u.shape)
            or (u.shape[-1] == channels and all(d == 1 for d in u.shape[:-1]))
            for n in nodes[1:]
            for u in n.inputs
        )
        if per_channel and v.dtype.value == "f32":
            pools[gid] = (reshape, users[reshape.outputs[0]][0], pool)
    return pools


def _pool_window(v: Value, reshape: Node, users) -> tuple[int, int] | None:
    """(ph, pw) when ``reshape`` and its one user max-pool ``v`` [N, H, W, C] over
    non-overlapping windows that tile H and W."""
    if reshape.op != "reshape" or v.rank != 4:
        return None
    after = reshape.outputs[0]
    readers = users.get(after, ())
    if len(readers) != 1 or readers[0].op != "reduce_max":
        return None
    red = readers[0]
    if tuple(red.attrs["axes"]) != (2, 4) or red.attrs["keepdims"]:
        return None
    n, h, w, c = v.shape
    if after.rank != 6 or after.shape[0] != n or after.shape[5] != c:
        return None
    _, hp, ph, wp, pw, _ = after.shape
    if hp * ph != h or wp * pw != w or ph * pw == 1:
        return None
    return (ph, pw)


def _merge_siblings(graph: Graph, members: dict, kind_of: dict, users) -> None:
    """Elementwise loops over one shape that do not feed each other become one loop
    (horizontal fusion, as XLA's sibling fusion): an RNN's backward step computes the
    gradients of its four gates in one kernel instead of four, each too small to be
    worth its call and its threads. A loop joins a later one when every reader of its
    values outside the two runs after the later one, where the merged loop is emitted;
    single elementwise nodes join as loops of one."""
    position = {node: i for i, node in enumerate(graph.nodes)}
    grouped = {n for nodes in members.values() for n in nodes}
    loops = {gid: nodes for gid, nodes in members.items() if kind_of[gid] == "elementwise"}
    fresh = max(kind_of, default=-1) + 1
    for node in graph.nodes:
        if node not in grouped and is_elementwise(node) and node.traits.cost > 0:
            kind_of[fresh], loops[fresh] = "elementwise", [node]
            fresh += 1
    order = sorted(loops, key=lambda gid: position[loops[gid][-1]])
    merged: list[int] = []  # open loops, in the order they are emitted
    for gid in order:
        shape = _loop_shape(loops[gid][0])
        at = position[loops[gid][-1]]
        for earlier in list(reversed(merged)):
            before = loops[earlier]
            if _loop_shape(before[0]) != shape:
                continue
            inside = {*before, *loops[gid]}
            readers = (u for n in before for v in n.outputs for u in users.get(v, ()))
            if all(u in inside or position[u] > at for u in readers):
                loops[gid] = sorted(inside, key=position.__getitem__)
                merged.remove(earlier)
                del loops[earlier]
        merged.append(gid)
    for gid in list(members):
        if kind_of[gid] == "elementwise":
            del members[gid]
    for gid in merged:
        if len(loops[gid]) > 1:
            members[gid] = loops[gid]


# A product's result at least this wide sums its columns in its epilogue whatever its
# rank: the GEMM splits so wide a result by columns anyway (16 panels of 32: 4 a thread
# on 4 threads), so the threads keep their share; the separate sum of the encoder's
# [N, 128, 512] GELU gradient had read 8 MB again (1.6% of the train step).
WIDE_SUM_COLUMNS = 512


def _wide(v: Value) -> bool:
    return isinstance(v.shape[-1], int) and v.shape[-1] >= WIDE_SUM_COLUMNS


def _add_column_sums(
    graph: Graph, members: dict[int, list[Node]], kind_of: dict, users: dict
) -> None:
    """A sum over the rows of a matrix product's epilogue value (a bias gradient) joins
    the product's kernel, which accumulates it row by row. A convolution's result summed
    by channel (BatchNormalization's mean) makes a kernel of the two: the convolution
    sums by spans of rows on every thread, where the GEMM would sum on one."""
    group_of = {n: gid for gid, nodes in members.items() for n in nodes}
    position = {node: i for i, node in enumerate(graph.nodes)}
    for node in graph.nodes:
        if not _is_column_sum(node) or node in group_of:
            continue
        producer = node.inputs[0].node
        gid = group_of.get(producer)
        alone = gid is None and producer is not None and _is_conv(producer)
        if not alone and (gid is None or kind_of[gid] != "matmul"):
            continue
        nodes = [producer] if alone else members[gid]
        if node.inputs[0].rank > 2 and not _is_conv(nodes[0]) and not _wide(node.inputs[0]):
            continue  # the GEMM would sum [N, T, F]'s columns on one thread a column chunk
        # The group is then emitted at the sum: every other user of its values must
        # come after it.
        inside = {*nodes, node}
        outside = (u for n in nodes for v in n.outputs for u in users.get(v, ()))
        if not all(u in inside or position[u] > position[node] for u in outside):
            continue
        if alone:
            gid = max(kind_of, default=-1) + 1
            kind_of[gid], members[gid] = "matmul", nodes
            group_of[producer] = gid
        members[gid].append(node)
        group_of[node] = gid


def _add_summing_loops(
    graph: Graph, members: dict[int, list[Node]], kind_of: dict, users: dict
) -> None:
    """A loop whose one result sums, by channel, values it makes from a convolution's
    result (and from values made before the convolution) joins the convolution's kernel
    as one more column sum: BatchNormalization's gradient sums dY·(x - mean) over the
    batch, dY the result of the convolution before it, in the same pass that makes dY."""
    group_of = {n: gid for gid, nodes in members.items() for n in nodes}
    position = {node: i for i, node in enumerate(graph.nodes)}
    outputs = {v for _, v in graph.outputs}

    def emitted(node: Node) -> int:  # a group is emitted at its last node
        gid = group_of.get(node)
        return position[node] if gid is None else max(position[n] for n in members[gid])

    for gid, nodes in list(members.items()):
        sums = [n for n in nodes if n.traits.reduction is not None]
        if kind_of[gid] != "reduce" or len(sums) != 1 or not _is_column_sum(sums[0]):
            continue
        inside = set(nodes)
        made = [v for n in nodes if n is not sums[0] for v in n.outputs]
        if any(v in outputs or any(u not in inside for u in users.get(v, ())) for v in made):
            continue  # a value of the loop is needed elsewhere
        external = [v for n in nodes for v in n.inputs if v.node not in inside]
        products = {group_of.get(v.node) for v in external if v.node is not None}
        products = [g for g in products if g is not None and kind_of[g] == "matmul"]
        if not products:
            continue
        # The latest product: values of earlier ones are made before it.
        target = max(products, key=lambda g: position[members[g][0]])
        if not _is_conv(members[target][0]):
            continue
        conv = members[target][0]
        shape = _loop_shape(conv)
        first = position[conv]
        merged = sorted({*members[target], *nodes}, key=position.__getitem__)
        later = (u for n in members[target] for v in n.outputs for u in users.get(v, ()))
        if (
            sums[0].inputs[0].shape != shape
            or not all(
                v.node is None or v.node in merged or emitted(v.node) < first for v in external
            )
            or not _epilogue_fits([n for n in nodes if n is not sums[0]], shape)
            or not all(body_may_hold("matmul", n.op) for n in nodes)
            or not all(u in merged or emitted(u) > position[sums[0]] for u in later)
        ):
            continue
        members[target] = merged
        del members[gid]
        for n in nodes:
            group_of[n] = target


def _emit_group(
    new: Graph, env: dict, nodes: list[Node], kind: str, users, outputs, extra: dict | None = None
) -> None:
    inside = set(nodes)
    body = Graph(f"fused_{kind}")
    local: dict[Value, Value] = {}
    operands: list[Value] = []
    for node in nodes:
        for v in node.inputs:
            if v in local:
                continue
            if _is_splat(v):
                with body.layer_scope(v.node.layer):
                    local[v] = copy_node(body, v.node, [])[0]
                continue
            local[v] = body.add_input(f"x{len(operands)}", v.type, "data")
            operands.append(env[v])
        with body.layer_scope(node.layer):
            outs = copy_node(body, node, [local[v] for v in node.inputs])
        local.update(zip(node.outputs, outs))
    results = [
        v
        for node in nodes
        for v in node.outputs
        if v in outputs or any(u not in inside for u in users.get(v, []))
    ]
    body.set_outputs([(f"y{i}", local[v]) for i, v in enumerate(results)])
    layer = nodes[-1].layer
    attrs = {"body": body, "kind": kind, **(extra or {})}
    outs = new.emit("fused", operands, attrs, layer=layer)
    env.update(zip(results, outs))
