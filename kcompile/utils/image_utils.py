"""Keras's image utilities (``keras/src/utils/image_utils.py``): ``load_img``,
``save_img``, ``img_to_array``, ``array_to_img``.

When Pillow is importable they run Keras's own code over PIL images. kcompile does not
depend on Pillow, so without it they use ``Image``, a small image of the same modes
("L", "LA", "RGB", "RGBA", "I") with the parts of PIL's API Keras calls (``mode``,
``size``, ``convert``, ``resize`` with nearest sampling, ``save``, ``np.asarray``), and
read and write PNG, PGM and PPM themselves (``image_codecs``); any other format, or a
resampling filter other than nearest, is refused naming the file or the filter and
``pip install pillow``. The conversions are PIL's: RGB to L is ITU-R 601-2 luma with
PIL's integer rounding, RGBA to RGB drops the alpha.
"""

from __future__ import annotations

import io
import pathlib
import warnings
from typing import Any

import numpy as np

from kcompile.utils import image_codecs

try:  # Pillow, when the user has it: Keras's own path
    from PIL import Image as pil_image
except ImportError:
    pil_image = None

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")


class Image:
    """An 8-bit image (32-bit for mode "I") without Pillow: ``pixels`` [H, W] for "L"
    and "I", [H, W, C] otherwise."""

    def __init__(self, pixels: np.ndarray, mode: str) -> None:
        self.pixels, self.mode = pixels, mode

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL's."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.pixels if dtype is None else self.pixels.astype(dtype)

    def __repr__(self) -> str:
        return f"<kcompile.utils.image_utils.Image mode={self.mode} size={self.size}>"

    def convert(self, mode: str) -> Image:
        """PIL's conversions between "L", "LA", "RGB" and "RGBA"."""
        if mode == self.mode:
            return Image(self.pixels.copy(), mode)
        p = self.pixels
        gray = {"L": p, "LA": p[..., 0] if p.ndim == 3 else p}.get(self.mode)
        if gray is None:
            if self.mode not in ("RGB", "RGBA"):
                raise ValueError(f"cannot convert an image of mode {self.mode} to {mode}")
            rgb = p[..., :3].astype(np.uint32)
            luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
            gray = luma.astype(np.uint8)
            color = p[..., :3]
        else:
            color = np.repeat(gray[..., None], 3, -1)
        alpha = p[..., -1] if self.mode in ("LA", "RGBA") else np.full(gray.shape, 255, np.uint8)
        if mode == "L":
            return Image(gray.copy(), "L")
        if mode == "LA":
            return Image(np.stack([gray, alpha], -1), "LA")
        if mode == "RGB":
            return Image(np.ascontiguousarray(color), "RGB")
        if mode == "RGBA":
            return Image(np.concatenate([color, alpha[..., None]], -1), "RGBA")
        raise ValueError(f"conversion to mode {mode!r} is not supported without Pillow")

    def resize(self, size: tuple[int, int], resample: Any = "nearest", box=None) -> Image:
        """PIL's nearest resampling of ``box`` (x0, y0, x1, y1; the whole image by
        default) to ``size`` (width, height): output pixel x reads source
        int(x0 + (x + 0.5) · (x1 - x0) / width)."""
        if resample not in ("nearest", 0):
            raise NotImplementedError(
                f"resizing with {resample!r} interpolation needs Pillow (pip install pillow); "
                "without it kcompile resizes with 'nearest'"
            )
        width, height = size
        x0, y0, x1, y1 = box if box is not None else (0, 0, *self.size)
        cols = (x0 + (np.arange(width) + 0.5) * (x1 - x0) / width).astype(np.int64)
        rows = (y0 + (np.arange(height) + 0.5) * (y1 - y0) / height).astype(np.int64)
        cols = np.clip(cols, 0, self.size[0] - 1)
        rows = np.clip(rows, 0, self.size[1] - 1)
        return Image(self.pixels[rows][:, cols], self.mode)

    def save(self, fp, format: str | None = None, **kwargs: Any) -> None:
        """PNG, PGM or PPM (by ``format``, else the file name's suffix)."""
        file_format = format or image_codecs.suffix_format(fp)
        if file_format is None:
            raise ValueError(f"{fp}: give a file_format (the path has no suffix)")
        data = image_codecs.encode(self.pixels, self.mode, file_format, fp)
        if hasattr(fp, "write"):
            fp.write(data)
        else:
            pathlib.Path(fp).write_bytes(data)


