"""Row kernels reading an operand broadcast along some of their row axes (an attention
mask [N, 1, T, T] over the rows [N, H, T] of the scores): ``passes/fuse_rows.py`` puts
the op that reads it in the row kernel, and ``codegen/lowering/row_loops.py`` (``SpreadRows``)
reads it at each row's own offset, in the phased lowering and in the node-by-node one.
A broadcast_to a row kernel reads is not expanded in memory: its batch sum is the sum of
its operand times the copies (``passes/reductions.py``), and a count of static columns
(``numel``) is a constant that no longer stands between two row groups."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.passes import PassManager, eliminate_dead_code
from kcompile.passes.fuse_rows import fuse_rows
from kcompile.runtime import make_executable

H, T = 3, 5


def _masked_softmax(mask_shape: tuple, cols: int, with_argmax: bool) -> Graph:
    """softmax(x + mask) over the last axis of x [N, H, T, cols], its row sums, and (to
    take the node-by-node lowering) the argmax of each row."""
    g = Graph("masked_softmax")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, H, T, cols)), "data")
    mask = g.add_input("mask", TensorType(DType.f32, mask_shape), "data")
    scores = x + mask
    e = B.exp(scores - B.reduce_max(scores, -1, keepdims=True))
    total = B.reduce_sum(e, -1, keepdims=True)
    outputs = [("p", e / total), ("total", total)]
    if with_argmax:
        outputs.append(("best", B.argmax(scores, -1)))
    g.set_outputs(outputs)
    return g


MASKS = {
    "across_heads": lambda c: (BATCH, 1, T, c),
    "across_batch_and_heads": lambda c: (T, c),
    "one_per_row_across_heads": lambda c: (BATCH, 1, T, 1),
    "per_head_and_column": lambda c: (1, H, 1, c),
}


@pytest.mark.parametrize("mask", sorted(MASKS))
def test_the_mask_joins_the_row_kernel(mask):
    out = eliminate_dead_code(fuse_rows(_masked_softmax(MASKS[mask](7), 7, False)))
    assert [n.op for n in out.nodes] == ["fused"]
    assert out.nodes[0].attrs["kind"] == "row"
    assert "add" in [n.op for n in out.nodes[0].attrs["body"].nodes]


@pytest.mark.parametrize("with_argmax", [False, True], ids=["phased", "node_by_node"])
@pytest.mark.parametrize("cols", [7, 33])
@pytest.mark.parametrize("mask", sorted(MASKS))
def test_broadcast_rows_match_the_interpreter(mask, cols, with_argmax, threads):
    g = _masked_softmax(MASKS[mask](cols), cols, with_argmax)
    out = eliminate_dead_code(fuse_rows(g))
    assert [n.op for n in out.nodes] == ["fused"]
    exe = make_executable(out, "llvm", PassManager([]))
    rng = np.random.default_rng(cols)
    for n in (1, 3):
        shape = tuple(n if d == BATCH else d for d in MASKS[mask](cols))
        feeds = {
            "x": rng.normal(size=(n, H, T, cols)).astype(np.float32),
            "mask": np.where(rng.random(shape) > 0.3, 0.0, -1e4).astype(np.float32),
        }
        want = interpret(g, feeds)
        got = exe(feeds)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)


def _broadcast_gradient(cols: int) -> Graph:
    """A LayerNormalization gradient's start as autodiff writes it behind a pooling: the
    pooled gradient [N, 1, C] broadcast over the sequence, scaled by gamma, summed per
    row and divided by the row's length, and summed over the batch (beta's gradient)."""
    g = Graph("broadcast_gradient")
    pooled = g.add_input("pooled", TensorType(DType.f32, (BATCH, 1, cols)), "data")
    gamma = g.add_input("gamma", TensorType(DType.f32, (cols,)), "param")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, T, cols)), "data")
    spread = B.broadcast_to(pooled, (BATCH, T, cols))
    scaled = spread * gamma
    mean = B.reduce_sum(scaled * x, -1, keepdims=True) / B.numel(spread, [2])
    g.set_outputs([("dx", scaled - mean * x), ("beta_grad", B.reduce_sum(spread, [0, 1]))])
    return g


def test_a_broadcast_gradient_is_read_in_place_not_expanded():
    from kcompile.passes import default_passes

    out = PassManager(default_passes()).run(_broadcast_gradient(9))
    ops = [n.op for n in out.nodes]
    assert "broadcast_to" not in ops and "numel" not in ops
    rows = [n for n in out.nodes if n.attrs.get("kind") == "row"]
    assert len(rows) == 1
    assert "broadcast_to" in [n.op for n in rows[0].attrs["body"].nodes]


@pytest.mark.parametrize("cols", [9, 40])
def test_a_broadcast_gradient_matches_the_interpreter(cols, threads):
    g = _broadcast_gradient(cols)
    exe = make_executable(g, "llvm")
    rng = np.random.default_rng(cols)
    gamma = rng.normal(size=(cols,)).astype(np.float32)
    exe.bind("gamma", gamma)
    for n in (1, 4):
        feeds = {
            "pooled": rng.normal(size=(n, 1, cols)).astype(np.float32),
            "x": rng.normal(size=(n, T, cols)).astype(np.float32),
        }
        want = interpret(g, {**feeds, "gamma": gamma})
        got = exe(feeds)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-5)


def test_a_sum_of_a_broadcast_sums_the_operand_times_the_copies(rng):
    from kcompile.passes.reductions import simplify_reductions

    g = Graph("sum_of_broadcast")
    v = g.add_input("v", TensorType(DType.f32, (BATCH, 1, 6)), "data")
    spread = B.broadcast_to(v, (BATCH, T, 6))
    g.set_outputs(
        [
            ("all", B.reduce_sum(spread, [0, 1])),
            ("kept", B.reduce_sum(spread, [1], keepdims=True)),
            ("rows", B.reduce_sum(spread, [2])),  # the copies are not summed: unchanged
        ]
    )
    out = simplify_reductions(g)
    sums = {name: value.node for name, value in out.outputs}
    readers = [n for n in out.nodes if n.op == "reduce_sum"]
    assert [n.inputs[0].node.op for n in readers if n.attrs["axes"] == (2,)] == ["broadcast_to"]
    assert all(n.inputs[0].node is None for n in readers if n.attrs["axes"] != (2,))
    assert sums["all"].op == "mul" and sums["kept"].op == "mul"
    feeds = {"v": rng.normal(size=(3, 1, 6)).astype(np.float32)}
    want, got = interpret(g, feeds), interpret(out, feeds)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6)
