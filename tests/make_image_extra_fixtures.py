"""Keras 3's numbers for the ``keras.ops.image`` filters and warps (gaussian_blur,
sobel_edges, ssim, map_coordinates, perspective_transform, scale_and_translate,
extract_patches_3d, elastic_transform) and for the colour and warp augmentation layers
given the parameters of one draw (each layer's ``transform_images`` with a
transformation dict), stored in ``keras_fixtures/image_extra.npz`` with the Keras and
JAX versions. ``tests/test_ops_image_extra.py`` and
``tests/test_image_augmentation_extra.py`` compare kcompile's with them.

``elastic_transform`` draws its field from its seed inside; the field is drawn here as
Keras draws it (``jax.random.normal(draw_seed(seed), (batch, height, width))``) and
stored beside the result, so kcompile's deterministic part can be given that field.

Run it in an environment that has Keras (the JAX backend), not kcompile's::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/make_image_extra_fixtures.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import keras
import numpy as np
from keras import layers, ops
from keras.src.random.seed_generator import draw_seed

OUT = Path(__file__).resolve().parent / "keras_fixtures" / "image_extra.npz"
MODES = ("constant", "nearest", "wrap", "mirror", "reflect")
METHODS = ("linear", "cubic", "lanczos3", "lanczos5")


def array(x) -> np.ndarray:
    return np.asarray(x)


def op_fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    x = rng.uniform(0, 3, size=(2, 9, 7, 3)).astype("float32")
    y = rng.uniform(0, 3, size=(2, 9, 7, 3)).astype("float32")
    out["x"], out["y"] = x, y
    for i, (size, sigma) in enumerate(
        [((3, 3), (1.0, 1.0)), ((5, 3), (2.0, 0.7)), ((4, 2), (1.3, 0.5))]
    ):
        out[f"blur_{i}"] = array(
            ops.image.gaussian_blur(x, size, sigma, data_format="channels_last")
        )
    out["sobel"] = array(ops.image.sobel_edges(x))
    out["ssim_7"] = array(ops.image.ssim(x, y, filter_size=7))
    out["ssim_5"] = array(
        ops.image.ssim(x, y, max_val=2.0, filter_size=5, filter_sigma=0.8, k1=0.02, k2=0.05)
    )
    out["ssim_single"] = array(ops.image.ssim(x[0], y[0], filter_size=3))
    table = rng.uniform(-1, 1, size=(6, 5)).astype("float32")
    coordinates = rng.uniform(-2.5, 8, size=(2, 4, 3)).astype("float32")
    out["map_table"], out["map_coordinates"] = table, coordinates
    for order in (0, 1):
        for mode in MODES:
            out[f"map_{order}_{mode}"] = array(
                ops.image.map_coordinates(table, coordinates, order, mode, 0.7)
            )
    start = np.array([[[0, 0], [6, 0], [0, 8], [6, 8]]] * 2, "float32")
    end = np.array(
        [[[1, 0.5], [5, 1], [0, 7], [6, 8]], [[0.3, 0.2], [6.5, 0], [0, 8], [5, 7.5]]], "float32"
    )
    out["start_points"], out["end_points"] = start, end
    for interpolation in ("nearest", "bilinear"):
        out[f"perspective_{interpolation}"] = array(
            ops.image.perspective_transform(x, start, end, interpolation, 0.5)
        )
    image = rng.uniform(0, 1, size=(1, 9, 8, 2)).astype("float32")
    out["scale_image"] = image
    cases = [((0.6, 1.7), (0.5, -1.0), (1, 6, 13, 2)), ((2.0, 0.5), (0.0, 0.3), (1, 18, 4, 2))]
    for method in METHODS:
        for antialias in (True, False):
            for i, (scale, translation, shape) in enumerate(cases):
                out[f"scale_{method}_{antialias}_{i}"] = array(
                    ops.image.scale_and_translate(
                        image, shape, np.array(scale, "float32"),
                        np.array(translation, "float32"), (1, 2), method, antialias,
                    )
                )  # fmt: skip
    volumes = rng.uniform(0, 1, size=(2, 5, 6, 7, 2)).astype("float32")
    out["volumes"] = volumes
    for i, args in enumerate(PATCH_CASES):
        out[f"patches3d_{i}"] = array(ops.image.extract_patches_3d(volumes, **args))
    field = array(jax.random.normal(draw_seed(11), (2, 9, 7), dtype="float32"))
    out["elastic_field"] = field
    for mode in ("reflect", "constant"):
        out[f"elastic_{mode}"] = array(
            ops.image.elastic_transform(
                x * 50, alpha=2.5, sigma=0.9, fill_mode=mode, fill_value=1.5, seed=11,
                data_format="channels_last",
            )
        )  # fmt: skip
    return out


PATCH_CASES = [
    dict(size=2),
    dict(size=(2, 3, 2), strides=(1, 2, 3)),
    dict(size=(3, 2, 2), strides=1, dilation_rate=(2, 1, 1)),
    dict(size=(2, 3, 3), strides=(2, 2, 2), padding="same"),
]


def layer_fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    images = rng.uniform(0, 255, size=(3, 6, 7, 3)).astype("float32")
    out["images"] = images
    turn = np.array([0.21, -0.4, 0.05], "float32")
    out["hue_turn"] = turn
    out["hue"] = array(layers.RandomHue(0.5).transform_images(images, {"factor": turn}))
    saturation = np.array([0.3, 1.7, 0.0], "float32")
    out["saturation_factor"] = saturation
    out["saturation"] = array(
        layers.RandomSaturation(0.5, value_range=(0, 1)).transform_images(
            images / 255.0, {"factor": saturation}
        )
    )
    sharp = np.array([0.1, 0.5, 0.9], "float32")
    out["sharpness_factor"] = sharp
    out["sharpness"] = array(
        layers.RandomSharpness(0.9).transform_images(images, {"factor": sharp})
    )
    bits = np.array([1, 4, 7], "uint8")
    out["posterization_bits"] = bits.astype("float32")
    poster = layers.RandomPosterization(8, value_range=(0, 255))
    out["posterization"] = array(poster.transform_images(images, {"shift_factor": 8 - bits}))
    chosen = np.array([True, False, True])
    sigmas = np.array([0.7, 0.3], "float32")
    out["blur_chosen"], out["blur_sigmas"] = chosen, sigmas
    blur = layers.RandomGaussianBlur(1.0, kernel_size=(5, 3), sigma=1.0)
    out["gaussian_blur"] = array(
        blur.transform_images(images, {"should_apply_blur": chosen, "blur_factor": sigmas})
    )
    box = np.array(
        [[1.2, 4.9, 0.4, 3.1], [0.0, 7.0, 2.5, 5.5], [3.3, 3.9, 1.0, 6.0]], "float32"
    )  # x0, x1, y0, y1 per image
    out["erasing_box"] = box
    eraser = layers.RandomErasing(1.0, fill_value=300.0)  # clipped to 255
    masks = eraser._generate_batch_mask(images.shape, tuple(box.T))
    fill = eraser._get_fill_value(images, images.shape, None)
    out["erasing"] = array(
        eraser.transform_images(
            images, {"apply_erasing": chosen, "batch_masks": masks, "fill_value": fill}
        )
    )
    out["equalization"] = array(layers.Equalization()(images))
    out["equalization_range"] = array(layers.Equalization(value_range=(-1, 2), bins=17)(
        images / 85.0 - 1.0))  # fmt: skip
    moves = rng.uniform(-0.3, 0.3, size=(3, 4, 2)).astype("float32")
    out["perspective_moves"] = moves
    for interpolation in ("nearest", "bilinear"):
        layer = layers.RandomPerspective(1.0, 0.6, interpolation=interpolation, fill_value=9.0)
        h, w = images.shape[1:3]
        start = np.array([[[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]]] * 3, "float32")
        transformation = {
            "apply_perspective": chosen,
            "start_points": start,
            "end_points": start + start * moves,
            "input_shape": images.shape,
        }
        out[f"random_perspective_{interpolation}"] = array(
            layer.transform_images(images, transformation)
        )
    # RandomElasticTransform's warp for a distortion of 0.9 on 20x24 images: alpha =
    # 0.1·0.9·24, sigma = 0.05·0.9·20 (a 5-tap kernel), on the field Keras draws for seed 12
    big = rng.uniform(0, 255, size=(2, 20, 24, 3)).astype("float32")
    out["elastic_images"] = big
    out["elastic_layer_field"] = array(jax.random.normal(draw_seed(12), (2, 20, 24)))
    warped = ops.image.elastic_transform(
        big, alpha=0.1 * 0.9 * 24, sigma=0.05 * 0.9 * 20, fill_mode="wrap", seed=12,
        data_format="channels_last",
    )  # fmt: skip
    out["elastic_layer"] = array(ops.clip(warped, 0, 255))
    # CLAHE on 9x10 images (tiles padded symmetrically), one image of low contrast
    flat = rng.uniform(0, 255, size=(2, 9, 10, 3)).astype("float32")
    flat[0, :4] = flat[0, :4] * 0.2 + 30
    out["clahe_images"] = flat
    for i, args in enumerate(CLAHE_CASES):
        layer = layers.ContrastLimitedAdaptiveHistogramEqualization(**args)
        out[f"clahe_{i}"] = array(layer(flat if i < 3 else flat / 255.0 * 2 - 1))
    return out


CLAHE_CASES = [
    dict(tile_grid_size=(2, 3)),
    dict(tile_grid_size=(3, 2), clip_limit=0.0),
    dict(),
    dict(value_range=(-1, 1), tile_grid_size=(4, 4), clip_limit=2.0),
]


def main() -> None:
    rng = np.random.default_rng(26)
    arrays = {**op_fixtures(rng), **layer_fixtures(rng)}
    arrays["versions"] = np.array([keras.__version__, jax.__version__])
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {len(arrays)} arrays to {OUT}")


if __name__ == "__main__":
    main()
