"""Roundings moved into the bf16 products (``passes.narrow_floats.round_in_products``):
which roundings move, the ``round_operands`` attribute's text form and reference, and
native code giving the bits it gave with the roundings as kernels of their own, on the
engines and on ``kc_bgemm``'s portable path, below and above ``BGEMM_MIN_DIM``, on 1
and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile.codegen.lowering.products as products
from kcompile.codegen.building.target import host
from kcompile.codegen.library.bf16_gemm import PORTABLE, has_engine
from kcompile.codegen.library.gemm import ROUND_B
from kcompile.codegen.lowering.products import bgemm_flags, on_bf16_engine, product_dims
from kcompile.ir import BATCH, DType, Graph, ShapeError, TensorType, interpret, verify
from kcompile.ir import build as B
from kcompile.ir.engines import BGEMM_MIN_DIM
from kcompile.ir.parser import parse_graph
from kcompile.ir.printer import print_graph
from kcompile.passes import PassManager, default_passes
from kcompile.passes.narrow_floats import hold_narrow_floats, round_in_products
from kcompile.runtime import make_executable, prepare
from tests.threads import on_threads

F32 = DType.f32


def _bf16(x):
    return B.cast(x, DType.bf16)


def _mlp_graph() -> Graph:
    """An image reshaped into rows, two bf16 products (the second transposed), a bias
    (not a product: its rounding stays), a weight a product and a sum read (stays)."""
    g = Graph("narrow_mlp")
    x = g.add_input("x", TensorType(F32, (BATCH, 6, 8)), "data")
    w1 = g.add_input("w1", TensorType(F32, (48, 40)), "param")
    bias = g.add_input("bias", TensorType(F32, (40,)), "param")
    w2 = g.add_input("w2", TensorType(F32, (5, 40)), "param")
    w3 = g.add_input("w3", TensorType(F32, (40, 3)), "param")
    rows = B.reshape(_bf16(x), (BATCH, 48))
    h = B.tanh(B.add(B.matmul(rows, _bf16(w1)), _bf16(bias)))
    y = B.matmul(h, _bf16(w2), transpose_b=True)
    w3b = _bf16(w3)
    z = B.matmul(h, w3b)
    g.set_outputs(
        [
            ("y", B.cast(y, F32)),
            ("z", B.cast(z, F32)),
            ("w3", B.cast(B.reduce_sum(w3b, 0), F32)),
            ("back", B.cast(B.matmul(rows, h, transpose_a=True), F32)),
        ]
    )
    verify(g)
    return g


def _feeds(rng, n: int) -> dict:
    return {
        "x": rng.normal(size=(n, 6, 8)).astype(np.float32),
        "w1": rng.normal(size=(48, 40)).astype(np.float32),
        "bias": rng.normal(size=40).astype(np.float32),
        "w2": rng.normal(size=(5, 40)).astype(np.float32),
        "w3": rng.normal(size=(40, 3)).astype(np.float32),
    }


def _rounded_inputs(graph: Graph) -> list[str]:
    return sorted(
        n.inputs[0].name or n.inputs[0].node.op for n in graph.nodes if n.op == "round_to"
    )


def test_roundings_of_stored_values_only_products_read_move_into_them():
    held = hold_narrow_floats(_mlp_graph())
    moved = round_in_products(held)
    verify(moved)
    # x (through its reshape) and w1, w2 go into the products; the bias (an add reads
    # it), w3 (a sum reads it too) and computed values keep their roundings.
    assert set(_rounded_inputs(held)) - set(_rounded_inputs(moved)) == {"x", "w1", "w2"}
    assert {"bias", "w3"} <= set(_rounded_inputs(moved))
    rounds = {
        tuple(v.name or v.node.op for v in n.inputs): n.attrs.get("round_operands")
        for n in moved.nodes
        if n.op == "matmul"
    }
    assert rounds == {
        ("reshape", "w1"): (0, 1),
        ("round_to", "w2"): (1,),
        ("round_to", "round_to"): None,
        ("reshape", "round_to"): (0,),
    }
    assert round_in_products(moved) is moved  # nothing left to move


def test_the_attribute_prints_and_parses_back():
    moved = round_in_products(hold_narrow_floats(_mlp_graph()))
    text = print_graph(moved)
    assert "round_operands=[0, 1]" in text and "round_operands=[1]" in text
    again = parse_graph(text)
    verify(again)
    assert print_graph(again) == text


@pytest.mark.parametrize("float_dtype", [np.float32, np.float64])
def test_the_reference_rounds_the_operands_as_the_roundings_did(rng, float_dtype):
    held = hold_narrow_floats(_mlp_graph())
    moved = round_in_products(held)
    feeds = _feeds(rng, 7)
    want = interpret(held, feeds, float_dtype)
    got = interpret(moved, feeds, float_dtype)
    for name in want:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_round_operands_is_checked():
    g = Graph("bad")
    a = g.add_input("a", TensorType(F32, (3, 4)))
    b = g.add_input("b", TensorType(F32, (4, 2)))
    with pytest.raises(ShapeError, match="needs precision=bf16"):
        g.emit("matmul", [a, b], {"transpose_a": False, "transpose_b": False,
                                   "round_operands": (0,)})  # fmt: skip
    attrs = {"transpose_a": False, "transpose_b": False, "precision": "bf16"}
    for bad in [(), (2,), (0, 0)]:
        with pytest.raises(ShapeError, match="operand positions"):
            g.emit("matmul", [a, b], {**attrs, "round_operands": bad})


def _layer_graph(depth: int, width: int) -> Graph:
    """A Dense layer's forward product and weight gradient on bf16 operands."""
    g = Graph("narrow_layer")
    x = g.add_input("x", TensorType(F32, (BATCH, depth)), "data")
    w = g.add_input("w", TensorType(F32, (depth, width)))
    dy = g.add_input("dy", TensorType(F32, (BATCH, width)), "data")
    xb = _bf16(x)
    y = B.add(B.matmul(xb, _bf16(w)), 0.5)
    g.set_outputs(
        [("y", B.cast(y, F32)), ("dw", B.cast(B.matmul(xb, _bf16(dy), transpose_a=True), F32))]
    )
    return g


