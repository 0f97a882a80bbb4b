"""Random op-level IR graphs (a seed names one) and their oracle: the compiled graph
against the reference interpreter in float64 at several batch sizes, every VJP of the
graph (through autodiff) against central differences, and the compiled gradient graph
against float64.

Ops whose domain is limited get operands that respect it (``log(|x| + 0.5)``), so every
graph is valid on any input; exact ties (``max(x, x)``) are allowed, since the gradient
rules define them.
"""

from __future__ import annotations

import random

import numpy as np

from kcompile.ir import BATCH, DType, Graph, TensorType, Value, f32, interpret
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.ir.ops.custom_vjp import custom_vjp, vjp_graph
from kcompile.tools.fuzz.oracle import (
    FORWARD_RTOL,
    compare,
    compare_gradients,
    run_compiled,
    with_gradients,
)

FD_RTOL = 1e-4
FD_EPS = 1e-6
BATCHES = (1, 7, 33)

_UNARY = {
    "neg": B.neg,
    "abs": B.abs,
    "exp": lambda x: B.exp(B.tanh(x) * 3.0),
    "log": lambda x: B.log(B.abs(x) + 0.5),
    "log1p": lambda x: B.log1p(B.abs(x)),
    "sqrt": lambda x: B.sqrt(B.abs(x) + 0.1),
    "tanh": B.tanh,
    "logistic": B.logistic,
    "erf": B.erf,
    "sin": lambda x: B.sin(x * 3.0),
    "cos": lambda x: B.cos(x * 3.0),
    "atan": lambda x: B.atan(x * 3.0),
    "gelu": B.gelu,
    "square": B.square,
    "replica_sum": B.replica_sum,  # one replica: the identity, kept by every pass
}
_BINARY = {
    "add": B.add,
    "sub": B.sub,
    "mul": B.mul,
    "div": lambda a, b: B.div(a, B.abs(b) + 0.5),
    "max": B.maximum,
    "min": B.minimum,
    "pow": lambda a, b: B.power(B.abs(a) + 0.5, B.tanh(b)),
}


# How often each kind of step is drawn.
_STEP_WEIGHTS = {
    "unary": 4,
    "binary": 4,
    "bias": 1,
    "select": 1,
    "reduce": 2,
    "norm": 1,
    "matmul": 2,
    "shape": 3,
    "image": 2,
    "mask": 1,
    "narrow": 1,
    "quantized": 1,
    "int4": 1,
}
# How often a step is a custom gradient rule instead (drawn from a stream of its own, so
# that the graphs of the seeds that draw none are the ones drawn before it existed).
_CUSTOM_SHARE = 0.04
# Ops drawn in f16, whose range ends at 65504: bounded results only.
_F16_SAFE = ("abs", "atan", "cos", "erf", "logistic", "neg", "sin", "tanh")
# Narrow floats against the float32 reference, which rounds as native code does: the
# two differ where f32 results that differ in their last bits round to neighbouring
# narrow values (a few units in the last place of bf16, 2^-8).
NARROW_RTOL = 2**-5


