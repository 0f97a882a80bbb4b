"""``kcompile.ops`` (Keras's ``keras.ops``): every op eagerly against numpy, traced into
IR and compiled against the reference interpreter, and its gradient (through the
primitives' VJPs) against central differences."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile import ops
from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import BATCH, Graph, f32, interpret
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.passes import append_gradients
from kcompile.tools.fuzz.oracle import run_compiled

N = 3


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _attention(q, k, v, causal=False, mask=None):
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    allowed = np.ones(logits.shape[-2:], bool) if mask is None else mask
    if causal:
        allowed = allowed & np.tril(np.ones(logits.shape[-2:], bool))
    logits = np.where(allowed, logits, -0.7 * 3.38953e38)
    return np.einsum("bnts,bsnh->btnh", _softmax(logits), v)


# (name, op on the inputs, numpy on the inputs, input shapes without the batch, grad?)
_KERNEL3 = (np.arange(12, dtype="float32").reshape(3, 2, 2) - 5) / 7

CASES = [
    ("add", lambda a, b: ops.add(a, b), np.add, [(4,), (4,)], True),
    ("subtract", lambda a, b: a - b, np.subtract, [(4,), (4,)], True),
    ("multiply_scalar", lambda a: a * 2.5 + 1, lambda a: a * 2.5 + 1, [(4,)], True),
    ("divide", lambda a, b: a / (ops.abs(b) + 1.0), lambda a, b: a / (np.abs(b) + 1), [(4,), (4,)], True),
    ("power", lambda a: ops.power(ops.abs(a) + 0.5, 1.5), lambda a: (np.abs(a) + 0.5) ** 1.5, [(4,)], True),
    ("maximum", lambda a, b: ops.maximum(a, b), np.maximum, [(4,), (4,)], True),
    ("minimum", lambda a, b: ops.minimum(a, b), np.minimum, [(4,), (4,)], True),
    ("exp", ops.exp, np.exp, [(4,)], True),
    ("log", lambda a: ops.log(ops.abs(a) + 0.5), lambda a: np.log(np.abs(a) + 0.5), [(4,)], True),
    ("sqrt", lambda a: ops.sqrt(ops.abs(a) + 0.1), lambda a: np.sqrt(np.abs(a) + 0.1), [(4,)], True),
    ("square", ops.square, np.square, [(4,)], True),
    ("tanh", ops.tanh, np.tanh, [(4,)], True),
    ("negative", lambda a: -a, np.negative, [(4,)], True),
    ("clip", lambda a: ops.clip(a, -0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5), [(4,)], True),
    ("where", lambda a, b: ops.where(a > b, a, b * 2), lambda a, b: np.where(a > b, a, b * 2), [(4,), (4,)], True),
    ("sum", lambda a: ops.sum(a, axis=-1), lambda a: a.sum(-1), [(3, 4)], True),
    ("mean_keep", lambda a: ops.mean(a, axis=1, keepdims=True), lambda a: a.mean(1, keepdims=True), [(3, 4)], True),
    ("max", lambda a: ops.max(a, axis=-1), lambda a: a.max(-1), [(5,)], True),
    ("min", lambda a: ops.min(a, axis=-1), lambda a: a.min(-1), [(5,)], True),
    ("var", lambda a: ops.var(a, axis=-1), lambda a: a.var(-1), [(5,)], True),
    ("std", lambda a: ops.std(a, axis=-1), lambda a: a.std(-1), [(5,)], True),
    ("logsumexp", lambda a: ops.logsumexp(a, axis=-1), lambda a: np.log(np.exp(a).sum(-1)), [(5,)], True),
    ("prod", lambda a: ops.prod(a, axis=-1), lambda a: a.prod(-1), [(4,)], True),
    ("argmax", lambda a: ops.argmax(a, axis=-1), lambda a: a.argmax(-1), [(5,)], False),
    ("argmin", lambda a: ops.argmin(a, axis=-1), lambda a: a.argmin(-1), [(5,)], False),
    ("matmul", lambda a: ops.matmul(a, np.arange(12, dtype="float32").reshape(4, 3) / 10), lambda a: a @ (np.arange(12).reshape(4, 3) / 10), [(4,)], True),
    ("batched_matmul", lambda a, b: ops.matmul(a, ops.transpose(b, (0, 2, 1))), lambda a, b: a @ b.transpose(0, 2, 1), [(2, 3), (4, 3)], True),
    ("einsum_attention", lambda q, k: ops.einsum("bqd,bkd->bqk", q, k), lambda q, k: np.einsum("bqd,bkd->bqk", q, k), [(2, 3), (4, 3)], True),
    ("einsum_projection", lambda a: ops.einsum("abc,cde->abde", a, _KERNEL3), lambda a: np.einsum("abc,cde->abde", a, _KERNEL3), [(2, 3)], True),
    ("einsum_heads_out", lambda a: ops.einsum("abcd,cde->abe", a, _KERNEL3.reshape(3, 2, 2)), lambda a: np.einsum("abcd,cde->abe", a, _KERNEL3.reshape(3, 2, 2)), [(2, 3, 2)], True),
    ("einsum_sum", lambda a: ops.einsum("bij->bj", a), lambda a: a.sum(1), [(2, 3)], True),
    ("tensordot", lambda a: ops.tensordot(a, np.ones((3, 2), "float32"), axes=1), lambda a: np.tensordot(a, np.ones((3, 2)), axes=1), [(4, 3)], True),
    ("reshape", lambda a: ops.reshape(a, (-1, 2, 6)), lambda a: a.reshape(-1, 2, 6), [(3, 4)], True),
    ("reshape_none", lambda a: ops.reshape(a, (None, 12)), lambda a: a.reshape(-1, 12), [(3, 4)], True),
    ("transpose", lambda a: ops.transpose(a, (0, 2, 1)), lambda a: a.transpose(0, 2, 1), [(3, 4)], True),
    ("expand_squeeze", lambda a: ops.squeeze(ops.expand_dims(a, 1), 1), lambda a: a, [(4,)], True),
    ("expand_dims", lambda a: ops.expand_dims(a, -1), lambda a: a[..., None], [(4,)], True),
    ("concatenate", lambda a, b: ops.concatenate([a, b], axis=-1), lambda a, b: np.concatenate([a, b], -1), [(2,), (3,)], True),
    ("stack", lambda a, b: ops.stack([a, b], axis=1), lambda a, b: np.stack([a, b], 1), [(3,), (3,)], True),
    ("split", lambda a: ops.split(a, 2, axis=-1)[1], lambda a: np.split(a, 2, -1)[1], [(4,)], True),
    ("tile", lambda a: ops.tile(a, (1, 3)), lambda a: np.tile(a, (1, 3)), [(2,)], True),
    ("repeat", lambda a: ops.repeat(a, 2, axis=1), lambda a: np.repeat(a, 2, 1), [(3,)], True),
    ("broadcast_to", lambda a: ops.broadcast_to(ops.expand_dims(a, 1), (None, 3, 4)), lambda a: np.broadcast_to(a[:, None], (a.shape[0], 3, 4)), [(4,)], True),
    ("pad", lambda a: ops.pad(a, ((0, 0), (1, 2))), lambda a: np.pad(a, ((0, 0), (1, 2))), [(3,)], True),
    ("getitem", lambda a: a[:, 1:3, 0], lambda a: a[:, 1:3, 0], [(4, 2)], True),
    ("getitem_newaxis", lambda a: a[:, None, -1], lambda a: a[:, None, -1], [(4,)], True),
    ("take", lambda a: ops.take(a, np.array([2, 0], "int32"), axis=1), lambda a: np.take(a, [2, 0], axis=1), [(3, 4)], True),
    ("one_hot", lambda a: ops.one_hot(ops.argmax(a, axis=-1), 5), lambda a: np.eye(5)[a.argmax(-1)], [(5,)], False),
    ("cast", lambda a: ops.cast(a > 0, "float32") * a, lambda a: (a > 0) * a, [(4,)], True),
    ("zeros_like", lambda a: ops.zeros_like(a) + a, lambda a: a, [(4,)], True),
    ("floor_mod", lambda a, b: ops.floor(a) + ops.mod(a, ops.abs(b) + 0.5), lambda a, b: np.floor(a) + np.mod(a, np.abs(b) + 0.5), [(4,), (4,)], False),
    ("ceil_round", lambda a: ops.ceil(a) + ops.round(a * 2.0) + ops.round(a, 1), lambda a: np.ceil(a) + np.round(a * 2) + np.round(a, 1), [(4,)], False),
    ("mod_grad", lambda a, b: ops.mod(a, ops.abs(b) + 4.0), lambda a, b: np.mod(a, np.abs(b) + 4), [(4,), (4,)], True),
    ("take_along_axis", lambda a: ops.take_along_axis(a, ops.argmax(a, axis=-1, keepdims=True), axis=-1), lambda a: a.max(-1, keepdims=True), [(3, 4)], True),
    ("take_along_axis_1", lambda a: ops.take_along_axis(a, ops.argmin(a, axis=1, keepdims=True), axis=1), lambda a: a.min(1, keepdims=True), [(3, 4)], True),
    ("relu", ops.relu, lambda a: np.maximum(a, 0), [(4,)], True),
    ("sigmoid", ops.sigmoid, _sigmoid, [(4,)], True),
    ("silu", ops.silu, lambda a: a * _sigmoid(a), [(4,)], True),
    ("softmax", lambda a: ops.softmax(a, axis=-1), _softmax, [(5,)], True),
    ("log_softmax", ops.log_softmax, lambda a: np.log(_softmax(a)), [(5,)], True),
    ("moments", lambda a: ops.moments(a, axes=[-1])[1], lambda a: a.var(-1), [(5,)], True),
    ("normalize", lambda a: ops.normalize(a, axis=-1), lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True), [(5,)], True),
    ("log2_log10_exp2", lambda a: ops.log2(ops.abs(a) + 0.5) + ops.log10(ops.abs(a) + 0.5) + ops.exp2(a), lambda a: np.log2(np.abs(a) + 0.5) + np.log10(np.abs(a) + 0.5) + np.exp2(a), [(4,)], True),
    ("cbrt", lambda a: ops.cbrt(a + 3.0), lambda a: np.cbrt(a + 3), [(4,)], True),
    ("trunc", lambda a: ops.trunc(a * 3.0) + a, lambda a: np.trunc(a * 3) + a, [(4,)], True),
    ("hypot", lambda a, b: ops.hypot(a, b), np.hypot, [(4,), (4,)], True),
    ("logaddexp", lambda a, b: ops.logaddexp(a, b), np.logaddexp, [(4,), (4,)], True),
    ("divide_no_nan", lambda a, b: ops.divide_no_nan(a, ops.where(b > 0, b + 1.0, 0.0)), lambda a, b: np.where(b > 0, a / (np.maximum(b, 0) + 1), 0), [(4,), (4,)], True),
    ("heaviside", lambda a, b: ops.heaviside(ops.round(a), b) * a, lambda a, b: np.heaviside(np.round(a), b) * a, [(4,), (4,)], True),
    ("deg2rad", lambda a: ops.rad2deg(ops.deg2rad(a) * 2.0), lambda a: 2 * a, [(4,)], True),
    ("count_nonzero", lambda a: ops.count_nonzero(ops.round(a), axis=-1), lambda a: np.count_nonzero(np.round(a), axis=-1), [(5,)], False),
    ("ptp", lambda a: ops.ptp(a, axis=-1), lambda a: np.ptp(a, axis=-1), [(5,)], True),
    ("average", lambda a: ops.average(a, axis=-1, weights=np.arange(1.0, 5.0, dtype="float32")), lambda a: np.average(a, axis=-1, weights=np.arange(1.0, 5.0)), [(4,)], True),
    ("cumsum", lambda a: ops.cumsum(a, axis=1), lambda a: np.cumsum(a, 1), [(4, 3)], True),
    ("cumsum_last", lambda a: ops.cumsum(a, axis=-1), lambda a: np.cumsum(a, -1), [(4, 3)], True),
    ("flip", lambda a: ops.flip(a, axis=-1) + ops.fliplr(a), lambda a: np.flip(a, -1) + np.fliplr(a), [(4,)], True),
    ("roll", lambda a: ops.roll(a, 2, axis=1) - ops.roll(a, -1, axis=2), lambda a: np.roll(a, 2, 1) - np.roll(a, -1, 2), [(3, 4)], True),
    ("swapaxes_moveaxis", lambda a: ops.swapaxes(a, 1, 2) + ops.moveaxis(a, 1, -1), lambda a: np.swapaxes(a, 1, 2) + np.moveaxis(a, 1, -1), [(3, 3)], True),
    ("hstack", lambda a, b: ops.hstack([a, b]), lambda a, b: np.hstack([a, b]), [(2,), (3,)], True),
    ("tril_triu", lambda a: ops.tril(a) + ops.triu(a, 1) * 2.0, lambda a: np.tril(a) + np.triu(a, 1) * 2, [(3, 4)], True),
    ("diagonal_trace", lambda a: ops.diagonal(a, 1, 1, 2) + ops.trace(a, 0, 1, 2)[:, None], lambda a: np.diagonal(a, 1, 1, 2) + np.trace(a, 0, 1, 2)[:, None], [(3, 4)], True),
    ("inner", lambda a: ops.inner(a, np.arange(6, dtype="float32").reshape(2, 3)), lambda a: np.inner(a, np.arange(6).reshape(2, 3)), [(3,)], True),
    ("isclose", lambda a, b: ops.cast(ops.isclose(ops.round(a), ops.round(b)), "float32"), lambda a, b: np.isclose(np.round(a), np.round(b)).astype(float), [(4,), (4,)], False),
    ("hard_tanh_shrinks", lambda a: ops.nn.hard_tanh(a) + ops.nn.hard_shrink(a) + ops.nn.soft_shrink(a) + ops.nn.tanh_shrink(a), lambda a: np.clip(a, -1, 1) + np.where(np.abs(a) > 0.5, a, 0) + np.where(a > 0.5, a - 0.5, np.where(a < -0.5, a + 0.5, 0)) + a - np.tanh(a), [(4,)], True),
    ("celu_log_sigmoid", lambda a: ops.nn.celu(a, 0.5) + ops.nn.log_sigmoid(a), lambda a: np.maximum(a, 0) + 0.5 * np.expm1(np.minimum(a, 0) / 0.5) - np.logaddexp(-a, 0), [(4,)], True),
    ("sparse_plus_sigmoid", lambda a: ops.nn.sparse_plus(a * 2.0) + ops.nn.sparse_sigmoid(a * 2.0) + ops.nn.squareplus(a), lambda a: np.where(a * 2 <= -1, 0, np.where(a * 2 < 1, (a * 2 + 1) ** 2 / 4, a * 2)) + np.clip((a * 2 + 1) / 2, 0, 1) + (a + np.sqrt(a * a + 4)) / 2, [(4,)], True),
    ("threshold", lambda a: ops.nn.threshold(a, 0.1, -2.0), lambda a: np.where(a > 0.1, a, -2), [(4,)], True),
    ("glu", lambda a: ops.nn.glu(a), lambda a: a[:, :2] * _sigmoid(a[:, 2:]), [(4,)], True),
    ("multi_hot", lambda a: ops.nn.multi_hot(ops.argmax(a, axis=-1, keepdims=True), 5) + 0 * a[:, :1], lambda a: np.eye(5)[a.argmax(-1)], [(5,)], False),
    ("rms_normalization", lambda a: ops.nn.rms_normalization(a, scale=2.0), lambda a: 2 * a / np.sqrt((a * a).mean(-1, keepdims=True) + 1e-7), [(5,)], True),
    ("layer_normalization", lambda a: ops.nn.layer_normalization(a, gamma=np.full((5,), 2.0, "float32"), beta=np.ones((5,), "float32"), epsilon=1e-3), lambda a: 2 * (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-3) + 1, [(5,)], True),
    ("dot_product_attention", lambda q, k: ops.nn.dot_product_attention(q, k, k * 2.0, is_causal=True), lambda q, k: _attention(q, k, k * 2, causal=True), [(3, 2, 4), (3, 2, 4)], True),
    ("dot_product_attention_mask", lambda q, k: ops.nn.dot_product_attention(q, k, k, mask=np.array([[True, False, True]] * 3)), lambda q, k: _attention(q, k, k, mask=np.array([[True, False, True]] * 3)), [(3, 2, 4), (3, 2, 4)], True),
    ("categorical_crossentropy", lambda a: ops.categorical_crossentropy(ops.softmax(a * 0) + 0.1, a, from_logits=True), lambda a: -(( _softmax(a * 0) + 0.1) * np.log(_softmax(a))).sum(-1), [(5,)], True),
]  # fmt: skip


def _inputs(shapes, rng):
    return [rng.normal(size=(N, *s)).astype("float32") for s in shapes]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_eager_matches_numpy(case, rng):
    _, fn, expect, shapes, _ = case
    xs = _inputs(shapes, rng)
    np.testing.assert_allclose(np.asarray(fn(*xs), np.float64), expect(*xs), rtol=2e-5, atol=2e-6)


def _traced(fn, shapes):
    g = Graph("ops")
    values = [g.add_input(f"x{i}", f32(BATCH, *s), "data") for i, s in enumerate(shapes)]
    out = fn(*[TracedTensor(v) for v in values])
    assert isinstance(out, TracedTensor), f"{out!r} is not traced"
    return g, values, out.value


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_traced_compiles_and_matches_numpy(case, rng):
    _, fn, expect, shapes, _ = case
    g, values, out = _traced(fn, shapes)
    g.set_outputs([("y", out)])
    xs = _inputs(shapes, rng)
    feeds = {v.name: x for v, x in zip(values, xs)}
    want = expect(*xs)
    np.testing.assert_allclose(interpret(g, feeds)["y"], want, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(run_compiled(g, feeds)["y"], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", [c for c in CASES if c[4]], ids=lambda c: c[0])
def test_gradient_matches_central_differences(case, rng):
    _, fn, _, shapes, _ = case
    g, values, out = _traced(fn, shapes)
    weights = g.add_input("w", out.type, "data")
    loss = B.reduce_sum(B.cast(out, weights.dtype) * weights)
    grads = append_gradients(g, loss, values)
    g.set_outputs([("loss", loss)] + [(f"g{i}", d) for i, d in enumerate(grads)])
    xs = _inputs(shapes, rng)
    feeds = {v.name: x.astype(np.float64) for v, x in zip(values, xs)}
    feeds["w"] = rng.normal(size=(N, *out.shape[1:])).astype(np.float64)
    got = interpret(g, feeds, np.float64)
    for i, v in enumerate(values):
        np.testing.assert_allclose(
            got[f"g{i}"], numeric_gradient(g, feeds, v.name), rtol=1e-5, atol=1e-6
        )


def test_creation_and_conversion():
    assert ops.zeros((2, 3)).dtype == np.float32 and ops.ones((2,), "int32").dtype == np.int32
    np.testing.assert_array_equal(ops.arange(4), np.arange(4))
    np.testing.assert_array_equal(ops.eye(3), np.eye(3))
    np.testing.assert_array_equal(ops.full((2,), 7.0), [7.0, 7.0])
    assert ops.shape(np.zeros((2, 5))) == (2, 5)
    assert ops.convert_to_tensor([1.0, 2.0]).dtype == np.float32
    np.testing.assert_array_equal(ops.convert_to_numpy(ops.ones((2,))), [1.0, 1.0])


def test_unsupported_ops_name_themselves():
    with pytest.raises(NotImplementedError, match=r"keras.ops.polar is not supported"):
        _ = ops.polar
    with pytest.raises(NotImplementedError, match=r"keras.ops.where.*one-argument"):
        ops.where(np.ones(3) > 0)


def test_python_control_flow_on_a_traced_tensor_is_refused():
    from kcompile.backend.symbolic import TraceError

    g = Graph("flow")
    x = TracedTensor(g.add_input("x", f32(BATCH, 2), "data"))
    with pytest.raises(TraceError, match="ops.where"):
        if ops.sum(x) > 0:
            pass


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_ops_over_whole_tensors_without_a_batch_dimension(rng):
    """outer, vdot, vstack, ravel and diag read every element, batch included: on arrays
    eagerly, and traced over values without a batch dimension, with their gradients."""
    a, b = rng.normal(size=(3,)).astype("float32"), rng.normal(size=(3,)).astype("float32")
    m = rng.normal(size=(2, 3)).astype("float32")
    cases = [
        (lambda x, y: ops.outer(x, y), np.outer, [a, b]),
        (lambda x, y: ops.vdot(x, y), np.vdot, [a, b]),
        (lambda x, y: ops.vstack([x, y]), lambda x, y: np.vstack([x, y]), [a, b]),
        (lambda x: ops.ravel(x), np.ravel, [m]),
        (lambda x: ops.diag(x, 1), lambda x: np.diag(x, 1), [a]),
        (lambda x: ops.diag(x, -1), lambda x: np.diag(x, -1), [a]),
        (lambda x: ops.diag(x), np.diag, [m]),
    ]
    for fn, expect, xs in cases:
        np.testing.assert_allclose(fn(*xs), expect(*xs), rtol=1e-6, atol=1e-6)
        g = Graph("whole")
        values = [g.add_input(f"x{i}", f32(*x.shape), "data") for i, x in enumerate(xs)]
        out = fn(*[TracedTensor(v) for v in values]).value
        weights = g.add_input("w", out.type, "data")
        loss = B.reduce_sum(out * weights)
        grads = append_gradients(g, loss, values)
        g.set_outputs([("y", out), ("loss", loss)] + [(f"g{i}", d) for i, d in enumerate(grads)])
        feeds = {v.name: x for v, x in zip(values, xs)}
        feeds["w"] = rng.normal(size=out.shape).astype("float32")
        np.testing.assert_allclose(run_compiled(g, feeds)["y"], expect(*xs), rtol=1e-5, atol=1e-6)
        wide = {k: x.astype(np.float64) for k, x in feeds.items()}
        got = interpret(g, wide, np.float64)
        for i, v in enumerate(values):
            np.testing.assert_allclose(
                got[f"g{i}"], numeric_gradient(g, wide, v.name), rtol=1e-5, atol=1e-6
            )


def test_creation_functions_match_numpy():
    np.testing.assert_array_equal(ops.identity(3), np.identity(3))
    np.testing.assert_array_equal(ops.tri(3, 4, 1), np.tri(3, 4, 1))
    np.testing.assert_allclose(ops.linspace(0, 1, 5), np.linspace(0, 1, 5))
    np.testing.assert_allclose(ops.logspace(0, 2, 3), np.logspace(0, 2, 3), rtol=1e-6)
    gx, gy = ops.meshgrid(np.arange(3), np.arange(2))
    assert gx.shape == (2, 3) and gy.shape == (2, 3)
    assert ops.empty((2, 2)).shape == (2, 2) and ops.linspace(0, 1, 5).dtype == np.float32


def test_the_batch_size_of_a_traced_tensor_is_a_value_of_the_step(rng):
    """``ops.shape(x)[0]`` inside a traced call is the number of rows at run time (as
    Keras gives a dimension unknown while tracing): usable in arithmetic and as the
    batch dimension of reshape, zeros and broadcast_to."""

    def fn(a):
        batch = ops.shape(a)[0]
        flat = ops.reshape(a, (batch, -1))
        return flat / ops.cast(batch, "float32") + ops.zeros((batch, 12)) + ops.ones_like(flat)

    g, _, out = _traced(fn, [(3, 4)])
    g.set_outputs([("y", out)])
    for rows in (1, 5):
        x = rng.normal(size=(rows, 3, 4)).astype("float32")
        want = x.reshape(rows, -1) / rows + 1
        np.testing.assert_allclose(run_compiled(g, {"x0": x})["y"], want, rtol=1e-6)
    assert ops.shape(np.zeros((2, 3))) == (2, 3)


def test_projection_einsums_are_matrix_products():
    """Per-position projections with a batch axis among the rows (MultiHeadAttention's
    query, key, value and output kernels) lower to one matrix product, not to a
    broadcast product and a sum."""
    g, _, _ = _traced(lambda a: ops.einsum("abc,cde->abde", a, _KERNEL3), [(2, 3)])
    kinds = {n.op for n in g.nodes}
    assert "matmul" in kinds and "reduce_sum" not in kinds


@pytest.mark.parametrize(
    "given, made",
    [
        (np.int8, np.int8),
        (np.uint8, np.uint8),
        (np.float16, np.float16),
        (np.int64, np.int32),
        (np.float64, np.float32),
        (np.bool_, np.bool_),
    ],
)
def test_convert_to_tensor_keeps_narrow_dtypes_as_keras_on_jax(given, made):
    """Keras 3.15 on JAX: int8, uint8 and float16 arrays stay so (a quantized layer's
    bytes are not widened), 64-bit ones become 32-bit."""
    tensor = ops.convert_to_tensor(np.array([1, 0, 1], dtype=given))
    assert tensor.dtype == made
    np.testing.assert_array_equal(tensor, np.array([1, 0, 1], dtype=made))
