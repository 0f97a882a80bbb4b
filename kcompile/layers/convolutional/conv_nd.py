"""Convolutions over any number of spatial axes, composed of the IR's 2-D patch ops.

The IR's ``extract_patches`` is 2-D (x[N, H, W, C]); a window over k spatial axes is k
1-D extractions, one axis at a time from the last, each over a view of the tensor as
[N, axes before, this axis, everything after] with a (1, k) window. The taps of each
axis land beside its output axis, so the patches come out as [N, o0, t0, o1, t1, ...,
C] and one transpose puts them in Keras's kernel order [N, o0, o1, ..., t0, t1, ...,
C]: a convolution is then one product with the kernel reshaped to [taps*C, F], as
Conv2D's is. ``fold_nd`` is the adjoint (col2im), for the transposed convolutions. The
gradients come from the primitives' (patches and folds are each other's VJP).
"""

from __future__ import annotations

import math
from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B


def check_conv_args(layer: Any, filters: int | None, groups: int = 1) -> None:
    """Keras's ``BaseConv`` refusals, with Keras's messages."""
    if filters is not None and filters <= 0:
        raise ValueError(
            "Invalid value for argument `filters`. Expected a strictly positive value. "
            f"Received filters={filters}."
        )
    if groups <= 0:
        raise ValueError(
            f"The number of groups must be a positive integer. Received: groups={groups}."
        )
    if groups != 1:
        raise NotImplementedError(
            f"{type(layer).__name__} '{layer.name}': groups > 1 is not supported yet"
        )
    check_window(layer)


def check_window(layer: Any) -> None:
    if not all(layer.kernel_size):
        raise ValueError(
            "The argument `kernel_size` cannot contain 0. Received "
            f"kernel_size={layer.kernel_size}."
        )
    if not all(layer.strides):
        raise ValueError(
            f"The argument `strides` cannot contains 0. Received strides={layer.strides}"
        )
    if max(layer.strides) > 1 and max(layer.dilation_rate) > 1:
        raise ValueError(
            "`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
            f"Received: strides={layer.strides} and dilation_rate={layer.dilation_rate}"
        )


def patches_nd(
    x: Value,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
    pads: tuple[int, ...],
    value: float = 0.0,
) -> Value:
    """x[N, *lead, *S, C] (k = len(kernel) spatial axes S) -> [N, *lead, *O, prod(kernel)*C],
    each row one receptive field in (t0, t1, ..., c) order; ``pads`` is (low, high) per
    spatial axis, filled with ``value``."""
    k = len(kernel)
    n, c = x.shape[0], x.shape[-1]
    lead = list(x.shape[1 : x.rank - 1 - k])
    dims = list(x.shape[x.rank - 1 - k : x.rank - 1])
    tail = c  # the size of everything after the axis extracted next
    y = x
    for a in reversed(range(k)):
        before = math.prod(lead) * math.prod(dims[:a])
        view = B.reshape(y, (n, before, dims[a], tail))
        window = (1, kernel[a]), (1, strides[a]), (1, dilation[a])
        y = B.extract_patches(view, *window, (0, 0, pads[2 * a], pads[2 * a + 1]), value)
        dims[a] = y.shape[2]
        tail = dims[a] * kernel[a] * tail
    if k == 1:
        return B.reshape(y, (n, *lead, dims[0], kernel[0] * c))
    # [N, lead, o0, t0, ..., o_{k-1}, (t_{k-1} c)] -> [N, lead, o0, ..., t0, ..., (t c)]
    last = kernel[-1] * c
    interleaved = [*[d for pair in zip(dims, kernel) for d in pair][:-1], last]
    y = B.reshape(y, (n, math.prod(lead), *interleaved))
    outs = [2 + 2 * i for i in range(k)]
    taps = [3 + 2 * i for i in range(k - 1)]
    y = B.transpose(y, (0, 1, *outs, *taps, 2 * k + 1))
    return B.reshape(y, (n, *lead, *dims, math.prod(kernel) * c))


def fold_nd(
    p: Value,
    image: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
) -> Value:
    """The adjoint of ``patches_nd`` without padding: p[N, *O, prod(kernel)*C] -> the
    image [N, *image, C], every patch element added where it came from."""
    k = len(kernel)
    n = p.shape[0]
    outs = list(p.shape[1 : 1 + k])
    c = p.shape[-1] // math.prod(kernel)
    if k > 1:  # [N, o0, ..., t0, ..., (t c)] -> [N, o0, t0, o1, t1, ..., (t c)]
        y = B.reshape(p, (n, *outs, *kernel[:-1], kernel[-1] * c))
        perm = [0]
        for i in range(k):
            perm.append(1 + i)
            if i < k - 1:
                perm.append(1 + k + i)
        perm.append(2 * k)
        p = B.transpose(y, perm)
    sizes = list(outs)
    y = p
    for a in range(k):
        before = math.prod(image[:a])
        after = math.prod(sizes[a + 1 :]) * math.prod(kernel[a + 1 :]) * c
        view = B.reshape(y, (n, before, sizes[a], kernel[a] * after))
        y = B.fold_patches(
            view, (before, image[a]), (1, kernel[a]), (1, strides[a]), (1, dilation[a])
        )
        sizes[a] = image[a]
    return B.reshape(y, (n, *image, c))


def standard_data_format(data_format: str | None) -> str:
    """Keras's ``standardize_data_format`` (None is the default, channels_last)."""
    value = (data_format or "channels_last").lower()
    if value not in ("channels_first", "channels_last"):
        raise ValueError(
            "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format}"
        )
    return value


def channels_last(x: Value, data_format: str, lead: int = 1) -> Value:
    """x as channels last: [*L, C, *S] -> [*L, *S, C] (``lead`` leading axes L kept).
    The layers compute channels last; channels first is a transpose on each side."""
    if data_format == "channels_last":
        return x
    return B.transpose(x, (*range(lead), *range(lead + 1, x.rank), lead))


def channels_back(y: Value, data_format: str, lead: int = 1) -> Value:
    """The inverse of ``channels_last``: [*L, *S, C] -> [*L, C, *S] under channels first."""
    if data_format == "channels_last":
        return y
    return B.transpose(y, (*range(lead), y.rank - 1, *range(lead, y.rank - 1)))
