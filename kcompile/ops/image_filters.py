"""``keras.ops.image`` filters (channels last): ``gaussian_blur``, ``sobel_edges``,
``ssim``. Each of Keras's kernels is separable (a Gaussian is the outer product of two
1-D Gaussians, a Sobel kernel of a smoothing and a difference), so a filter is two
products with banded matrices, one along the height and one along the width
(``image_sampling.separable``): Keras's depthwise convolution, zero padded as its
``SAME`` (or not padded, ``VALID``, for ``ssim``), summed in another order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.ops.core import op, unsupported, val
from kcompile.ops.image_sampling import separable

__all__ = ["gaussian_blur", "gaussian_kernel", "sobel_edges", "ssim"]


def _data_format(name: str, data_format: Any) -> None:
    if data_format not in (None, "channels_last"):
        raise unsupported(f"image.{name}", f"data_format={data_format!r}; only channels_last")


def _images(name: str, images: Any, ranks: tuple[int, ...] = (3, 4)) -> tuple[Value, bool]:
    """Float images as rank 4, and whether one image was given."""
    x = val(images)
    if x.rank not in ranks:
        expected = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"keras.ops.image.{name}: invalid images rank: expected rank {expected} "
            f"(rank 3 is a single image, rank 4 a batch). Received input with shape: "
            f"images.shape={x.shape}"
        )
    x = x if x.dtype is DType.f32 else B.cast(x, DType.f32)
    return (B.reshape(x, (1, *x.shape)), True) if x.rank == 3 else (x, False)


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Keras's 1-D Gaussian: exp(-x²/2σ²) at x = i − (size − 1)/2, normalized."""
    x = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2)
    k = np.exp(-0.5 * (x / np.float32(sigma)) ** 2)
    return (k / k.sum()).astype(np.float32)


def band(kernel: np.ndarray, size: int, padding: str) -> np.ndarray:
    """The correlation of a length-``size`` signal with ``kernel`` as a matrix: [size,
    size] for ``same`` (zero padding, (k − 1)//2 before), [size − k + 1, size] for
    ``valid``."""
    k = len(kernel)
    before = (k - 1) // 2 if padding == "same" else 0
    rows = size if padding == "same" else size - k + 1
    out = np.zeros((rows, size), np.float32)
    for i in range(rows):
        for t in range(k):
            j = i + t - before
            if 0 <= j < size:
                out[i, j] = kernel[t]
    return out


def _pair(value: Any, name: str, what: str) -> tuple:
    if isinstance(value, int | float):
        return value, value
    values = tuple(np.asarray(value).ravel().tolist()) if not isinstance(value, Value) else ()
    if len(values) != 2:
        raise ValueError(f"keras.ops.image.{name}: {what} must be a number or a pair of two")
    return values


@op
def gaussian_blur(images, kernel_size=(3, 3), sigma=(1.0, 1.0), data_format=None):
    """Keras's Gaussian blur, zero padded to the images' size. As Keras's kernel,
    ``kernel_size[0]`` and ``sigma[0]`` act along the width and ``kernel_size[1]``,
    ``sigma[1]`` along the height. (Keras 3.15 on JAX called eagerly with
    ``data_format=None`` takes the images as channels first; its symbolic call and
    kcompile take ``keras.config.image_data_format()``, channels last.)"""
    _data_format("gaussian_blur", data_format)
    sizes = tuple(int(s) for s in _pair(kernel_size, "gaussian_blur", "kernel_size"))
    sigmas = tuple(float(s) for s in _pair(sigma, "gaussian_blur", "sigma"))
    x, single = _images("gaussian_blur", images)
    h, w = x.shape[1], x.shape[2]
    rows = band(gaussian_kernel(sizes[1], sigmas[1]), h, "same")
    cols = band(gaussian_kernel(sizes[0], sigmas[0]), w, "same")
    out = separable(x, rows, cols)
    return B.reshape(out, out.shape[1:]) if single else out


_SMOOTH = np.array([1.0, 2.0, 1.0], np.float32)
_DIFFERENCE = np.array([-1.0, 0.0, 1.0], np.float32)


@op
def sobel_edges(images, data_format=None):
    """Keras's Sobel edges of (batch, height, width, channels) images: [..., channels, 2]
    holding (dy, dx) per channel, the 3×3 Sobel kernels zero padded to the size."""
    _data_format("sobel_edges", data_format)
    x, _ = _images("sobel_edges", images, ranks=(4,))
    n, h, w, c = x.shape
    dy = separable(x, band(_DIFFERENCE, h, "same"), band(_SMOOTH, w, "same"))
    dx = separable(x, band(_SMOOTH, h, "same"), band(_DIFFERENCE, w, "same"))
    return B.concat([B.reshape(dy, (n, h, w, c, 1)), B.reshape(dx, (n, h, w, c, 1))], 4)


@op
def ssim(
    image1,
    image2,
    max_val=1.0,
    filter_size=11,
    filter_sigma=1.5,
    k1=0.01,
    k2=0.03,
    data_format=None,
):
    """Keras's structural similarity: means, variances and covariance under an unpadded
    Gaussian window, their SSIM map averaged over the pixels and then the channels; one
    value per image pair (a scalar for single images)."""
    _data_format("ssim", data_format)
    a, single = _images("ssim", image1)
    b, _ = _images("ssim", image2)
    if a.shape != b.shape:
        raise ValueError(
            f"keras.ops.image.ssim: image1 and image2 must have the same shape, got "
            f"{a.shape} and {b.shape}"
        )
    h, w = a.shape[1], a.shape[2]
    size = int(filter_size)
    if size > min(h, w):
        raise ValueError(
            f"keras.ops.image.ssim: filter_size {size} is larger than the images ({h}x{w})"
        )
    g = gaussian_kernel(size, float(filter_sigma))
    rows, cols = band(g, h, "valid"), band(g, w, "valid")

    def window_mean(v: Value) -> Value:
        return separable(v, rows, cols)

    c1 = (float(k1) * float(max_val)) ** 2
    c2 = (float(k2) * float(max_val)) ** 2
    mu1, mu2 = window_mean(a), window_mean(b)
    mu11, mu22, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s11 = window_mean(a * a) - mu11
    s22 = window_mean(b * b) - mu22
    s12 = window_mean(a * b) - mu12
    ratio = ((mu12 * 2.0 + c1) * (s12 * 2.0 + c2)) / ((mu11 + mu22 + c1) * (s11 + s22 + c2))
    out = B.mean(B.mean(ratio, (1, 2)), (1,))  # over pixels per channel, then channels
    return B.reshape(out, ()) if single else out
