"""No op can be half added: every registered op has traits, a reference, a VJP or a
declared ``vjp=None``, a test case, a native lowering, and a loop lowering for every
loop body its traits say can hold it; and the traits agree with each other."""

from __future__ import annotations

import dataclasses

import pytest

from kcompile.codegen.lowering.emitters import EMITTERS
from kcompile.codegen.lowering.fused import lowers_in_loop
from kcompile.codegen.lowering.module import lower_graph  # noqa: F401  (registers every lowering)
from kcompile.codegen.lowering.scalar import SCALAR_RULES
from kcompile.codegen.lowering.step import REGION_EMITTERS
from kcompile.ir import all_ops
from kcompile.ir.registry import OpDef, register
from kcompile.ir.traits import LOOP_KINDS, Pattern, Traits
from tests.test_ops import CASES

OPS = sorted(all_ops())


def test_register_refuses_an_op_without_traits():
    half = OpDef("half_added", "unary", 1, lambda t, a: t, lambda c, a, at: a, None)
    with pytest.raises(ValueError, match="half_added.*without traits"):
        register(half)
    assert "half_added" not in all_ops()


def test_a_vjp_is_always_declared():
    vjp = next(f for f in dataclasses.fields(OpDef) if f.name == "vjp")
    assert vjp.default is dataclasses.MISSING and vjp.default_factory is dataclasses.MISSING


@pytest.mark.parametrize("name", OPS)
def test_every_op_is_whole(name):
    op = all_ops()[name]
    assert isinstance(op.traits, Traits)
    assert callable(op.infer) and callable(op.reference)
    assert op.vjp is None or callable(op.vjp)
    lowered = name in (REGION_EMITTERS if op.traits.nested_graph else EMITTERS)
    assert lowered, (
        f"{name} has no native lowering (codegen.lowering.emitters or codegen.lowering.step)"
    )
    cases = [c for c in CASES if c.op == name]
    assert cases, f"{name} has no case in tests/test_ops.py"
    if op.vjp is not None and any(c.build is not None for c in cases):
        assert any(c.grad for c in cases), f"{name}'s VJP is never checked"
    for kind in op.traits.loop_bodies:
        assert lowers_in_loop(kind, name), f"codegen cannot lower {name} in a {kind} loop"


@pytest.mark.parametrize("name", OPS)
def test_traits_agree_with_each_other(name):
    op = all_ops()[name]
    t = op.traits
    assert t.loop_bodies <= set(LOOP_KINDS)
    assert t.cost >= 0
    if t.reduction is not None:
        assert t.pattern is Pattern.REDUCTION
        assert all_ops()[t.reduction.combine].traits.is_elementwise
        assert t.reduction.combine in SCALAR_RULES
    if t.is_elementwise:
        assert t.loop_bodies == set(LOOP_KINDS), "every loop holds an elementwise op"
        assert t.row_signature is not None
    if op.arity == 0:  # a source (a constant) is copied into bodies, never grouped
        return
    if "row" in t.loop_bodies:
        assert t.row_signature is not None, "a row kernel needs the node's row signature"
    if "matmul" in t.loop_bodies and not t.is_elementwise:
        assert t.pattern in (Pattern.PRODUCT, Pattern.REDUCTION)
    if t.view:
        assert t.pattern is Pattern.INJECTIVE and t.in_place is None
    assert not (t.nested_graph and t.kernel_body)
