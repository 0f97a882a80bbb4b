"""keras.utils.get_file and keras.datasets' download path, against a small HTTP server on
127.0.0.1 (these machines have no network): Keras's cache, hash checks (a corrupt file
is refused and nothing is kept), extraction, and an offline error that names the URL and
where to put the file."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading

import numpy as np
import pytest

import kcompile as keras
from kcompile.datasets import keras_files


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/", requests
    httpd.shutdown()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    return tmp_path / "keras-home"


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _serve(monkeypatch, root, url, name, data: bytes, key=None):
    (root / name).write_bytes(data)
    monkeypatch.setitem(keras_files.FILES, key or name, (url + name, _sha256(root / name)))


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_mnist_downloads_once_into_kerass_cache(server, cache, monkeypatch):
    root, url, requests = server
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    _serve(
        monkeypatch,
        root,
        url,
        "mnist.npz",
        _npz(x_train=x, y_train=[3, 4], x_test=x[:1], y_test=[5]),
    )
    (x_train, y_train), (_, y_test) = keras.datasets.mnist.load_data()
    np.testing.assert_array_equal(x_train, x)
    assert y_train.tolist() == [3, 4] and y_test.tolist() == [5]
    assert (cache / "datasets" / "mnist.npz").exists()
    keras.datasets.mnist.load_data()  # from the cache: no second request
    assert requests.count("/mnist.npz") == 1


def test_a_corrupt_download_is_refused_and_not_kept(server, cache, monkeypatch):
    root, url, _ = server
    _serve(monkeypatch, root, url, "boston_housing.npz", _npz(x=np.ones((10, 13)), y=np.ones(10)))
    (root / "boston_housing.npz").write_bytes(b"not the file")  # the hash no longer matches
    with pytest.raises(ValueError, match="does not match its expected hash"):
        keras.datasets.boston_housing.load_data()
    assert not (cache / "datasets" / "boston_housing.npz").exists()


def test_offline_names_the_url_and_the_cache_path(cache, monkeypatch):
    monkeypatch.setitem(keras_files.FILES, "mnist.npz", ("http://127.0.0.1:9/mnist.npz", "0" * 64))
    monkeypatch.setattr(keras_files, "fetch", keras_files.fetch)
    with pytest.raises(
        OSError, match=r"127\.0\.0\.1:9/mnist\.npz.*put the file at .*datasets/mnist\.npz"
    ):
        keras.utils.get_file("mnist.npz", origin="http://127.0.0.1:9/mnist.npz")


def test_boston_housing_is_split_as_kerass(server, cache, monkeypatch):
    root, url, _ = server
    x, y = np.arange(50, dtype=float).reshape(10, 5), np.arange(10, dtype=float)
    _serve(monkeypatch, root, url, "boston_housing.npz", _npz(x=x, y=y))
    (x_train, y_train), (_, y_test) = keras.datasets.boston_housing.load_data(test_split=0.3)
    order = np.arange(10)
    np.random.RandomState(113).shuffle(order)
    assert y_train.tolist() == order[:7].tolist() and y_test.tolist() == order[7:].tolist()
    np.testing.assert_array_equal(x_train, x[order[:7]])


def test_imdb_token_lists_as_keras_prepares_them(server, cache, monkeypatch):
    root, url, _ = server
    train = np.array([[1, 2, 3], [4, 5], [6]], dtype=object)
    test = np.array([[7, 8], [9]], dtype=object)
    _serve(
        monkeypatch,
        root,
        url,
        "imdb.npz",
        _npz(x_train=train, y_train=[0, 1, 0], x_test=test, y_test=[1, 0]),
    )
    (x_train, _), (x_test, _) = keras.datasets.imdb.load_data(num_words=9, maxlen=4, seed=0)
    order = np.arange(3)
    np.random.RandomState(0).shuffle(order)
    # start mark 1, shift 3, sequences of 4 tokens or more dropped, tokens >= 9 -> 2
    want = [
        [1] + [w + 3 if w + 3 < 9 else 2 for w in train[i]] for i in order if len(train[i]) + 1 < 4
    ]
    assert [list(x) for x in x_train] == want
    assert all(max(x) < 9 for x in x_test)


def test_cifar10_extracts_its_archive_once(server, cache, monkeypatch):
    root, url, _ = server
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
            rows = 10000
            batch = {b"data": np.full((rows, 3072), len(name), np.uint8), b"labels": [1] * rows}
            data = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    _serve(
        monkeypatch,
        root,
        url,
        "cifar-10-python.tar.gz",
        buffer.getvalue(),
        "cifar-10-batches-py-target",
    )
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    assert x_train.shape == (50000, 32, 32, 3) and y_train.shape == (50000, 1)
    assert x_test.shape == (10000, 32, 32, 3) and int(y_test[0, 0]) == 1
    assert os.path.isdir(cache / "datasets" / "cifar-10-batches-py-target")


def _cifar100_archive(rows: dict[str, int]) -> tuple[bytes, dict[str, np.ndarray]]:
    """A CIFAR-100 archive as Keras's URL serves it: a train and a test pickle with
    channels-first rows and both label lists."""
    buffer, data = io.BytesIO(), {}
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, n in rows.items():
            data[name] = np.random.default_rng(n).integers(0, 256, (n, 3072), dtype=np.uint8)
            batch = {
                b"data": data[name],
                b"fine_labels": [i * 7 % 100 for i in range(n)],
                b"coarse_labels": [i % 20 for i in range(n)],
            }
            raw = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return buffer.getvalue(), data


def test_cifar100_fine_and_coarse_labels_as_keras_loads_them(server, cache, monkeypatch):
    root, url, _ = server
    archive, data = _cifar100_archive({"train": 6, "test": 4})
    _serve(monkeypatch, root, url, "cifar-100-python.tar.gz", archive, "cifar-100-python-target")
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar100.load_data()
    # channels last, as Keras transposes for image_data_format "channels_last"
    np.testing.assert_array_equal(
        x_train, data["train"].reshape(6, 3, 32, 32).transpose(0, 2, 3, 1)
    )
    assert x_test.shape == (4, 32, 32, 3) and x_train.dtype == np.uint8
    # Keras reshapes the pickled label list: int64 labels of shape (N, 1)
    assert y_train.shape == (6, 1) and y_train.dtype == np.int64
    assert y_test.ravel().tolist() == [0, 7, 14, 21]
    _, (_, coarse) = keras.datasets.cifar100.load_data(label_mode="coarse")
    assert coarse.ravel().tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="label_mode"):
        keras.datasets.cifar100.load_data(label_mode="medium")


def test_get_file_checks_md5_and_reuses_a_whole_file(server, cache):
    root, url, requests = server
    (root / "words.json").write_bytes(b"{}")
    digest = hashlib.md5(b"{}").hexdigest()
    path = keras.utils.get_file("words.json", origin=url + "words.json", file_hash=digest)
    with open(path) as f:
        assert f.read() == "{}"
    keras.utils.get_file("words.json", origin=url + "words.json", file_hash=digest)
    assert requests.count("/words.json") == 1
