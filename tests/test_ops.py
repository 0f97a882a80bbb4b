"""Every op: the reference implementation against hand-written numpy, and every
VJP rule against central differences in float64."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from kcompile.ir import BATCH, DType, Graph, TensorType, all_ops, interpret, verify
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.ir.ops.custom_vjp import custom_vjp, vjp_graph
from kcompile.ir.ops.random import mix32
from kcompile.ir.ops.row_gather import gather_rows, scatter_rows
from kcompile.passes import append_gradients
from kcompile.quantizers import unpack_int4

N = 5  # an odd batch size


@dataclass
class Case:
    op: str
    build: object  # (*values) -> Value
    expect: object  # (*arrays) -> array
    inputs: list  # (shape, kind) with kind in f, pos, unit, sep, i<k>, b
    grad: bool = True
    tol: float = 1e-5
    attrs: dict = field(default_factory=dict)


def _custom_tanh(x):
    t = B.tanh(x)
    rule = vjp_graph(
        [t.type], [t.type], lambda ups, res: [B.mul(ups[0], B.sub(1.0, B.mul(res[0], res[0])))]
    )
    return custom_vjp([t], [x], [t], rule, fn="tanh")[0]


def make(shape, kind, rng):
    shape = tuple(N if d == BATCH else d for d in shape)
    if kind == "f":
        return rng.normal(size=shape).astype(np.float32)
    if kind == "pos":
        return rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
    if kind == "unit":
        return rng.uniform(-0.9, 0.9, size=shape).astype(np.float32)
    if kind == "sep":  # distinct values, far from each other and from 0 (no kinks)
        n = int(np.prod(shape))
        vals = (rng.permutation(n) - n / 2 + 0.5) * 0.37
        return vals.reshape(shape).astype(np.float32)
    if kind == "s8":  # bytes, every value (an int4 kernel's: two nibbles each)
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    if kind.startswith("i"):
        return rng.integers(0, int(kind[1:]), size=shape).astype(np.int32)
    if kind == "b":
        return rng.random(size=shape) < 0.5
    raise ValueError(kind)


def dtype_of(kind):
    if kind == "s8":
        return DType.i8
    return DType.i32 if kind.startswith("i") else DType.bool if kind == "b" else DType.f32


def _int4_kernel(packed, scale=None, zero=None, groups=None):
    """An int4 kernel's values as numpy computes them from Keras's ``unpack_int4``."""
    values = unpack_int4(packed, 2 * packed.shape[1] - 1, axis=-1).astype(np.float32)
    if scale is None:
        return values
    return (values - zero[groups].astype(np.float32)) * scale[groups]


def _erf(x):
    return np.vectorize(math.erf)(x)


FILTER_WINDOW = dict(kernel=(2, 3), strides=(2, 1), dilation=(1, 2), padding=(1, 1, 2, 0))


def _direct_conv(x, w, strides, dilation, padding):
    """Convolution by its definition, one output pixel at a time."""
    pt, pb, pl, pr = padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    kh, kw, _, f = w.shape
    oh = (xp.shape[1] - dilation[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (xp.shape[2] - dilation[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.zeros((x.shape[0], oh, ow, f))
    for r in range(oh):
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    pixel = xp[
                        :, r * strides[0] + i * dilation[0], q * strides[1] + j * dilation[1]
                    ]
                    out[:, r, q] += pixel @ w[i, j]
    return out


def _sigmoid(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


S = (BATCH, 7)
CASES = [
    Case("neg", B.neg, np.negative, [(S, "f")]),
    Case("abs", B.abs, np.abs, [(S, "sep")]),
    Case("sign", B.sign, np.sign, [(S, "sep")], grad=False),
    Case("exp", B.exp, np.exp, [(S, "f")]),
    Case("log", B.log, np.log, [(S, "pos")]),
    Case("log1p", B.log1p, np.log1p, [(S, "pos")]),
    Case("sqrt", B.sqrt, np.sqrt, [(S, "pos")]),
    Case("tanh", B.tanh, np.tanh, [(S, "f")]),
    Case("logistic", B.logistic, _sigmoid, [(S, "f")]),
    Case("erf", B.erf, _erf, [(S, "f")]),
    Case("sin", B.sin, np.sin, [(S, "f")]),
    Case("cos", B.cos, np.cos, [(S, "f")]),
    Case("atan", B.atan, np.arctan, [(S, "f")]),
    Case("gelu", B.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), [(S, "f")]),
    Case(
        "gelu_grad",
        lambda x, y: x.graph.emit1("gelu_grad", [x, y]),
        lambda x, y: (
            0.5 * (1 + _erf(x / np.sqrt(2))) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
        ),
        [(S, "f"), (S, "f")],
    ),
    Case(
        "layer_norm",
        lambda x: B.layer_norm(x, 1e-3),
        lambda x: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3),
        [((BATCH, 3, 7), "f")],
    ),
    Case("floor", B.floor, np.floor, [(S, "f")], grad=False),
    Case("ceil", B.ceil, np.ceil, [(S, "f")], grad=False),
    Case("round", B.round_, np.round, [(S, "f")], grad=False),
    Case("stop_gradient", B.stop_gradient, lambda x: x, [(S, "f")], grad=False),
    # Its gradient is the proxy's, none the value's (test_int8_products): with one value
    # for both, the differences see 2 (a VJP that fed the value too would give 4).
    Case(
        "gradient_via",
        lambda x: B.gradient_via(B.mul(x, 2.0), B.mul(x, 2.0)),
        lambda x: 2 * x,
        [(S, "f")],
    ),
    # tanh with its derivative as the rule: the differences check the rule's gradient, and
    # native code its copy of the value (no gradient_via: the node reaches codegen).
    Case("custom_vjp", _custom_tanh, np.tanh, [(S, "f")]),
    Case("not", B.logical_not, np.logical_not, [(S, "b")], grad=False),
    Case("add", B.add, np.add, [(S, "f"), ((7,), "f")]),
    Case("sub", B.sub, np.subtract, [((BATCH, 1), "f"), ((1, 7), "f")]),
    Case("mul", B.mul, np.multiply, [(S, "f"), ((BATCH, 1), "f")]),
    Case("div", B.div, np.divide, [(S, "f"), ((7,), "pos")]),
    Case("max", B.maximum, np.maximum, [(S, "sep"), ((7,), "unit")]),
    Case("min", B.minimum, np.minimum, [(S, "sep"), ((7,), "unit")]),
    Case("pow", B.power, np.power, [(S, "pos"), ((7,), "f")]),
    Case("eq", B.eq, np.equal, [(S, "i3"), ((7,), "i3")], grad=False),
    Case("ne", B.ne, np.not_equal, [(S, "i3"), (S, "i3")], grad=False),
    Case("lt", B.lt, np.less, [(S, "f"), ((7,), "f")], grad=False),
    Case("le", B.le, np.less_equal, [(S, "i3"), ((7,), "i3")], grad=False),
    Case("gt", B.gt, np.greater, [(S, "f"), ((BATCH, 1), "f")], grad=False),
    Case("ge", B.ge, np.greater_equal, [(S, "i3"), (S, "i3")], grad=False),
    Case("and", B.logical_and, np.logical_and, [(S, "b"), ((7,), "b")], grad=False),
    Case("or", B.logical_or, np.logical_or, [(S, "b"), (S, "b")], grad=False),
    Case("select", B.select, np.where, [(S, "b"), (S, "f"), ((7,), "f")]),
    Case(
        "cast",
        lambda x: B.cast(x, DType.i32),
        lambda x: np.trunc(x).astype(np.int32),
        [(S, "f")],
        grad=False,
    ),
    # The gradient flows through a float-to-float cast (one that B.cast elides).
    Case("cast", lambda x: x.graph.emit1("cast", [x], dtype="f32"), lambda x: x, [(S, "f")]),
    # Narrow floats held in f32 (passes/narrow_floats.py): rounded as ml_dtypes rounds.
    Case(
        "round_to",
        lambda x: x.graph.emit1("round_to", [x], dtype="bf16"),
        lambda x: x.astype(DType.bf16.numpy).astype(np.float32),
        [(S, "f")],
        tol=0,
    ),
    Case(
        "round_to",
        lambda x: x.graph.emit1("round_to", [x], dtype="f16"),
        lambda x: x.astype(np.float16).astype(np.float32),
        [(S, "f")],
        tol=0,
    ),
    Case(
        "reduce_sum",
        lambda x: B.reduce_sum(x, (0, 2)),
        lambda x: x.sum((0, 2)),
        [((BATCH, 3, 5), "f")],
    ),
    Case(
        "reduce_max",
        lambda x: B.reduce_max(x, 1, keepdims=True),
        lambda x: x.max(1, keepdims=True),
        [((BATCH, 3, 5), "sep")],
    ),
    Case(
        "reduce_prod",
        lambda x: B.reduce_prod(x, (1,)),
        lambda x: x.prod(1),
        [((BATCH, 4), "unit")],
    ),
    # At the kinks: rows with no zero, one zero and two (negatives become zeros).
    Case(
        "reduce_prod",
        lambda x: B.reduce_prod(B.select(B.lt(x, 0.0), 0.0, x), (1,), keepdims=True),
        lambda x: np.where(x < 0, 0, x).prod(1, keepdims=True),
        [((BATCH, 3), "sep")],
    ),
    Case(
        "argmax",
        lambda x: B.argmax(x, 1),
        lambda x: np.argmax(x, 1).astype(np.int32),
        [((BATCH, 9), "sep")],
        grad=False,
    ),
    Case(
        "numel",
        lambda x: B.numel(x, (0, 1)),
        lambda x: np.float32(x.shape[0] * x.shape[1]),
        [((BATCH, 3, 2), "f")],
        grad=False,
    ),
    Case(
        "reshape",
        lambda x: B.reshape(x, (BATCH, 15)),
        lambda x: x.reshape(len(x), 15),
        [((BATCH, 3, 5), "f")],
    ),
    Case(
        "transpose",
        lambda x: B.transpose(x, (2, 0, 1)),
        lambda x: x.transpose(2, 0, 1),
        [((BATCH, 3, 5), "f")],
    ),
    Case(
        "broadcast_to",
        lambda x: B.broadcast_to(x, (2, 3, 5)),
        lambda x: np.broadcast_to(x, (2, 3, 5)),
        [((3, 1), "f")],
    ),
    Case(
        "broadcast_to",
        lambda x: B.broadcast_to(x, (BATCH, 3, 5)),
        lambda x: np.broadcast_to(x, (N, 3, 5)),
        [((BATCH, 1, 5), "f")],
    ),
    Case(
        "slice",
        lambda x: B.slice_(x, (0, 1, 2), (BATCH, 3, 5)),
        lambda x: x[:, 1:3, 2:5],
        [((BATCH, 4, 6), "f")],
    ),
    Case(
        "reverse",
        lambda x: B.reverse(x, 1),
        lambda x: x[:, ::-1],
        [((BATCH, 4, 3), "f")],
    ),
    Case(
        "pad",
        lambda x: B.pad(x, (0, 1, 2), (0, 2, 0), 0.5),
        lambda x: np.pad(x, ((0, 0), (1, 2), (2, 0)), constant_values=0.5),
        [((BATCH, 3, 5), "f")],
    ),
    Case(
        "concat",
        lambda a, b: B.concat([a, b], 1),
        lambda a, b: np.concatenate([a, b], 1),
        [((BATCH, 3), "f"), ((BATCH, 4), "f")],
    ),
    Case("matmul", B.matmul, lambda a, b: a @ b, [((BATCH, 13), "f"), ((13, 6), "f")], tol=1e-4),
    Case(
        "matmul",
        lambda a, b: B.matmul(a, b, transpose_b=True),
        lambda a, b: a @ b.T,
        [((BATCH, 3, 13), "f"), ((6, 13), "f")],
        tol=1e-4,
    ),
    Case(
        "matmul",
        lambda a, b: B.matmul(a, b, transpose_a=True),
        lambda a, b: np.einsum("nk,nm->km", a, b),
        [((BATCH, 13), "f"), ((BATCH, 6), "f")],
        tol=1e-4,
    ),
    Case(
        "dequantize_int4",
        lambda p: B.dequantize_int4(p, 7),
        _int4_kernel,
        [((6, 4), "s8")],
        grad=False,
    ),
    Case(
        "dequantize_int4",
        lambda p, s, z, g: B.dequantize_int4(p, 7, (s, z, B.cast(g, DType.f32))),
        _int4_kernel,
        [((6, 4), "s8"), ((2, 7), "pos"), ((2, 7), "s8"), ((6,), "i2")],
        grad=False,  # (no gradient: the kernel, its scales and zero points are frozen)
    ),
    Case(
        "matmul_int4",
        lambda a, p: B.matmul_int4(a, [p], 7),
        lambda a, p: a @ _int4_kernel(p),
        [((BATCH, 12), "f"), ((12, 4), "s8")],
        tol=1e-4,
    ),
    Case(
        "matmul_int4",
        lambda a, p, s, z, g: B.matmul_int4(a, [p, s, z, B.cast(g, DType.f32)], 7),
        lambda a, p, s, z, g: a @ _int4_kernel(p, s, z, g),
        [((BATCH, 3, 12), "f"), ((12, 4), "s8"), ((3, 7), "pos"), ((3, 7), "s8"), ((12,), "i3")],
        grad=False,  # (the scale's gradient is none: frozen; the input's is checked above)
        tol=1e-4,
    ),
    Case(
        "batch_matmul",
        B.batch_matmul,
        lambda a, b: a @ b,
        [((BATCH, 2, 3, 7), "f"), ((BATCH, 2, 7, 4), "f")],
        tol=1e-4,
    ),
    Case(
        "batch_matmul",
        lambda a, b: B.batch_matmul(a, b, transpose_b=True),
        lambda a, b: a @ b.swapaxes(-1, -2),
        [((BATCH, 5, 7), "f"), ((BATCH, 4, 7), "f")],
        tol=1e-4,
    ),
    Case(
        "batch_matmul",
        lambda a, b: B.batch_matmul(a, b, transpose_a=True),
        lambda a, b: a.swapaxes(-1, -2) @ b,
        [((BATCH, 7, 5), "f"), ((BATCH, 7, 4), "f")],
        tol=1e-4,
    ),
    Case(
        "batch_matmul",
        lambda a, b: B.batch_matmul(a, b, transpose_a=True, transpose_b=True),
        lambda a, b: a.swapaxes(-1, -2) @ b.swapaxes(-1, -2),
        [((3, 7, 5), "f"), ((3, 4, 7), "f")],
        tol=1e-4,
    ),
    Case(
        "one_hot",
        lambda i: B.one_hot(i, 4),
        lambda i: np.eye(4, dtype=np.float32)[i],
        [((BATCH,), "i4")],
        grad=False,
    ),
    Case("take", B.take, lambda t, i: t[i], [((6, 3), "f"), ((BATCH, 2), "i6")]),
    Case(
        "scatter_add",
        lambda i, u: B.scatter_add(i, u, 6),
        lambda i, u: _scatter(i, u, 6),
        [((BATCH,), "i6"), ((BATCH, 3), "f")],
    ),
    Case(
        "gather_rows",
        gather_rows,
        lambda t, i: np.stack([t[b][i[b]] for b in range(len(i))]),
        [((BATCH, 5, 3), "f"), ((BATCH, 4), "i5")],
    ),
    Case(
        "scatter_rows",
        lambda i, u: scatter_rows(i, u, 5),
        lambda i, u: np.stack([_scatter(i[b], u[b], 5) for b in range(len(i))]),
        [((BATCH, 4), "i5"), ((BATCH, 4, 3), "f")],
    ),
    Case(
        "extract_patches",
        lambda x: B.extract_patches(x, (3, 2), (2, 1), (1, 2), (1, 1, 0, 1)),
        lambda x: naive_patches(x, (3, 2), (2, 1), (1, 2), (1, 1, 0, 1)),
        [((BATCH, 7, 6, 3), "f")],
    ),
    Case(
        "fold_patches",
        lambda p: B.fold_patches(p, (7, 6), (3, 2), (2, 1), (1, 2), (1, 1, 0, 1)),
        lambda p: naive_fold(p, (7, 6), (3, 2), (2, 1), (1, 2), (1, 1, 0, 1)),
        [((BATCH, 4, 5, 18), "f")],
    ),
    Case("constant", None, None, [], grad=False),
    Case("random_uniform", None, None, [], grad=False),
    # The sum over one replica: the identity (data-parallel jobs: tests/test_distribution.py).
    Case("replica_sum", B.replica_sum, lambda x: x, [(S, "f")]),
    Case(
        "conv2d",
        lambda x, w: B.conv2d(x, w, (2, 1), (1, 2), (1, 1, 2, 0)),
        lambda x, w: _direct_conv(x, w, (2, 1), (1, 2), (1, 1, 2, 0)),
        [((BATCH, 6, 7, 3), "f"), ((2, 3, 3, 4), "f")],
        tol=1e-4,
    ),
    Case(
        "conv2d_filter",
        lambda x, dy: x.graph.emit1("conv2d_filter", [x, dy], **FILTER_WINDOW),
        lambda x, dy: (
            naive_patches(x, (2, 3), (2, 1), (1, 2), (1, 1, 2, 0)).reshape(-1, 2 * 3 * 3).T
            @ dy.reshape(-1, 4)
        ).reshape(2, 3, 3, 4),
        [((BATCH, 6, 7, 3), "f"), ((BATCH, 4, 5, 4), "f")],
        tol=1e-4,
    ),
    Case("fused", None, None, [], grad=False),  # tests/test_passes.py
    Case("batch_rows", None, None, [], grad=False),  # tests/test_batch_rows.py
    Case("scan", None, None, [], grad=False),  # tests/test_scan.py
]


def _window_taps(image, grid, kernel, strides, dilation, padding):
    """(a, b, i, j, r, q): window (a, b)'s tap (i, j) reads image pixel (r, q), by the
    definition, for every tap that lands inside the image."""
    (h, w), (oh, ow) = image, grid
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilation
    pt, pl = padding[0], padding[2]
    for a in range(oh):
        for b in range(ow):
            for i in range(kh):
                for j in range(kw):
                    r, q = a * sh + i * dh - pt, b * sw + j * dw - pl
                    if 0 <= r < h and 0 <= q < w:
                        yield a, b, i, j, r, q


def naive_patches(x, kernel, strides, dilation, padding):
    """Receptive fields by explicit loops, as the definition reads."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw), (pt, pb, pl, pr) = kernel, strides, dilation, padding
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, oh, ow, kh, kw, c), np.float32)
    for a, b, i, j, r, q in _window_taps((h, w), (oh, ow), kernel, strides, dilation, padding):
        out[:, a, b, i, j] = x[:, r, q]
    return out.reshape(n, oh, ow, -1)


