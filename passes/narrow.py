"""Compute only what is used: each value is computed on the window its users read.

A max pooling whose windows leave a ragged edge (2x2 windows over an 11x11 image read
10x10 of it) slices the image first; the convolution and activation before it then
compute only those 10x10 outputs instead of 121, their patches only the image rows
those outputs read, and the pooling before that only the rows the patches read.

The demand of a value is the bounding box of what its users read of it (everything
when a user is not one of the ops below, or the value is a result of the graph). A
value demanded in part is computed in part when its op is

- elementwise (each operand on the axes it does not broadcast), ``broadcast_to``,
- a matrix product (the rows of its left operand: the axes before the contracted one),
- ``extract_patches`` without padding (the image rows and columns the kept windows read),
- ``conv2d`` (the image rows and columns the kept windows read inside the image, the
  rest as the narrowed convolution's padding),
- a reduction (on its kept axes), a reshape that only splits axes (a pooling's view:
  on the outer part of a split), or a slice;

any other op computes its value whole. Results of the graph are demanded whole, so
the graph's signature never changes. The batch axis is never cut.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kcompile.ir import build as B
from kcompile.ir.graph import Graph, Node, Value
from kcompile.ir.types import BATCH

Window = tuple[tuple[int, int], ...]  # (begin, end) per axis; (0, BATCH) on the batch axis


def narrow_slices(graph: Graph) -> Graph:
    demand = _demands(graph)
    new = Graph(graph.name)
    # old value -> (its new value, the window of the old value that the new one holds)
    env: dict[Value, tuple[Value, Window]] = {}
    for v in graph.inputs:
        env[v] = (new.add_input(v.name, v.type, v.role), _full(v.shape))

    def read(v: Value, window: Window) -> Value:
        held, at = env[v]
        if window == at:
            return held
        begin = [b - a for (b, _), (a, _) in zip(window, at)]
        end = [BATCH if e == BATCH else e - a for (_, e), (a, _) in zip(window, at)]
        return B.slice_(held, begin, end)

    for node in graph.nodes:
        if all(o not in demand for o in node.outputs):
            continue  # nothing reads it: dead
        with new.layer_scope(node.layer):
            window = demand.get(node.outputs[0])
            if _narrows(node, window):
                operands = _RULES[_rule_name(node)][0](node, window)
                ins = [read(u, w) for u, w in zip(node.inputs, operands)]
                env[node.outputs[0]] = (_RULES[_rule_name(node)][1](new, node, ins, window), window)
                continue
            ins = [read(u, _full(u.shape)) for u in node.inputs]
            outs = new.emit(node.op, ins, dict(node.attrs), layer=node.layer)
            for old, value in zip(node.outputs, outs):
                env[old] = (value, _full(old.shape))
    new.set_outputs([(name, read(v, _full(v.shape))) for name, v in graph.outputs])
    return new


def _demands(graph: Graph) -> dict[Value, Window]:
    """The window of each live value its users read (a bounding box over the users)."""
    demand: dict[Value, Window] = {v: _full(v.shape) for _, v in graph.outputs}
    for node in reversed(graph.nodes):
        windows = [demand.get(o) for o in node.outputs]
        if all(w is None for w in windows):
            continue
        out = node.outputs[0]
        operands = (
            _RULES[_rule_name(node)][0](node, windows[0]) if _narrows(node, windows[0]) else None
        )
        if operands is None:
            if len(node.outputs) == 1 and windows[0] != _full(out.shape):
                demand[out] = _full(out.shape)  # computed whole after all
            operands = [_full(u.shape) for u in node.inputs]
        for u, w in zip(node.inputs, operands):
            demand[u] = w if u not in demand else _union(demand[u], w)
    return demand


def _full(shape: Sequence) -> Window:
    return tuple((0, d) for d in shape)


def _union(a: Window, b: Window) -> Window:
    return tuple(
        (0, BATCH) if BATCH in (ea, eb) else (min(ba, bb), max(ea, eb))
        for (ba, ea), (bb, eb) in zip(a, b)
    )


def _size(window: Window) -> tuple:
    return tuple(BATCH if e == BATCH else e - b for b, e in window)


def _rule_name(node: Node) -> str | None:
    if node.op in _RULES:
        return node.op
    elementwise = node.traits.is_elementwise and node.inputs and len(node.outputs) == 1
    return "elementwise" if elementwise else None


def _narrows(node: Node, window: Window | None) -> bool:
    """Whether ``node`` is computed on (or, a slice, reads) part of its operands: a
    slice always, another op with a rule when part of its result is demanded."""
    if window is None or len(node.outputs) != 1 or _rule_name(node) is None:
        return False
    return node.op == "slice" or window != _full(node.outputs[0].shape)


# --- the ops: (operand windows for a result window, or None; the narrowed op) ---------


def _operand_window(operand: Value, window: Window) -> Window:
    """The window of an operand broadcast to the result (aligned on the right)."""
    lead = len(window) - operand.rank
    return tuple((0, 1) if d == 1 else window[lead + a] for a, d in enumerate(operand.shape))


def _same_op(graph: Graph, node: Node, ins: list[Value], _window: Window) -> Value:
    return graph.emit(node.op, ins, dict(node.attrs), layer=node.layer)[0]


def _elementwise_windows(node: Node, window: Window):
    return [_operand_window(u, window) for u in node.inputs]


def _broadcast_to(graph: Graph, node: Node, ins: list[Value], window: Window) -> Value:
    return B.broadcast_to(ins[0], _size(window))


def _matmul_windows(node: Node, window: Window):
    a, b = node.inputs
    if node.attrs["transpose_a"] or b.rank != 2 or window[-1] != (0, node.outputs[0].shape[-1]):
        return None
    return [(*window[:-1], (0, a.shape[-1])), _full(b.shape)]


def _patches_windows(node: Node, window: Window):
    x = node.inputs[0]
    if any(node.attrs["padding"]) or window[3] != (0, node.outputs[0].shape[3]):
        return None
    image = [window[0]]
    for axis in (1, 2):
        (begin, end), k = window[axis], node.attrs["kernel"][axis - 1]
        stride, dilation = node.attrs["strides"][axis - 1], node.attrs["dilation"][axis - 1]
        image.append((begin * stride, (end - 1) * stride + (k - 1) * dilation + 1))
    image.append((0, x.shape[3]))
    return [tuple(image)]


def _conv_windows(node: Node, window: Window):
    """A convolution: the image rows and columns its kept outputs read (inside the
    image: the rest is padding), and the whole kernel."""
    x, w = node.inputs
    if window[3] != (0, node.outputs[0].shape[3]):
        return None
    image = [window[0]]
    for axis, (low, _) in zip((1, 2), _conv_padding(node, window)):
        begin = (
            window[axis][0] * node.attrs["strides"][axis - 1]
            - node.attrs["padding"][2 * (axis - 1)]
        )
        read = _conv_read(node, window, axis)
        image.append((begin + low, begin + low + read))
    image.append((0, x.shape[3]))
    return [tuple(image), _full(w.shape)]


def _conv_read(node: Node, window: Window, axis: int) -> int:
    """How many image rows (axis 1) or columns (axis 2) inside the image the kept
    outputs read."""
    (begin, end), k = window[axis], node.inputs[1].shape[axis - 1]
    stride, dilation = node.attrs["strides"][axis - 1], node.attrs["dilation"][axis - 1]
    (low, high) = _conv_padding(node, window)[axis - 1]
    return (end - 1 - begin) * stride + (k - 1) * dilation + 1 - low - high


def _conv_padding(node: Node, window: Window) -> list[tuple[int, int]]:
    """(before, after) padding of the narrowed convolution on each spatial axis: the
    part of the kept windows outside the image."""
    x, w = node.inputs
    pads = []
    for axis in (1, 2):
        (begin, end), k = window[axis], w.shape[axis - 1]
        stride, dilation = node.attrs["strides"][axis - 1], node.attrs["dilation"][axis - 1]
        low = begin * stride - node.attrs["padding"][2 * (axis - 1)]
        high = low + (end - 1 - begin) * stride + (k - 1) * dilation + 1
        pads.append((max(0, -low), max(0, high - x.shape[axis])))
    return pads


def _conv(graph: Graph, node: Node, ins: list[Value], window: Window) -> Value:
    (top, bottom), (left, right) = _conv_padding(node, window)
    attrs = {**node.attrs, "padding": (top, bottom, left, right)}
    return graph.emit(node.op, ins, attrs, layer=node.layer)[0]


def _reduce_windows(node: Node, window: Window):
    x, axes = node.inputs[0], node.attrs["axes"]
    kept = iter(window)
    inner = []
    for axis, d in enumerate(x.shape):
        if axis in axes:
            inner.append((0, d))
            if node.attrs["keepdims"]:
                next(kept)
        else:
            inner.append(next(kept))
    return [tuple(inner)]


def _reshape_windows(node: Node, window: Window):
    """A reshape that only splits axes ([N, 26, 26, C] -> [N, 13, 2, 13, 2, C]) cut on the
    outer part of each split, the inner parts whole: the operand's axis is cut to the
    same rows."""
    x, out = node.inputs[0], node.outputs[0]
    groups = _split_groups(x.shape, out.shape)
    if groups is None:
        return None
    inner = []
    for d, (first, last) in zip(x.shape, groups):
        if any(window[p] != (0, out.shape[p]) for p in range(first + 1, last)):
            return None
        rows = 1
        for p in range(first + 1, last):
            rows *= out.shape[p]
        begin, end = window[first]
        inner.append((0, BATCH) if d == BATCH else (begin * rows, end * rows))
    return [tuple(inner)]


def _reshape(graph: Graph, node: Node, ins: list[Value], window: Window) -> Value:
    return B.reshape(ins[0], _size(window))


def _split_groups(before: Sequence, after: Sequence) -> list[tuple[int, int]] | None:
    """For each axis of ``before``, the run of axes of ``after`` it splits into; None
    when the reshape merges axes."""
    groups, at = [], 0
    for d in before:
        start, size = at, 1
        if d == BATCH:
            if at >= len(after) or after[at] != BATCH:
                return None
            groups.append((at, at + 1))
            at += 1
            continue
        while at < len(after) and after[at] != BATCH and size < d:
            size *= after[at]
            at += 1
        while at < len(after) and after[at] == 1 and at > start:  # trailing unit axes
            at += 1
        if size != d or at == start:
            return None
        groups.append((start, at))
    return groups if at == len(after) else None


def _slice_windows(node: Node, window: Window):
    return [
        tuple(
            (0, BATCH) if e == BATCH else (begin + b, begin + e)
            for (b, e), begin in zip(window, node.attrs["begin"])
        )
    ]


def _slice(graph: Graph, node: Node, ins: list[Value], window: Window) -> Value:
    return ins[0]  # its operand was read on exactly this window


_RULES: dict[str, tuple[Callable, Callable]] = {
    "elementwise": (_elementwise_windows, _same_op),
    "broadcast_to": (
        lambda node, window: [_operand_window(node.inputs[0], window)],
        _broadcast_to,
    ),
    "matmul": (_matmul_windows, _same_op),
    "extract_patches": (_patches_windows, _same_op),
    "conv2d": (_conv_windows, _conv),
    "reduce_max": (_reduce_windows, _same_op),
    "reduce_min": (_reduce_windows, _same_op),
    "reduce_sum": (_reduce_windows, _same_op),
    "reshape": (_reshape_windows, _reshape),
    "slice": (_slice_windows, _slice),
}