ENGINES = ["host", "none"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "depth, width", [(BGEMM_MIN_DIM + 5, BGEMM_MIN_DIM + 13), (BGEMM_MIN_DIM - 3, 10)]
)
def test_native_products_give_the_bits_of_separate_roundings(
    rng, monkeypatch, threads, engine, depth, width
):
    """Rounding in the product (its engine's packing; off it, the portable path's copy of
    A, ``kc_sgemm``'s packing of B) gives the bits rounding kernels gave before the same
    product; ``engine`` none: codegen and the pipeline told the CPU has no bf16 engine."""
    import kcompile.codegen.library.bf16_gemm as bf16_gemm

    monkeypatch.setenv("KCOMPILE_CACHE", "0")
    if engine == "none":
        monkeypatch.setattr(products, "has_engine", lambda features: False)
        monkeypatch.setattr(bf16_gemm, "has_engine", lambda features: False)
    elif not has_engine(host().has):
        pytest.skip("this CPU has no bf16 engine")
    graph = _layer_graph(depth, width)
    new = prepare(graph, PassManager(default_passes()))
    found = []
    pending = list(new.nodes)
    while pending:
        node = pending.pop()
        if node.traits.kernel_body:
            pending += node.attrs["body"].nodes
        elif node.op == "matmul" and node.attrs.get("round_operands"):
            flags = bgemm_flags(node, product_dims(node))
            path = "portable" if flags & PORTABLE else "packing" if flags & ROUND_B else None
            found.append((on_bf16_engine(node), path, 0 in node.attrs["round_operands"]))
    narrow = min(depth, width) < BGEMM_MIN_DIM
    if engine == "host" and not narrow:
        assert found and all(f[:2] == (True, None) for f in found), found
    elif engine == "host":  # told of the engine, the pipeline moved x too: too narrow for
        # the engine, each product rounds its A into a copy (the portable path)
        assert found and all(f == (False, "portable", True) for f in found), found
    else:  # x, read as A by both products, keeps its kernel; w and dy, read as B, move
        assert found and all(f == (False, "packing", False) for f in found), found
    runs = [
        make_executable(graph, "llvm", PassManager(default_passes(disable)))
        for disable in (set(), {"round_in_products"})
    ]
    with on_threads(threads):
        for n in (1, 7, 45):
            feeds = {
                "x": rng.normal(size=(n, depth)).astype(np.float32),
                "w": rng.normal(size=(depth, width)).astype(np.float32),
                "dy": rng.normal(size=(n, width)).astype(np.float32),
            }
            got, want = (exe(feeds) for exe in runs)
            for name in want:
                np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} n={n}")
            reference = interpret(graph, feeds)
            for name in want:
                np.testing.assert_allclose(got[name], reference[name], rtol=2**-7, atol=1e-5)


