"""Functions that emit primitive ops into the graph of their operands.

Layers, losses, optimizers and gradient rules are written with these, so they
read like the math they implement. Python numbers become constants of the
other operand's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

from kcompile.ir.graph import Graph, IRError, Value
from kcompile.ir.types import DType, Shape, TensorType, normalize_axes

Operand = Value | float | int | bool


def graph_of(*xs: object) -> Graph:
    for x in xs:
        if isinstance(x, Value):
            return x.graph
    raise IRError("at least one operand must be an IR value")


def const(
    graph: Graph, value: float | int | bool, dtype: DType = DType.f32, shape: Shape = ()
) -> Value:
    """A constant filled with ``value`` (shape may contain ``N``)."""
    if dtype.is_float:
        value = float(value)
    elif dtype.is_int:
        value = int(value)
    else:
        value = bool(value)
    return graph.emit(
        "constant", [], {"value": value, "dtype": dtype.value, "shape": tuple(shape)}
    )[0]


def const_array(graph: Graph, data: Sequence, dtype: DType, shape: Shape) -> Value:
    """A constant with explicit (flattened, row-major) data and a static shape."""
    return graph.emit(
        "constant", [], {"value": tuple(data), "dtype": dtype.value, "shape": tuple(shape)}
    )[0]


def lift(x: Operand, like: Value) -> Value:
    if isinstance(x, Value):
        return x
    return const(like.graph, x, like.dtype)


def _binary(op: str, a: Operand, b: Operand) -> Value:
    g = graph_of(a, b)
    like = a if isinstance(a, Value) else b
    return g.emit1(op, [lift(a, like), lift(b, like)])


def add(a: Operand, b: Operand) -> Value:
    return _binary("add", a, b)


def sub(a: Operand, b: Operand) -> Value:
    return _binary("sub", a, b)


def mul(a: Operand, b: Operand) -> Value:
    return _binary("mul", a, b)


def div(a: Operand, b: Operand) -> Value:
    return _binary("div", a, b)


def maximum(a: Operand, b: Operand) -> Value:
    return _binary("max", a, b)


def minimum(a: Operand, b: Operand) -> Value:
    return _binary("min", a, b)


def power(a: Operand, b: Operand) -> Value:
    return _binary("pow", a, b)


def eq(a: Operand, b: Operand) -> Value:
    return _binary("eq", a, b)


def ne(a: Operand, b: Operand) -> Value:
    return _binary("ne", a, b)


def lt(a: Operand, b: Operand) -> Value:
    return _binary("lt", a, b)


def le(a: Operand, b: Operand) -> Value:
    return _binary("le", a, b)


def gt(a: Operand, b: Operand) -> Value:
    return _binary("gt", a, b)


def ge(a: Operand, b: Operand) -> Value:
    return _binary("ge", a, b)


def logical_and(a: Value, b: Value) -> Value:
    return _binary("and", a, b)


def logical_or(a: Value, b: Value) -> Value:
    return _binary("or", a, b)


def _unary(op: str, x: Value) -> Value:
    return x.graph.emit1(op, [x])


def neg(x: Value) -> Value:
    return _unary("neg", x)


def exp(x: Value) -> Value:
    return _unary("exp", x)


def log(x: Value) -> Value:
    return _unary("log", x)


def log1p(x: Value) -> Value:
    return _unary("log1p", x)


def sqrt(x: Value) -> Value:
    return _unary("sqrt", x)


def tanh(x: Value) -> Value:
    return _unary("tanh", x)


def logistic(x: Value) -> Value:
    return _unary("logistic", x)


def abs(x: Value) -> Value:
    return _unary("abs", x)


def sign(x: Value) -> Value:
    return _unary("sign", x)


def floor(x: Value) -> Value:
    return _unary("floor", x)


def ceil(x: Value) -> Value:
    return _unary("ceil", x)


def round_(x: Value) -> Value:
    """The nearest integer, ties to even (numpy's and jax's round)."""
    return _unary("round", x)


def erf(x: Value) -> Value:
    return _unary("erf", x)


def sin(x: Value) -> Value:
    return _unary("sin", x)


def cos(x: Value) -> Value:
    return _unary("cos", x)


def atan(x: Value) -> Value:
    return _unary("atan", x)


def gelu(x: Value) -> Value:
    """x·Φ(x), the exact (erf) form."""
    return _unary("gelu", x)


def logical_not(x: Value) -> Value:
    return _unary("not", x)


def square(x: Value) -> Value:
    return mul(x, x)


def select(cond: Value, a: Operand, b: Operand) -> Value:
    like = a if isinstance(a, Value) else b
    if not isinstance(like, Value):
        raise IRError("select needs at least one value branch")
    return cond.graph.emit1("select", [cond, lift(a, like), lift(b, like)])


def cast(x: Value, dtype: DType) -> Value:
    if x.dtype is dtype:
        return x
    return x.graph.emit1("cast", [x], dtype=dtype.value)


def reduce_sum(x: Value, axes: int | Sequence[int] | None = None, keepdims: bool = False) -> Value:
    axes = normalize_axes(tuple(axes) if isinstance(axes, Sequence) else axes, x.rank)
    return x.graph.emit1("reduce_sum", [x], axes=axes, keepdims=keepdims)


def reduce_prod(x: Value, axes: int | Sequence[int] | None = None, keepdims: bool = False) -> Value:
    axes = normalize_axes(tuple(axes) if isinstance(axes, Sequence) else axes, x.rank)
    return x.graph.emit1("reduce_prod", [x], axes=axes, keepdims=keepdims)


def reduce_max(x: Value, axes: int | Sequence[int] | None = None, keepdims: bool = False) -> Value:
    axes = normalize_axes(tuple(axes) if isinstance(axes, Sequence) else axes, x.rank)
    return x.graph.emit1("reduce_max", [x], axes=axes, keepdims=keepdims)


def argmax(x: Value, axis: int = -1) -> Value:
    return x.graph.emit1("argmax", [x], axis=normalize_axes(axis, x.rank)[0])


def numel(x: Value, axes: int | Sequence[int] | None = None) -> Value:
    """Number of elements of ``x`` over ``axes``, as an f32 scalar (``N`` is read at run time)."""
    axes = normalize_axes(tuple(axes) if isinstance(axes, Sequence) else axes, x.rank)
    return x.graph.emit1("numel", [x], axes=axes)


def mean(x: Value, axes: int | Sequence[int] | None = None, keepdims: bool = False) -> Value:
    if x.dtype.is_narrow_float:  # summed and divided in f32, rounded once (as jnp.mean)
        return cast(mean(cast(x, DType.f32), axes, keepdims), x.dtype)
    return div(reduce_sum(x, axes, keepdims), numel(x, axes))


def layer_norm(x: Value, epsilon: float) -> Value:
    """``(x - mean) / sqrt(variance + epsilon)`` over the last axis."""
    return x.graph.emit1("layer_norm", [x], epsilon=float(epsilon))


def reshape(x: Value, shape: Shape) -> Value:
    shape = tuple(shape)
    if shape == x.shape:
        return x
    return x.graph.emit1("reshape", [x], shape=shape)


def transpose(x: Value, perm: Sequence[int]) -> Value:
    return x.graph.emit1("transpose", [x], perm=tuple(perm))


def broadcast_to(x: Value, shape: Shape) -> Value:
    shape = tuple(shape)
    if shape == x.shape:
        return x
    return x.graph.emit1("broadcast_to", [x], shape=shape)


def slice_(x: Value, begin: Sequence[int], end: Sequence[int | str]) -> Value:
    return x.graph.emit1("slice", [x], begin=tuple(begin), end=tuple(end))


def pad(x: Value, low: Sequence[int], high: Sequence[int], value: float = 0.0) -> Value:
    return x.graph.emit1("pad", [x], low=tuple(low), high=tuple(high), value=float(value))


def concat(xs: Sequence[Value], axis: int) -> Value:
    axis = normalize_axes(axis, xs[0].rank)[0]
    return xs[0].graph.emit1("concat", list(xs), axis=axis)


def matmul(a: Value, b: Value, transpose_a: bool = False, transpose_b: bool = False) -> Value:
    return a.graph.emit1("matmul", [a, b], transpose_a=transpose_a, transpose_b=transpose_b)


def batch_matmul(a: Value, b: Value, transpose_a: bool = False, transpose_b: bool = False) -> Value:
    """Products of the matrices stacked along the leading axes both share."""
    return a.graph.emit1("batch_matmul", [a, b], transpose_a=transpose_a, transpose_b=transpose_b)


def one_hot(indices: Value, depth: int) -> Value:
    return indices.graph.emit1("one_hot", [indices], depth=int(depth))


def take(table: Value, indices: Value) -> Value:
    return table.graph.emit1("take", [table, indices])


def scatter_add(indices: Value, updates: Value, rows: int) -> Value:
    return updates.graph.emit1("scatter_add", [indices, updates], rows=int(rows))


def replica_sum(x: Value) -> Value:
    """``x`` summed over the replicas of a data-parallel job (itself with one)."""
    return x.graph.emit1("replica_sum", [x])


def random_uniform(counter: Value, shape: Shape, seed: int) -> Value:
    return counter.graph.emit1("random_uniform", [counter], shape=tuple(shape), seed=int(seed))


def sum_to(x: Value, shape: Shape) -> Value:
    """Sum ``x`` down to ``shape``: the adjoint of broadcasting ``shape`` to ``x.shape``."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    lead = x.rank - len(shape)
    axes = list(range(lead))
    for i, d in enumerate(shape):
        if d == 1 and x.shape[lead + i] != 1:
            axes.append(lead + i)
    out = reduce_sum(x, axes, keepdims=False) if axes else x
    return reshape(out, shape)


