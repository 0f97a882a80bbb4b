"""One model used from several threads at once (a web server's workers): every call
returns what it returns alone, for compiled models and loaded artifacts alike; fit in
one thread while others predict works."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import kcompile as keras
from tests.classifiers import dense_classifier

THREADS = 4
CALLS = 120


def _hammer(model, x, y, expected_predict, expected_eval, errors):
    rng = np.random.default_rng(threading.get_ident() % 1000)

    def work():
        try:
            for i in range(CALLS):
                n = int(rng.integers(1, 65))
                start = int(rng.integers(0, len(x) - n + 1))
                part = x[start : start + n]
                kind = i % 3
                if kind == 0:
                    got = model.predict(part, verbose=0, batch_size=n)
                elif kind == 1:
                    got = model.predict_on_batch(part)
                else:
                    loss = model.evaluate(x[:40], y[:40], batch_size=8, verbose=0)
                    if not np.allclose(loss, expected_eval, rtol=1e-6):
                        errors.append(f"evaluate gave {loss}, alone {expected_eval}")
                    continue
                want = expected_predict[start : start + n]
                if not np.allclose(got, want, rtol=1e-5, atol=1e-6):
                    errors.append(f"call {i} at batch {n}: differs by {np.abs(got - want).max()}")
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture(params=["compiled", "artifact"])
def model(request, tmp_path):
    model = dense_classifier(12, 32, seed=2)
    if request.param == "artifact":
        path = str(tmp_path / "m.kc")
        model.export(path)
        return keras.load(path)
    return model


def test_concurrent_predict_and_evaluate_match_serial_results(model, rng):
    x = rng.normal(size=(200, 12)).astype(np.float32)
    y = rng.integers(0, 3, 200).astype(np.int32)
    expected_predict = model.predict(x, verbose=0)
    expected_eval = model.evaluate(x[:40], y[:40], batch_size=8, verbose=0)
    errors: list[str] = []
    _hammer(model, x, y, expected_predict, expected_eval, errors)
    assert not errors, errors[:5]


def test_fit_while_other_threads_predict(rng):
    model = dense_classifier(12, 32, seed=2)
    x = rng.normal(size=(256, 12)).astype(np.float32)
    y = rng.integers(0, 3, 256).astype(np.int32)
    errors: list[str] = []
    done = threading.Event()

    def predict_until_done():
        try:
            while not done.is_set():
                out = model.predict(x[:17], verbose=0)
                if out.shape != (17, 3) or not np.allclose(out.sum(axis=1), 1, atol=1e-5):
                    errors.append(f"predict during fit gave {out[:2]}")
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=predict_until_done) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    final = model.predict(x, verbose=0)
    np.testing.assert_array_equal(final, model.predict(x, verbose=0))