def test_a_rounded_row_sum_read_through_a_reshape_joins_its_row_kernel(rng):
    """A bf16 row sum reshaped to broadcast over its rows (a softmax gradient's) is rounded
    after the reshape: the same bits, and the whole chain is one row kernel."""
    g = Graph("row_sum")
    x = g.add_input("x", TensorType(F32, (BATCH, 4, 6)), "data")
    xb = _bf16(x)
    total = B.reshape(B.reduce_sum(xb, (2,)), (BATCH, 4, 1))
    g.set_outputs([("y", B.cast(B.mul(B.sub(xb, total), xb), F32))])
    held = hold_narrow_floats(g)
    (rounding,) = [n for n in held.nodes if n.op == "round_to" and n.inputs[0].node is not None
                   and n.inputs[0].node.op == "reshape"]  # fmt: skip
    assert rounding.inputs[0].node.inputs[0].node.op == "reduce_sum"
    feeds = {"x": rng.normal(size=(5, 4, 6)).astype(np.float32)}
    np.testing.assert_array_equal(interpret(held, feeds)["y"], interpret(g, feeds)["y"])
    fused = prepare(g, PassManager(default_passes()))
    kernels = [n for n in fused.nodes if not n.traits.view]
    assert [n.attrs.get("kind") for n in kernels] == ["row"], print_graph(fused)


def test_a_bias_gradient_under_bf16_stays_in_its_products_epilogue(rng):
    """A ReLU layer's input gradient and its bias's gradient on bf16 values (the roundings
    around the mask: ``round_to select round_to reduce_sum``) fuse into the product's
    epilogue, as in float32, not into a row kernel of their own; same numbers."""
    g = Graph("bias_gradient")
    dy = g.add_input("dy", TensorType(F32, (BATCH, 40)), "data")
    w = g.add_input("w", TensorType(F32, (33, 40)), "param")
    h = g.add_input("h", TensorType(F32, (BATCH, 33)), "data")
    dh = B.matmul(_bf16(dy), _bf16(w), transpose_b=True)
    masked = B.select(B.le(_bf16(h), 0.0), 0.0, dh)
    g.set_outputs([("dh", B.cast(masked, F32)), ("db", B.cast(B.reduce_sum(masked, (0,)), F32))])
    fused = prepare(g, PassManager(default_passes()))
    kinds = [n.attrs.get("kind") for n in fused.nodes if n.op == "fused"]
    assert "row" not in kinds, print_graph(fused)
    (product,) = [n for n in fused.nodes if n.op == "fused" and n.attrs["kind"] == "matmul"]
    assert "reduce_sum" in {n.op for n in product.attrs["body"].nodes}
    feeds = {
        "dy": rng.normal(size=(9, 40)).astype(np.float32),
        "w": rng.normal(size=(33, 40)).astype(np.float32),
        "h": rng.normal(size=(9, 33)).astype(np.float32),
    }
    got = make_executable(g, "llvm", PassManager(default_passes()))(feeds)
    want = interpret(g, feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=2**-7, atol=1e-4, err_msg=name)


