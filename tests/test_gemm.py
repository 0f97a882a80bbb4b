"""The runtime's matrix product and thread pool, called directly (every compiled
matmul goes through them): all transpositions, edge tiles, accumulation, K blocks,
wide column groups, split-K, and 1 or 2 threads, against a float64 numpy reference."""

import ctypes

import ml_dtypes
import numpy as np
import pytest

from kcompile.codegen.building.target import CompileTimes, LoadedCode, compile_module
from kcompile.codegen.library.gemm import ACCUMULATE, ROUND_B, Tile
from kcompile.codegen.library.runtime_library import Runtime, keep_alive, runtime, runtime_ir
from tests.threads import on_threads

SHAPES = [
    (1, 1, 1),
    (5, 3, 7),
    (6, 16, 16),
    (7, 17, 17),
    (37, 100, 50),
    (1, 784, 128),
    (32, 784, 128),
    (13, 600, 300),  # 3 depth blocks; 19 column panels: more than one packed group
    # Few rows, deep: split-K on two threads (partial products over K, summed by columns),
    # here with a short last K chunk and a ragged last panel.
    (20, 1000, 70),
    (12, 193, 33),
    (4, 0, 9),  # no depth: zeros (or the accumulator unchanged)
    # Narrow N (a classifier's 10 classes): one ragged panel, packed with masked loads
    # (gathers when transposed); a transposed A up to IN_PLACE_DEPTH deep read in place.
    (33, 64, 10),
    (29, 65, 3),
    # A transposed A deeper than IN_PLACE_DEPTH, more row tiles than one block of them
    # (BLOCK_TILES), the last tile ragged.
    (211, 90, 45),
]


def _operands(rng, m, depth, n, ta, tb):
    a = rng.standard_normal((depth, m) if ta else (m, depth)).astype(np.float32)
    b = rng.standard_normal((n, depth) if tb else (depth, n)).astype(np.float32)
    return (a.T if ta else a), (b.T if tb else b)


def _check(rt: Runtime, rng, shape, ta, tb, accumulate):
    m, depth, n = shape
    a, b = _operands(rng, m, depth, n, ta, tb)
    start = rng.standard_normal((m, n)).astype(np.float32)
    out = start.copy() if accumulate else np.full((m, n), np.nan, np.float32)
    rt.sgemm(a, b, out, accumulate=accumulate)
    want = a.astype(np.float64) @ b.astype(np.float64) + (start if accumulate else 0)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4 * max(1.0, np.sqrt(depth)))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_sgemm_all_transpositions(rng, shape, threads):
    with on_threads(threads) as rt:
        for ta in (False, True):
            for tb in (False, True):
                for accumulate in (False, True):
                    _check(rt, rng, shape, ta, tb, accumulate)


def _strided(rng, shape, steps):
    """A float32 view of ``shape`` whose rows and columns are ``steps`` elements apart."""
    full = rng.standard_normal([n * s for n, s in zip(shape, steps)]).astype(np.float32)
    return full[:: steps[0], :: steps[1]]


@pytest.mark.parametrize("threads", [1, 2])
def test_sgemm_operands_of_any_strides(rng, threads):
    """Neither rows nor columns contiguous: A packed element by element, B's panels
    through masked gathers; one stride contiguous for the other operand."""
    with on_threads(threads) as rt:
        for m, depth, n in [(13, 37, 10), (25, 70, 45), (40, 300, 70)]:
            for a_steps, b_steps in [((2, 3), (3, 2)), ((1, 1), (2, 3)), ((3, 2), (1, 1))]:
                a, b = _strided(rng, (m, depth), a_steps), _strided(rng, (depth, n), b_steps)
                out = np.full((m, n), np.nan, np.float32)
                rt.sgemm(a, b, out)
                want = a.astype(np.float64) @ b.astype(np.float64)
                np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4 * np.sqrt(depth))


def test_sgemm_large_product_on_two_threads_matches_one(rng):
    a = rng.standard_normal((300, 257)).astype(np.float32)
    b = rng.standard_normal((257, 333)).astype(np.float32)
    results = []
    for threads in (1, 2):
        with on_threads(threads) as rt:
            out = np.empty((300, 333), np.float32)
            rt.sgemm(a, b, out)
            results.append(out)
    # Each element is summed in the same order whatever the number of threads.
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("threads", [1, 2])
def test_sgemm_rounds_b_to_bf16_as_it_packs_it(rng, threads):
    """``ROUND_B``: ``A · bf16(B)`` (``ml_dtypes``' rounding), through every way B is packed
    (rows, transposed, ragged, gathered from any strides), at sizes that would read B in
    place (few rows of C) and that split K, accumulating or not. Unrounded, the results
    would be off by ~2^-9 of B's elements, far outside the tolerance."""
    with on_threads(threads) as rt:
        for m, depth, n in SHAPES:
            for tb, steps in ((False, None), (True, None), (False, (2, 3))):
                a, b = _operands(rng, m, depth, n, False, tb)
                if steps:
                    b = _strided(rng, (depth, n), steps)
                start = rng.standard_normal((m, n)).astype(np.float32)
                for accumulate in (False, True):
                    out = start.copy()
                    rt.sgemm(a, b, out, accumulate=ROUND_B | (ACCUMULATE if accumulate else 0))
                    rounded = b.astype(ml_dtypes.bfloat16).astype(np.float64)
                    want = a.astype(np.float64) @ rounded + (start if accumulate else 0)
                    tolerance = 1e-5 * max(1.0, np.sqrt(depth))
                    np.testing.assert_allclose(out, want, rtol=1e-5, atol=tolerance)


