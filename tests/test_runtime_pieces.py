"""The runtime library in pieces (``codegen.library.runtime_library``): the base loads first, the
bf16 product and the convolutions only when code calls them, each cached under a key of
its own; the pieces call the base's exports, whose types they declare alike; packed
recurrent products call the library's micro-kernels when its tile is theirs, and carry
copies otherwise (an artifact for another CPU); artifacts link everything they call."""

from __future__ import annotations

import os
import subprocess
import sys

import llvmlite.binding as llvm
import numpy as np
import pytest

import kcompile as keras
from kcompile.codegen.library.gemm import Tile
from kcompile.codegen.library.runtime_library import (
    PIECES,
    base_ir,
    piece_ir,
    pieces_called,
    runtime_ir,
    shared_kernels,
    tile,
)
from kcompile.codegen.lowering import scan
from kcompile.codegen.lowering.module import lower_graph
from kcompile.codegen.lowering.packed_products import linked_with
from kcompile.runtime import make_executable
from tests.host_cpu import skip_where_the_host_is_avx2
from tests.test_packed_products import _loop

LIBC = {"aligned_alloc", "free", "calloc", "syscall", "memset", "memcpy"}


@pytest.fixture(scope="module")
def base():
    return llvm.parse_assembly(base_ir())


@pytest.mark.parametrize("piece", PIECES, ids=lambda p: p.name)
def test_a_piece_calls_only_what_the_base_exports_with_its_types(base, piece):
    module = llvm.parse_assembly(piece_ir(piece))
    defined = {f.name: f for f in base.functions if not f.is_declaration}
    # A piece whose prefix extends another's calls that one too (loaded before it).
    for called in PIECES:
        if called is not piece and piece.prefix.startswith(called.prefix):
            other = llvm.parse_assembly(piece_ir(called))
            defined.update({s: other.get_function(s) for s in called.symbols})
    called = [
        f
        for f in module.functions
        if f.is_declaration and not f.name.startswith("llvm.") and f.name not in LIBC
    ]
    assert called, "a piece calls the base"
    for fn in called:
        assert fn.name in defined, f"{piece.name} calls {fn.name}, which the base lacks"
        assert defined[fn.name].linkage == llvm.Linkage.external, fn.name
        assert str(fn.global_value_type) == str(defined[fn.name].global_value_type), fn.name
    for g in module.global_variables:  # the pool's busy word
        if g.is_declaration:
            (exported,) = [b for b in base.global_variables if b.name == g.name]
            assert exported.linkage == llvm.Linkage.external
    for symbol in piece.symbols:
        fn = module.get_function(symbol)
        assert not fn.is_declaration and fn.linkage == llvm.Linkage.external
        assert symbol.startswith(piece.prefix)


def test_the_whole_library_holds_every_piece_and_exports_the_kernels():
    whole = llvm.parse_assembly(runtime_ir())
    for piece in PIECES:
        for symbol in piece.symbols:
            assert not whole.get_function(symbol).is_declaration
    for name in shared_kernels(tile()):
        fn = whole.get_function(name)
        assert not fn.is_declaration and fn.linkage == llvm.Linkage.external
    base_names = {f.name for f in llvm.parse_assembly(base_ir()).functions}
    assert not any(s in base_names for p in PIECES for s in p.symbols)


def test_pieces_called_reads_ir_and_object_code():
    assert pieces_called("declare void @kc_sgemm(i64)") == ()
    assert [p.name for p in pieces_called("call void @kc_sconv_filter(")] == ["conv"]
    assert [p.name for p in pieces_called(b"\0kc_bgemm\0kc_sconv\0")] == ["bf16", "conv"]


def test_pieces_load_on_first_use_each_cached_apart(tmp_path):
    """In a fresh process with an empty cache: the base alone at first; a piece on its
    first symbol (built here) or on code that names it (built ahead in a child); a second
    process reads all three from the cache."""
    script = (
        "import numpy as np, importlib\n"
        "r = importlib.import_module('kcompile.codegen.library.runtime_library')\n"
        "rt = r.runtime()\n"
        "assert not rt.pieces and not rt.cache_hit\n"
        "conv = rt.addresses['kc_sconv']\n"
        "assert list(rt.pieces) == ['conv'] and conv\n"
        "r.build_ahead('call void @kc_bgemm(')\n"
        "assert r._piece_builders.get('bf16') is not None, 'no child was started'\n"
        "assert r.runtime_for(b'..kc_bgemm..') is rt and sorted(rt.pieces) == ['bf16', 'conv']\n"
        "a = np.random.default_rng(0).random((37, 100), np.float32)\n"
        "c = np.empty((37, 37), np.float32)\n"
        "rt.bgemm_call(a, a.T, c, path='round')()\n"
        "assert np.allclose(c, a @ a.T, rtol=1e-2)\n"
        "print(sorted(rt.times.stages))\n"
    )
    env = {**os.environ, "KCOMPILE_CACHE_DIR": str(tmp_path)}
    cold = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert cold.returncode == 0, cold.stderr
    assert len(list(tmp_path.glob("*.o"))) == 3
    assert "llvm optimize (O2)" in cold.stdout and "bf16 piece" in cold.stdout
    warm = script.replace("not rt.cache_hit", "rt.cache_hit").replace(
        "assert r._piece_builders.get('bf16') is not None, 'no child was started'\n",
        "assert not r._piece_builders  # cached: nothing to build\n",
    )
    assert warm != script
    third = subprocess.run([sys.executable, "-c", warm], env=env, capture_output=True, text=True)
    assert third.returncode == 0, third.stderr
    assert "llvm optimize" not in third.stdout


@pytest.fixture
def packing(monkeypatch):
    monkeypatch.setattr(scan, "PACK_PRODUCTS", True)
    monkeypatch.setenv("KCOMPILE_CACHE", "0")


def test_packed_products_call_the_librarys_kernels_when_its_tile_is_theirs(packing):
    graph = make_executable(_loop("epilogue", 7), "llvm").compiled.graph
    mine = lower_graph(graph).llvm_ir
    assert f'declare void @"kc_ukr_rows{tile().mr}"(' in mine
    assert 'declare void @"kc_pack_b"(' in mine
    assert 'define internal void @"kc_ukr_rows' not in mine
    other = Tile(vw=4, mr=4, nv=3, kc=64)  # no CPU's library has this tile
    with linked_with(other):
        copies = lower_graph(graph).llvm_ir
    assert f'define internal void @"kc_ukr_rows{tile().mr}"(' in copies
    assert 'define internal void @"kc_pack_b"(' in copies


def _lstm():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input(shape=(5, 6)), keras.layers.LSTM(20), keras.layers.Dense(3)]
    )
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


@pytest.mark.slow
# (Object code linked by kcompile's loader, without a C compiler, is the artifacts' other
# way to link: tests/test_artifact.py's test_object_code_when_no_linker covers it.)
@pytest.mark.parametrize("cpu", ["host", "x86-64-v3"])
def test_artifacts_with_packed_products_link_their_kernels(tmp_path, packing, cpu):
    """An LSTM's artifact for this CPU calls the library's micro-kernels (from a shared
    library); for AVX2's level, whose library has another tile on an AVX-512 host, it
    carries copies."""
    if cpu != "host":  # without AVX-512, x86-64-v3's tile is this host's: nothing else to link
        skip_where_the_host_is_avx2()
    x = np.random.default_rng(0).random((33, 5, 6), np.float32)
    model = _lstm()
    path = str(tmp_path / "lstm.kc")
    model.export(path, cpu=cpu)
    got = keras.load(path).predict(x, verbose=0)
    model.compile(backend="reference")
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
