"""The bf16 product (``codegen.library.bf16_gemm``): each path this CPU has (AMX-BF16,
AVX512_BF16, the portable rounding one; the test ids say which, the others are
skipped with the reason) against numpy on bf16-rounded operands, at ragged sizes, in
every transposition layout, accumulating, on 1 and 2 threads; and a Dense layer under
``mixed_bfloat16`` going through it with its fused epilogue, against the reference."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import kcompile as keras
from kcompile.codegen.aot import graph_object
from kcompile.codegen.building.target import for_cpu, host
from kcompile.codegen.library import scratch
from kcompile.codegen.library.bf16_gemm import (
    A_BF16,
    A_ROUNDED,
    B_BF16,
    B_ROUNDED,
    BGEMM,
    PORTABLE,
    has_amx,
    has_dp,
    has_engine,
)
from kcompile.codegen.library.gemm import ACCUMULATE
from kcompile.codegen.library.runtime_library import runtime
from kcompile.codegen.lowering.products import (
    bgemm_flags,
    lowering_for,
    on_bf16_engine,
    product_dims,
)
from kcompile.ir import abi
from tests.threads import on_threads

SHAPES = [  # M, K, N
    (1, 1, 1),
    (5, 3, 7),
    (1, 70, 33),
    (37, 100, 50),
    (33, 65, 3),
    (64, 64, 64),
    (47, 257, 95),  # K past a 256 multiple, N past three blocks
    (130, 31, 17),
]


def _skip_unless(path: str) -> None:
    """Skip a path the CPU (or the kernel's permission) does not give."""
    if path == "amx":
        if not has_amx(host().has):
            pytest.skip("this CPU has no AMX-BF16")
        if runtime().bgemm_path() != "amx":
            pytest.skip("Linux refused this process the AMX tile state")
    if path == "dp" and not has_dp(host().has):
        pytest.skip("this CPU has no AVX512_BF16")


def _bf16(x: np.ndarray) -> np.ndarray:
    return x.astype(ml_dtypes.bfloat16).astype(np.float32)


def _operands(rng, m, depth, n, ta, tb):
    a = rng.standard_normal((depth, m) if ta else (m, depth)).astype(np.float32)
    b = rng.standard_normal((n, depth) if tb else (depth, n)).astype(np.float32)
    return (a.T if ta else a), (b.T if tb else b)


def _check(rt, path, rng, shape, ta, tb, accumulate):
    m, depth, n = shape
    a, b = _operands(rng, m, depth, n, ta, tb)
    start = rng.standard_normal((m, n)).astype(np.float32)
    out = start.copy() if accumulate else np.full((m, n), np.nan, np.float32)
    rt.bgemm_call(a, b, out, accumulate, path=path)()
    want = _bf16(a).astype(np.float64) @ _bf16(b).astype(np.float64)
    want += start if accumulate else 0
    # f32 sums in another order only: far tighter than the f32 product of the unrounded
    # operands (about 2^-9 of each product off), which must not pass.
    what = f"{path} {shape} ta={ta} tb={tb} acc={accumulate}"
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=2e-6 * depth + 1e-6, err_msg=what)


