"""Products with a loop invariant inside a loop split by batch rows, on the invariant
packed once per loop (``codegen.lowering.packed_products``): which products qualify, and native
loops against the reference at odd batch sizes, on 1 and 2 threads, with the host's
tile and with AVX2's and an SSE-like one (the same code, narrower vectors), for a fused
epilogue, a transposed invariant, a depth cut into several blocks and ragged panels."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.codegen.library.gemm import Tile
from kcompile.codegen.lowering import packed_products, scan
from kcompile.codegen.lowering.module import lower_graph
from kcompile.codegen.lowering.packed_products import PackedB
from kcompile.codegen.lowering.packed_products import packed_products as find_packed
from kcompile.codegen.lowering.scan import splits_by_rows
from kcompile.ir import BATCH, DType, Graph, TensorType
from kcompile.ir import build as B
from kcompile.runtime import make_executable
from tests.scan_graphs import assert_loop_matches_reference, scan_attrs

F32 = DType.f32
TILES = {
    "host": None,
    "avx2": Tile(vw=8, mr=6),
    "sse": Tile(vw=4, mr=4, nv=3, kc=64),
}


def _loop(kind: str, units: int, steps: int = 3) -> Graph:
    """A loop whose step multiplies its state by the invariant u:
    - "epilogue": h' = tanh(x_t + h·u), the sum fused after the product;
    - "transposed": h' = tanh(x_t + h·uᵀ);
    - "plain": h' = tanh(x_t + h)·u, the product alone (its result is the carry)."""
    g = Graph(f"loop_{kind}")
    x = g.add_input("x", TensorType(F32, (BATCH, steps, units)))
    u = g.add_input("u", TensorType(F32, (units, units)), "param")
    body = Graph("step")
    h = body.add_input("h", TensorType(F32, (BATCH, units)), "carry")
    xt = body.add_input("x", TensorType(F32, (BATCH, units)), "step")
    ub = body.add_input("u", TensorType(F32, (units, units)), "invariant")
    if kind == "plain":
        hn = B.matmul(B.tanh(xt + h), ub)
    else:
        hn = B.tanh(xt + B.matmul(h, ub, transpose_b=kind == "transposed"))
    body.set_outputs([("h", hn), ("y", hn)])
    attrs = scan_attrs(body, steps)
    h_t, ys, *_ = g.emit("scan", [B.const(g, 0.0, F32, (BATCH, units)), x, u], attrs)
    g.set_outputs([("h", h_t), ("ys", ys)])
    return g


def test_blocks_of_depth_are_balanced_and_cover_it():
    t = Tile(vw=16, mr=12)
    v = Graph("g").add_input("u", TensorType(F32, (300, 40)))
    spec = PackedB(v, 300, 40, False, t)
    assert spec.blocks() == [(0, 100), (100, 100), (200, 100)]
    assert spec.panels == 2 and spec.floats == 300 * 64
    assert PackedB(v, 7, 40, False, t).blocks() == [(0, 7)]


def test_only_products_that_read_an_invariant_on_their_b_side_qualify():
    body = Graph("step")
    h = body.add_input("h", TensorType(F32, (BATCH, 4)), "carry")
    u = body.add_input("u", TensorType(F32, (4, 4)), "invariant")
    w = body.add_input("w", TensorType(F32, (4, 4)), "invariant")
    body.set_outputs([("h", B.matmul(h, u) + B.matmul(h, w) * B.slice_(w, (0, 0), (1, 4)))])
    found = find_packed(body, Tile(vw=16, mr=12))
    # w is also read by the epilogue, as a value: it stays as the caller holds it
    assert [v.name for v in found] == ["u"]
    (spec, products) = found[body.inputs[1]]
    assert (spec.depth, spec.width, spec.transposed) == (4, 4, False)
    assert [p.product.op for p in products] == ["matmul"]


@pytest.fixture(autouse=True)
def _packing_on(monkeypatch):
    """Packed products are off by default (codegen.lowering.scan.PACK_PRODUCTS: compile time);
    these tests switch them on, with the compile cache off (its key does not hold it)."""
    monkeypatch.setattr(scan, "PACK_PRODUCTS", True)
    monkeypatch.setenv("KCOMPILE_CACHE", "0")


def _cases():
    """Every tile with every loop; the quick tier keeps the host's two small loops."""
    for tile in TILES:
        for kind, units in [("epilogue", 7), ("transposed", 37), ("plain", 300), ("epilogue", 300)]:
            quick = tile == "host" and units < 100
            marks = () if quick else (pytest.mark.slow,)
            yield pytest.param(tile, kind, units, marks=marks, id=f"{tile}-{kind}-{units}")


@pytest.mark.parametrize(("tile", "kind", "units"), _cases())
def test_packed_products_in_split_loops_match_the_reference(monkeypatch, rng, tile, kind, units):
    """Units 7: one ragged panel; 37: a whole panel and a ragged one (AVX-512), the
    transposed packing; 300: three blocks of depth (block by block for a plain product,
    within each tile for a fused one) and a ragged last panel."""
    if tile != "host":
        monkeypatch.setenv("KCOMPILE_CACHE", "0")  # the cache's key does not hold the tile
        monkeypatch.setattr(packed_products, "TILE", TILES[tile])
    g = _loop(kind, units)
    scan = next(n for n in g.nodes if n.op == "scan")
    assert splits_by_rows(scan)
    exe = make_executable(g, "llvm")
    scan = next(n for n in exe.compiled.graph.nodes if n.op == "scan")
    found = find_packed(scan.attrs["body"])
    assert [spec.transposed for spec, _ in found.values()] == [kind == "transposed"]
    assert next(iter(found.values()))[0].tile == (TILES[tile] or packed_products.tile())
    u = (rng.normal(size=(units, units)) / np.sqrt(units)).astype(np.float32)
    assert_loop_matches_reference(exe, g, rng, u, (3, units))


@pytest.mark.slow
def test_panels_too_large_for_the_stack_are_allocated(monkeypatch, rng):
    """Past ``STACK_PANEL_BYTES`` each slice packs into memory it allocates and frees."""
    monkeypatch.setenv("KCOMPILE_CACHE", "0")  # the cache's key does not hold the limit
    monkeypatch.setattr(packed_products, "STACK_PANEL_BYTES", 0)
    g = _loop("transposed", 37)
    exe = make_executable(g, "llvm")
    assert "aligned_alloc" in lower_graph(exe.compiled.graph).llvm_ir
    u = (rng.normal(size=(37, 37)) / 6).astype(np.float32)
    assert_loop_matches_reference(exe, g, rng, u, (3, 37), batches=(9,))


@pytest.mark.parametrize("on", [True, False])
def test_an_epilogue_asks_for_the_next_panel_of_a_step_input(monkeypatch, on):
    """The fused product's epilogue reads the step's input (from its sequence, in memory):
    each tile prefetches its rows of the next panel's columns (PREFETCH_EPILOGUE)."""
    monkeypatch.setattr(packed_products, "PREFETCH_EPILOGUE", on)
    g = _loop("epilogue", 37)
    exe = make_executable(g, "llvm")
    ir_text = lower_graph(exe.compiled.graph).llvm_ir
    assert ("llvm.prefetch" in ir_text) == on