def naive_fold(p, image, kernel, strides, dilation, padding):
    n, oh, ow, _ = p.shape
    p6 = p.reshape(n, oh, ow, *kernel, -1)
    out = np.zeros((n, *image, p6.shape[-1]), np.float32)
    for a, b, i, j, r, q in _window_taps(image, (oh, ow), kernel, strides, dilation, padding):
        out[:, r, q] += p6[:, a, b, i, j]
    return out


def _scatter(i, u, rows):
    out = np.zeros((rows, u.shape[-1]), np.float32)
    for k, r in enumerate(i):
        out[r] += u[k]
    return out


def _graph_for(case, arrays):
    g = Graph(case.op)
    vals = []
    for k, ((shape, kind), _a) in enumerate(zip(case.inputs, arrays)):
        role = "param" if dtype_of(kind) is DType.f32 else "data"
        vals.append(g.add_input(f"x{k}", TensorType(dtype_of(kind), tuple(shape)), role))
    y = case.build(*vals)
    return g, vals, y


ELEMENT_CASES = [c for c in CASES if c.build is not None]


def test_every_op_has_a_case():
    assert {c.op for c in CASES} == set(all_ops())


@pytest.mark.parametrize("case", ELEMENT_CASES, ids=lambda c: c.op)
def test_reference_matches_numpy(case, rng):
    arrays = [make(shape, kind, rng) for shape, kind in case.inputs]
    g, vals, y = _graph_for(case, arrays)
    g.set_outputs([("y", y)])
    verify(g)
    out = interpret(g, {v.name: a for v, a in zip(vals, arrays)})["y"]
    expected = np.asarray(case.expect(*arrays))
    assert out.shape == expected.shape
    assert out.dtype == y.dtype.numpy
    np.testing.assert_allclose(
        out.astype(np.float64), expected.astype(np.float64), rtol=case.tol, atol=case.tol
    )


