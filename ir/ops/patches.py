"""Image patches (im2col) and their adjoint: how convolution and pooling are built.

``extract_patches(x)`` takes x[N,H,W,C] (channels last) and returns
p[N,OH,OW,KH*KW*C], each row holding one receptive field in (kh, kw, c)
order, so a convolution is ``matmul(p, reshape(kernel, [KH*KW*C, F]))`` and a
pooling window is a reduction over the KH*KW axis. ``fold_patches`` is its
adjoint: it adds every patch element back where it came from (col2im), which
is both the data gradient of a convolution and the scatter of a pooling
gradient. Attributes (both ops): ``kernel=(kh, kw)``, ``strides``,
``dilation``, ``padding=(top, bottom, left, right)`` and the padding
``value``; ``fold_patches`` also takes the image size ``image=(H, W)``.

``conv2d(x, w)`` is the product of the patches and the kernel without the patches
(codegen runs it as an implicit GEMM); its kernel gradient ``conv2d_filter(x, dy)``
(patchesᵀ·dY, the same window attributes) likewise, and its data gradient is a
``conv2d`` of dY with the flipped kernel for stride 1, else ``fold_patches`` of dY·Wᵀ.
"""

from __future__ import annotations

import math

import numpy as np

from kcompile.ir import build as B
from kcompile.ir import traits as T
from kcompile.ir.ops.common import expect_arity, expect_float, product_dtype, widened
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import BATCH, DType, ShapeError, TensorType


def output_size(size: int, k: int, stride: int, dilation: int, low: int, high: int) -> int:
    span = dilation * (k - 1) + 1
    if size + low + high < span:
        raise ShapeError(
            f"a window of {span} does not fit an input of {size} padded by {low}+{high}"
        )
    return (size + low + high - span) // stride + 1


def _geometry(attrs, h: int, w: int) -> tuple[int, int]:
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel"], attrs["strides"], attrs["dilation"]
    pt, pb, pl, pr = attrs["padding"]
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(pt, pb, pl, pr) < 0:
        raise ShapeError(f"bad window attributes {dict(attrs)}")
    return output_size(h, kh, sh, dh, pt, pb), output_size(w, kw, sw, dw, pl, pr)


def _check_image(t: TensorType, integers: bool = False) -> None:
    if not (integers and t.dtype is DType.i8):
        expect_float(t)
    if t.rank != 4 or BATCH in t.shape[1:]:
        raise ShapeError(f"expected an image batch [N,H,W,C] with static H, W, C, got {t}")


def _infer_extract(types, attrs):
    expect_arity(types, 1)
    x = types[0]
    _check_image(x)
    n, h, w, c = x.shape
    oh, ow = _geometry(attrs, h, w)
    kh, kw = attrs["kernel"]
    return [x.with_shape((n, oh, ow, kh * kw * c))]


