"""Equal functions of a module merged before LLVM compiles it (codegen.building.duplicates)."""

from __future__ import annotations

import ctypes
import re

import numpy as np
from llvmlite import ir

import kcompile as keras
from kcompile import layers
from kcompile.codegen.building.duplicates import merge_duplicates
from kcompile.codegen.building.target import CompileTimes, LoadedCode, compile_module
from kcompile.codegen.lowering.module import lower_graph

I64 = ir.IntType(64)
DEFINE = re.compile(r"^define ", re.M)


def _adder(module: ir.Module, name: str, amount: int, callee=None) -> ir.Function:
    """``i64 name(i64 x)``: x + amount, through ``callee`` when given."""
    fn = ir.Function(module, ir.FunctionType(I64, [I64]), name)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    x = b.call(callee, [fn.args[0]]) if callee is not None else fn.args[0]
    b.ret(b.add(x, ir.Constant(I64, amount)))
    return fn


def _caller(module: ir.Module, name: str, callees: list[ir.Function]) -> ir.Function:
    """Exported ``i64 name(i64 x)``: the sum of the callees' results, each weighted by its
    position, so a call sent to the wrong function changes the answer."""
    fn = ir.Function(module, ir.FunctionType(I64, [I64]), name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    total = ir.Constant(I64, 0)
    for i, callee in enumerate(callees):
        total = b.add(total, b.mul(b.call(callee, [fn.args[0]]), ir.Constant(I64, i + 1)))
    b.ret(total)
    return fn


def _run(module: ir.Module, name: str, x: int) -> int:
    code = LoadedCode(compile_module(str(module), CompileTimes()).object_code)
    return ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(code.address(name))(x)


def test_equal_functions_and_their_equal_callers_merge_and_compute_the_same():
    module = ir.Module(name="m")
    inner = [_adder(module, f"k{i}_inner", 3) for i in range(3)]
    other = _adder(module, "k3_inner", 4)  # a different constant: not equal
    outer = [_adder(module, f"k{i}_outer", 10, callee) for i, callee in enumerate(inner)]
    outer.append(_adder(module, "k3_outer", 10, other))  # equal text, unequal callee
    _caller(module, "entry", outer)
    before = _run(module, "entry", 5)
    assert merge_duplicates(module) == 4  # k1_, k2_ inner and outer
    text = str(module)
    for gone in ("k1_inner", "k2_inner", "k1_outer", "k2_outer"):
        assert f'@"{gone}"' not in text
    for kept in ("k0_inner", "k3_inner", "k0_outer", "k3_outer"):
        assert f'define internal i64 @"{kept}"' in text
    assert _run(module, "entry", 5) == before == 18 * 6 + 19 * 4


def test_exported_functions_never_merge():
    module = ir.Module(name="m")
    a = _adder(module, "a", 1)
    b = _adder(module, "b", 1)
    a.linkage = b.linkage = ""
    assert merge_duplicates(module) == 0
    assert 'define i64 @"a"' in str(module) and 'define i64 @"b"' in str(module)


def test_a_function_named_by_a_global_stays():
    """A reference that is no instruction's operand (here a global's initializer) could
    not be redirected: the module is left whole."""
    module = ir.Module(name="m")
    first, second = _adder(module, "k0_f", 1), _adder(module, "k1_f", 1)
    table = ir.GlobalVariable(module, ir.ArrayType(first.type, 2), "table")
    table.initializer = ir.Constant(ir.ArrayType(first.type, 2), [first, second])
    _caller(module, "entry", [first, second])
    assert merge_duplicates(module) == 0
    assert '@"k1_f"' in str(module)
    assert _run(module, "entry", 1) == 2 + 2 * 2


def _twin_dense_model():
    model = keras.Sequential(
        [
            keras.Input((9,)),
            layers.Dense(7, activation="relu"),
            layers.Dense(7, activation="relu"),
            layers.Dense(7, activation="relu"),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_a_model_of_repeated_layers_compiles_fewer_functions_and_trains_as_the_reference(
    monkeypatch,
):
    """Twin 7x7 layers: their Adam updates lower to equal kernels. The compiled step, with
    its functions merged, trains as the reference interpreter does."""
    import kcompile.codegen.lowering.module as lowering
    from kcompile.models import graphs as G
    from kcompile.passes import PassManager, default_passes
    from kcompile.runtime import prepare

    model = _twin_dense_model()
    traced = G.trace_step(model, "train", [G.label_type_for(np.dtype(np.int32), (5,))])
    graph = prepare(traced.graph, PassManager(default_passes(), verify_each=False))
    merged = len(DEFINE.findall(lower_graph(graph).llvm_ir))
    with monkeypatch.context() as m:
        m.setattr(lowering, "merge_duplicates", lambda module: 0)
        whole = len(DEFINE.findall(lower_graph(graph).llvm_ir))
    assert merged < whole

    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 9)).astype(np.float32)
    y = rng.integers(0, 3, 5).astype(np.int32)
    start = model.get_weights()
    results = {}
    for backend in ("llvm", "reference"):
        model.set_weights(start)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend=backend)
        model.fit(x, y, epochs=3, batch_size=5, verbose=0, shuffle=False)
        results[backend] = model.get_weights()
    for a, b in zip(results["llvm"], results["reference"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
