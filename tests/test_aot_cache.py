"""Artifacts' object code from the compile cache (codegen.aot): the runtime library is
the same for every artifact of a target, a step's code for every export of one graph."""

from __future__ import annotations

from kcompile.codegen import aot
from kcompile.codegen.building.target import for_cpu
from tests.classifiers import dense_classifier


def test_a_step_compiled_once_is_read_back_for_the_next_export(tmp_path, monkeypatch):
    from kcompile.models import graphs as G
    from kcompile.passes import PassManager, default_passes
    from kcompile.runtime import prepare

    monkeypatch.setenv("KCOMPILE_CACHE_DIR", str(tmp_path / "cache"))
    compiled = []
    real = aot.compile_module

    def counting(llvm_ir, times, **kwargs):
        compiled.append(llvm_ir)
        return real(llvm_ir, times, **kwargs)

    monkeypatch.setattr(aot, "compile_module", counting)
    model = dense_classifier(features=6, hidden=8, seed=3)
    traced = G.trace_step(model, "predict", [])
    graph = prepare(traced.graph, PassManager(default_passes(), verify_each=False))
    target = for_cpu("host")
    first = aot.graph_object(graph, target)
    assert len(compiled) == 1
    assert aot.graph_object(graph, target) == first and len(compiled) == 1
    aot.graph_object(graph, for_cpu("x86-64-v3"))
    assert len(compiled) == 2


def test_another_target_is_another_entry(tmp_path, monkeypatch):
    """Keyed by the target: the object code of one CPU level is never handed to another
    (a small module stands in for the library, which takes seconds to compile)."""
    monkeypatch.setenv("KCOMPILE_CACHE_DIR", str(tmp_path / "cache"))
    made = []

    def small_library(shape, features):
        made.append(shape)
        return f"define i64 @kc_tile_rows() {{\n  ret i64 {shape.mr * 100 + shape.vw}\n}}\n"

    monkeypatch.setattr(aot, "runtime_ir", small_library)
    host = aot.runtime_object(for_cpu("host"))
    assert aot.runtime_object(for_cpu("host")) == host and len(made) == 1
    portable = aot.runtime_object(for_cpu("x86-64-v2"))
    assert len(made) == 2 and portable != host
    assert aot.runtime_object(for_cpu("x86-64-v2")) == portable and len(made) == 2
