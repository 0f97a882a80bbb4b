"""Each pass on small before/expected pairs, the pass manager, and every pass on every
model the tests build computing what the traced graph computes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import kcompile as keras
from kcompile import layers
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret, parse_graph, print_graph, verify
from kcompile.ir import build as B
from kcompile.ir.verify import verify_memory
from kcompile.passes import (
    PIPELINE,
    Pass,
    PassManager,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    fold_constants,
    fuse,
    simplify,
)
from kcompile.passes.memory import memory_report, plan_memory
from kcompile.passes.rewrite import rebuild
from kcompile.passes.schedule import schedule
from kcompile.tools import inspect
from tests.test_backends import MODELS
from tests.test_ir_text import random_graphs


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


def f32(*shape):
    return TensorType(DType.f32, shape)


def same_results(before: Graph, after: Graph, n: int = 3) -> None:
    rng = np.random.default_rng(0)
    feeds = {
        v.name: rng.normal(size=v.type.concrete_shape(n)).astype(np.float32) for v in before.inputs
    }
    a, b = interpret(before, feeds), interpret(after, feeds)
    # simplify_reductions reassociates (a factor leaves a sum, a product's factors are
    # reordered), which moves results by a few ulps of their operands: a relative 1e-5,
    # and an absolute error below a millionth of the largest value (or the smallest normal
    # float: the native code flushes denormals) where a sum cancels.
    for k in a:
        largest = float(np.max(np.abs(a[k]), initial=0.0))
        atol = max(float(np.finfo(np.float32).tiny), 1e-6 * largest)
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=atol, err_msg=k)


def test_simplify_identities_and_chains():
    g = Graph("s")
    x = g.add_input("x", f32(BATCH, 6))
    y = B.neg(B.neg(x * 1.0 + 0.0))
    r = B.reshape(B.reshape(y, (BATCH, 2, 3)), (BATCH, 3, 2))
    t = B.transpose(B.transpose(r, (0, 2, 1)), (0, 2, 1))
    g.set_outputs([("out", B.stop_gradient(t) / 1.0)])
    out = simplify(g)
    assert ops(out) == ["reshape"]
    assert out.nodes[0].inputs[0] is out.inputs[0]
    same_results(g, out)


def test_simplify_turns_summed_pads_that_tile_an_axis_into_a_concat():
    # the gradient of an LSTM's four gate slices, summed in no particular order
    g = Graph("gates")
    xs = [g.add_input(f"g{i}", f32(BATCH, 3)) for i in range(4)]
    pads = [B.pad(x, (0, 3 * i), (0, 9 - 3 * i)) for i, x in enumerate(xs)]
    g.set_outputs([("dz", ((pads[0] + pads[2]) + pads[3]) + pads[1])])
    out = simplify(g)
    assert ops(out) == ["concat"] and list(out.nodes[0].inputs) == list(out.inputs)
    same_results(g, out)
    gap = Graph("gap")  # ranges that leave a hole between them stay pads
    a, b = (gap.add_input(n, f32(BATCH, 3)) for n in "ab")
    gap.set_outputs([("y", B.pad(a, (0, 0), (0, 6)) + B.pad(b, (0, 6), (0, 0)))])
    assert ops(simplify(gap)) == ["pad", "pad", "add"]


def test_simplify_folds_broadcasts_into_binary_ops():
    g = Graph("b")
    x = g.add_input("x", f32(BATCH, 4))
    bias = g.add_input("b", f32(4))
    g.set_outputs([("out", x + B.broadcast_to(bias, (BATCH, 4)))])
    out = simplify(g)
    assert ops(out) == ["add"] and out.nodes[0].inputs[1] is out.input("b")
    same_results(g, out)


def test_simplify_keeps_identities_that_change_the_shape():
    g = Graph("keep")
    x = g.add_input("x", f32(BATCH, 1))
    g.set_outputs([("out", x + B.const(g, 0.0, DType.f32, (BATCH, 5)))])
    assert ops(simplify(g)) == ["constant", "add"]


def test_fold_constants():
    g = Graph("f")
    x = g.add_input("x", f32(BATCH, 3))
    c = B.exp(B.const(g, 0.0)) * 3.0  # a splat chain -> 3.0
    table = B.const_array(g, [1, 2, 3], DType.f32, (3,)) * B.const_array(
        g, [2, 2, 2], DType.f32, (3,)
    )
    g.set_outputs([("out", x * c + table)])
    out = fold_constants(g)
    assert ops(out) == ["constant", "constant", "mul", "add"]
    assert out.nodes[0].attrs["value"] == 3.0
    assert out.nodes[1].attrs["value"] == (2.0, 4.0, 6.0)
    same_results(g, out)


def test_cse_and_dce():
    g = Graph("c")
    x = g.add_input("x", f32(BATCH, 3))
    a, b = B.exp(x), B.exp(x)
    B.tanh(x)  # dead
    g.set_outputs([("out", a + b)])
    out = eliminate_common_subexpressions(g)
    assert ops(out) == ["exp", "add"]
    assert out.nodes[1].inputs[0] is out.nodes[1].inputs[1]
    same_results(g, out)
    assert ops(eliminate_dead_code(g)) == ["exp", "exp", "add"]


def test_fuse_elementwise_chain_into_one_loop():
    g = Graph("e")
    x = g.add_input("x", f32(BATCH, 8))
    s = g.add_input("s", f32(8))
    y = B.tanh(x * s + 1.0)
    g.set_outputs([("y", y), ("z", B.reduce_sum(y * y, 1))])
    out = eliminate_dead_code(fuse(g))
    # The chain, y*y and the row sums are one loop that also stores y on the way.
    assert ops(out) == ["fused"]
    first = out.nodes[0]
    assert first.attrs["kind"] == "reduce"
    assert [n.op for n in first.attrs["body"].nodes] == [
        "mul",
        "constant",
        "add",
        "tanh",
        "mul",
        "reduce_sum",
    ]
    assert len(first.outputs) == 2
    same_results(g, out)
    again = parse_graph(print_graph(out))
    same_results(g, again)


def test_fuse_bias_and_activation_into_the_matmul_epilogue():
    g = Graph("m")
    x = g.add_input("x", f32(BATCH, 5))
    w = g.add_input("w", f32(5, 4))
    b = g.add_input("b", f32(4))
    pre = B.matmul(x, w) + b
    g.set_outputs([("act", B.maximum(pre, 0.0)), ("pre", pre)])
    out = eliminate_dead_code(fuse(g))
    assert ops(out) == ["fused"]
    node = out.nodes[0]
    assert node.attrs["kind"] == "matmul"
    assert [n.op for n in node.attrs["body"].nodes] == ["matmul", "add", "constant", "max"]
    assert len(node.outputs) == 2  # the pre-activation is kept for the backward pass
    same_results(g, out)


def _train_graph(model):
    return inspect.pipeline_stages(model, "train")


def test_optimizer_update_is_one_kernel_per_weight_written_in_place():
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    final = parse_graph(_train_graph(model)[-1][1])
    updates = [
        n
        for n in final.nodes
        if n.op == "fused"
        and any(v is final.output(p.path) for p in model.weights for v in n.outputs)
    ]
    assert len(updates) == 2  # kernel and bias
    for node in updates:
        assert len(node.outputs) == 3  # momentum, velocity, weight
        for v in node.outputs:
            alias = final.memory.allocations[v].alias
            assert alias is not None and alias.role in ("opt", "param")


def test_schedule_orders_readers_before_in_place_writers():
    model = keras.Sequential(
        [keras.Input(shape=(4,)), layers.Dense(3, activation="relu"), layers.Dense(2)]
    )
    model.compile(optimizer="sgd", loss="mse")
    graph = parse_graph(_train_graph(model)[-1][1])
    position = {n: i for i, n in enumerate(graph.nodes)}
    users = graph.users()
    for var in model.weights:
        new = graph.output(var.path)
        old = graph.input(var.path)
        if graph.memory.allocations[new].alias is old:
            assert all(position[u] <= position[new.node] for u in users[old])


def test_updates_that_read_each_others_old_values_are_scheduled(rng):
    # w' = 2m and m' = w + 1: both cannot be written in place; one keeps a copy
    g = Graph("swap")
    w = g.add_input("w", TensorType(DType.f32, (5,)), "param")
    m = g.add_input("m", TensorType(DType.f32, (5,)), "opt")
    g.set_outputs([("w", m * 2.0), ("m", w + 1.0)])
    feeds = {"w": rng.normal(size=5).astype(np.float32), "m": rng.normal(size=5).astype(np.float32)}
    expected = interpret(g, feeds)
    planned = plan_memory(schedule(g))
    verify(planned)
    aliased = [v for _, v in planned.outputs if planned.memory.allocations[v].alias is not None]
    assert len(aliased) == 1  # the other update is written to its own buffer, then copied
    np.testing.assert_array_equal(interpret(planned, feeds)["w"], expected["w"])
    from kcompile.runtime.native import NativeExecutable

    exe = NativeExecutable(planned, "test")
    state = {name: array.copy() for name, array in feeds.items()}
    for name, array in state.items():
        exe.bind(name, array)
    exe({})
    np.testing.assert_array_equal(state["w"], expected["w"])
    np.testing.assert_array_equal(state["m"], expected["m"])


def test_memory_plan_text_round_trips_and_checks_overlap():
    model = keras.Sequential(
        [keras.Input(shape=(6,)), layers.Dense(5, activation="relu"), layers.Dense(2)]
    )
    model.compile(optimizer="rmsprop", loss="mse")
    text = _train_graph(model)[-1][1]
    graph = parse_graph(text)
    assert print_graph(graph) == text
    verify_memory(graph)
    report = memory_report(graph)
    assert report.arena <= report.buffers
    owned = [(v, a) for v, a in graph.memory.allocations.items() if a.alias is None]
    some, other = next(
        (v, w)
        for v, a in owned
        for w, b in owned
        if w is not v and b.start <= a.end and a.start <= b.end and b.size == a.size
    )
    graph.memory.allocations[other].offset = graph.memory.allocations[some].offset
    with pytest.raises(ValueError, match="overlap in the arena"):
        verify_memory(graph)


@settings(max_examples=40, deadline=None)
@given(random_graphs())
def test_pipeline_on_random_graphs(g):
    before = parse_graph(print_graph(g))
    after = PassManager(PIPELINE, verify_each=True).run(g)
    verify_memory(after)
    same_results(before, after)


@pytest.mark.parametrize("factory", MODELS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("step", ["train", "eval", "predict"])
def test_every_pass_preserves_results_on_models(factory, step):
    keras.backend.clear_session()
    model, _ = factory("llvm")
    result = inspect.check(model, step)
    assert result.ok, result.text()


def test_check_names_a_broken_pass():
    model, _ = MODELS[1]("llvm")

    def broken(graph):
        def visit(g, node, ins):
            if node.op == "exp":
                return [g.emit("exp", [ins[0] * 1.001])[0]]
            return None

        return rebuild(graph, visit)

    passes = [*PIPELINE[:2], Pass("broken_pass", broken), *PIPELINE[2:]]
    result = inspect.check(model, "train", passes)
    assert result.culprit == "pass broken_pass"
    text = result.text()
    assert "output loss:" in text and "IR lines the pass changed:" in text
    assert "+ " in text and "value=1.001" in text


def test_pass_manager_dumps_prints_and_times(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KCOMPILE_DEBUG", "1")
    g = Graph("pm")
    x = g.add_input("x", f32(BATCH, 4))
    g.set_outputs([("y", B.exp(x) + 0.0)])
    manager = PassManager(PIPELINE, dump_dir=str(tmp_path), print_after={"simplify"})
    manager.stage("traced", g)
    manager.run(g)
    names = sorted(p.name for p in (tmp_path / "pm").iterdir())
    assert names == [
        "000_traced.kir",
        "001_simplify.kir",
        "002_simplify_reductions.kir",
        "003_narrow_slices.kir",
        "004_fold_constants.kir",
        "005_eliminate_common_subexpressions.kir",
        "006_eliminate_dead_code.kir",
        "007_hoist_from_loops.kir",
        "008_hold_narrow_floats.kir",
        "009_round_in_products.kir",
        "010_sink_reshapes.kir",
        "011_hold_integer_products.kir",
        "012_hold_int4_products.kir",
        "013_fuse_rows.kir",
        "014_fuse.kir",
        "015_batch_rows.kir",
        "016_store_narrow.kir",
        "017_schedule.kir",
        "018_plan_memory.kir",
    ]
    for path in (tmp_path / "pm").iterdir():
        verify(parse_graph(path.read_text(), str(path)))
    err = capsys.readouterr().err
    assert "// after simplify" in err and "fold_constants" in err and " ms " in err
    assert manager.report.stages[0][0] == "traced"
    with pytest.raises(ValueError, match="unknown passes \\['fusion'\\]"):
        PassManager(PIPELINE, print_after={"fusion"})


def test_instruments_see_every_stage_in_order():
    from kcompile.passes.manager import PassInstrument

    class Record(PassInstrument):
        def __init__(self):
            self.calls = []

        def before_pass(self, name, graph):
            self.calls.append(("before", name))

        def after_pass(self, name, graph, seconds):
            self.calls.append(("after", name, len(graph.nodes)))

    g = Graph("instrumented")
    x = g.add_input("x", f32(BATCH, 4))
    g.set_outputs([("y", B.exp(x) * 2.0 + 1.0)])
    record = Record()
    manager = PassManager(PIPELINE, instruments=[record])
    manager.stage("traced", g)
    manager.run(g)
    names = [p.name for p in PIPELINE]
    expected = [("after", "traced")]
    for name in names:
        expected += [("before", name), ("after", name)]
    assert [c[:2] for c in record.calls] == expected
    fused = dict((c[1], c[2]) for c in record.calls if c[0] == "after")
    assert fused["fuse"] == 1 and fused["eliminate_dead_code"] > 1
    assert [s[0] for s in manager.report.stages] == ["traced", *names]


def test_disabling_fusion(monkeypatch):
    from kcompile.passes import default_passes

    monkeypatch.setenv("KCOMPILE_DISABLE", "fuse")
    assert "fuse" not in [p.name for p in default_passes()]
    assert "fuse_rows" in [p.name for p in default_passes()]  # its own stage
    monkeypatch.setenv("KCOMPILE_DISABLE", "fuse_rows")
    assert [p.name for p in default_passes()] == [p.name for p in PIPELINE if p.name != "fuse_rows"]
    monkeypatch.setenv("KCOMPILE_DISABLE", "fusion")
    with pytest.raises(ValueError, match="unknown passes"):
        default_passes()


def test_plan_memory_for_another_batch_size():
    g = Graph("batch")
    x = g.add_input("x", f32(BATCH, 1000))
    y = B.exp(x)
    g.set_outputs([("z", B.reduce_sum(y * y, 1))])
    planned = plan_memory(schedule(g), max_batch=8)
    small = planned.memory.layout(8)[1]
    large = planned.memory.layout(64)[1]
    assert large > small >= 8 * 1000 * 4


def _softmax_ce_graph() -> Graph:
    from kcompile import activations

    g = Graph("row")
    logits = g.add_input("z", f32(BATCH, 7))
    bias = g.add_input("b", f32(7))
    labels = g.add_input("y", TensorType(DType.i32, (BATCH,)))
    scale = g.add_input("s", f32())
    z = logits + bias
    p = activations.softmax(z)
    per_row = -B.reduce_sum(B.one_hot(labels, 7) * activations.log_softmax(z), 1)
    correct = B.cast(B.eq(B.argmax(p, 1), labels), DType.f32)
    g.set_outputs(
        [
            ("p", p * scale),
            ("loss", B.reduce_sum(per_row, 0)),
            ("correct", B.reduce_sum(correct, 0)),
            ("colsum", B.reduce_sum(p, 0)),
        ]
    )
    return g


def test_row_fusion_makes_softmax_cross_entropy_and_accuracy_one_kernel():
    from kcompile.passes.fuse_rows import fuse_rows

    g = _softmax_ce_graph()
    out = eliminate_dead_code(fuse_rows(simplify(g)))
    rows = [n for n in out.nodes if n.op == "fused"]
    assert len(rows) == 1 and rows[0].attrs["kind"] == "row"
    assert rows[0].attrs["cols"] == 7
    assert [n.op for n in out.nodes if n.op != "fused"] == []
    same_results_typed(g, out)


def same_results_typed(before: Graph, after: Graph) -> None:
    from kcompile.runtime import make_executable

    rng = np.random.default_rng(1)
    for n in (1, 5, 33):
        feeds = {
            "z": rng.normal(size=(n, 7)).astype(np.float32),
            "b": rng.normal(size=7).astype(np.float32),
            "y": rng.integers(0, 7, n).astype(np.int32),
            "s": np.float32(2.0),
        }
        want = interpret(before, feeds)
        got = interpret(after, feeds)
        exe = make_executable(after, "llvm", PassManager([]))
        native = exe(feeds)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(
                native[key], want[key], rtol=2e-6, atol=2e-6, err_msg=f"{key} at N={n}"
            )


def test_a_sum_over_rows_is_never_read_inside_its_row_kernel():
    from kcompile.passes.fuse_rows import find_row_groups

    g = Graph("across")
    x = g.add_input("x", f32(BATCH, 5))
    total = B.reduce_sum(B.reduce_sum(x * x, 1), 0)
    g.set_outputs([("y", B.exp(x) * total)])
    groups = find_row_groups(g)
    users_of_total = [n for n in g.nodes if total in n.inputs]
    producer = total.node
    assert all(
        groups.get(u) != groups.get(producer) or producer not in groups for u in users_of_total
    )


def test_bias_gradient_sums_inside_the_matmul_kernel():
    from kcompile.runtime import make_executable

    g = Graph("colsum")
    x = g.add_input("x", f32(BATCH, 6))
    w = g.add_input("w", f32(5, 6), "param")
    mask = g.add_input("m", f32(BATCH, 5))
    grad = B.matmul(x, w, transpose_b=True) * mask
    g.set_outputs([("g", grad), ("bias_grad", B.reduce_sum(grad, 0))])
    out = eliminate_dead_code(fuse(g))
    assert ops(out) == ["fused"] and out.nodes[0].attrs["kind"] == "matmul"
    exe = make_executable(out, "llvm", PassManager([]))
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(5, 6)).astype(np.float32)
    exe.bind("w", weights)
    for n in (1, 9, 40):
        feeds = {
            "x": rng.normal(size=(n, 6)).astype(np.float32),
            "m": (rng.random((n, 5)) > 0.5).astype(np.float32),
        }
        want = interpret(g, {**feeds, "w": weights})
        got = exe(feeds)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)


def test_slices_are_strided_reads_inside_a_fused_loop():
    from kcompile.runtime import make_executable

    g = Graph("gates")
    z = g.add_input("z", f32(BATCH, 12))
    c = g.add_input("c", f32(BATCH, 4))
    i, f, o = (B.slice_(z, (0, 4 * k), (BATCH, 4 * k + 4)) for k in range(3))
    new_c = B.logistic(f) * c + B.logistic(i)
    g.set_outputs([("c_next", new_c), ("h", B.logistic(o) * B.tanh(new_c))])
    out = eliminate_dead_code(fuse(g))
    assert ops(out) == ["fused"]
    assert [n.op for n in out.nodes[0].attrs["body"].nodes].count("slice") == 3
    exe = make_executable(out, "llvm", PassManager([]))
    rng = np.random.default_rng(4)
    for n in (1, 7):
        feeds = {
            "z": rng.normal(size=(n, 12)).astype(np.float32),
            "c": rng.normal(size=(n, 4)).astype(np.float32),
        }
        want, got = interpret(g, feeds), exe(feeds)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("axes", [(0,), (1,), (0, 2), (2,)])
def test_a_reduction_and_the_chain_making_its_operand_are_one_loop(axes):
    from kcompile.runtime import make_executable

    g = Graph("reduce")
    x = g.add_input("x", f32(BATCH, 5, 3))
    s = g.add_input("s", f32(3))
    y = B.tanh(x * s) + 1.0
    z = B.exp(x) * s
    g.set_outputs([("sum", B.reduce_sum(y * y, axes)), ("max", B.reduce_max(z, axes)), ("z", z)])
    out = eliminate_dead_code(fuse(g))
    assert [n.attrs["kind"] for n in out.nodes] == ["reduce", "reduce"]
    assert len(out.nodes[1].outputs) == 2  # z is stored as it is made
    exe = make_executable(out, "llvm", PassManager([]))
    rng = np.random.default_rng(5)
    for n in (1, 6):
        feeds = {
            "x": rng.normal(size=(n, 5, 3)).astype(np.float32),
            "s": rng.normal(size=3).astype(np.float32),
        }
        want, got = interpret(g, feeds), exe(feeds)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)


def test_simplify_sees_a_reshaped_splat_as_a_splat():
    """reshape(1.0) to [1, 1] times x is x (the seed of a loop body's gradient)."""
    g = Graph("seed")
    x = g.add_input("x", f32(BATCH, 4))
    one = B.reshape(B.const(g, 1.0, DType.f32, ()), (1, 1))
    g.set_outputs([("y", B.exp(one * x))])
    out = simplify(g)
    assert [n.op for n in out.nodes] == ["exp"]


def test_buffer_kinds_follow_the_data_not_the_layer_names():
    """An MLP's train step under Adam: the weight gradients fuse with Adam's update into
    kernels named for the optimizer; the forward activations they read are still kept for
    backward (so the ledger says), the values they make are gradients, and every value
    the backward pass reads from the forward pass is kept for it."""
    import kcompile as keras
    from kcompile import layers
    from kcompile.passes.memory import buffer_kinds

    model = keras.Sequential(
        [keras.Input(shape=(20,)), layers.Dense(16, activation="relu"), layers.Dense(4)]
    )
    model.compile(optimizer="adam", loss="mse")
    graph = parse_graph(inspect.pipeline_stages(model, "train")[-1][1])
    kinds = buffer_kinds(graph)
    optimizer_kernels = [n for n in graph.nodes if n.layer.startswith("adam/")]
    assert optimizer_kernels, "expected the update fused into kernels named for adam"
    backward = {n for n in graph.nodes if kinds.get(n.outputs[0]) == "gradients"}
    for node in optimizer_kernels:
        for v in node.inputs:
            if v in kinds and v.node not in backward and kinds[v] != "views (reshapes, no copy)":
                assert kinds[v] == "activations kept for backward", (v, node.layer)
    report = memory_report(graph)
    assert report.by_category.get("activations kept for backward", 0) > 0
    assert sum(report.by_category.values()) == report.buffers
