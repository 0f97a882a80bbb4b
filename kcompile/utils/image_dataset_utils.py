"""``keras.utils.image_dataset_from_directory`` (Keras's
``keras/src/utils/image_dataset_utils.py``): images read from class subfolders, resized
and batched as float32 arrays, in a kcompile ``Dataset``.

Keras decodes with TensorFlow (``tf.io.decode_image``) and resizes with
``tf.image.resize``; here the files are read by ``image_utils`` (Pillow when importable,
else kcompile's own PNG, PGM and PPM readers; other formats are refused naming the file)
and resized with the half-pixel-centre matrices of ``keras.ops.image.resize``, which are
TensorFlow's for "bilinear" (no antialiasing). Converting colour to grayscale uses PIL's
ITU-R 601-2 luma, where TensorFlow's PNG decoder may round differently by one level.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ops.image_sampling import resize_matrix
from kcompile.utils import dataset_utils, image_utils

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_MODES = {"rgb": ("RGB", 3), "rgba": ("RGBA", 4), "grayscale": ("L", 1)}
_INTERPOLATIONS = ("bilinear", "nearest")
_KERAS_INTERPOLATIONS = (
    "bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian",
    "mitchellcubic",
)  # fmt: skip


def _resize(image: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """[H, W, C] float to [size, C] with jax's (TF's for bilinear) resize matrices."""
    rows = resize_matrix(image.shape[0], size[0], interpolation)
    cols = resize_matrix(image.shape[1], size[1], interpolation)
    return np.einsum("ih,hwc,jw->ijc", rows, image.astype(np.float64), cols)


def _crop_to_aspect_ratio(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Keras's ``smart_resize`` crop: the largest centred box of the target's ratio."""
    height, width = image.shape[:2]
    target_h, target_w = size
    crop_h = min(height, int(float(width * target_h) / target_w))
    crop_w = min(width, int(float(height * target_w) / target_h))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return image[top : top + crop_h, left : left + crop_w]


def _resize_with_pad(image: np.ndarray, size: tuple[int, int], interpolation: str):
    """``tf.image.resize_with_pad``: resized to fit inside ``size`` keeping the aspect
    ratio, then padded with zeros, centred."""
    height, width = image.shape[:2]
    target_h, target_w = size
    ratio = max(width / target_w, height / target_h)
    new_h, new_w = int(height / ratio), int(width / ratio)
    resized = _resize(image, (new_h, new_w), interpolation)
    top, left = (target_h - new_h) // 2, (target_w - new_w) // 2
    out = np.zeros((target_h, target_w, image.shape[2]), np.float64)
    out[top : top + new_h, left : left + new_w] = resized
    return out


def load_image(
    path: str,
    image_size: tuple[int, int],
    color_mode: str,
    interpolation: str,
    data_format: str,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
) -> np.ndarray:
    """One image file as float32 [height, width, channels] (channels first on
    request)."""
    mode, _ = _MODES[color_mode]
    img = image_utils.open_image(path)
    if img.mode != mode:
        img = img.convert(mode)
    array = np.asarray(img, np.float32)
    if array.ndim == 2:
        array = array[..., None]
    if crop_to_aspect_ratio:
        array = _resize(_crop_to_aspect_ratio(array, image_size), image_size, interpolation)
    elif pad_to_aspect_ratio:
        array = _resize_with_pad(array, image_size, interpolation)
    else:
        array = _resize(array, image_size, interpolation)
    array = array.astype(np.float32)
    return array.transpose(2, 0, 1) if data_format == "channels_first" else array


def image_dataset_from_directory(
    directory: str,
    labels: Any = "inferred",
    label_mode: str | None = "int",
    class_names: list[str] | None = None,
    color_mode: str = "rgb",
    batch_size: int | None = 32,
    image_size: Any = (256, 256),
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    interpolation: str = "bilinear",
    follow_links: bool = False,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    data_format: str | None = None,
    format: str = "tf",
    verbose: bool = True,
):
    """Images from ``directory`` (one subfolder per class with ``labels="inferred"``)
    as batches of float32 (batch, height, width, channels), with int32 labels
    ("int"), float32 one-hot ("categorical") or float32 [batch, 1] ("binary"); a list of
    [training, validation] Datasets with ``subset="both"``."""
    if color_mode not in _MODES:
        raise ValueError(
            '`color_mode` must be one of {"rgb", "rgba", "grayscale"}. '
            f"Received: color_mode={color_mode}"
        )
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    elif not isinstance(image_size, list | tuple) or len(image_size) != 2:
        raise ValueError(
            "Invalid `image_size` value. Expected a tuple of 2 integers. "
            f"Received: image_size={image_size}"
        )
    interpolation = interpolation.lower()
    if interpolation not in _KERAS_INTERPOLATIONS:
        raise ValueError(
            f"Argument `interpolation` should be one of {_KERAS_INTERPOLATIONS}. "
            f"Received: interpolation={interpolation}"
        )
    if interpolation not in _INTERPOLATIONS:
        raise NotImplementedError(
            f"keras.utils.image_dataset_from_directory: interpolation={interpolation!r} is "
            f"not supported by kcompile yet (it resizes with {', '.join(_INTERPOLATIONS)})"
        )
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: format={format}')
    if pad_to_aspect_ratio and crop_to_aspect_ratio:
        raise ValueError(
            "Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set to `True`."
        )
    from kcompile.config import image_data_format

    data_format = data_format or image_data_format()
    size = (int(image_size[0]), int(image_size[1]))

    def load(path: str) -> np.ndarray:
        return load_image(path, size, color_mode, interpolation, data_format,
                          crop_to_aspect_ratio, pad_to_aspect_ratio)  # fmt: skip

    return dataset_utils.from_directory(
        directory, labels=labels, label_mode=label_mode, class_names=class_names,
        formats=ALLOWLIST_FORMATS, what="image", load=load, batch_size=batch_size,
        shuffle=shuffle, seed=seed, validation_split=validation_split, subset=subset,
        follow_links=follow_links, verbose=verbose,
    )  # fmt: skip


__all__ = ["image_dataset_from_directory"]
