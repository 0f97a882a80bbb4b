"""Every op compiled to native code against the reference interpreter, for batch
sizes 1, 7, 33 and the executable's maximum, with odd sizes and broadcasting.

Tolerances (relative and absolute, per op): exact for movement, indexing,
compare, select, cast and the random op; 1e-6 for arithmetic (FMA contraction);
the math functions' own bounds (tests/test_codegen_math.py) for exp, log, ...;
1e-5 for sums and matrix products (reassociated accumulation).
"""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.runtime import make_executable
from tests.test_ops import ELEMENT_CASES, dtype_of, make

CAPACITY = 40
BATCHES = [1, 7, 33, CAPACITY]

EXACT = {
    "extract_patches",
    "neg",
    "abs",
    "sign",
    "floor",
    "ceil",
    "round",
    "round_to",
    "stop_gradient",
    "gradient_via",
    "not",
    "max",
    "min",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "select",
    "cast",
    "argmax",
    "numel",
    "reshape",
    "transpose",
    "broadcast_to",
    "slice",
    "reverse",
    "pad",
    "concat",
    "one_hot",
    "take",
    "gather_rows",
    "reduce_max",
    "replica_sum",
    "dequantize_int4",  # (q - zero) * scale: one rounding, as the reference's
}
TOLERANCE = {
    "conv2d": 1e-5,
    "conv2d_filter": 1e-4,  # a sum over every pixel of the batch
    "fold_patches": 1e-6,
    "exp": 3e-7,
    "log": 3e-7,
    "log1p": 5e-7,
    "tanh": 5e-7,
    "custom_vjp": 5e-7,  # (its case's value is a tanh)
    "logistic": 5e-7,
    "erf": 5e-7,
    "sin": 5e-7,
    "cos": 5e-7,
    "atan": 5e-7,
    "gelu": 1e-6,
    "gelu_grad": 1e-6,
    "layer_norm": 2e-6,
    "reduce_prod": 1e-6,
    "sqrt": 1e-7,
    "pow": 1e-6,
    "add": 1e-7,
    "sub": 1e-7,
    "mul": 1e-7,
    "div": 1e-7,
    "reduce_sum": 1e-5,
    "matmul": 1e-5,
    "matmul_int4": 1e-5,
    "batch_matmul": 1e-5,
    "scatter_add": 1e-6,
    "scatter_rows": 1e-6,
}


def compiled_vs_reference(graph: Graph, feeds_for_n) -> None:
    exe = make_executable(graph, "llvm")
    for name in (v.name for v in graph.inputs if v.role != "data"):
        exe.bind(name, feeds_for_n(1)[name])
    for n in BATCHES:
        feeds = feeds_for_n(n)
        expected = interpret(graph, feeds)
        got = exe({v.name: feeds[v.name] for v in graph.inputs if v.role == "data"})
        yield n, got, expected


@pytest.mark.parametrize("case", ELEMENT_CASES, ids=lambda c: c.op)
def test_compiled_op_matches_reference(case):
    g = Graph(f"op_{case.op}")
    vals = [
        g.add_input(f"x{k}", TensorType(dtype_of(kind), tuple(shape)), "data")
        for k, (shape, kind) in enumerate(case.inputs)
    ]
    if not any(BATCH in v.shape for v in vals):
        vals.append(g.add_input("batch", TensorType(DType.f32, (BATCH,)), "data"))
    y = case.build(*vals[: len(case.inputs)])
    g.set_outputs([("y", y)])

    def feeds(n):
        rng = np.random.default_rng(n)
        out = {}
        for v, (shape, kind) in zip(vals, case.inputs):
            concrete = tuple(n if d == BATCH else d for d in shape)
            out[v.name] = make(concrete, kind, rng)
        if "batch" in [v.name for v in vals]:
            out["batch"] = np.zeros(n, np.float32)
        return out

    for n, got, expected in compiled_vs_reference(g, feeds):
        tol = 0 if case.op in EXACT else TOLERANCE[case.op]
        a, e = got["y"], expected["y"]
        assert a.shape == e.shape and a.dtype == e.dtype, (n, a.shape, e.shape)
        np.testing.assert_allclose(
            a.astype(np.float64),
            e.astype(np.float64),
            rtol=tol,
            atol=tol,
            err_msg=f"{case.op} at N={n}",
        )


def test_constant_and_random_compiled():
    g = Graph("const_random")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 3)), "data")
    c = g.add_input("c", TensorType(DType.i32, ()), "data")
    data = B.const_array(g, [1.5, -2.0, 3.25], DType.f32, (3,))
    splat = B.const(g, 7, DType.i32, (BATCH, 2))
    u = B.random_uniform(c, (BATCH, 37), seed=12345)
    g.set_outputs([("a", x * data), ("s", splat), ("u", u)])
    exe = make_executable(g, "llvm")
    for n in BATCHES:
        feeds = {"x": np.ones((n, 3), np.float32), "c": np.asarray(n * 3, np.int32)}
        got, expected = exe(feeds), interpret(g, feeds)
        for key in ("a", "s", "u"):
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{key} N={n}")