def _infer_fold(types, attrs):
    expect_arity(types, 1)
    p = types[0]
    expect_float(p)
    h, w = attrs["image"]
    kh, kw = attrs["kernel"]
    if p.rank != 4 or p.shape[3] % (kh * kw):
        raise ShapeError(f"expected patches [N,OH,OW,KH*KW*C], got {p}")
    oh, ow = _geometry(attrs, h, w)
    if (p.shape[1], p.shape[2]) != (oh, ow):
        raise ShapeError(
            f"patches of {p} do not come from a {h}x{w} image with these windows "
            f"({oh}x{ow} expected)"
        )
    return [p.with_shape((p.shape[0], h, w, p.shape[3] // (kh * kw)))]


def _windows(attrs, oh: int, ow: int):
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel"], attrs["strides"], attrs["dilation"]
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            yield i, j, rows, cols


def _ref_extract(ctx, args, attrs):
    x = args[0]
    n, h, w, c = x.shape
    pt, pb, pl, pr = attrs["padding"]
    oh, ow = _geometry(attrs, h, w)
    kh, kw = attrs["kernel"]
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=attrs["value"])
    out = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i, j, rows, cols in _windows(attrs, oh, ow):
        out[:, :, :, i, j, :] = xp[:, rows, cols, :]
    return [out.reshape(n, oh, ow, kh * kw * c)]


def _ref_fold(ctx, args, attrs):
    p = args[0]
    h, w = attrs["image"]
    pt, pb, pl, pr = attrs["padding"]
    kh, kw = attrs["kernel"]
    n, oh, ow, k = p.shape
    c = k // (kh * kw)
    grid = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype=p.dtype)
    p6 = p.reshape(n, oh, ow, kh, kw, c)
    for i, j, rows, cols in _windows(attrs, oh, ow):
        grid[:, rows, cols, :] += p6[:, :, :, i, j, :]
    return [np.ascontiguousarray(grid[:, pt : pt + h, pl : pl + w, :])]


def _window_attrs(attrs) -> dict:
    return {k: attrs[k] for k in ("kernel", "strides", "dilation", "padding")}


def _vjp_extract(node, g):
    x = node.inputs[0]
    attrs = {**_window_attrs(node.attrs), "image": (x.shape[1], x.shape[2])}
    return [x.graph.emit1("fold_patches", [g[0]], **attrs)]


def _vjp_fold(node, g):
    return [B.extract_patches(g[0], **_window_attrs(node.attrs), value=0.0)]


# Each image's patches come from that image alone.
_PER_IMAGE = T.Traits(T.Pattern.OPAQUE, rows_independent=lambda node: True)

register(
    OpDef(
        "extract_patches",
        "window",
        1,
        _infer_extract,
        _ref_extract,
        _vjp_extract,
        doc="im2col: x[N,H,W,C] -> [N,OH,OW,KH*KW*C]",
        traits=_PER_IMAGE,
    )
)
register(
    OpDef(
        "fold_patches",
        "window",
        1,
        _infer_fold,
        _ref_fold,
        _vjp_fold,
        doc="col2im, the adjoint of extract_patches",
        traits=_PER_IMAGE,
    )
)


# A direct convolution: the same windows without materializing the patches (codegen runs
# it as an implicit GEMM, ``codegen.library.conv``).


# Below this window size (KH*KW*C) the kernel's gradient goes through the patches.
FILTER_MIN_DEPTH = 16


def _conv_patch_attrs(attrs, w_shape) -> dict:
    return {**{k: attrs[k] for k in ("strides", "dilation", "padding")}, "kernel": w_shape[:2]}


def _infer_conv(types, attrs):
    expect_arity(types, 2)
    x, w = types
    _check_image(x, integers=True)
    if w.rank != 4 or w.shape[2] != x.shape[3]:
        raise ShapeError(f"expected a kernel [KH,KW,{x.shape[3]},F], got {w}")
    oh, ow = _geometry(_conv_patch_attrs(attrs, w.shape), x.shape[1], x.shape[2])
    integers = {x.dtype, w.dtype} == {DType.i8} and attrs.get("precision") is None
    dtype = DType.i32 if integers else product_dtype(types, attrs)
    if not integers and not dtype.is_float:
        raise ShapeError(f"conv2d operands must be floats or both i8, got {x}, {w}")
    return [TensorType(dtype, (x.shape[0], oh, ow, w.shape[3]))]


def _ref_conv(ctx, args, attrs):
    if args[0].dtype == np.int8 and attrs.get("precision") is None:
        # int8 operands (a quantized convolution): exact sums, as the i32 result.
        x, w = (a.astype(np.int64) for a in args)
        (p,) = _ref_extract(ctx, [x], {**_conv_patch_attrs(attrs, w.shape), "value": 0})
        return [(p @ w.reshape(-1, w.shape[3])).astype(np.int32)]
    x, w = widened(ctx, args)
    (p,) = _ref_extract(ctx, [x], {**_conv_patch_attrs(attrs, w.shape), "value": 0.0})
    return [p @ w.reshape(-1, w.shape[3])]


def _vjp_conv(node, g):
    """dX: for stride 1 a convolution of dY with the kernel flipped in space and its
    channels swapped (no patches), else the patches' adjoint of dY·Wᵀ; dW: patchesᵀ·dY,
    which ``conv2d_filter`` computes from the image without the patches."""
    x, w = node.inputs
    if not x.dtype.is_float:
        return [None, None]  # integer operands: a quantized convolution's
    attrs = _conv_patch_attrs(node.attrs, w.shape)
    if math.prod(w.shape[:3]) < FILTER_MIN_DEPTH:
        # A window of a few floats (a first layer's): its patches are smaller than dY,
        # and patchesᵀ·dY has few rows, which the GEMM runs better than conv2d_filter's
        # panels of mostly padding (measured 3x on 3x3x1 and 1x3x1 kernels).
        patches = B.extract_patches(x, **attrs)
        dw = B.reshape(B.matmul(patches, g[0], transpose_a=True), w.shape)
    else:
        dw = x.graph.emit1("conv2d_filter", [x, g[0]], **attrs)
    flipped = _flipped_padding(attrs)
    if flipped is not None:
        wt = B.transpose(B.reverse(B.reverse(w, 0), 1), (0, 1, 3, 2))
        dx = B.conv2d(g[0], wt, (1, 1), attrs["dilation"], flipped)
        return [dx, dw]
    flat = B.reshape(w, (math.prod(w.shape[:3]), w.shape[3]))
    d_patches = B.matmul(g[0], flat, transpose_b=True)
    image = (x.shape[1], x.shape[2])
    return [B.fold_patches(d_patches, image, **attrs), dw]


def _flipped_padding(attrs) -> tuple[int, int, int, int] | None:
    """The padding under which dX of a stride-1 convolution is a convolution of dY with
    the flipped kernel ((span - 1) - padding on each side), or None (strided, or padded
    wider than the window: dY would need cropping)."""
    if tuple(attrs["strides"]) != (1, 1):
        return None
    (kh, kw), (dh, dw) = attrs["kernel"], attrs["dilation"]
    pt, pb, pl, pr = attrs["padding"]
    span_h, span_w = dh * (kh - 1), dw * (kw - 1)
    pads = (span_h - pt, span_h - pb, span_w - pl, span_w - pr)
    return pads if min(pads) >= 0 else None


register(
    OpDef(
        "conv2d",
        "window",
        2,
        _infer_conv,
        _ref_conv,
        _vjp_conv,
        doc="direct convolution x[N,H,W,C] * w[KH,KW,C,F] -> [N,OH,OW,F]",
        # A product whose epilogue (bias, normalization, activation, residual) fuses.
        traits=T.Traits(T.Pattern.PRODUCT, loop_bodies=frozenset({"matmul"})),
    )
)


# The kernel's gradient of a convolution: patchesᵀ·dY, without the patches.


def _infer_filter(types, attrs):
    expect_arity(types, 2)
    x, dy = types
    _check_image(x)
    expect_float(dy)
    oh, ow = _geometry(attrs, x.shape[1], x.shape[2])
    if dy.rank != 4 or tuple(dy.shape[1:3]) != (oh, ow) or dy.shape[0] != x.shape[0]:
        raise ShapeError(f"expected an output gradient [{x.shape[0]},{oh},{ow},F], got {dy}")
    kh, kw = attrs["kernel"]
    return [TensorType(product_dtype(types, attrs), (kh, kw, x.shape[3], dy.shape[3]))]


def _ref_filter(ctx, args, attrs):
    x, dy = widened(ctx, args)
    (p,) = _ref_extract(ctx, [x], {**_window_attrs(attrs), "value": 0.0})
    kh, kw = attrs["kernel"]
    flat = p.reshape(-1, p.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])
    return [flat.reshape(kh, kw, x.shape[3], dy.shape[3])]


def _vjp_filter(node, g):
    x, dy = node.inputs
    attrs = _window_attrs(node.attrs)
    flat = B.reshape(g[0], (math.prod(g[0].shape[:3]), dy.shape[3]))
    d_patches = B.matmul(dy, flat, transpose_b=True)
    image = (x.shape[1], x.shape[2])
    conv = {k: attrs[k] for k in ("strides", "dilation", "padding")}
    return [B.fold_patches(d_patches, image, **attrs), B.conv2d(x, g[0], **conv)]


register(
    OpDef(
        "conv2d_filter",
        "window",
        2,
        _infer_filter,
        _ref_filter,
        _vjp_filter,
        doc="a convolution's kernel gradient x[N,H,W,C], dy[N,OH,OW,F] -> [KH,KW,C,F]",
        traits=T.Traits(T.Pattern.OPAQUE),
    )
)