def zeros(graph: Graph, type: TensorType) -> Value:
    return const(graph, 0, type.dtype, type.shape)


def dequantize_int4(packed: Value, columns: int, grouped: Sequence[Value] = ()) -> Value:
    """An int4 kernel's f32 values (``ir.ops.int4``): the nibbles of ``packed``, or with
    ``grouped`` = (scale, zero, g_idx) each row's ``(q - zero) * scale``."""
    return packed.graph.emit1("dequantize_int4", [packed, *grouped], columns=int(columns))


def matmul_int4(a: Value, kernel: Sequence[Value], columns: int) -> Value:
    """``a · dequantize_int4(*kernel)`` with the kernel unpacked as the product packs it."""
    return a.graph.emit1("matmul_int4", [a, *kernel], columns=int(columns))


def stop_gradient(x: Value) -> Value:
    return x.graph.emit1("stop_gradient", [x])


def gradient_via(value: Value, proxy: Value) -> Value:
    """``value``, differentiated as if it were ``proxy`` (of the same type): the backward
    pass sends its gradient to ``proxy``, none to ``value``; after autodiff the proxy's
    forward computation is dead code."""
    return value.graph.emit1("gradient_via", [value, proxy])


def extract_patches(
    x: Value, kernel, strides=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0), value: float = 0.0
) -> Value:
    """im2col: x[N,H,W,C] -> [N,OH,OW,KH*KW*C] (see ir/ops/patches.py)."""
    return x.graph.emit1(
        "extract_patches",
        [x],
        kernel=tuple(kernel),
        strides=tuple(strides),
        dilation=tuple(dilation),
        padding=tuple(padding),
        value=float(value),
    )