def test_constant_tables_of_every_dtype_compiled_exactly():
    """Constant arrays (emitted as their bytes) hold every value: f32 specials (NaN,
    infinities, -0.0, the smallest subnormal, f32's largest), int32's ends, bools."""
    g = Graph("tables")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 6)), "data")
    floats = [float("nan"), float("inf"), -0.0, 1e-45, 3.4028234663852886e38, -1.5]
    table = B.const_array(g, floats, DType.f32, (6,))
    ints = B.const_array(g, [-(2**31), 2**31 - 1, 0, -1, 7, 123456789], DType.i32, (6,))
    flags = B.const_array(g, [True, False, True, True, False, False], DType.bool, (6,))
    # (read, not computed on: native code flushes subnormal results to zero)
    g.set_outputs([("t", table), ("i", ints), ("b", B.select(flags, x, table))])
    exe = make_executable(g, "llvm")
    feeds = {"x": np.full((2, 6), 2.0, np.float32)}
    got, expected = exe(feeds), interpret(g, feeds)
    for key in ("t", "i", "b"):
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert np.signbit(got["t"][2]) and got["t"][3] == np.float32(1e-45)
    assert got["i"].tolist() == [-(2**31), 2**31 - 1, 0, -1, 7, 123456789]
    assert got["b"][0].tolist() == [2.0, float("inf"), 2.0, 2.0, 3.4028234663852886e38, -1.5]


def test_long_odd_reductions_and_products(rng):
    g = Graph("big")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 1001)), "data")
    w = g.add_input("w", TensorType(DType.f32, (1001, 37)), "param")
    g.set_outputs(
        [
            ("rows", B.reduce_sum(x, 1)),
            ("cols", B.reduce_sum(x, 0)),
            ("mx", B.reduce_max(x, 1)),
            ("mm", B.matmul(x, w)),
            ("mt", B.matmul(x, x, transpose_a=True)),
        ]
    )
    exe = make_executable(g, "llvm")
    weights = rng.normal(size=(1001, 37)).astype(np.float32)
    exe.bind("w", weights)
    for n in (1, 7, 33, 100):
        xs = rng.normal(size=(n, 1001)).astype(np.float32)
        got = exe({"x": xs})
        ref = interpret(g, {"x": xs, "w": weights})
        for key in ref:
            np.testing.assert_allclose(
                got[key], ref[key], rtol=1e-4, atol=1e-4, err_msg=f"{key} N={n}"
            )


@pytest.mark.parametrize("columns", [1, 5, 8, 21, 32])
@pytest.mark.parametrize("window", [1, 4, 9])
def test_middle_axis_reductions_take_vectors_of_columns(rng, columns, window):
    """[rows, window, columns] reduced over the window (pooling's reduction): vectors of
    columns with the last ones one by one, max propagating NaN as numpy's does."""
    g = Graph("middle")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 3, window, columns)), "data")
    g.set_outputs(
        [
            ("mx", B.reduce_max(x, 2)),
            ("sum", B.reduce_sum(x, 2)),
            ("prod", B.reduce_prod(x, 2)),
            ("batch", B.reduce_sum(x, 0)),  # all rows into one: the streaming path
            # pooling's windows: [N, OH, KH, OW, KW, C] reduced over KH and KW
            ("pool", B.reduce_max(B.reshape(x, (BATCH, 3, 1, 1, window, columns)), (2, 4))),
            ("both", B.reduce_sum(x, (0, 2))),
        ]
    )
    exe = make_executable(g, "llvm")
    for n in (1, 7):
        xs = rng.normal(size=(n, 3, window, columns)).astype(np.float32)
        xs[0, 0, 0, 0] = np.nan
        got, ref = exe({"x": xs}), interpret(g, {"x": xs})
        np.testing.assert_array_equal(got["mx"], ref["mx"])
        np.testing.assert_array_equal(got["pool"], ref["pool"])
        for key in ("sum", "prod", "batch", "both"):
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_inputs_are_updated_in_place_and_checked():
    g = Graph("update")
    w = g.add_input("w", TensorType(DType.f32, (4,)), "param")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 4)), "data")
    g.set_outputs([("w", w - B.reduce_sum(x, 0)), ("total", B.reduce_sum(x))])
    exe = make_executable(g, "llvm")
    weights = np.ones(4, np.float32)
    exe.bind("w", weights)
    out = exe({"x": np.ones((3, 4), np.float32)})
    np.testing.assert_array_equal(weights, [-2, -2, -2, -2])
    assert float(out["total"]) == 12.0 and "w" not in out
    from kcompile.ir import FeedError

    with pytest.raises(FeedError, match="input 'w': expected f32\\[4\\]"):
        exe.bind("w", np.ones(5, np.float32))
    with pytest.raises(FeedError, match="input 'x': expected shape"):
        exe({"x": np.ones((3, 5), np.float32)})