class _Builder:
    def __init__(self, rng: random.Random, custom_rng: random.Random | None = None) -> None:
        self.rng = rng
        self.custom_rng = custom_rng or random.Random(0)
        self.graph = Graph("fuzz")
        self.pool: list[Value] = []
        self.params = 0

    def data(self, shape) -> Value:
        v = self.graph.add_input(f"x{len(self.graph.inputs)}", f32(BATCH, *shape), "data")
        self.pool.append(v)
        return v

    def param(self, shape) -> Value:
        self.params += 1
        return self.graph.add_input(f"w{self.params}", f32(*shape), "param")

    def pick(self, where=lambda v: True) -> Value | None:
        choices = [v for v in self.pool if where(v)]
        if not choices:
            return None
        # The newest values most often: deeper chains.
        return choices[-1 - min(int(self.rng.expovariate(0.7)), len(choices) - 1)]

    def step(self) -> None:
        rng = self.rng
        if self.custom_rng.random() < _CUSTOM_SHARE:
            self.pool.append(self._custom())
            return
        kind = rng.choices(list(_STEP_WEIGHTS), list(_STEP_WEIGHTS.values()))[0]
        made = getattr(self, f"_{kind}")()
        if made is not None:
            self.pool.append(made)

    def _unary(self):
        return _UNARY[self.rng.choice(sorted(_UNARY))](self.pick())

    def _binary(self):
        a = self.pick()
        b = self.pick(lambda v: v.shape == a.shape)
        return _BINARY[self.rng.choice(sorted(_BINARY))](a, b)

    def _bias(self):
        a = self.pick()
        return _BINARY[self.rng.choice(("add", "mul", "max"))](a, self.param(a.shape[-1:]))

    def _select(self):
        a = self.pick()
        b, c = (self.pick(lambda v: v.shape == a.shape) for _ in range(2))
        return B.select(B.gt(a, b), c, a)

    def _image(self):
        """A rank-3 value as a one-channel image: im2col patches or a direct convolution,
        back to rank 3."""
        a = self.pick(lambda v: v.rank == 3)
        if a is None:
            return None
        rng = self.rng
        _, h, w = a.shape
        kernel = (rng.randint(1, min(3, h)), rng.randint(1, min(3, w)))
        strides = (rng.randint(1, 2), rng.randint(1, 2))
        padding = tuple(rng.randint(0, 1) for _ in range(4))
        image = B.reshape(a, (BATCH, h, w, 1))
        if rng.random() < 0.5:
            out = B.extract_patches(
                image, kernel, strides, (1, 1), padding, rng.choice((0.0, -1.0))
            )
        else:
            out = B.conv2d(
                image, self.param((*kernel, 1, rng.randint(1, 3))), strides, (1, 1), padding
            )
        _, oh, ow, c = out.shape
        return B.reshape(out, (BATCH, oh * ow, c))

    def _mask(self):
        """Non-differentiable paths: a comparison cast to f32 times a value, a rounding
        (floor, ceil, round) times a value, or argmax."""
        a = self.pick()
        if self.rng.random() < 0.3:
            rounding = self.rng.choice((B.floor, B.ceil, B.round_))
            return rounding(a * 2.0) * self.pick(lambda v: v.shape == a.shape)
        if self.rng.random() < 0.5 or a.rank < 2:
            b = self.pick(lambda v: v.shape == a.shape)
            return B.cast(B.gt(a, b), f32(1).dtype) * self.pick(lambda v: v.shape == a.shape)
        index = B.cast(B.argmax(a, -1), f32(1).dtype)
        return B.reshape(index, (*index.shape, 1))

    def _narrow(self):
        """A stretch in bf16 or f16: a cast, one to three ops in the narrow dtype (with
        values of the same shape cast too), a cast back to f32."""
        rng = self.rng
        a = self.pick()
        dtype = rng.choice((DType.bf16, DType.f16))
        x = B.cast(a, dtype)
        for _ in range(rng.randint(1, 3)):
            if dtype is DType.f16 or rng.random() < 0.5:
                # (replica_sum, the data-parallel all-reduce, sums f32 gradients only)
                names = _F16_SAFE if dtype is DType.f16 else sorted(set(_UNARY) - {"replica_sum"})
                x = _UNARY[rng.choice(names)](x)
            else:
                other = B.cast(self.pick(lambda v: v.shape == a.shape), dtype)
                x = _BINARY[rng.choice(sorted(_BINARY))](x, other)
        return B.cast(x, DType.f32)

    def _quantized(self):
        """Keras's int8 Dense on a rank-2 value: rows abs-max quantized, an int8 kernel
        (quantized from a float one per column, in the graph), their exact i32 product
        rescaled, and Keras's gradient through the float product (``gradient_via``)."""
        a = self.pick(lambda v: v.rank == 2)
        if a is None:
            return None
        units = self.rng.randint(1, 9)
        w = self.param((a.shape[1], units))
        qa, a_scale = _abs_max_int8(a, -1)
        qw, w_scale = _abs_max_int8(w, 0)
        product = B.cast(B.matmul(qa, qw), DType.f32)
        value = B.div(product, B.mul(a_scale, w_scale))
        return B.gradient_via(value, B.matmul(a, w))

    def _custom(self):
        """Keras's ``custom_gradient``: a function of a value (and a weight) whose gradient
        is a rule given with it (``custom_vjp``), here the true derivative, so that central
        differences check the rule's path; the results as the front end makes them,
        ``gradient_via(value, rule's result)``. Softplus as the docstring writes it, or
        ``(tanh(a), a * w)``, two results whose rule takes both upstream gradients."""
        rng = self.custom_rng
        a = self.pool[-1 - min(int(rng.expovariate(0.7)), len(self.pool) - 1)]
        if rng.random() < 0.5:
            s = B.logistic(a)  # the rule's residual: softplus' derivative
            values = [B.log1p(B.exp(B.neg(B.abs(a)))) + B.maximum(a, 0.0)]
            args, residuals = [a], [s]
            vjp = vjp_graph([a.type], [s.type], lambda u, r: [u[0] * r[0]])
        else:
            w = self.param(a.shape[-1:])
            t = B.tanh(a)
            values, args, residuals = [t, a * w], [a, w], [t, a, w]
            vjp = vjp_graph([t.type, t.type], [v.type for v in residuals], _tanh_and_product_vjp)
        proxies = custom_vjp(values, args, residuals, vjp, "fuzz_custom")
        made = [B.gradient_via(v, p) for v, p in zip(values, proxies)]
        self.pool.extend(made[:-1])
        return made[-1]

    def _int4(self):
        """Keras's int4 Dense on a rank-2 value: its product with a frozen int4 kernel, per
        channel or in groups with scales and zero points (inputs named ``int4_*``, which
        ``_feeds`` fills as the layer's variables hold them and nothing differentiates)."""
        a = self.pick(lambda v: v.rank == 2)
        if a is None:
            return None
        rows, units = a.shape[1], self.rng.randint(1, 20)
        self.params += 1
        n, g = self.params, self.graph
        packed = g.add_input(
            f"int4_packed{n}", TensorType(DType.i8, (rows, (units + 1) // 2)), "state"
        )
        grouped = ()
        if self.rng.random() < 0.5:
            groups = self.rng.randint(1, rows)
            grouped = (
                g.add_input(f"int4_scale{n}", f32(groups, units), "state"),
                g.add_input(f"int4_zero{n}", TensorType(DType.i8, (groups, units)), "state"),
                g.add_input(f"int4_g_idx{n}", f32(rows), "state"),
            )
        return B.matmul(a, B.dequantize_int4(packed, units, grouped))

    def _reduce(self):
        a = self.pick(lambda v: v.rank > 1)
        if a is None:
            return None
        axis = self.rng.randrange(1, a.rank)
        fn = self.rng.choices((B.reduce_sum, B.reduce_max, B.reduce_prod), (6, 3, 1))[0]
        out = fn(a, axis, keepdims=self.rng.random() < 0.5)
        return out if out.rank > 1 else B.reshape(out, (BATCH, 1))

    def _norm(self):
        a = self.pick(lambda v: v.rank > 1)
        if a is None:
            return None
        return B.layer_norm(a, self.rng.choice((1e-3, 1e-5, 0.5)))

    def _matmul(self):
        a = self.pick(lambda v: v.rank in (2, 3))
        if a is None:
            return None
        if a.rank == 3:
            return self._batch_matmul(a)
        units = self.rng.randint(1, 9)
        if self.rng.random() < 0.5:
            return B.matmul(a, self.param((a.shape[1], units)))
        return B.matmul(a, self.param((units, a.shape[1])), transpose_b=True)

    def _batch_matmul(self, a: Value) -> Value:
        """A product of stacked matrices: with another value that fits, else with itself
        (a Gram matrix, both operands one value)."""
        rng = self.rng
        ta, tb = rng.random() < 0.3, rng.random() < 0.5
        depth = a.shape[1] if ta else a.shape[2]
        b = self.pick(lambda v: v.rank == 3 and v.shape[2 if tb else 1] == depth)
        return B.batch_matmul(
            a, a if b is None else b, transpose_a=ta, transpose_b=tb if b is not None else not ta
        )

    def _shape(self):
        rng = self.rng
        a = self.pick()
        op = rng.choice(("transpose", "reshape", "slice", "concat", "pad", "broadcast", "reverse"))
        if op == "transpose" and a.rank == 3:
            return B.transpose(a, (0, 2, 1))
        if op == "reshape" and a.rank == 3:
            return B.reshape(a, (BATCH, a.shape[1] * a.shape[2]))
        if op == "reshape" and a.rank == 2 and a.shape[1] % 2 == 0:
            return B.reshape(a, (BATCH, 2, a.shape[1] // 2))
        last = a.shape[-1]
        if op == "slice" and last > 1:
            begin = rng.randrange(last - 1)
            end = rng.randint(begin + 1, last)
            return B.slice_(a, (0,) * (a.rank - 1) + (begin,), (*a.shape[:-1], end))
        if op == "concat":
            b = self.pick(lambda v: v.rank == a.rank and v.shape[:-1] == a.shape[:-1])
            return B.concat([a, b], -1)
        if op == "pad":
            low, high = rng.randint(0, 2), rng.randint(0, 2)
            return B.pad(a, (0,) * (a.rank - 1) + (low,), (0,) * (a.rank - 1) + (high,))
        if op == "reverse" and a.rank > 1:
            return B.reverse(a, rng.randrange(1, a.rank))
        if op == "broadcast" and last == 1:
            return B.broadcast_to(a, (*a.shape[:-1], rng.randint(2, 5)))
        return None


def _tanh_and_product_vjp(up: list[Value], res: list[Value]) -> list[Value]:
    """d/da and d/dw of (tanh(a), a * w) for the upstream gradients ``up``."""
    (u_tanh, u_product), (t, a, w) = up, res
    return [u_tanh * (1.0 - t * t) + u_product * w, B.sum_to(u_product * a, w.shape)]


def _abs_max_int8(x: Value, axis: int) -> tuple[Value, Value]:
    """Keras's ``abs_max_quantize``: int8 values and the scale 127 / (max |x| + eps)."""
    scale = B.div(127.0, B.add(B.reduce_max(B.abs(x), axis, keepdims=True), 1e-7))
    rounded = B.round_(B.mul(x, scale))
    return B.cast(B.minimum(B.maximum(rounded, -127.0), 127.0), DType.i8), scale


def random_graph(seed: int) -> Graph:
    """The graph ``seed`` names: outputs ``out0``.. and a scalar ``loss``."""
    rng = random.Random(seed)
    build = _Builder(rng, random.Random(f"custom {seed}"))
    for _ in range(rng.randint(1, 3)):
        shape = (
            (rng.randint(1, 6),) if rng.random() < 0.6 else (rng.randint(1, 4), rng.randint(1, 4))
        )
        build.data(shape)
    for _ in range(rng.randint(2, 10)):
        build.step()
    outs = build.pool[-rng.randint(1, 2) :]
    loss = None
    for out in outs:
        # A weighted sum, so every element's gradient differs.
        size = int(np.prod(out.shape[1:]))
        weights = B.const_array(
            build.graph, np.linspace(-1.0, 1.5, size).tolist(), f32(1).dtype, out.shape[1:]
        )
        term = B.reduce_sum(out * weights)
        loss = term if loss is None else loss + term
    build.graph.set_outputs([*((f"out{i}", v) for i, v in enumerate(outs)), ("loss", loss)])
    return build.graph


def _feeds(graph: Graph, batch: int, seed: int) -> dict:
    """Normal floats; an int4 kernel's bytes any bytes, its zero points in [-8, 7] and its
    rows' groups spread over its scales' groups, as Keras's int4 variables hold them."""
    rng = np.random.default_rng(seed)
    shapes = {v.name: v.shape for v in graph.inputs}
    feeds = {}
    for v in graph.inputs:
        shape = v.type.concrete_shape(batch)
        if v.name.startswith("int4_g_idx"):
            groups = shapes[v.name.replace("g_idx", "scale")][0]
            feeds[v.name] = (np.arange(shape[0]) * groups // shape[0]).astype(np.float32)
        elif v.dtype is DType.i8:
            low, high = (-8, 8) if v.name.startswith("int4_zero") else (-128, 128)
            feeds[v.name] = rng.integers(low, high, size=shape).astype(np.int8)
        else:
            feeds[v.name] = rng.normal(size=shape).astype(np.float32)
    return feeds


def _differentiable(graph: Graph) -> list[Value]:
    """The inputs gradients are checked for: all but an int4 kernel's (frozen)."""
    return [v for v in graph.inputs if not v.name.startswith("int4_")]


def check_graph(graph: Graph, seed: int = 0) -> None:
    """Compiled forward and gradients against float64, autodiff against differences."""
    from kcompile.ir.build import clone

    # Narrow floats are rounded in float32 runs only: their oracle is the float32
    # reference, float64 checks the gradient rules (where nothing is rounded). So are
    # quantized products, whose roundings to int8 steps float64 would place elsewhere.
    narrow = _has_narrow_floats(graph) or _has_integer_products(graph)
    oracle, rtol = (np.float32, NARROW_RTOL) if narrow else (np.float64, FORWARD_RTOL)
    for batch in BATCHES:
        feeds = _feeds(graph, batch, seed)
        want = interpret(graph, feeds, oracle)
        got = run_compiled(clone(graph), feeds)
        for name, _ in graph.outputs:
            compare("forward", f"batch {batch}, {name}", got[name], want[name], rtol)
    grad_graph = clone(graph)
    with_gradients(grad_graph, _differentiable(grad_graph))
    feeds = _feeds(graph, 3, seed)
    want = interpret(grad_graph, feeds, np.float64)
    _check_differences(graph, feeds, want)
    got = run_compiled(clone(grad_graph), feeds)
    if narrow:
        want = interpret(grad_graph, feeds, np.float32)
        for name, _ in grad_graph.outputs:
            compare("gradients", name, got[name], want[name], NARROW_RTOL)
    else:
        compare_gradients(grad_graph, got, want)


def _has_narrow_floats(graph: Graph) -> bool:
    return any(v.dtype.is_narrow_float for node in graph.nodes for v in node.outputs)


def _has_integer_products(graph: Graph) -> bool:
    """A quantized product's ``gradient_via`` (not a custom rule's, whose proxy is a
    ``custom_vjp`` result: the rules drawn are true derivatives)."""
    return any(
        node.op == "gradient_via" and getattr(node.inputs[1].node, "op", None) != "custom_vjp"
        for node in graph.nodes
    )


def _check_differences(graph: Graph, feeds: dict, autodiff: dict) -> None:
    if _has_integer_products(graph):
        # The gradient of a quantized product is by definition not its derivative (a
        # step function's): the reference's autodiff is the oracle there.
        return
    for v in _differentiable(graph):
        numeric = numeric_gradient(graph, feeds, v.name, eps=FD_EPS)
        compare("vjp", f"d loss / d {v.name}", autodiff[f"grad/{v.name}"], numeric, FD_RTOL, 1e-6)