TILES = [Tile(vw=16, mr=12), Tile(vw=8, mr=6), Tile(vw=4, mr=4, nv=3, kc=64)]


@pytest.mark.parametrize("shape", TILES, ids=str)
def test_other_tiles_compute_the_same(rng, shape):
    """The AVX-512 tile (16-float vectors, 12 rows), AVX2's (8 floats, 6 rows) and an
    SSE-like one, generated by the same code; each runs here whatever this machine's
    own tile is (LLVM splits vectors wider than the host's)."""
    # The base alone (thread pool and kc_sgemm): no piece is called here.
    code = LoadedCode(compile_module(runtime_ir(shape, pieces=()), CompileTimes()).object_code)
    rt = Runtime(code, CompileTimes(), False)
    rt.set_threads(2)
    # ... narrow panels (N at most VW: the narrow micro-kernels) among them.
    for dims in [(1, 5, 3), (13, 70, 47), (25, 130, 100), (11, 40, 10), (13, 80, 3)]:
        for ta in (False, True):
            for tb in (False, True):
                _check(rt, rng, dims, ta, tb, accumulate=ta)
    a, b = _strided(rng, (9, 20), (2, 3)), _strided(rng, (20, 7), (3, 2))
    out = np.empty((9, 7), np.float32)
    rt.sgemm(a, b, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_sgemm_rejects_mismatched_operands():
    rt = runtime()
    with pytest.raises(ValueError, match="do not fit"):
        rt.sgemm(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), np.ones((2, 2)))
    with pytest.raises(ValueError, match="float32"):
        rt.sgemm(np.ones((2, 3)), np.ones((3, 2), np.float32), np.ones((2, 2), np.float32))


def test_parallel_for_runs_every_chunk_once():
    from llvmlite import ir

    from kcompile.codegen.library.parallel import CHUNK_FN, add_thread_pool
    from kcompile.codegen.loops import I64, PTR, i64

    module = ir.Module("pool")
    add_thread_pool(module)
    chunk = ir.Function(module, CHUNK_FN, "chunk")
    b = ir.IRBuilder(chunk.append_basic_block())
    slot = b.gep(chunk.args[0], [chunk.args[1]], source_etype=I64)
    b.atomic_rmw("add", slot, i64(1), "monotonic")
    b.ret_void()
    drive = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I64]), "drive")
    b = ir.IRBuilder(drive.append_basic_block())
    b.call(module.globals["kc_parallel_for"], [chunk, *drive.args])
    b.ret_void()
    code = LoadedCode(compile_module(str(module), CompileTimes()).object_code)
    keep_alive(code)
    set_threads = ctypes.CFUNCTYPE(None, ctypes.c_int32)(code.address("kc_set_threads"))
    get_threads = ctypes.CFUNCTYPE(ctypes.c_int32)(code.address("kc_get_threads"))
    run = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)(code.address("drive"))
    for threads in (1, 2, 3):
        set_threads(threads)
        assert get_threads() == threads
        for count in (0, 1, 2, 5, 1000):
            hits = np.zeros(max(count, 1), np.int64)
            for _ in range(20):
                run(hits.ctypes.data, count)
            np.testing.assert_array_equal(hits[:count], 20)


def test_thread_setting_is_checked(monkeypatch):
    from kcompile.ir.abi import default_threads

    monkeypatch.setenv("KCOMPILE_NUM_THREADS", "3")
    assert default_threads() == 3
    for bad in ("zero", "0", "-2"):
        monkeypatch.setenv("KCOMPILE_NUM_THREADS", bad)
        with pytest.raises(ValueError, match="KCOMPILE_NUM_THREADS must be a positive"):
            default_threads()
    with pytest.raises(ValueError, match="positive integer"):
        runtime().set_threads(0)


def test_thread_setting_from_the_front_end():
    import kcompile

    before = kcompile.get_num_threads()
    try:
        kcompile.set_num_threads(1)
        assert kcompile.get_num_threads() == 1
        kcompile.set_num_threads(2)
        assert kcompile.get_num_threads() == 2
    finally:
        kcompile.set_num_threads(before)