def test_without_an_engine_a_value_several_products_read_keeps_its_rounding(rng):
    """Off the engines each product rounds its operands into a copy of its own: x, which
    two products read, keeps its one rounding kernel; w1 and w2 (one product each) move."""
    held = hold_narrow_floats(_mlp_graph())
    moved = round_in_products(held, bf16_engine=False)
    verify(moved)
    assert set(_rounded_inputs(held)) - set(_rounded_inputs(moved)) == {"w1", "w2"}
    assert "x" in _rounded_inputs(moved)
    feeds = _feeds(rng, 5)
    want, got = interpret(held, feeds), interpret(moved, feeds)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_the_front_end_tells_the_pipeline_whether_the_target_has_an_engine(monkeypatch):
    """``prepare`` sets the manager's options from the CPU lowered for (the host's, or
    ``lowering_for``'s), and the prepared-graph cache keys on them."""
    import kcompile.codegen.library.bf16_gemm as bf16_gemm
    from kcompile.passes.manager import PipelineOptions
    from kcompile.runtime import prepared

    graph = _mlp_graph()
    for engine in (True, False):
        monkeypatch.setattr(bf16_gemm, "has_engine", lambda features, engine=engine: engine)
        manager = PassManager(default_passes())
        new = prepare(graph, manager)
        assert manager.options == PipelineOptions(bf16_engine=engine)
        assert ("round_operands=[0, 1]" in print_graph(new)) == engine  # x moved or not
    told = [PassManager(default_passes(), options=PipelineOptions(e)) for e in (True, False)]
    keys = {prepared.key(graph, m) for m in told}
    assert len(keys) == 2
    assert prepared.key(graph, PassManager(default_passes())) in keys  # the default's
    unread = {"round_in_products", "store_narrow"}
    skipped = PassManager(default_passes(unread), options=PipelineOptions(False))
    assert skipped.options_read() == ""  # no pass reads it: not in the key


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("engine", ENGINES)
def test_both_settings_of_the_option_give_the_reference(rng, monkeypatch, threads, engine):
    """The pipeline told the target has a bf16 engine and told it has none, each lowered
    with and without the engine: the same bits, the reference's values within bf16."""
    from kcompile.passes.manager import PipelineOptions

    monkeypatch.setenv("KCOMPILE_CACHE", "0")
    if engine == "none":
        monkeypatch.setattr(products, "has_engine", lambda features: False)
    elif not has_engine(host().has):
        pytest.skip("this CPU has no bf16 engine")
    graph = _mlp_graph()
    runs = [
        make_executable(graph, "llvm", PassManager(default_passes(), options=PipelineOptions(e)))
        for e in (True, False)
    ]
    with on_threads(threads):
        for n in (1, 9):
            feeds = _feeds(rng, n)
            first, second = (exe(feeds) for exe in runs)
            reference = interpret(graph, feeds)
            assert set(first) == {"y", "z", "back"}  # "w3" names an input: written into it
            for name in first:
                np.testing.assert_array_equal(first[name], second[name], err_msg=name)
                np.testing.assert_allclose(
                    first[name], reference[name], rtol=2**-7, atol=1e-4, err_msg=name
                )


@pytest.mark.slow
def test_an_artifact_for_a_cpu_without_an_engine_is_prepared_for_it(tmp_path):
    """``kcompile build --cpu x86-64-v3`` on a host with AMX: the artifact's train step
    keeps the input's rounding (its forward product and its weight gradient both read
    it), where the host's own step moves it into both; the artifact still predicts the
    reference's values."""
    import kcompile as keras
    from kcompile.artifact.container import read_artifact

    if not has_engine(host().has):
        pytest.skip("the host has no bf16 engine: its steps are prepared as x86-64-v3's")
    rng = np.random.default_rng(0)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        i = keras.Input((67,))
        h = keras.layers.Dense(45, activation="relu")(keras.layers.Dense(40)(i))
        model = keras.Model(i, keras.layers.Dense(7, dtype="float32")(h))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    x, y = rng.normal(size=(5, 67)).astype(np.float32), rng.integers(0, 7, 5)
    model.train_on_batch(x, y)
    host_train = model.compiled_steps.executable(
        "train", tuple(model.default_label_types(model.compiled_steps.input_shapes([x[:4]]))),
        model.compiled_steps.input_shapes([x[:4]]),
    ).graph  # fmt: skip
    path = str(tmp_path / "v3.kc")
    model.export(path, probe=x, cpu="x86-64-v3")
    _, members = read_artifact(path)
    text = members["graphs/train.kir"].decode()
    assert "round_operands=[0, 1]" in print_graph(host_train)  # x's rounding moved
    assert "round_operands=[0, 1]" not in text and "round_operands=[1]" in text
    got = keras.load(path).predict(x, verbose=0).astype(np.float32)
    model.compile(backend="reference")
    want = model.predict(x, verbose=0).astype(np.float32)
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * 2**-8)
