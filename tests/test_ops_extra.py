"""keras.ops added for issue 26: the Fourier transforms (compositions of matrix
products: eager, traced, compiled and differentiated), ``rearrange``, the linalg
factorizations and the value-shaped or bit-level ops (concrete arrays only, refused
inside a compiled step). Keras's own numbers are in ``keras_fixtures/extras.npz``
(``fixture_scripts/make_extras_fixtures.py``); elsewhere numpy's semantics are Keras's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kcompile import ops
from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import BATCH, Graph, f32, interpret
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.passes import append_gradients
from kcompile.tools.fuzz.oracle import run_compiled
from tests.fixture_scripts.make_extras_fixtures import STFT_CASES, matrices, signal

FIXTURE = np.load(Path(__file__).parent / "keras_fixtures" / "extras.npz")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _complex(shape, rng):
    return rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)


def test_fft_family_matches_numpy(rng):
    a, b = _complex((2, 3, 8), rng)
    c = a + 1j * b
    for fn, want in ((ops.fft, np.fft.fft(c)), (ops.fft2, np.fft.fft2(c)),
                     (ops.ifft2, np.fft.ifft2(c))):  # fmt: skip
        real, imag = fn((a, b))
        assert real.dtype == np.float32
        np.testing.assert_allclose(real + 1j * imag, want, atol=5e-6)
    for n in (None, 5, 8, 12):
        real, imag = ops.rfft(a, n)
        np.testing.assert_allclose(real + 1j * imag, np.fft.rfft(a, n), atol=5e-6)
    z = np.fft.rfft(a)
    parts = (z.real.astype(np.float32), z.imag.astype(np.float32))
    for n in (None, 5, 7, 8, 14, 20):
        np.testing.assert_allclose(ops.irfft(parts, n), np.fft.irfft(z, n), atol=5e-6)


def test_fft_refuses_what_keras_refuses():
    with pytest.raises(ValueError, match="tuple of two tensors"):
        ops.fft(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="same shape"):
        ops.fft((np.ones(4, np.float32), np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="fft_length"):
        ops.stft(np.ones(20, np.float32), 8, 4, 4)
    with pytest.raises(ValueError, match='"hann"'):
        ops.stft(np.ones(20, np.float32), 8, 4, 8, window="blackman")


@pytest.mark.parametrize("key", list(STFT_CASES))
def test_stft_and_istft_match_keras(key):
    kw = STFT_CASES[key]
    real, imag = ops.stft(signal(), **kw)
    np.testing.assert_allclose(real, FIXTURE[f"stft/{key}/real"], atol=2e-5)
    np.testing.assert_allclose(imag, FIXTURE[f"stft/{key}/imag"], atol=2e-5)
    parts = (FIXTURE[f"stft/{key}/real"], FIXTURE[f"stft/{key}/imag"])
    np.testing.assert_allclose(ops.istft(parts, length=30, **kw), FIXTURE[f"istft/{key}"],
                               atol=2e-5)  # fmt: skip


@pytest.mark.parametrize(
    "run",
    [lambda g, feeds: interpret(g, feeds), pytest.param(run_compiled, marks=pytest.mark.slow)],
    ids=["interpreter", "compiled"],
)
def test_fourier_ops_trace_and_compile(rng, run):
    """One graph holding rfft, irfft, fft, stft, istft and rearrange of a batch, on the
    reference interpreter and in native code, against numpy."""
    g = Graph("fourier")
    x = g.add_input("x", f32(BATCH, 16), "data")
    t = TracedTensor(x)
    real, imag = ops.rfft(t)
    back = ops.irfft((real, imag), 16)
    fr, fi = ops.fft((t, t * 0.5))
    sr, si = ops.stft(t, 8, 4, 8)
    rebuilt = ops.istft((sr, si), 8, 4, 8, length=16)
    patches = ops.rearrange(ops.reshape(t, (-1, 4, 4)), "b (h h1) w -> b h (w h1)", h1=2)
    outs = {"real": real, "imag": imag, "back": back, "fr": fr, "fi": fi, "sr": sr,
            "rebuilt": rebuilt, "patches": patches}  # fmt: skip
    g.set_outputs([(k, v.value) for k, v in outs.items()])
    data = rng.normal(size=(3, 16)).astype(np.float32)
    spectrum = np.fft.rfft(data)
    want = {
        "real": spectrum.real, "imag": spectrum.imag, "back": data,
        "fr": np.fft.fft(data + 0.5j * data).real, "fi": np.fft.fft(data + 0.5j * data).imag,
        "sr": ops.stft(data, 8, 4, 8)[0], "rebuilt": data,
        "patches": data.reshape(3, 2, 2, 4).transpose(0, 1, 3, 2).reshape(3, 2, 8),
    }  # fmt: skip
    got = run(g, {"x": data})
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=2e-5, err_msg=k)


def test_rfft_gradient_matches_central_differences(rng):
    grad_graph = Graph("fourier_grad")
    v = grad_graph.add_input("x", f32(BATCH, 12), "data")
    w = grad_graph.add_input("w", f32(BATCH, 7), "data")
    real, imag = ops.rfft(TracedTensor(v))
    loss = B.reduce_sum((real.value + B.square(imag.value)) * w)
    (grad,) = append_gradients(grad_graph, loss, [v])
    grad_graph.set_outputs([("loss", loss), ("g", grad)])
    feeds = {"x": rng.normal(size=(2, 12)), "w": rng.normal(size=(2, 7))}
    got = interpret(grad_graph, feeds, np.float64)["g"]
    np.testing.assert_allclose(got, numeric_gradient(grad_graph, feeds, "x"), rtol=1e-4,
                               atol=1e-5)  # fmt: skip


def test_rearrange_matches_keras_examples():
    images = np.random.default_rng(1).random((4, 6, 8, 3)).astype(np.float32)
    cases = {
        "b h w c -> b c h w": images.transpose(0, 3, 1, 2),
        "b h w c -> (b h) w c": images.reshape(24, 8, 3),
        "b h w c -> h (b w) c": images.transpose(1, 0, 2, 3).reshape(6, 32, 3),
        "b h w c -> b (c h w)": images.transpose(0, 3, 1, 2).reshape(4, -1),
    }
    for pattern, want in cases.items():
        np.testing.assert_array_equal(ops.rearrange(images, pattern), want)
    got = ops.rearrange(images, "b (h1 h) (w1 w) c -> (b h1 w1) h w c", h1=2, w1=2)
    want = images.reshape(4, 2, 3, 2, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(16, 3, 4, 3)
    np.testing.assert_array_equal(got, want)
    got = ops.rearrange(images, "b (h h1) (w w1) c -> b h w (c h1 w1)", h1=2, w1=2)
    want = images.reshape(4, 3, 2, 4, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(4, 3, 4, 12)
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="same axes"):
        ops.rearrange(images, "b h w c -> b h w")


def test_linalg_factorizations_match_keras():
    m = matrices()
    s = ops.linalg.svd(m["a"], compute_uv=False)
    np.testing.assert_allclose(s, FIXTURE["svd/s"], rtol=1e-5)
    u, s, vh = ops.svd(m["a"], full_matrices=False)
    np.testing.assert_allclose(u * s[..., None, :] @ vh, m["a"], atol=1e-5)
    assert ops.svd(m["a"])[0].shape == (2, 4, 4)
    sym = m["square"] + np.swapaxes(m["square"], -1, -2)
    w, v = ops.linalg.eigh(sym)
    np.testing.assert_allclose(w, FIXTURE["eigh/w"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(v @ (w[..., None] * np.swapaxes(v, -1, -2)), sym, atol=1e-4)
    np.testing.assert_allclose(ops.lstsq(m["a"][0], m["b"]), FIXTURE["lstsq"], atol=1e-5)
    np.testing.assert_allclose(ops.pinv(m["rank2"]), FIXTURE["pinv"], atol=1e-4)
    np.testing.assert_array_equal(ops.linalg.matrix_rank(np.stack([m["rank2"], m["rank2"] * 0])),
                                  FIXTURE["matrix_rank"])  # fmt: skip
    lu, piv = ops.lu_factor(m["square"])
    np.testing.assert_allclose(lu, FIXTURE["lu_factor/lu"], atol=1e-5)
    np.testing.assert_array_equal(piv, FIXTURE["lu_factor/piv"])
    assert piv.dtype == np.int32
    q, r = ops.qr(m["a"])
    np.testing.assert_allclose(q, FIXTURE["qr/q"], atol=1e-5)
    np.testing.assert_allclose(r, FIXTURE["qr/r"], atol=1e-5)
    assert ops.qr(m["a"], mode="complete")[0].shape == (2, 4, 4)
    w, v = ops.eig(m["square"][0])
    assert w.dtype == np.complex64
    np.testing.assert_allclose(np.sort_complex(w), FIXTURE["eig/w"], atol=1e-5)
    np.testing.assert_allclose(m["square"][0] @ v, v * w, atol=1e-4)


def test_unique_nonzero_nextafter_view_match_keras():
    x = np.array([[3, 1, 2], [1, 3, 5]], np.int32)
    np.testing.assert_array_equal(ops.unique(x), [1, 2, 3, 5])
    _, index, inverse, counts = ops.numpy.unique(
        x, return_index=True, return_inverse=True, return_counts=True
    )
    np.testing.assert_array_equal(index, [1, 2, 0, 5])
    np.testing.assert_array_equal(inverse, [[2, 0, 1], [0, 2, 3]])
    np.testing.assert_array_equal(counts, [2, 1, 2, 1])
    assert inverse.dtype == np.int32
    np.testing.assert_array_equal(ops.unique(x, size=6), [1, 2, 3, 5, 1, 1])
    np.testing.assert_array_equal(ops.unique(x, size=6, fill_value=-1), [1, 2, 3, 5, -1, -1])
    np.testing.assert_array_equal(ops.unique(x, size=2, return_counts=True)[1], [2, 1])
    rows, which = ops.unique(x, axis=0, return_inverse=True)
    np.testing.assert_array_equal(rows, [[1, 3, 5], [3, 1, 2]])
    np.testing.assert_array_equal(which, [1, 0])
    assert ops.unique(np.array([1.5, np.nan, np.nan], np.float32)).shape == (3,)
    first, second = ops.nonzero(x > 2)
    np.testing.assert_array_equal(first, [0, 1, 1])
    np.testing.assert_array_equal(second, [0, 1, 2])
    after = ops.nextafter(np.array([1.0, 2.0], np.float32), np.array([2.0, 0.0], np.float32))
    np.testing.assert_array_equal(after, np.float32([1.0000001, 1.9999999]))
    np.testing.assert_array_equal(ops.view(np.float32([1, 2]), "int32"), [1065353216, 1073741824])
    assert ops.view(np.float32([1, 2]), "uint8").shape == (8,)
    with pytest.raises(NotImplementedError, match="keras.ops.view"):
        ops.view(np.float32([1, 2]), "complex64")


@pytest.mark.parametrize(
    "call",
    [
        lambda t: ops.unique(t),
        lambda t: ops.nonzero(t),
        lambda t: ops.nextafter(t, 1.0),
        lambda t: ops.view(t, "int32"),
        lambda t: ops.qr(t),
        lambda t: ops.linalg.svd(t),
        lambda t: ops.pinv(t),
        lambda t: ops.lu_factor(t),
    ],
)
def test_concrete_only_ops_are_refused_in_a_traced_step(call):
    g = Graph("refused")
    t = TracedTensor(g.add_input("x", f32(BATCH, 3), "data"))
    with pytest.raises(NotImplementedError, match=r"keras\.ops\.\w+ .*compiled step"):
        call(t)


@pytest.mark.slow
def test_fourier_ops_and_rearrange_in_a_functional_model(rng):
    import kcompile as keras

    x = keras.Input((16,))
    real, imag = ops.rfft(x)
    frames = ops.stft(x, 8, 4, 8)[0]
    patches = ops.rearrange(ops.reshape(x, (-1, 4, 4)), "b h w -> b (w h)")
    model = keras.Model(x, [real, imag, frames, patches])
    data = rng.normal(size=(3, 16)).astype(np.float32)
    got = model.predict(data, verbose=0)
    np.testing.assert_allclose(got[0] + 1j * got[1], np.fft.rfft(data), atol=2e-5)
    np.testing.assert_allclose(got[2], ops.stft(data, 8, 4, 8)[0], atol=2e-5)
    np.testing.assert_array_equal(got[3], data.reshape(3, 4, 4).transpose(0, 2, 1).reshape(3, 16))
    with pytest.raises(NotImplementedError, match=r"keras\.ops\.qr .*a model"):
        ops.qr(x)