GRAD_CASES = [c for c in ELEMENT_CASES if c.grad]


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c.op)
def test_vjp_matches_central_differences(case, rng):
    arrays = [make(shape, kind, rng) for shape, kind in case.inputs]
    g, vals, y = _graph_for(case, arrays)
    weights = g.add_input("w", y.type, "data")
    loss = B.reduce_sum(y * weights)
    wrt = [v for v in vals if v.dtype is DType.f32]
    grads = append_gradients(g, loss, wrt)
    g.set_outputs([("loss", loss)] + [(f"g{k}", gr) for k, gr in enumerate(grads)])
    verify(g)
    feeds = {
        v.name: a.astype(np.float64) if a.dtype == np.float32 else a for v, a in zip(vals, arrays)
    }
    feeds["w"] = make(y.shape, "f", rng).astype(np.float64)
    out = interpret(g, feeds, np.float64)
    for k, v in enumerate(wrt):
        numeric = numeric_gradient(g, feeds, v.name)
        np.testing.assert_allclose(
            out[f"g{k}"], numeric, rtol=1e-5, atol=1e-6, err_msg=f"d loss / d {v.name} of {case.op}"
        )


def test_constant_splat_and_data():
    g = Graph("c")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 2)))
    a = B.const(g, 2.5, DType.f32, (BATCH, 2))
    b = B.const_array(g, [1, 2, 3, 4, 5, 6], DType.i32, (2, 3))
    g.set_outputs([("a", a + x), ("b", b)])
    out = interpret(g, {"x": np.zeros((3, 2), np.float32)})
    np.testing.assert_array_equal(out["a"], np.full((3, 2), 2.5, np.float32))
    np.testing.assert_array_equal(out["b"], np.arange(1, 7, dtype=np.int32).reshape(2, 3))


