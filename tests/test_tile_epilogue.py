"""An optimizer's update fused into its weight gradient's product writes over its own
operands, so the product has no result buffer: ``kc_sgemm`` hands each tile to the
epilogue in a buffer of the chunk's own (``TILE_C``) when one pass over the depth makes
it, else in a scratch matrix. Both against the reference interpreter, on 1 and 2
threads, at sizes no tile divides."""

from __future__ import annotations

import re

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.codegen.building.target import host
from kcompile.codegen.library.gemm import TILE_C, Tile
from kcompile.codegen.lowering import products
from kcompile.codegen.lowering.module import lower_graph
from kcompile.tools.inspect import parse_graph, pipeline_stages
from tests.threads import on_threads

# 301 features: 26 row tiles of 12, the last one row; 70 units: a ragged third panel
# (on AVX2's 16-column panels, a ragged fifth). 301 x 70 x 33 is enough multiply-adds
# to run on both threads.
FEATURES, UNITS = 301, 70


def _model(backend: str, optimizer: str):
    keras.backend.clear_session()
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input(shape=(FEATURES,)),
            layers.Dense(UNITS, activation="relu"),
            layers.Dense(3),
        ]
    )
    model.compile(optimizer=optimizer, loss="mse", backend=backend)
    return model


def _gemm_flags(model) -> list[int]:
    graph = parse_graph(pipeline_stages(model, "train")[-1][1])
    text = lower_graph(graph).llvm_ir
    calls = re.findall(r'call void @"?kc_sgemm"?\((.*)\)', text)
    # The twelfth argument: ACCUMULATE, COLUMNS_OWNED, TILE_C.
    return [int(call.split(", ")[11].removeprefix("i64 ")) for call in calls]


def test_the_in_place_update_asks_for_tiles():
    flags = _gemm_flags(_model("llvm", "adam"))
    assert any(f & TILE_C for f in flags), flags
    assert not all(f & TILE_C for f in flags), flags  # the forward products have a C


def _train(model, x, y, threads: int):
    with on_threads(threads):
        losses = [model.train_on_batch(x, y) for _ in range(3)]
    return np.asarray(losses), model.get_weights()


@pytest.mark.slow
@pytest.mark.parametrize(
    "optimizer, batch", [("adam", 33), ("sgd", 33), ("adam", 1), ("adam", 260)], ids=str
)
def test_updates_in_tiles_match_the_reference(optimizer, batch, rng, monkeypatch):
    """Batch 260 is deeper than one block of the depth (``Tile.kc``): the scratch matrix.
    The tile buffer changes no arithmetic: the same bits as the scratch matrix."""
    assert 260 > Tile.for_host(host().has).kc >= 33
    monkeypatch.setenv("KCOMPILE_CACHE", "0")  # the cache does not see the flag
    x = rng.normal(size=(batch, FEATURES)).astype(np.float32)
    y = rng.normal(size=(batch, 3)).astype(np.float32)
    ref_losses, ref_weights = _train(_model("reference", optimizer), x, y, 1)
    runs = {}
    for tiles, threads in ((True, 1), (True, 2), (False, 2)):
        monkeypatch.setattr(products, "TILES_FOR_EPILOGUES", tiles)
        runs[tiles, threads] = _train(_model("llvm", optimizer), x, y, threads)
    for losses, weights in runs.values():
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
        for got, want in zip(weights, ref_weights):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    for tiled, scratch in zip(runs[True, 2][1], runs[False, 2][1]):
        np.testing.assert_array_equal(tiled, scratch)