def open_image(path: Any) -> Any:
    """The image at ``path`` (a path or a BytesIO): a PIL image with Pillow, else an
    ``Image``."""
    if isinstance(path, io.BytesIO):
        data, name = path.getvalue(), "<BytesIO>"
    elif isinstance(path, pathlib.Path | bytes | str):
        name = str(pathlib.Path(path.decode() if isinstance(path, bytes) else path).resolve())
        with open(name, "rb") as f:
            data = f.read()
    else:
        raise TypeError(f"path should be path-like or io.BytesIO, not {type(path)}")
    if pil_image is not None:
        return pil_image.open(io.BytesIO(data))
    pixels, mode = image_codecs.decode(data, name)
    return Image(pixels, mode)


def _data_format(data_format: str | None) -> str:
    from kcompile.config import image_data_format

    data_format = data_format or image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            'The `data_format` argument must be one of "channels_first", "channels_last". '
            f"Received: data_format={data_format}"
        )
    return data_format


def _floatx() -> str:
    from kcompile.config import floatx

    return floatx()


def array_to_img(x: Any, data_format: str | None = None, scale: bool = True, dtype=None):
    """A 3-D array (height, width, channels) as an image: RGBA, RGB or L by the
    channels (I for one channel above 255), scaled to [0, 255] when ``scale``."""
    data_format = _data_format(data_format)
    x = np.asarray(x, dtype=dtype or _floatx())
    if x.ndim != 3:
        raise ValueError(
            f"Expected image array to have rank 3 (single image). Got array with shape: {x.shape}"
        )
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        x_max = np.max(x)
        if x_max != 0:
            x /= x_max
        x *= 255
    channels = x.shape[2]
    make = _pil_from_array if pil_image is not None else Image
    if channels == 4:
        return make(x.astype("uint8"), "RGBA")
    if channels == 3:
        return make(x.astype("uint8"), "RGB")
    if channels == 1:
        if np.max(x) > 255:
            return make(x[:, :, 0].astype("int32"), "I")
        return make(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"Unsupported channel number: {channels}")


def _pil_from_array(array: np.ndarray, mode: str):
    return pil_image.fromarray(array, mode)


def img_to_array(img: Any, data_format: str | None = None, dtype=None) -> np.ndarray:
    """An image as a 3-D array of ``dtype`` (floatx by default)."""
    data_format = _data_format(data_format)
    x = np.asarray(img, dtype=dtype or _floatx())
    if x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    elif x.ndim == 2:
        shape = (1, *x.shape) if data_format == "channels_first" else (*x.shape, 1)
        x = x.reshape(shape)
    else:
        raise ValueError(f"Unsupported image shape: {x.shape}")
    return x


def save_img(
    path: Any,
    x: Any,
    data_format: str | None = None,
    file_format: str | None = None,
    scale: bool = True,
    **kwargs: Any,
) -> None:
    """``array_to_img(x)`` written to ``path`` (its format from ``file_format`` or the
    path's suffix; RGBA as JPEG becomes RGB with a warning)."""
    data_format = _data_format(data_format)
    if file_format is None and isinstance(path, str | pathlib.Path):
        file_format = pathlib.Path(path).suffix[1:].lower()
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format == "jpeg":
        warnings.warn(
            "The JPEG format does not support RGBA images, converting to RGB.", stacklevel=2
        )
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)


def load_img(
    path: Any,
    color_mode: str = "rgb",
    target_size: tuple[int, int] | None = None,
    interpolation: str = "nearest",
    keep_aspect_ratio: bool = False,
):
    """The image at ``path`` in ``color_mode`` ("grayscale", "rgb", "rgba"), resized to
    ``target_size`` (height, width) when given (``keep_aspect_ratio``: the centred crop
    of the target's aspect ratio is resized)."""
    img = open_image(path)
    if color_mode == "grayscale":
        if img.mode not in ("L", "I;16", "I"):
            img = img.convert("L")
    elif color_mode == "rgba":
        if img.mode != "RGBA":
            img = img.convert("RGBA")
    elif color_mode == "rgb":
        if img.mode != "RGB":
            img = img.convert("RGB")
    else:
        raise ValueError('color_mode must be "grayscale", "rgb", or "rgba"')
    if target_size is None:
        return img
    width_height = (target_size[1], target_size[0])
    if img.size == width_height:
        return img
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(
            f"Invalid interpolation method {interpolation} specified. Supported methods are "
            f"{', '.join(_INTERPOLATIONS)}"
        )
    resample = _resample(interpolation)
    if not keep_aspect_ratio:
        return img.resize(width_height, resample)
    width, height = img.size
    target_width, target_height = width_height
    crop_height = min(height, (width * target_height) // target_width)
    crop_width = min(width, (height * target_width) // target_height)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    box = [left, top, left + crop_width, top + crop_height]
    return img.resize(width_height, resample, box=box)


def _resample(interpolation: str) -> Any:
    if pil_image is None:
        return interpolation
    return getattr(pil_image.Resampling, interpolation.upper())


__all__ = ["array_to_img", "img_to_array", "load_img", "save_img"]