PATHS = ["amx", "dp", "round"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", PATHS)
def test_paths_against_numpy_on_rounded_operands(rng, path, threads):
    _skip_unless(path)
    with on_threads(threads) as rt:
        for shape in SHAPES:
            for ta in (False, True):
                for tb in (False, True):
                    for accumulate in (False, True):
                        _check(rt, path, rng, shape, ta, tb, accumulate)


def _strided(rng, shape, steps):
    """A float32 view of ``shape`` whose rows and columns are ``steps`` elements apart."""
    full = rng.standard_normal([n * s for n, s in zip(shape, steps)]).astype(np.float32)
    return full[:: steps[0], :: steps[1]]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", PATHS)
def test_operands_of_any_strides(rng, path, threads):
    """Neither rows nor columns contiguous (packed element by element), or one operand
    so and the other contiguous."""
    _skip_unless(path)
    with on_threads(threads) as rt:
        for m, depth, n in [(13, 37, 10), (40, 70, 45), (33, 300, 70)]:
            for a_steps, b_steps in [((2, 3), (3, 2)), ((1, 1), (2, 3)), ((3, 2), (1, 1))]:
                a, b = _strided(rng, (m, depth), a_steps), _strided(rng, (depth, n), b_steps)
                out = np.full((m, n), np.nan, np.float32)
                rt.bgemm_call(a, b, out, path=path)()
                want = _bf16(a).astype(np.float64) @ _bf16(b).astype(np.float64)
                np.testing.assert_allclose(out, want, rtol=1e-5, atol=2e-6 * depth + 1e-6)


@pytest.mark.parametrize("path", PATHS)
def test_rounding_to_nearest_even_and_special_values(path):
    """Ties (1 + 2^-8 rounds down to 1, 1 + 3*2^-8 up), values bf16 holds unchanged,
    infinities and a NaN, as ``ml_dtypes`` rounds them."""
    _skip_unless(path)
    rt = runtime()
    column = np.array([1 + 2**-8, 1 + 3 * 2**-8, 0.5, -3.0, 1.0000001, 2**-20], np.float32)
    a = np.diag(column).astype(np.float32)  # row i picks b's row i, times column[i]
    b = np.ones((6, 5), np.float32)
    out = np.empty((6, 5), np.float32)
    rt.bgemm_call(a, b, out, path=path)()
    np.testing.assert_array_equal(out, np.repeat(_bf16(column)[:, None], 5, axis=1))
    a = np.array([[np.inf, 1.0], [np.nan, 1.0]], np.float32)
    out = np.empty((2, 1), np.float32)
    rt.bgemm_call(a, np.ones((2, 1), np.float32), out, path=path)()
    assert out[0, 0] == np.inf and np.isnan(out[1, 0])


@pytest.mark.parametrize("path", PATHS)
def test_two_threads_give_one_threads_bits(rng, path):
    _skip_unless(path)
    a, b = _operands(rng, 150, 300, 170, False, False)
    results = []
    for threads in (1, 2):
        with on_threads(threads) as rt:
            out = np.empty((150, 170), np.float32)
            rt.bgemm_call(a, b, out, path=path)()
            results.append(out)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("threads", [1, 2])
def test_flags_take_the_portable_path_and_read_rounded_operands_in_place(rng, threads):
    """``PORTABLE`` takes the portable path whatever the CPU has: ``kc_sgemm`` on the
    rounded copies, so its bits; ``A_ROUNDED`` (``B_ROUNDED``) reads that operand as it
    is (not rounded: shown on operands that are not bf16 values), contiguous or not,
    in rows not a multiple of the 16 lanes the copy takes at a time."""
    with on_threads(threads) as rt:
        for m, depth, n in [(5, 3, 7), (37, 100, 50), (33, 65, 3)]:
            for ta, tb in [(False, False), (True, False), (False, True)]:
                a, b = _operands(rng, m, depth, n, ta, tb)
                start = rng.standard_normal((m, n)).astype(np.float32)
                for kept, (wa, wb) in [
                    (0, (_bf16(a), _bf16(b))),
                    (A_ROUNDED, (a, _bf16(b))),
                    (B_ROUNDED, (_bf16(a), b)),
                    (A_ROUNDED | B_ROUNDED, (a, b)),
                ]:
                    for acc in (0, ACCUMULATE):
                        got, want = start.copy(), start.copy()
                        rt.bgemm_call(a, b, got, PORTABLE | kept | acc)()
                        # The call holds addresses only: the operands must outlive it.
                        wa, wb = np.ascontiguousarray(wa), np.ascontiguousarray(wb)
                        rt.sgemm_call(wa, wb, want, acc)()
                        what = f"{(m, depth, n)} ta={ta} tb={tb} kept={kept} acc={acc}"
                        np.testing.assert_array_equal(got, want, err_msg=what)


def _bgemm(rt, path: str, a, b, out, flags: int) -> np.ndarray:
    """``kc_bgemm`` (or its ``path``) on operands of float32 or bfloat16 elements (the
    flags say which), any strides (in elements); ``out`` row-major."""
    name = f"{BGEMM.symbol}_{path}" if path else BGEMM.symbol
    (m, depth), n = a.shape, b.shape[1]
    ra, ca = (s // a.itemsize for s in a.strides)
    rb, cb = (s // b.itemsize for s in b.strides)
    args = [m, n, depth, a.ctypes.data, ra, ca, b.ctypes.data, rb, cb, out.ctypes.data, n]
    abi.bind(BGEMM, rt.address(name))(*args, flags, None, None)
    return out


def _narrow(x: np.ndarray) -> np.ndarray:
    """``x``'s values as a bfloat16 array of the same layout (a transposed view stays
    one: its strides are what the kernel is given)."""
    if x.flags.f_contiguous and not x.flags.c_contiguous:
        return x.T.astype(ml_dtypes.bfloat16).T
    return x.astype(ml_dtypes.bfloat16)


def _strided_like(x: np.ndarray, steps) -> np.ndarray:
    """``x``'s values in a bfloat16 view whose rows and columns are ``steps`` apart."""
    full = np.zeros([n * s for n, s in zip(x.shape, steps)], ml_dtypes.bfloat16)
    view = full[:: steps[0], :: steps[1]]
    view[...] = x
    return view


# (70, 96, 50) and (33, 32, 33): depths of whole tiles, whose bf16 rows the AMX path reads
# in place (``A_IN_PLACE``) for its whole block rows, packing the last.
BF16_SHAPES = [
    *[(1, 1, 1), (5, 3, 7), (37, 100, 50), (33, 65, 3), (64, 64, 64), (47, 257, 95)],
    *[(70, 96, 50), (33, 32, 33), (96, 64, 200)],
]
OPERAND_BITS = [A_BF16, B_BF16, A_BF16 | B_BF16]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", PATHS)
def test_bf16_operands_give_the_float32_operands_bits(rng, path, threads):
    """``A_BF16`` / ``B_BF16`` alone and together: an operand of bfloat16 elements (rows
    or transposed, ragged sizes, accumulating or not) gives the bits of the call on the
    same values in float32, which match numpy on them."""
    _skip_unless(path)
    with on_threads(threads) as rt:
        for shape in BF16_SHAPES:
            m, depth, n = shape
            for ta in (False, True):
                for tb in (False, True):
                    a, b = (_bf16(x) for x in _operands(rng, m, depth, n, ta, tb))
                    a16, b16 = _narrow(a), _narrow(b)
                    start = rng.standard_normal((m, n)).astype(np.float32)
                    want = a.astype(np.float64) @ b.astype(np.float64)
                    for acc in (0, ACCUMULATE):
                        same = _bgemm(rt, path, a, b, start.copy(), acc)
                        tol = dict(rtol=1e-5, atol=2e-6 * depth + 1e-6)
                        np.testing.assert_allclose(same, want + (start if acc else 0), **tol)
                        for bits in OPERAND_BITS:
                            pa = a16 if bits & A_BF16 else a
                            pb = b16 if bits & B_BF16 else b
                            got = _bgemm(rt, path, pa, pb, start.copy(), acc | bits)
                            what = f"{path} {shape} ta={ta} tb={tb} bits={bits} acc={acc}"
                            np.testing.assert_array_equal(got, same, err_msg=what)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", PATHS)
def test_bf16_operands_of_any_strides(rng, path, threads):
    """bfloat16 operands whose rows and columns are both strided (packed element by
    element), beside contiguous ones; and the portable path widening a bf16 operand even
    when the ``*_ROUNDED`` bit says it could be read in place."""
    _skip_unless(path)
    with on_threads(threads) as rt:
        for m, depth, n in [(13, 37, 10), (40, 70, 45), (33, 300, 70)]:
            for a_steps, b_steps in [((2, 3), (3, 2)), ((1, 1), (2, 3)), ((3, 2), (1, 1))]:
                a, b = _strided(rng, (m, depth), a_steps), _strided(rng, (depth, n), b_steps)
                a[...], b[...] = _bf16(a), _bf16(b)
                a16, b16 = _strided_like(a, a_steps), _strided_like(b, b_steps)
                same = _bgemm(rt, path, a, b, np.empty((m, n), np.float32), 0)
                want = a.astype(np.float64) @ b.astype(np.float64)
                np.testing.assert_allclose(same, want, rtol=1e-5, atol=2e-6 * depth + 1e-6)
                kept = (A_ROUNDED | B_ROUNDED) if path == "round" else 0
                for bits in OPERAND_BITS:
                    pa, pb = (a16 if bits & A_BF16 else a), (b16 if bits & B_BF16 else b)
                    got = _bgemm(rt, path, pa, pb, np.full((m, n), np.nan, np.float32), bits | kept)
                    np.testing.assert_array_equal(got, same, err_msg=f"{path} bits={bits}")


@pytest.mark.parametrize("path", ["amx", "dp"])
def test_scratch_buffers_grow_and_large_ones_come_from_the_heap(rng, path):
    """Calls whose packed operands outgrow the kept scratch buffers (``codegen.library.scratch``:
    each grown), then one whose packed B is past ``MAX_BYTES`` (from the heap), then a
    small one again: each as numpy on the same values."""
    _skip_unless(path)
    rt = runtime()
    depth = 1056  # packed B: 33 tiles of depth x 17 pairs of 16 columns x 2 KB > 1 MB
    assert scratch.MAX_BYTES < 33 * 17 * 2048
    for m, k, n in [(20, 40, 30), (40, 300, 200), (40, depth, 520), (20, 40, 30)]:
        a, b = (_bf16(x) for x in _operands(rng, m, k, n, False, False))
        got = _bgemm(rt, path, _narrow(a), b, np.empty((m, n), np.float32), A_BF16)
        want = a.astype(np.float64) @ b.astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * k + 1e-6)


_EPILOGUE = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] + [ctypes.c_int64] * 6)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", PATHS)
def test_bf16_operands_hand_each_block_to_the_epilogue(rng, path, threads):
    """The epilogue sees every block of the product of bf16 operands exactly once, with C
    (each block written first) and without (null C: each block only in its buffer),
    for block rows read in place and packed (70 rows: two whole, one ragged)."""
    _skip_unless(path)
    m, depth, n = 70, 96, 50
    a, b = (_bf16(x) for x in _operands(rng, m, depth, n, False, False))
    want = _bgemm(runtime(), path, a, b, np.empty((m, n), np.float32), 0)
    for with_c in (True, False):
        seen, counts = np.full((m, n), np.nan, np.float32), np.zeros((m, n), np.int64)

        def epilogue(ctx, at, ldc, i0, j0, rows, cols, seen=seen, counts=counts):
            for i in range(i0, i0 + rows):
                line = (ctypes.c_float * cols).from_address(at + (i * ldc + j0) * 4)
                seen[i, j0 : j0 + cols] = np.frombuffer(line, np.float32)
                counts[i, j0 : j0 + cols] += 1

        callback = _EPILOGUE(epilogue)
        out = np.full((m, n), np.nan, np.float32)
        a16, b16 = _narrow(a), _narrow(b)
        (ra, ca), (rb, cb) = [(x.strides[0] // 2, x.strides[1] // 2) for x in (a16, b16)]
        name = f"{BGEMM.symbol}_{path}"
        c_at = out.ctypes.data if with_c else None
        with on_threads(threads) as rt:
            abi.bind(BGEMM, rt.address(name))(
                *[m, n, depth, a16.ctypes.data, ra, ca, b16.ctypes.data, rb, cb, c_at, n],
                A_BF16 | B_BF16,
                ctypes.cast(callback, ctypes.c_void_p).value,
                None,
            )
        np.testing.assert_array_equal(counts, 1, err_msg=f"with C {with_c}")
        np.testing.assert_array_equal(seen, want, err_msg=f"with C {with_c}")
        if with_c:
            np.testing.assert_array_equal(out, want)


def test_the_path_kc_bgemm_takes_is_the_best_this_cpu_has():
    features = host().has
    want = "amx" if has_amx(features) else "dp" if has_dp(features) else "round"
    path = runtime().bgemm_path()
    assert path == want or (want == "amx" and path in ("dp", "round"))  # refused tiles


@pytest.fixture
def _float32_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _dense_model():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        rng = np.random.RandomState(0)
        i = keras.Input((67,))
        h = keras.layers.Dense(45, activation="relu")(i)
        y = keras.layers.Dense(7, activation="softmax", dtype="float32")(h)
        model = keras.Model(i, y)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model, rng.randn(37, 67).astype("float32"), rng.randint(0, 7, 37)


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_mixed_bfloat16_dense_layer_through_the_bf16_product(tmp_path, monkeypatch, threads):
    """A Dense layer (bias and relu fused into the product's epilogue) under
    ``mixed_bfloat16``, predicted and trained natively against the reference
    interpreter; its product is ``kc_bgemm`` where the CPU has a bf16 engine."""
    model, x, labels = _dense_model()
    weights = model.get_weights()
    results = {}
    for backend in ("reference", "llvm"):
        if backend == "llvm":
            monkeypatch.setenv("KCOMPILE_DUMP", str(tmp_path))
        model.set_weights(weights)
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", backend=backend)
        with on_threads(threads):
            predicted = model.predict(x, verbose=0).astype(np.float32)
            loss = float(model.train_on_batch(x, labels))
        results[backend] = (predicted, loss, model.get_weights())
    monkeypatch.delenv("KCOMPILE_DUMP")
    (p_ref, l_ref, w_ref), (p_nat, l_nat, w_nat) = results["reference"], results["llvm"]
    # Sums in another order can round a bf16 result the other way: a few bf16 steps.
    np.testing.assert_allclose(p_nat, p_ref, rtol=0, atol=4 * 2**-8)
    np.testing.assert_allclose(l_nat, l_ref, rtol=1e-2)
    for got, want in zip(w_nat, w_ref):
        np.testing.assert_allclose(got, want, rtol=0, atol=8 * 2**-8 * max(1, np.abs(want).max()))
    # The LLVM IR before optimization, as codegen wrote it: the forward product with its
    # epilogue, and the weight gradient's with the fused update and no C (the product
    # only the epilogue reads).
    code = "\n".join(p.read_text() for p in Path(tmp_path).rglob("*_llvm.ll"))
    calls = re.findall(r'call void @"(kc_[sb]gemm)"\(([^\n]*)\)', code)
    assert calls, "no matrix product found in the dumped LLVM IR"
    if has_engine(host().has):
        bf16 = [args for name, args in calls if name == "kc_bgemm"]
        assert bf16, "the bf16 product was not used"
        assert any(re.search(r"ptr null, i64 \d+, i64 0, void", args) for args in bf16)
    else:  # kc_bgemm only for products rounding operands themselves, on its portable path
        for name, args in calls:
            assert name == "kc_sgemm" or int(re.findall(r"i64 (\d+)", args)[-1]) & PORTABLE


@pytest.mark.slow
def test_a_runtime_for_an_avx2_cpu_has_the_portable_path_only(rng):
    """The runtime library built for x86-64-v3 (AVX2, a Zen 3's level) holds neither AMX
    nor ``vdpbf16ps`` code: ``kc_bgemm`` rounds and runs ``kc_sgemm``; codegen keeps bf16
    products on ``kc_sgemm`` for it."""
    from kcompile.codegen.building.target import CompileTimes, LoadedCode, compile_module, for_cpu
    from kcompile.codegen.library.gemm import Tile
    from kcompile.codegen.library.runtime_library import Runtime, runtime_ir

    features = for_cpu("x86-64-v3").has
    assert not has_engine(features)
    text = runtime_ir(Tile.for_host(features), features)
    assert "tdpbf16ps" not in text and "dpbf16ps" not in text
    rt = Runtime(
        LoadedCode(compile_module(text, CompileTimes()).object_code), CompileTimes(), False
    )
    rt.set_threads(2)
    assert rt.bgemm_path() == "round"
    for shape in [(5, 3, 7), (37, 100, 50)]:
        for ta in (False, True):
            _check(rt, "", rng, shape, ta, not ta, accumulate=ta)
            a, b = (_bf16(x) for x in _operands(rng, *shape, ta, not ta))
            same = _bgemm(rt, "", a, b, np.empty((shape[0], shape[2]), np.float32), 0)
            for bits in OPERAND_BITS:
                pa = _narrow(a) if bits & A_BF16 else a
                pb = _narrow(b) if bits & B_BF16 else b
                got = _bgemm(rt, "", pa, pb, np.empty_like(same), bits)
                np.testing.assert_array_equal(got, same, err_msg=f"{shape} bits={bits}")


def _products(graph):
    pending = list(graph.nodes)
    while pending:
        node = pending.pop()
        if node.traits.kernel_body:
            pending += node.attrs["body"].nodes
        elif node.op == "matmul":
            yield node


@pytest.mark.parametrize("cpu", ["host", "x86-64-v3"])
def test_an_artifacts_products_choose_kc_bgemm_by_its_cpu_not_the_host(cpu):
    """The object code for another CPU level takes ``kc_bgemm``'s engines only if that
    CPU has one, whatever the host has (its runtime library holds only the portable
    path): without, a product calls ``kc_bgemm`` only to round operands itself, asking
    for the portable path; the others call ``kc_sgemm``."""
    model, x, _ = _dense_model()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.predict(x[:4], verbose=0)
    steps = model.compiled_steps
    graph = steps.executable("predict", (), steps.input_shapes([x[:4]])).graph
    features = for_cpu(cpu).has
    code = graph_object(graph, for_cpu(cpu))
    products = list(_products(graph))
    rounding = [p for p in products if p.attrs.get("round_operands")]
    assert rounding, "the input's and the weights' roundings stayed kernels of their own"
    assert (b"kc_bgemm" in code) == (has_engine(features) or bool(rounding))
    assert b"kc_sgemm" in code or b"kc_bgemm" in code
    with lowering_for(features):
        for p in products:
            engine = on_bf16_engine(p)
            assert not engine or has_engine(features)
            portable = bool(bgemm_flags(p, product_dims(p)) & PORTABLE)
            assert portable == bool(p.attrs.get("round_operands") and not engine)


@pytest.mark.slow
@pytest.mark.parametrize("cpu, linker", [("host", True), ("host", False), ("x86-64-v3", True)])
def test_mixed_bfloat16_artifacts(tmp_path, monkeypatch, cpu, linker):
    """Artifacts of a mixed_bfloat16 model: for this CPU (its runtime library holds the
    engines' paths, the tile permission asked from a shared library or from object code
    linked by kcompile's loader) and for AVX2's level (the portable path only)."""
    if not linker:
        monkeypatch.setenv("KCOMPILE_CC", "none")
    model, x, _ = _dense_model()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    path = str(tmp_path / "mixed.kc")
    manifest = model.export(path, cpu=cpu)
    assert manifest["model"]["policy"] == "mixed_bfloat16"
    # the manifest counts the products on kc_bgemm: none for a CPU without an engine
    # (x86-64-v3's products call kc_sgemm even on a host with AMX)
    engine = has_engine(for_cpu(cpu).has)
    assert (manifest["steps"]["predict"]["bf16_engine_products"] > 0) == engine
    got = keras.load(path).predict(x, verbose=0).astype(np.float32)
    model.compile(backend="reference")
    want = model.predict(x, verbose=0).astype(np.float32)
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * 2**-8)
