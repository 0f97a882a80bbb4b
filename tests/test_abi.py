"""The native ABI is defined once (``kcompile.ir.abi``): every function the generated
modules and the runtime library define has the signature the callers' ctypes types
are made from."""

from __future__ import annotations

import llvmlite.binding as llvm
import pytest

from kcompile.codegen.library.runtime_library import runtime_ir
from kcompile.codegen.loops import function_type
from kcompile.codegen.lowering.module import lower_graph
from kcompile.ir import BATCH, DType, Graph, TensorType, abi
from kcompile.ir import build as B
from kcompile.passes import default_passes
from kcompile.passes.manager import PassManager


def _step_ir() -> str:
    g = Graph("abi")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 4)), "data")
    g.set_outputs([("loss", B.reduce_sum(B.tanh(x)) * 0.5)])
    planned = PassManager(default_passes()).run(g)
    return lower_graph(planned, profile=True, check=True).llvm_ir


@pytest.fixture(scope="module")
def modules():
    return [llvm.parse_assembly(text) for text in (_step_ir(), runtime_ir())]


SIGNATURES = [
    abi.ENTRY,
    abi.EPOCH,
    abi.GUARD_STATE,
    abi.PROFILE_COUNTERS,
    abi.CYCLES,
    *abi.RUNTIME_EXPORTS,
]


@pytest.mark.parametrize("signature", SIGNATURES, ids=lambda s: s.symbol)
def test_generated_functions_have_the_abi_signature(modules, signature):
    named = [fn for module in modules for fn in module.functions if fn.name == signature.symbol]
    # A step module declares the runtime's functions it calls; one module defines each.
    defined = [fn for fn in named if not fn.is_declaration]
    assert len(defined) == 1, f"{signature.symbol} is defined {len(defined)} times"
    (fn,) = defined
    for declared in named:
        assert str(declared.global_value_type) == str(function_type(signature))
    assert str(fn.global_value_type) == str(function_type(signature))
    callable_type = abi.ctypes_type(signature)
    assert len(callable_type._argtypes_) == len(signature.params)
