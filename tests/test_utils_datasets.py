"""keras.utils's dataset builders (timeseries, image, text and audio folders),
keras.preprocessing and keras.utils.Config. Keras's listing and split are numpy's
(``RandomState(seed)`` over the sorted files), so the expected orders are computed
here as Keras's ``dataset_utils`` computes them; the Datasets train with ``fit``."""

from __future__ import annotations

import os
import wave

import numpy as np
import pytest

import kcompile as keras
from kcompile.utils import dataset_utils


def _windows(data, targets, length, stride=1, rate=1, start=0, end=None):
    """Keras's windows, written out: start positions p every ``stride`` from
    ``start``, window data[start + p :: rate][:length], target targets[start + p]."""
    end = len(data) if end is None else end
    count = end - start - (length - 1) * rate
    if targets is not None:
        count = min(count, len(targets))
    out = []
    for p in range(0, count, stride):
        window = data[start + p : start + p + length * rate : rate]
        out.append((window, None if targets is None else targets[start + p]))
    return out


@pytest.mark.parametrize(
    "kw",
    [
        dict(sequence_length=5),
        dict(sequence_length=4, sequence_stride=3, sampling_rate=2, start_index=3, end_index=40),
        dict(sequence_length=6, sequence_stride=2, start_index=10),
    ],
)
def test_timeseries_windows_match_keras(kw):
    data = np.arange(100).reshape(50, 2)
    targets = np.arange(50) * 10
    want = _windows(data, targets, kw["sequence_length"], kw.get("sequence_stride", 1),
                    kw.get("sampling_rate", 1), kw.get("start_index", 0), kw.get("end_index"))  # fmt: skip
    ds = keras.utils.timeseries_dataset_from_array(data, targets, batch_size=4, **kw)
    batches = list(ds)
    assert len(ds) == -(-len(want) // 4) == len(batches)
    xs = np.concatenate([b[0] for b in batches])
    ys = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(xs, np.stack([w for w, _ in want]))
    np.testing.assert_array_equal(ys, [t for _, t in want])
    single = keras.preprocessing.timeseries_dataset_from_array(data, None, batch_size=None, **kw)
    np.testing.assert_array_equal(single[0], want[0][0])


def test_timeseries_shuffle_permutes_start_positions_with_the_seed():
    data = np.arange(30, dtype=np.float32)[:, None]
    ds = keras.utils.timeseries_dataset_from_array(data, np.arange(30), 3, shuffle=True, seed=4,
                                                   batch_size=None)  # fmt: skip
    positions = np.arange(28)
    np.random.RandomState(4).shuffle(positions)
    np.testing.assert_array_equal([int(y) for _, y in ds], positions)
    with pytest.raises(ValueError, match="sequence_stride"):
        keras.utils.timeseries_dataset_from_array(data, None, 3, sequence_stride=30)
    with pytest.raises(ValueError, match="end_index"):
        keras.utils.timeseries_dataset_from_array(data, None, 3, start_index=5, end_index=4)


def test_timeseries_dataset_trains_and_predicts():
    rng = np.random.default_rng(0)
    series = rng.normal(size=(40, 3)).astype(np.float32)
    ds = keras.utils.timeseries_dataset_from_array(series, series[:, 0], 4, batch_size=8)
    model = keras.Sequential([keras.Input((4, 3)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.predict(ds.map(lambda x, y: x), verbose=0).shape == (37, 1)


def _png_tree(root, rng, shape=(6, 8, 3)):
    for name, count in (("cat", 4), ("dog", 3), (".hidden", 2)):
        os.makedirs(root / name)
        for i in range(count):
            keras.utils.save_img(root / name / f"{i}.png", rng.random(shape), scale=False)
    (root / "dog" / "notes.txt").write_text("not an image")


def _keras_order(paths, seed):
    order = list(paths)
    np.random.RandomState(seed).shuffle(order)
    return order


def test_image_dataset_lists_labels_and_splits_as_keras(tmp_path):
    _png_tree(tmp_path, np.random.default_rng(1))
    listed = [str(tmp_path / c / f"{i}.png") for c, n in (("cat", 4), ("dog", 3)) for i in range(n)]
    ds = keras.utils.image_dataset_from_directory(tmp_path, image_size=(6, 8), batch_size=3,
                                                  seed=7, verbose=False)  # fmt: skip
    assert ds.class_names == ["cat", "dog"]
    assert ds.file_paths == _keras_order(listed, 7)
    x, y = ds[0]
    assert x.shape == (3, 6, 8, 3) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(y, [0 if "/cat/" in p else 1 for p in ds.file_paths[:3]])
    first = np.asarray(keras.utils.load_img(ds.file_paths[0]), np.float32)
    np.testing.assert_array_equal(x[0], first)  # same size: pixels as read
    train, val = keras.utils.image_dataset_from_directory(
        tmp_path, image_size=(3, 4), seed=7, validation_split=0.3, subset="both",
        label_mode="categorical", verbose=False,
    )  # fmt: skip
    assert train.file_paths == _keras_order(listed, 7)[:-2]
    assert val.file_paths == _keras_order(listed, 7)[-2:]
    x, y = val[0]
    assert x.shape == (2, 3, 4, 3) and y.shape == (2, 2) and y.dtype == np.float32
    binary = keras.preprocessing.image_dataset_from_directory(
        tmp_path, image_size=(3, 4), label_mode="binary", color_mode="grayscale",
        shuffle=False, batch_size=None, verbose=False,
    )  # fmt: skip
    image, label = binary[6]
    assert image.shape == (3, 4, 1) and label.shape == (1,) and label[0] == 1.0


def test_image_dataset_resizes_as_keras_resize(tmp_path):
    _png_tree(tmp_path, np.random.default_rng(2))
    ds = keras.utils.image_dataset_from_directory(tmp_path, image_size=(3, 5), labels=None,
                                                  shuffle=False, verbose=False)  # fmt: skip
    assert ds.class_names is None
    image = np.asarray(keras.utils.load_img(ds.file_paths[0]), np.float32)
    want = keras.ops.image.resize(image, (3, 5), interpolation="bilinear")
    np.testing.assert_allclose(ds[0][0], want, rtol=1e-5, atol=1e-4)
    cropped = keras.utils.image_dataset_from_directory(
        tmp_path, image_size=(6, 6), labels=None, shuffle=False, crop_to_aspect_ratio=True,
        verbose=False,
    )  # fmt: skip
    np.testing.assert_allclose(cropped[0][0], image[:, 1:7], atol=1e-4)  # a centred crop
    padded = keras.utils.image_dataset_from_directory(
        tmp_path, image_size=(8, 8), labels=None, shuffle=False, pad_to_aspect_ratio=True,
        verbose=False,
    )  # fmt: skip
    np.testing.assert_allclose(padded[0][0][1:7], image, atol=1e-4)
    assert not padded[0][0][0].any() and not padded[0][0][7].any()


def test_image_dataset_trains_with_fit(tmp_path):
    _png_tree(tmp_path, np.random.default_rng(3))
    train, val = keras.utils.image_dataset_from_directory(
        tmp_path, image_size=(4, 4), batch_size=2, seed=1, validation_split=0.3, subset="both",
        verbose=False,
    )  # fmt: skip
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])  # fmt: skip
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(train.cache().prefetch(2), validation_data=val, epochs=2, verbose=0)
    assert set(history.history) == {"loss", "val_loss"}


def test_folder_errors_are_keras_errors(tmp_path):
    _png_tree(tmp_path, np.random.default_rng(4))
    with pytest.raises(ValueError, match="provide a `seed`"):
        keras.utils.image_dataset_from_directory(tmp_path, validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match="class_names"):
        keras.utils.image_dataset_from_directory(tmp_path, class_names=["cow"])
    with pytest.raises(ValueError, match="exactly 2"):
        keras.utils.text_dataset_from_directory(tmp_path, label_mode="binary",
                                                class_names=["cat"])  # fmt: skip
    with pytest.raises(ValueError, match="No text files"):
        keras.utils.text_dataset_from_directory(tmp_path / "cat", labels=None, verbose=False)
    with pytest.raises(NotImplementedError, match="interpolation='bicubic'"):
        keras.utils.image_dataset_from_directory(tmp_path, interpolation="bicubic")


def test_text_dataset_reads_texts_with_labels(tmp_path):
    texts = {"neg": ["bad", "awful film"], "pos": ["great", "loved it", "fine ünïcode"]}
    for label, items in texts.items():
        os.makedirs(tmp_path / label)
        for i, text in enumerate(items):
            (tmp_path / label / f"{i}.txt").write_text(text, encoding="utf-8")
    ds = keras.utils.text_dataset_from_directory(tmp_path, batch_size=2, shuffle=False,
                                                 max_length=6, verbose=False)  # fmt: skip
    assert ds.class_names == ["neg", "pos"] and len(ds) == 3
    x, y = ds[0]
    assert list(x) == ["bad", "awful "] and list(y) == [0, 0]
    assert list(ds.unbatch().map(lambda x, y: x))[4] == "fine "  # 6 bytes cut ü in two
    full = keras.preprocessing.text_dataset_from_directory(tmp_path, shuffle=False,
                                                           verbose=False)  # fmt: skip
    assert list(full[0][0]) == ["bad", "awful film", "great", "loved it", "fine ünïcode"]


def _wav(path, samples, channels=1, width=2):
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(8000)
        f.writeframes(np.asarray(samples, "<i2").tobytes())


def test_audio_dataset_decodes_pcm_and_pads_batches(tmp_path):
    os.makedirs(tmp_path / "a")
    os.makedirs(tmp_path / "b")
    _wav(tmp_path / "a" / "0.wav", [0, 16384, -32768])
    _wav(tmp_path / "b" / "0.wav", [100, 200, 300, 400, 500])
    ds = keras.utils.audio_dataset_from_directory(tmp_path, shuffle=False, verbose=False)
    x, y = ds[0]
    assert x.shape == (2, 5, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, :, 0], [0, 0.5, -1, 0, 0])  # zero-padded to the longest
    np.testing.assert_array_equal(y, [0, 1])
    cut = keras.utils.audio_dataset_from_directory(tmp_path, shuffle=False, verbose=False,
                                                   output_sequence_length=4)  # fmt: skip
    np.testing.assert_allclose(cut[0][0][1, :, 0], np.array([100, 200, 300, 400]) / 32768)
    with pytest.raises(NotImplementedError, match="sampling_rate"):
        keras.utils.audio_dataset_from_directory(tmp_path, sampling_rate=16000)
    _wav(tmp_path / "a" / "1.wav", [1, 2], width=1)
    with pytest.raises(NotImplementedError, match="8-bit"):
        list(keras.utils.audio_dataset_from_directory(tmp_path, verbose=False, seed=1))


def test_dataset_methods():
    ds = dataset_utils.elements(7, lambda i: (np.full(2, i), np.int32(i)), batch_size=3)
    assert len(ds) == 3 and int(ds.cardinality()) == 3
    assert [int(y[0]) for _, y in ds.skip(1)] == [3, 6]
    assert len(ds.take(2)) == 2 and len(ds.take(-1)) == 3
    rows = ds.unbatch()
    assert len(rows) == 7 and int(rows[6][1]) == 6
    rebatched = rows.batch(4, drop_remainder=True)
    assert len(rebatched) == 1 and rebatched[0][0].shape == (4, 2)
    assert [b.shape for b in ds.map(lambda x, y: x * 2).as_numpy_iterator()] == [
        (3, 2), (3, 2), (1, 2)
    ]  # fmt: skip
    with pytest.raises(IndexError):
        ds[3]


def test_dict_elements_batch_and_unbatch_as_tf_data_structures():
    """A dict of features per element (FeatureSpace's input) stacks key by key."""
    ds = dataset_utils.Dataset(5, lambda i: ({"a": np.float32(i), "b": np.full(2, i)}, i))
    first, last = ds.batch(2)[0], ds.batch(2)[2]
    np.testing.assert_array_equal(first[0]["a"], [0.0, 1.0])
    assert first[0]["b"].shape == (2, 2) and last[0]["b"].shape == (1, 2)
    np.testing.assert_array_equal(first[1], [0, 1])
    rows = ds.batch(2).unbatch()
    assert len(rows) == 5 and float(rows[3][0]["a"]) == 3.0 and int(rows[3][1]) == 3
    assert ds.batch(3)[0][0].keys() == {"a", "b"}


def test_config_behaves_as_keras():
    config = keras.utils.Config(learning_rate=0.1, momentum=0.9)
    config.epochs = 3
    config["batch"] = 32
    assert config.as_dict() == {"learning_rate": 0.1, "momentum": 0.9, "epochs": 3, "batch": 32}
    assert list(config) == ["batch", "epochs", "learning_rate", "momentum"]
    assert "epochs" in config and len(config) == 4 and config.get("nope", 1) == 1
    config.freeze()
    assert config.frozen
    with pytest.raises(ValueError, match="frozen"):
        config.epochs = 4
    with pytest.raises(AttributeError, match="Did you mean 'momentum'"):
        _ = config.momentun
    config.unfreeze()
    del config["batch"]
    assert config.to_json() == '{"learning_rate": 0.1, "momentum": 0.9, "epochs": 3}'