def _random(n, seed, counter):
    g = Graph("r")
    c = g.add_input("c", TensorType(DType.i32, ()))
    g.add_input("x", TensorType(DType.f32, (BATCH,)))
    g.set_outputs([("u", B.random_uniform(c, (BATCH, 64), seed))])
    return interpret(g, {"c": np.int32(counter), "x": np.zeros(n, np.float32)})["u"]


def test_random_uniform_is_uniform_reproducible_and_keyed():
    u = _random(500, seed=7, counter=3)
    assert u.dtype == np.float32 and u.shape == (500, 64)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    assert np.array_equal(u, _random(500, seed=7, counter=3))
    assert not np.array_equal(u, _random(500, seed=7, counter=4))
    assert not np.array_equal(u, _random(500, seed=8, counter=3))
    # Element i does not depend on the batch size: a short batch sees a prefix.
    assert np.array_equal(u[:9], _random(9, seed=7, counter=3))


def test_mix32_is_murmur3_fmix32():
    # Reference values of murmur3's 32-bit finalizer.
    x = np.array([0, 1, 0xDEADBEEF], dtype=np.uint32)
    expected = []
    for v in x.tolist():
        v ^= v >> 16
        v = (v * 0x85EBCA6B) & 0xFFFFFFFF
        v ^= v >> 13
        v = (v * 0xC2B2AE35) & 0xFFFFFFFF
        v ^= v >> 16
        expected.append(v)
    assert mix32(x).tolist() == expected


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda g, x: B.add(x, g.add_input("y", TensorType(DType.f32, (4,)))), "do not broadcast"),
        (
            lambda g, x: B.matmul(x, g.add_input("w", TensorType(DType.f32, (3, 2)))),
            "contracted dimensions differ",
        ),
        (lambda g, x: B.reshape(x, (7, 5)), "batch dimension"),
        (lambda g, x: B.log(B.cast(x, DType.i32)), "must be a float"),
    ],
)
def test_shape_rules_reject_bad_operands(build, message):
    from kcompile.ir import ShapeError

    g = Graph("bad")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 5)))
    with pytest.raises(ShapeError, match=message):
        build(g, x)
