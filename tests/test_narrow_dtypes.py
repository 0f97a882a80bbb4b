"""The narrow dtypes of the IR (bf16, f16, i8, u8): their text form, casts with the
rounding ml_dtypes and numpy give, and the reference's rule for narrow floats
(operands widened to f32, computed there, each result rounded once)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from kcompile.ir import (
    BATCH,
    DType,
    Graph,
    ShapeError,
    TensorType,
    first_difference,
    interpret,
    parse_graph,
    print_graph,
    verify,
)
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.ir.interpreter import FeedError
from kcompile.passes import append_gradients
from kcompile.passes.narrow_floats import has_narrow_floats, hold_narrow_floats
from kcompile.runtime import make_executable

BF16 = np.dtype(ml_dtypes.bfloat16)


def _graph(*types: TensorType) -> tuple[Graph, list]:
    g = Graph("narrow")
    return g, [g.add_input(f"x{i}", t) for i, t in enumerate(types)]


def _run(g: Graph, *arrays, float_dtype=np.float32):
    feeds = {v.name: a for v, a in zip(g.inputs, arrays)}
    return interpret(g, feeds, float_dtype)


def test_dtype_table():
    assert [d.value for d in DType if d.is_narrow_float] == ["bf16", "f16"]
    assert DType.bf16.numpy == BF16 and DType.f16.numpy == np.float16
    assert (DType.bf16.itemsize, DType.i8.itemsize, DType.f32.itemsize) == (2, 1, 4)
    assert DType.from_numpy(BF16) is DType.bf16
    assert DType.from_numpy(np.float64) is DType.f32  # widened data is converted
    assert DType.from_numpy(np.uint8) is DType.u8
    assert DType.from_numpy(np.int64) is DType.i32
    assert DType.from_keras("bfloat16") is DType.bf16
    assert DType.from_keras("float64") is DType.f32
    assert DType.bf16.keras_name == "bfloat16"
    with pytest.raises(ValueError, match="no kcompile dtype for Keras dtype 'string'"):
        DType.from_keras("string")


def test_every_dtype_prints_and_parses_back():
    g, (x, i) = _graph(TensorType(DType.f32, (BATCH, 3)), TensorType(DType.i32, (3,)))
    outs = [(d.value, B.cast(x, d)) for d in DType if d not in (DType.f32, DType.bool)]
    outs.append(("bool", B.cast(i, DType.bool)))
    outs.append(("back", B.cast(B.cast(x, DType.bf16), DType.f16)))
    g.set_outputs(outs)
    verify(g)
    text = print_graph(g)
    assert "bf16[N,3]" in text and "u8[N,3]" in text
    assert first_difference(g, parse_graph(text)) is None


def test_cast_to_bf16_rounds_to_nearest_even_as_ml_dtypes():
    # Exact ties (low half 0x8000) go to the even neighbour; above and below the tie go
    # to the nearer one; inf, nan and overflow as ml_dtypes converts them.
    bits = np.array(
        [0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF, 0x7F7FFFFF, 0xFF800000, 0x7FC00001],
        dtype=np.uint32,
    )
    x = np.concatenate([bits.view(np.float32), np.random.default_rng(0).normal(size=50)])
    x = x.astype(np.float32)
    g, (v,) = _graph(TensorType(DType.f32, (x.size,)))
    g.set_outputs([("y", B.cast(v, DType.bf16)), ("h", B.cast(v, DType.f16))])
    out = _run(g, x)
    assert out["y"].dtype == BF16 and out["h"].dtype == np.float16
    expected = x.astype(BF16)
    np.testing.assert_array_equal(out["y"].view(np.uint16), expected.view(np.uint16))
    with np.errstate(over="ignore"):  # the largest f32 overflows f16 to inf
        halves = x.astype(np.float16)
    np.testing.assert_array_equal(out["h"].view(np.uint16), halves.view(np.uint16))
    # The ties: 1 + 2^-8 rounds down to 1 (even), 1 + 3*2^-8 up to 1 + 2^-6.
    assert out["y"][0] == 1.0 and out["y"][1] == np.float32(1 + 2**-6)


def test_cast_to_bytes_truncates_and_saturates():
    x = np.array([-300.0, -128.9, -1.7, -0.5, 0.5, 1.7, 126.9, 254.9, 300.0, np.nan], np.float32)
    g, (v,) = _graph(TensorType(DType.f32, (x.size,)))
    g.set_outputs([("s", B.cast(v, DType.i8)), ("u", B.cast(v, DType.u8))])
    out = _run(g, x)
    assert out["s"].tolist() == [-128, -128, -1, 0, 0, 1, 126, 127, 127, 0]
    assert out["u"].tolist() == [0, 0, 0, 0, 0, 1, 126, 254, 255, 0]


def test_narrow_ops_compute_in_f32_and_round_once():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 300)).astype(np.float32)
    w = rng.normal(size=(300, 5)).astype(np.float32)
    g, (x, k) = _graph(TensorType(DType.f32, (4, 300)), TensorType(DType.f32, (300, 5)))
    xb, kb = B.cast(x, DType.bf16), B.cast(k, DType.bf16)
    product = B.matmul(xb, kb)
    y = B.tanh(B.add(product, 0.1))
    g.set_outputs([("p", product), ("y", y)])
    verify(g)
    out = _run(g, a, w)
    wide = a.astype(BF16).astype(np.float32) @ w.astype(BF16).astype(np.float32)
    # The 300-term sums accumulate in f32 and are rounded once.
    np.testing.assert_array_equal(out["p"], wide.astype(BF16))
    tenth = np.float32(np.float32(0.1).astype(BF16))
    expected = np.tanh(out["p"].astype(np.float32) + tenth).astype(BF16)
    assert out["y"].dtype == BF16
    np.testing.assert_array_equal(out["y"].view(np.uint16), expected.view(np.uint16))


def test_operands_of_two_float_dtypes_are_refused():
    _, (x, y) = _graph(TensorType(DType.f32, (3,)), TensorType(DType.bf16, (3,)))
    with pytest.raises(ShapeError, match="one dtype"):
        B.add(x, y)


def test_gradient_of_a_bf16_computation_is_f32_and_matches_differences():
    # In float64 runs narrow floats are not rounded, so differences see the function.
    rng = np.random.default_rng(2)
    g, (x, k) = _graph(TensorType(DType.f32, (3, 4)), TensorType(DType.f32, (4, 2)))
    h = B.tanh(B.matmul(B.cast(x, DType.bf16), B.cast(k, DType.bf16)))
    loss = B.reduce_sum(B.cast(B.mul(h, h), DType.f32))
    (grad,) = append_gradients(g, loss, [k])
    assert grad.dtype is DType.f32
    g.set_outputs([("loss", loss), ("g", grad)])
    verify(g)
    feeds = {"x0": rng.normal(size=(3, 4)), "x1": rng.normal(size=(4, 2))}
    out = interpret(g, feeds, np.float64)
    assert out["g"].dtype == np.float64
    np.testing.assert_allclose(out["g"], numeric_gradient(g, feeds, "x1"), rtol=1e-6, atol=1e-8)


def test_feeds_convert_within_a_family_and_refuse_across():
    g, (x, b) = _graph(TensorType(DType.f32, (2,)), TensorType(DType.bf16, (2,)))
    g.set_outputs([("x", x), ("b", b)])
    out = _run(g, np.array([1.5, 2.0], np.float64), np.array([1.0, 1 + 2**-9], np.float32))
    assert out["x"].dtype == np.float32
    assert out["b"].dtype == BF16 and out["b"][1] == 1.0  # rounded into bf16
    out = _run(g, np.array([1.5, 2.0], BF16), np.array([3.0, 4.0], np.float16))
    assert out["x"].tolist() == [1.5, 2.0] and out["b"].tolist() == [3.0, 4.0]
    with pytest.raises(FeedError, match="input 'x0': expected dtype f32, got int32"):
        _run(g, np.array([1, 2], np.int32), np.array([1.0, 2.0], np.float32))


# --- held in f32 (passes/narrow_floats.py) and compiled ---------------------------------


def _edge_values() -> np.ndarray:
    bits = np.array(
        [0x3F808000, 0x3F818000, 0x3F808001, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000,
         0xFFC00001, 0x00000001, 0x00400000, 0x80000000, 0x477FF000, 0x33000000],
        dtype=np.uint32,
    )  # fmt: skip
    rng = np.random.default_rng(3)
    spread = rng.normal(size=99) * np.exp2(rng.integers(-30, 30, size=99))
    return np.concatenate([bits.view(np.float32), spread.astype(np.float32)])


@pytest.mark.parametrize("dtype", [DType.bf16, DType.f16], ids=lambda d: d.value)
def test_compiled_rounding_gives_the_reference_bits(dtype):
    x = _edge_values()
    g, (v,) = _graph(TensorType(DType.f32, (BATCH,)))
    g.set_outputs([("y", B.cast(B.cast(v, dtype), DType.f32))])
    exe = make_executable(g, "llvm")
    with np.errstate(over="ignore"):
        expected = x.astype(dtype.numpy).astype(np.float32)
    got = exe({"x0": x})["y"]
    same = (got.view(np.uint32) == expected.view(np.uint32)) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), (x[~same], got[~same], expected[~same])


def test_a_bf16_layer_compiles_to_the_reference_numbers():
    rng = np.random.default_rng(4)
    g, (x, w) = _graph(TensorType(DType.f32, (BATCH, 40)), TensorType(DType.f32, (40, 24)))
    h = B.tanh(B.add(B.matmul(B.cast(x, DType.bf16), B.cast(w, DType.bf16)), 0.1))
    g.set_outputs([("h", h), ("rows", B.reduce_sum(B.cast(h, DType.f32), 1))])
    exe = make_executable(g, "llvm")
    weights = rng.normal(size=(40, 24)).astype(np.float32)
    for n in (1, 7, 64):
        data = rng.normal(size=(n, 40)).astype(np.float32)
        got = exe({"x0": data, "x1": weights})
        expected = interpret(g, {"x0": data, "x1": weights})
        # Held in f32 but holding bf16 values; the product's f32 sums may differ from
        # numpy's in their last bit and round to the neighbouring bf16 value.
        held = expected["h"].astype(np.float32)
        assert np.array_equal(got["h"].astype(DType.bf16.numpy).astype(np.float32), got["h"])
        np.testing.assert_allclose(got["h"], held, rtol=2**-7, atol=0)
        np.testing.assert_allclose(got["rows"], expected["rows"], rtol=1e-2, atol=1e-2)


def test_holding_rounds_narrow_inputs_and_constants_and_leaves_f32_graphs_alone():
    g, (x,) = _graph(TensorType(DType.f32, (BATCH, 3)))
    g.set_outputs([("y", B.maximum(x, 0.0))])
    assert hold_narrow_floats(g) is g
    g, (b,) = _graph(TensorType(DType.bf16, (BATCH, 3)))
    y = B.transpose(B.mul(b, 0.1), (1, 0))
    g.set_outputs([("y", y)])
    held = hold_narrow_floats(g)
    verify(held)
    assert not has_narrow_floats(held)
    ops = [n.op for n in held.nodes]
    # The input and the product are rounded, the transpose is not.
    assert ops == ["round_to", "constant", "mul", "round_to", "transpose"]
    assert held.nodes[1].attrs["value"] == float(np.float32(0.1).astype(BF16))
    data = np.array([[1 + 2**-9, 3.0, -2.0]], np.float32)
    expected = interpret(g, {"x0": data})["y"].astype(np.float32)
    np.testing.assert_array_equal(interpret(held, {"x0": data})["y"], expected)


@pytest.mark.parametrize("dtype", [DType.bf16, DType.f16], ids=lambda d: d.value)
def test_ops_that_pick_or_flip_narrow_values_are_not_rounded(dtype):
    """ReLU as a select (and max, neg, abs, sign, floor, ceil, round) of values the
    narrow type holds gives values it holds: no rounding after them, and the same bits
    as the reference, which rounds each op's f32 result."""
    g, (x,) = _graph(TensorType(DType.f32, (BATCH, 16)))
    v = B.mul(B.cast(x, dtype), 1.7)
    zero = B.const(g, 0.0, dtype, ())
    relu = B.select(B.le(v, zero), zero, v)
    picked = [relu, B.maximum(v, zero), B.neg(v), B.abs(v), B.sign(v), B.floor(v)]
    picked += [B.ceil(v), g.emit1("round", [v])]
    g.set_outputs([(f"y{i}", B.cast(y, DType.f32)) for i, y in enumerate(picked)])
    held = hold_narrow_floats(g)
    verify(held)
    rounded = [n.inputs[0].node for n in held.nodes if n.op == "round_to"]
    assert sorted(n.op if n else "input" for n in rounded) == ["input", "mul"]
    data = np.random.default_rng(5).normal(size=(7, 16)).astype(np.float32) * 300
    data[0, :4] = [np.nan, np.inf, -0.0, 2.5]
    want = interpret(g, {"x0": data})
    got = make_executable(g, "llvm")({"x0": data})
    for name in want:
        expected = np.asarray(want[name], np.float32)
        same = (got[name].view(np.uint32) == expected.view(np.uint32)) | (
            np.isnan(got[name]) & np.isnan(expected)
        )
        assert same.all(), (name, got[name][~same], expected[~same])


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_masked_dot_product_attention_fills_in_the_logits_dtype(policy):
    """MultiHeadAttention's fast path (``ops.nn.dot_product_attention``) masks bf16 or f16
    logits with -0.7 x their own dtype's largest value, as Keras's backends: a float32
    fill did not select with them (the fuzzer's model seed 11 failed to build)."""
    import kcompile as keras

    keras.mixed_precision.set_global_policy(policy)
    try:
        x = keras.Input((6, 4))
        h = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)(x, x, use_causal_mask=True)
        y = keras.layers.Dense(3, dtype="float32")(keras.layers.Flatten()(h))
        model = keras.Model(x, y)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    data = np.random.default_rng(0).normal(size=(5, 6, 4)).astype(np.float32)
    got = model.predict(data, verbose=0)
    model.compile(backend="reference")
    want = model.predict(data, verbose=0)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2)
