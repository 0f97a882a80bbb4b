"""keras.utils's image file utilities without Pillow: kcompile's PNG, PGM and PPM
codecs and PIL's conversions and nearest resizing, against what Pillow 13 reads from
the files it wrote (``keras_fixtures/images``, made by
``fixture_scripts/make_image_fixtures.py``), and Keras's array conversions."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile.utils import image_utils

IMAGES = Path(__file__).parent / "keras_fixtures" / "images"
PILLOW = np.load(IMAGES / "images.npz")
NAMES = ["gray", "rgb", "rgba", "la", "smooth_rgb", "palette"]


@pytest.fixture(autouse=True)
def without_pillow(monkeypatch):
    monkeypatch.setattr(image_utils, "pil_image", None)


@pytest.mark.parametrize("name", NAMES)
def test_png_reads_converts_and_resizes_as_pillow(name):
    img = image_utils.open_image(IMAGES / f"{name}.png")
    np.testing.assert_array_equal(np.asarray(img), PILLOW[f"{name}/read"])
    for mode in ("L", "RGB", "RGBA"):
        np.testing.assert_array_equal(np.asarray(img.convert(mode)), PILLOW[f"{name}/{mode}"])
    rgb = img.convert("RGB")
    np.testing.assert_array_equal(np.asarray(rgb.resize((3, 11))), PILLOW[f"{name}/resize"])
    boxed = rgb.resize((4, 4), box=[1, 2, 4, 6])
    np.testing.assert_array_equal(np.asarray(boxed), PILLOW[f"{name}/resize_box"])


def test_load_img_modes_sizes_and_netpbm():
    img = keras.utils.load_img(IMAGES / "rgba.png")
    assert img.mode == "RGB" and img.size == (5, 7)
    np.testing.assert_array_equal(np.asarray(img), PILLOW["rgba/RGB"])
    gray = keras.utils.load_img(str(IMAGES / "rgb.png"), color_mode="grayscale")
    np.testing.assert_array_equal(np.asarray(gray), PILLOW["rgb/L"])
    small = keras.utils.load_img(IMAGES / "rgb.png", target_size=(11, 3))
    np.testing.assert_array_equal(np.asarray(small), PILLOW["rgb/resize"])
    kept = keras.utils.load_img(IMAGES / "rgb.png", target_size=(4, 4), keep_aspect_ratio=True)
    want = image_utils.open_image(IMAGES / "rgb.png").resize((4, 4), box=[0, 1, 5, 6])
    np.testing.assert_array_equal(np.asarray(kept), np.asarray(want))
    np.testing.assert_array_equal(np.asarray(keras.utils.load_img(IMAGES / "gray.pgm",
                                                                  color_mode="grayscale")),
                                  PILLOW["gray/read"])  # fmt: skip
    ppm = keras.utils.load_img(io.BytesIO((IMAGES / "rgb.ppm").read_bytes()))
    np.testing.assert_array_equal(np.asarray(ppm), PILLOW["rgb/read"])


def test_other_formats_and_filters_are_refused_naming_pillow():
    with pytest.raises(NotImplementedError, match=r"rgb\.jpg: the JPEG format.*pip install pillow"):
        keras.utils.load_img(IMAGES / "rgb.jpg")
    with pytest.raises(NotImplementedError, match="bilinear.*pip install pillow"):
        keras.utils.load_img(IMAGES / "rgb.png", target_size=(3, 3), interpolation="bilinear")
    with pytest.raises(ValueError, match="Invalid interpolation"):
        keras.utils.load_img(IMAGES / "rgb.png", target_size=(3, 3), interpolation="cubic")
    with pytest.raises(NotImplementedError, match=r"out\.jpeg.*JPEG.*pip install pillow"):
        keras.utils.save_img("out.jpeg", np.zeros((2, 2, 3)))


def test_array_conversions_are_keras():
    x = np.random.default_rng(0).random((4, 6, 3)).astype(np.float32)
    img = keras.utils.array_to_img(x)
    assert img.mode == "RGB" and img.size == (6, 4)
    scaled = (x - x.min()) / (x.max() - x.min()) * 255
    np.testing.assert_array_equal(np.asarray(img), scaled.astype(np.uint8))
    back = keras.utils.img_to_array(img)
    assert back.dtype == np.float32 and back.shape == (4, 6, 3)
    assert keras.utils.img_to_array(img, data_format="channels_first").shape == (3, 4, 6)
    assert keras.utils.array_to_img(np.ones((2, 2, 4)), scale=False).mode == "RGBA"
    assert keras.utils.array_to_img(np.full((2, 2, 1), 300.0), scale=False).mode == "I"
    gray = keras.utils.array_to_img(np.arange(6.0).reshape(3, 2, 1), scale=False)
    assert keras.preprocessing.image.img_to_array(gray).shape == (3, 2, 1)
    with pytest.raises(ValueError, match="rank 3"):
        keras.utils.array_to_img(np.ones((2, 2)))
    with pytest.raises(ValueError, match="channel number: 2"):
        keras.utils.array_to_img(np.ones((2, 2, 2)))


@pytest.mark.parametrize("suffix", ["png", "ppm"])
def test_save_img_round_trips(tmp_path, suffix):
    x = np.random.default_rng(1).integers(0, 256, (5, 7, 3)).astype(np.float32)
    path = tmp_path / f"image.{suffix}"
    keras.utils.save_img(path, x, scale=False)
    np.testing.assert_array_equal(keras.utils.img_to_array(keras.utils.load_img(path)), x)
    gray = tmp_path / "gray.png"
    keras.preprocessing.image.save_img(gray, x[..., :1], scale=False)
    loaded = keras.utils.load_img(gray, color_mode="grayscale")
    np.testing.assert_array_equal(np.asarray(loaded), x[..., 0])
