"""keras.callbacks.SwapEMAWeights (with an optimizer's ``use_ema``; a fit against Keras
3.15's losses and weights in ``keras_fixtures/extras.npz``) and RemoteMonitor (POSTs to
a local ``http.server`` on the loopback address)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import kcompile as keras
from tests.fixture_scripts.make_extras_fixtures import run_swap_ema

FIXTURE = np.load(Path(__file__).parent / "keras_fixtures" / "extras.npz")


def _model(use_ema: bool = True):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, use_ema=use_ema, ema_momentum=0.5),
                  loss="mse")  # fmt: skip
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32)


def _averages(model):
    opt = model.optimizer
    return [opt.slots[opt.slot_path(v, "average")].copy() for v in model.trainable_weights]


def _loss(weights, x, y):
    kernel, bias = weights
    return float(np.mean((x @ kernel + bias - y) ** 2))


@pytest.mark.slow
def test_evaluate_and_predict_use_the_averages_and_training_the_raw_weights():
    x, y = _data()
    model = _model()
    for _ in range(3):
        model.train_on_batch(x, y)
    raw, averages = model.get_weights(), _averages(model)
    assert not np.allclose(raw[0], averages[0])
    swap = keras.callbacks.SwapEMAWeights()
    loss = model.evaluate(x, y, callbacks=[swap], verbose=0)
    np.testing.assert_allclose(loss, _loss(averages, x, y), rtol=1e-5)
    for got, want in zip(model.get_weights(), raw):  # swapped back
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(_averages(model)[0], averages[0])
    out = model.predict(x, callbacks=[swap], verbose=0)
    np.testing.assert_allclose(out, x @ averages[0] + averages[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("swap_on_epoch", [pytest.param(False, marks=pytest.mark.slow), True])
def test_fit_with_swapped_averages_matches_keras(swap_on_epoch):
    got = run_swap_ema(keras, swap_on_epoch)
    prefix = f"swap_ema/{swap_on_epoch}/"
    want = {k[len(prefix) :]: FIXTURE[k] for k in FIXTURE if k.startswith(prefix)}
    assert set(got) == set(want)
    for key in sorted(want):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_a_multi_optimizer_swaps_the_averages_its_ema_optimizers_keep():
    """Under a MultiOptimizer the kernel's optimizer keeps averages (use_ema), the bias's
    does not: evaluation sees the kernel's average and the bias as trained (Keras's)."""
    x, y = _data()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    ema = keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5, name="ema")
    plain = keras.optimizers.SGD(0.1, name="plain")
    opt = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(plain, {"d/kernel": ema}))
    model.compile(optimizer=opt, loss="mse")
    for _ in range(3):
        model.train_on_batch(x, y)
    kernel_var = model.trainable_weights[0]
    raw = model.get_weights()
    average = ema.slots[ema.slot_path(kernel_var, "average")].copy()
    assert not np.allclose(raw[0], average)
    loss = model.evaluate(x, y, callbacks=[keras.callbacks.SwapEMAWeights()], verbose=0)
    np.testing.assert_allclose(loss, _loss([average, raw[1]], x, y), rtol=1e-5)
    for got, want in zip(model.get_weights(), raw):  # swapped back
        np.testing.assert_array_equal(got, want)
    plain_only = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(plain))
    swap = keras.callbacks.SwapEMAWeights()
    model.compile(optimizer=plain_only, loss="mse")
    swap.set_model(model)
    with pytest.raises(ValueError, match="at least one inner optimizer"):
        swap.on_test_begin()


def test_swap_needs_an_optimizer_with_use_ema():
    swap = keras.callbacks.SwapEMAWeights()
    swap.set_model(_model(use_ema=False))
    with pytest.raises(ValueError, match="use_ema=True"):
        swap.on_test_begin()


class _Recorder(BaseHTTPRequestHandler):
    posts: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts.append((self.path, self.headers.get("Content-Type"), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Recorder.posts = []
    httpd = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Recorder.posts
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("as_json", [False, True])
def test_remote_monitor_posts_each_epochs_logs(server, as_json):
    root, posts = server
    x, y = _data()
    model = _model(use_ema=False)
    monitor = keras.callbacks.RemoteMonitor(root=root, path="/logs/", field="payload",
                                            headers={"X-Run": "7"}, send_as_json=as_json)  # fmt: skip
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[monitor])
    assert [p[0] for p in posts] == ["/logs/", "/logs/"]
    for epoch, (_, content_type, body) in enumerate(posts):
        if as_json:
            assert content_type == "application/json"
            sent = json.loads(body)
        else:
            assert content_type == "application/x-www-form-urlencoded"
            sent = json.loads(urllib.parse.parse_qs(body.decode())["payload"][0])
        assert sent["epoch"] == epoch
        assert sent["loss"] == pytest.approx(history.history["loss"][epoch])


def test_remote_monitor_warns_when_the_server_is_unreachable():
    with HTTPServer(("127.0.0.1", 0), _Recorder) as closed:
        port = closed.server_address[1]  # a port nobody listens on once closed
    monitor = keras.callbacks.RemoteMonitor(root=f"http://127.0.0.1:{port}")
    with pytest.warns(UserWarning, match="Could not reach RemoteMonitor"):
        monitor.on_epoch_end(0, {"loss": np.float32(1.5)})