def fold_patches(
    p: Value, image, kernel, strides=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0)
) -> Value:
    """col2im: the adjoint of ``extract_patches`` for an image of size ``image=(H, W)``."""
    return p.graph.emit1(
        "fold_patches",
        [p],
        image=tuple(image),
        kernel=tuple(kernel),
        strides=tuple(strides),
        dilation=tuple(dilation),
        padding=tuple(padding),
    )


def inline(graph: Graph, body: Graph, args: Sequence[Value]) -> list[Value]:
    """Copy ``body``'s nodes into ``graph`` with ``args`` for its inputs; its outputs."""
    if len(args) != len(body.inputs):
        raise IRError(f"inline of {body.name}: {len(args)} arguments for {len(body.inputs)} inputs")
    env = dict(zip(body.inputs, args))
    for node in body.nodes:
        outs = graph.emit(node.op, [env[v] for v in node.inputs], dict(node.attrs), node.layer)
        env.update(zip(node.outputs, outs))
    return [env[v] for _, v in body.outputs]


def clone(body: Graph) -> Graph:
    """A copy of ``body`` (without its memory plan) whose loop bodies are copies too, so
    that passes may rewrite it in place without touching the original."""
    copy = Graph(body.name)
    args = [copy.add_input(v.name, v.type, v.role) for v in body.inputs]
    env = dict(zip(body.inputs, args))
    for node in body.nodes:
        attrs = dict(node.attrs)
        if node.traits.nested_graph:
            attrs["body"] = clone(attrs["body"])
        outs = copy.emit(node.op, [env[v] for v in node.inputs], attrs, node.layer)
        env.update(zip(node.outputs, outs))
    copy.set_outputs([(name, env[v]) for name, v in body.outputs])
    return copy


def reverse(x: Value, axis: int) -> Value:
    """``x`` with the order of ``axis`` reversed (numpy's flip)."""
    return x.graph.emit1("reverse", [x], axis=normalize_axes(axis, x.rank)[0])


def conv2d(x: Value, w: Value, strides=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0)) -> Value:
    """A direct convolution (channels last); the layers use patches and a product."""
    return x.graph.emit1(
        "conv2d",
        [x, w],
        strides=tuple(strides),
        dilation=tuple(dilation),
        padding=tuple(padding),
    )


def _install_arithmetic() -> None:
    """``a + b``, ``2.0 * x``, ``-x`` ... on values build these ops (the graph module
    cannot import this one, which imports it)."""
    binary = {"add": add, "sub": sub, "mul": mul, "truediv": div}
    for name, fn in binary.items():
        setattr(Value, f"__{name}__", lambda self, other, fn=fn: fn(self, other))
        setattr(Value, f"__r{name}__", lambda self, other, fn=fn: fn(other, self))
    Value.__neg__ = neg


_install_arithmetic()
