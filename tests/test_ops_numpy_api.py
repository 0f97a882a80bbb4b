"""The ``keras.ops`` functions added for Keras 3.15's API (numpy, nn, core, linalg):
each case of ``ops_api_cases.py`` eagerly against what real Keras computed
(``keras_fixtures/ops_api.npz``, made by ``make_ops_api_fixtures.py``); the traceable
ones inside a traced step, compiled and on the reference interpreter, against the same
numbers; their gradients against central differences; a custom layer of several of them
trained natively and on the reference; the control-flow functions; the namespaces and
the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import ops
from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.passes import append_gradients
from kcompile.tools.fuzz.oracle import run_compiled
from tests.ops_api_cases import CASES

FIXTURE = np.load(Path(__file__).parent / "keras_fixtures" / "ops_api.npz")

# Looser where Keras's jax computes in another order or kcompile composes a function
# (sums of many terms, series of special functions).
TOLERANCE = {"erfinv": 5e-6, "i0": 5e-6, "arctanh": 5e-6, "corrcoef": 5e-6}


def _inputs(name: str) -> list[np.ndarray]:
    return [FIXTURE[f"{name}/in{i}"] for i in range(len(CASES[name][1]))]


def _check(name: str, got, rtol: float = 1e-5) -> None:
    want = FIXTURE[f"{name}/out"]
    got = np.asarray(got)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, Keras's {want.shape}"
    kind = {"u": "i"}.get(want.dtype.kind, want.dtype.kind)  # kcompile's integers are int32
    assert got.dtype.kind == kind, f"{name}: dtype {got.dtype}, Keras's {want.dtype}"
    if want.dtype == bool:
        np.testing.assert_array_equal(got, want, err_msg=name)
        return
    rtol = max(rtol, TOLERANCE.get(name, 0.0))
    np.testing.assert_allclose(
        got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=rtol, err_msg=name
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_eager_matches_keras(name):
    fn = CASES[name][0]
    _check(name, fn(ops, *_inputs(name)))


TRACED = sorted(n for n, (_, _, flags) in CASES.items() if "trace" in flags)
# Compiling is most of a test's time: these run in the quick tier, one of each family;
# the others are marked slow (the full suite runs them all).
QUICK = {"arctan2", "sinh", "nan_to_num", "nanmax_nanmin", "sort", "top_k", "median",
         "cumprod", "cross", "conv_2d", "average_pool_same", "adaptive_max_pool",
         "conv_transpose_same", "sparsemax", "norm_matrix", "saturate_cast", "select",
         "bitwise_xor", "inv", "unfold"}  # fmt: skip


@pytest.mark.parametrize(
    "name", [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in TRACED]
)
def test_traced_compiles_and_matches_keras(name):
    """In a traced step (the inputs' first axis the batch): the reference interpreter
    and the native code both give Keras's numbers."""
    g = Graph(name)
    feeds, values = {}, []
    for i, x in enumerate(_inputs(name)):
        dtype = DType.i32 if x.dtype == np.int32 else DType.f32
        v = g.add_input(f"x{i}", TensorType(dtype, (BATCH, *x.shape[1:])), "data")
        values.append(v)
        feeds[v.name] = x
    out = CASES[name][0](ops, *[TracedTensor(v) for v in values])
    assert isinstance(out, TracedTensor), f"{name}: {out!r} is not traced"
    g.set_outputs([("y", out.value)])
    _check(name, interpret(g, feeds)["y"])
    _check(name, run_compiled(g, feeds)["y"], rtol=1e-4)


GRADED = sorted(n for n, (_, _, flags) in CASES.items() if "grad" in flags)


@pytest.mark.parametrize("name", GRADED)
def test_gradient_matches_central_differences(name, rng):
    fn = CASES[name][0]
    g = Graph(name)
    xs = _inputs(name)
    values = [
        g.add_input(f"x{i}", TensorType(DType.f32, (BATCH, *x.shape[1:])), "data")
        for i, x in enumerate(xs)
    ]
    out = fn(ops, *[TracedTensor(v) for v in values]).value
    weights = g.add_input("w", out.type, "data")
    loss = B.reduce_sum(out * weights)
    grads = append_gradients(g, loss, values)
    g.set_outputs([("loss", loss)] + [(f"g{i}", d) for i, d in enumerate(grads)])
    feeds = {v.name: x.astype(np.float64) for v, x in zip(values, xs)}
    feeds["w"] = rng.normal(size=(xs[0].shape[0], *out.shape[1:]))
    got = interpret(g, feeds, np.float64)
    for i, v in enumerate(values):
        np.testing.assert_allclose(
            got[f"g{i}"], numeric_gradient(g, feeds, v.name), rtol=1e-4, atol=1e-6, err_msg=name
        )


# --- inside a model -------------------------------------------------------------------------


class Mixer(keras.layers.Layer):
    """A layer written with the new ops: trigonometry, sorting, NaN handling, windows,
    norms, cumulative products and core slicing, all in one compiled step."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 6), initializer="glorot_uniform")

    def call(self, x):
        h = ops.matmul(x, self.w)  # [N, 6]
        angles = ops.sin(h) + ops.cos(h * 0.5) + ops.arctan2(h, 1.0 + ops.square(h))
        ranked = ops.sort(h, axis=-1) * 0.1 + ops.top_k(h, 2)[0][:, :1]
        safe = ops.nan_to_num(ops.log(h)) * 0.0 + ops.cumprod(ops.tanh(h), axis=-1)
        sliced = ops.slice(h, (0, 1), (None, 4))
        pooled = ops.average_pool(ops.reshape(h, (-1, 6, 1)), (2,), strides=(2,), padding="valid")
        features = ops.concatenate(
            [angles, ranked, safe, sliced, ops.reshape(pooled, (-1, 3)),
             ops.expand_dims(ops.norm(h, axis=-1), -1), ops.nn.sparsemax(h)],
            axis=-1,
        )  # fmt: skip
        return ops.mean(features * ops.arcsinh(features), axis=-1, keepdims=True) * 0.1


@pytest.mark.slow  # two trainings, about 15 s on 2 cores
def test_a_layer_of_new_ops_trains_natively_as_on_the_reference():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = (x[:, :1] - x[:, 1:2] * 0.5).astype("float32")
    results = []
    for backend in ("llvm", "reference"):
        keras.utils.set_random_seed(11)
        inputs = keras.Input((5,))
        model = keras.Model(inputs, Mixer()(inputs))
        model.compile(optimizer="sgd", loss="mse", backend=backend)
        history = model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        results.append((model.predict(x, verbose=0), model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=2e-4, atol=2e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    assert not np.allclose(results[0][1][0], results[1][1][0] * 0)  # the weights moved


# --- control flow -------------------------------------------------------------------------


def _traced_input(shape=(3,)):
    g = Graph("flow")
    v = g.add_input("x", TensorType(DType.f32, (BATCH, *shape)), "data")
    return g, v, TracedTensor(v)


def test_cond_and_switch_eager_and_traced():
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    assert ops.cond(True, lambda: 1, lambda: 2) == 1
    np.testing.assert_allclose(ops.switch(5, [lambda a: a * 2, lambda a: a * 3], x), x * 3)
    g, _, t = _traced_input()
    out = ops.cond(ops.sum(t) > 0, lambda: t * 2.0, lambda: -t)
    picked = ops.switch(
        ops.sum(ops.argmax(t, axis=-1)), [lambda a: a + 1, lambda a: a * 0, lambda a: a], t
    )
    g.set_outputs([("c", out.value), ("s", picked.value)])
    for feed in (x, -x):
        got = run_compiled(g, {"x": feed})
        want = feed * 2 if feed.sum() > 0 else -feed
        np.testing.assert_allclose(got["c"], want)
        branch = min(int(np.argmax(feed[0])), 2)
        np.testing.assert_allclose(got["s"], [feed + 1, feed * 0, feed][branch])


def test_loops_unroll_and_match_python():
    x = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], np.float32)
    g, _, t = _traced_input()
    fori = ops.fori_loop(0, 4, lambda i, acc: acc * 0.5 + i, t)
    bounded = ops.while_loop(
        lambda a, n: ops.sum(a) < 40.0, lambda a, n: (a * 2.0, n + 1.0), (t, t[:, :1] * 0.0),
        maximum_iterations=6,
    )  # fmt: skip
    carry, ys = ops.scan(lambda c, row: (c + row, c * row), t[:, 0] * 0.0, ops.transpose(t))
    mapped = ops.map(lambda col: ops.sum(col * col), ops.transpose(t))
    running = ops.associative_scan(lambda a, b: a + b, t, axis=1)
    g.set_outputs([("fori", fori.value), ("while", bounded[0].value), ("n", bounded[1].value),
                   ("carry", carry.value), ("ys", ys.value), ("map", mapped.value),
                   ("running", running.value)])  # fmt: skip
    got = run_compiled(g, {"x": x})
    acc = x.copy()
    for i in range(4):
        acc = acc * 0.5 + i
    np.testing.assert_allclose(got["fori"], acc, rtol=1e-6)
    a, n = x.copy(), 0
    while a.sum() < 40 and n < 6:
        a, n = a * 2, n + 1
    np.testing.assert_allclose(got["while"], a)
    np.testing.assert_allclose(got["n"], np.full((2, 1), n))
    c, rows = np.zeros(2), []
    for row in x.T:
        rows.append(c * row)
        c = c + row
    np.testing.assert_allclose(got["carry"], c)
    np.testing.assert_allclose(got["ys"], np.stack(rows))
    np.testing.assert_allclose(got["map"], (x * x).sum(0))
    np.testing.assert_allclose(got["running"], np.cumsum(x, 1), rtol=1e-6)
    assert ops.while_loop(lambda i: i < 5, lambda i: i + 2, 0) == 6  # eager: Python runs it


def test_a_loop_without_a_static_trip_count_is_refused_with_why():
    _, _, t = _traced_input()
    with pytest.raises(NotImplementedError, match="while_loop.*maximum_iterations"):
        ops.while_loop(lambda a: ops.sum(a) < 4.0, lambda a: a * 2.0, t)
    with pytest.raises(NotImplementedError, match="fori_loop.*traced bounds"):
        ops.fori_loop(0, ops.sum(t), lambda i, a: a, t)
    with pytest.raises(NotImplementedError, match="bincount.*depends on the values"):
        ops.bincount(ops.cast(t, "int32"))


# --- namespaces and refusals ----------------------------------------------------------------


def test_namespaces_are_keras_s():
    assert ops.numpy.sin is ops.sin and ops.numpy.sort is ops.sort
    assert ops.nn.conv is ops.conv and ops.nn.max_pool is ops.max_pool
    assert ops.linalg.norm is not None and ops.norm is not None
    assert "top_k" not in vars(ops.numpy)  # a keras.ops name, not a keras.ops.numpy one
    assert "sin" in ops.__all__ and "linalg" in ops.__all__


@pytest.mark.parametrize(
    ("lookup", "why"),
    [
        (lambda: ops.view_as_complex, "no complex dtype"),
        (lambda: ops.numpy.vectorize, "Python function once per element"),
        (lambda: ops.linalg.jvp, "forward-mode"),
        (lambda: ops.nn.polar, "no complex dtype"),
        (lambda: ops.not_an_op_at_all, ""),
    ],
)
def test_names_not_offered_are_refused_with_why(lookup, why):
    with pytest.raises(NotImplementedError, match=f"keras.ops.*not supported by kcompile.*{why}"):
        lookup()


def test_private_names_and_submodules_are_ordinary_lookups():
    assert not hasattr(ops, "__wrapped__")
    from kcompile.ops import sorting  # a submodule, imported through __getattr__'s path

    assert sorting.sort is not None


def test_sin_cos_primitives_compile_over_a_wide_range():
    g, _, t = _traced_input((7,))
    g.set_outputs([("s", ops.sin(t).value), ("c", ops.cos(t).value), ("a", ops.arctan(t).value)])
    x = np.linspace(-3000, 3000, 7 * 41, dtype=np.float32).reshape(41, 7)
    got = run_compiled(g, {"x": x})
    np.testing.assert_allclose(got["s"], np.sin(x.astype(np.float64)), atol=3e-7)
    np.testing.assert_allclose(got["c"], np.cos(x.astype(np.float64)), atol=3e-7)
    np.testing.assert_allclose(got["a"], np.arctan(x.astype(np.float64)), rtol=3e-7)
