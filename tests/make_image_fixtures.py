"""Keras 3's numbers for ``keras.ops.image`` and the image augmentation layers on FIXED
transforms, stored in ``keras_fixtures/image_ops.npz`` (with the Keras and JAX versions).
``tests/test_ops_image.py`` and ``tests/test_image_augmentation.py`` compare kcompile's
with them. The random draws themselves cannot match JAX's, so each layer is given the
parameters of one draw (its ``transform_images`` with a transformation dict).

Run it in an environment that has Keras (the JAX backend), not kcompile's::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/make_image_fixtures.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import keras
import numpy as np

OUT = Path(__file__).resolve().parent / "keras_fixtures" / "image_ops.npz"
MODES = ("constant", "nearest", "wrap", "mirror", "reflect")
LAYER_MODES = ("constant", "nearest", "wrap", "reflect")


def transforms() -> dict[str, np.ndarray]:
    angle = np.array([0.3, -2.0, 1.1])
    s, c = np.sin(angle), np.cos(angle)
    z = np.zeros(3)
    general = np.stack([c * 1.3, -s, z + 0.7, s, c * 0.8, z - 1.2, z, z], 1)
    aligned = np.array(
        [
            [1.3, 0, 2.6, 0, 0.7, -1.4, 0, 0],
            [0.6, 0, -3.2, 0, 1.9, 0.5, 0, 0],
            [1, 0, -0.5, 0, 1, 7.3, 0, 0],
        ]
    )
    return {"general": general.astype("float32"), "aligned": aligned.astype("float32")}


def ops_fixtures(x: np.ndarray, out: dict) -> None:
    image = keras.ops.image
    for kind, t in transforms().items():
        out[f"transform_{kind}"] = t
        for interpolation in ("nearest", "bilinear"):
            for mode in MODES:
                for fill in (0.0, 1.5):
                    y = image.affine_transform(
                        x, t, interpolation=interpolation, fill_mode=mode, fill_value=fill
                    )
                    out[f"affine_{kind}_{interpolation}_{mode}_{fill}"] = np.asarray(y)
    for size in ((3, 4), (9, 11)):
        for interpolation in ("bilinear", "nearest"):
            y = image.resize(x, size, interpolation=interpolation)
            out[f"resize_{size[0]}x{size[1]}_{interpolation}"] = np.asarray(y)
    patches = {
        "2_valid": dict(size=2, strides=1),
        "2x3_same": dict(size=(2, 3), strides=(2, 2), padding="same"),
        "3_dilated": dict(size=2, strides=1, dilation_rate=2),
        "3_default": dict(size=3),
    }
    for name, kwargs in patches.items():
        out[f"patches_{name}"] = np.asarray(image.extract_patches(x, **kwargs))
    out["crop"] = np.asarray(image.crop_images(x, 1, 2, target_height=3, target_width=4))
    out["crop_bottom"] = np.asarray(
        image.crop_images(x, bottom_cropping=1, right_cropping=2, target_height=2, target_width=3)
    )
    out["pad"] = np.asarray(image.pad_images(x, 1, 2, target_height=8, target_width=10))
    out["gray"] = np.asarray(image.rgb_to_grayscale(x))
    unit = x / 255.0
    unit[0, 0, :3] = [[0.2, 0.2, 0.2], [0.0, 0.0, 0.0], [0.5, 0.5, 0.1]]  # gray, black, ties
    out["unit"] = unit
    out["hsv"] = np.asarray(image.rgb_to_hsv(unit))
    out["rgb"] = np.asarray(image.hsv_to_rgb(unit * np.array([3.0, 1.0, 1.0], "float32") - 1.0))
    out["gray_int"] = np.asarray(image.rgb_to_grayscale(x.astype("int32")))


def layer_fixtures(x: np.ndarray, out: dict) -> None:
    layers = keras.layers
    degrees = np.array([30.0, -100.0, 7.0], "float32")
    out["rotation_degrees"] = degrees
    for mode in LAYER_MODES:
        for interpolation in ("nearest", "bilinear"):
            layer = layers.RandomRotation(
                0.5, fill_mode=mode, interpolation=interpolation, fill_value=2.0
            )
            zeros, ones = np.zeros(3, "float32"), np.ones(3, "float32")
            matrix = layer._compute_affine_matrix(
                0.5, 0.5, degrees, zeros, zeros, ones, zeros, zeros, x.shape[1], x.shape[2]
            )
            y = layer.transform_images(x, {"rotation_matrix": matrix})
            out[f"rotation_{mode}_{interpolation}"] = np.asarray(y)
            # translations (dx, dy) in pixels: fractions 0.2, -0.3 ... of width and height
            translate = layers.RandomTranslation(
                0.5, 0.5, fill_mode=mode, interpolation=interpolation, fill_value=2.0
            )
            fractions = np.array([[0.2, -0.3], [-0.45, 0.1], [0.0, 0.37]], "float32")
            pixels = fractions * np.array([x.shape[2], x.shape[1]], "float32")
            y = translate.transform_images(x, {"translations": pixels})
            out[f"translation_{mode}_{interpolation}"] = np.asarray(y)
            zoom = layers.RandomZoom(
                0.5, 0.5, fill_mode=mode, interpolation=interpolation, fill_value=2.0
            )
            zooms = {
                "height_zoom": np.array([[1.3], [0.6], [1.0]], "float32"),
                "width_zoom": np.array([[0.8], [1.45], [1.2]], "float32"),
            }
            y = zoom.transform_images(x, zooms)
            out[f"zoom_{mode}_{interpolation}"] = np.asarray(y)
            shear = layers.RandomShear(
                0.5, 0.5, fill_mode=mode, interpolation=interpolation, fill_value=2.0
            )
            factors = np.array([[0.3, -0.2], [-0.5, 0.4], [0.0, 0.25]], "float32")
            y = shear.transform_images(x, {"shear_factor": factors})
            out[f"shear_{mode}_{interpolation}"] = np.asarray(y)
    out["shear_factors"] = factors
    out["translation_fractions"] = fractions
    out["zoom_height"], out["zoom_width"] = zooms["height_zoom"], zooms["width_zoom"]
    contrast = np.array([0.5, 1.0, 1.7], "float32").reshape(3, 1, 1, 1)
    y = layers.RandomContrast(0.9).transform_images(x, {"contrast_factor": contrast})
    out["contrast_factor"], out["contrast"] = contrast.reshape(3, 1), np.asarray(y)
    delta = np.array([0.1, -0.4, 0.0], "float32").reshape(3, 1, 1, 1)
    brightness = layers.RandomBrightness(0.5)
    y = brightness.transform_images(x.copy(), {"rgb_delta": delta * 255.0})
    out["brightness_factor"], out["brightness"] = delta.reshape(3, 1), np.asarray(y)
    flips = np.array([True, False, True]).reshape(3, 1, 1, 1)
    out["flips"] = flips.reshape(3, 1)
    for mode in ("horizontal", "vertical", "horizontal_and_vertical"):
        y = layers.RandomFlip(mode).transform_images(x, {"flips": flips})
        out[f"flip_{mode}"] = np.asarray(y)
    apply = np.array([True, False, True])
    out["apply"] = apply.reshape(3, 1)
    y = layers.RandomGrayscale(0.5).transform_images(x, apply.reshape(3, 1, 1, 1))
    out["grayscale"] = np.asarray(y)
    y = layers.RandomInvert(value_range=(0, 200)).transform_images(x, {"apply_inversion": apply})
    out["invert"] = np.asarray(y)
    additions = np.array([0.0, 30.0, 200.0], "float32").reshape(3, 1, 1, 1)
    thresholds = np.array([100.0, 250.0, 10.0], "float32").reshape(3, 1, 1, 1)
    solarize = layers.Solarization(0.5, 0.5, value_range=(-1, 300))
    y = solarize.transform_images(x, {"additions": additions, "thresholds": thresholds})
    out["solarization"] = np.asarray(y)
    out["solarization_additions"] = additions.reshape(3, 1)
    out["solarization_thresholds"] = thresholds.reshape(3, 1)
    factor = np.array([0.3, -0.6, 1.0], "float32").reshape(3, 1, 1, 1)
    y = layers.RandomColorDegeneration(0.5).transform_images(x, {"factor": factor})
    out["degeneration_factor"], out["degeneration"] = factor.reshape(3, 1), np.asarray(y)
    flat = x.copy()
    flat[1, :, :, 2] = 7.0  # a channel of one value: left as it is
    out["auto_contrast_input"] = flat
    out["auto_contrast"] = np.asarray(layers.AutoContrast(value_range=(0, 300))(flat))
    for size in ((3, 4), (7, 9), (4, 7)):
        crop = layers.RandomCrop(*size)
        y = crop.transform_images(x, crop.get_random_transformation(x, training=False))
        out[f"crop_center_{size[0]}x{size[1]}"] = np.asarray(y)


def main() -> None:
    rng = np.random.default_rng(26)
    x = rng.uniform(0, 255, size=(3, 5, 7, 3)).astype("float32")
    out = {"x": x, "keras_version": keras.__version__, "jax_version": jax.__version__}
    ops_fixtures(x, out)
    layer_fixtures(x, out)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}: {len(out)} arrays")


if __name__ == "__main__":
    main()
