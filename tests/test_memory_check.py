"""The checking mode (KCOMPILE_CHECK=1, on for this module: tests/conftest.py): guard zones around every
buffer, checked after every kernel, name the kernel that wrote out of bounds."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.ir import BATCH, Graph, f32
from kcompile.ir import build as B
from kcompile.ir.memory import numel
from kcompile.runtime import make_executable
from kcompile.runtime.guarded import MemoryCheckError, checking


def _negation() -> Graph:
    g = Graph("negation")
    x = g.add_input("x", f32(BATCH, 5), "data")
    w = g.add_input("w", f32(5), "param")
    g.set_outputs([("y", B.neg(x)), ("z", w + 1.0)])
    return g


@pytest.fixture
def neg_writes_one_past_the_end(monkeypatch):
    """The lowering of ``neg`` made to store one element past its result."""
    from llvmlite import ir

    from kcompile.codegen.lowering import emitters

    original = emitters.EMITTERS["neg"]

    def overflowing(k, m, node, outs, ins):
        original(k, m, node, outs, ins)
        past_the_end = k.value(numel(node.outputs[0].shape))
        k.store(outs[0], past_the_end, ir.Constant(ir.FloatType(), 1.0))

    monkeypatch.setitem(emitters.EMITTERS, "neg", overflowing)
    monkeypatch.setenv("KCOMPILE_CACHE", "0")  # the cache would hold the correct code
    yield


def test_the_suite_runs_in_the_checking_mode():
    assert checking()


@pytest.mark.parametrize("batch", [1, 3, 40])
def test_a_write_past_a_result_names_its_kernel(neg_writes_one_past_the_end, batch):
    exe = make_executable(_negation(), "llvm")
    exe.bind("w", np.ones(5, np.float32))
    with pytest.raises(MemoryCheckError, match=r"k\d+_neg \(neg"):
        exe({"x": np.ones((batch, 5), np.float32)})


@pytest.mark.parametrize("batch", [1, 3, 40])
def test_correct_kernels_pass_and_compute_the_same(batch, rng):
    exe = make_executable(_negation(), "llvm")
    w = rng.normal(size=5).astype(np.float32)
    exe.bind("w", w)
    x = rng.normal(size=(batch, 5)).astype(np.float32)
    out = exe({"x": x})
    np.testing.assert_array_equal(out["y"], -x)
    np.testing.assert_array_equal(out["z"], w + 1)
