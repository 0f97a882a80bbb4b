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
"""

from __future__ import annotations

import numpy as np

from kcompile.ir import build as B
from kcompile.ir import traits as T
from kcompile.ir.ops.common import expect_arity, expect_float
from kcompile.ir.registry import OpDef, get_op, register
from kcompile.ir.types import BATCH, ShapeError, TensorType


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


def _check_image(t: TensorType) -> None:
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


# A direct convolution: the same windows without materializing the patches. The layers
# use patches and a matrix product, which measured faster on these machines
# (benchmarks/conv_lowering.py); this op is kept to measure against.


def _conv_patch_attrs(attrs, w_shape) -> dict:
    return {**{k: attrs[k] for k in ("strides", "dilation", "padding")}, "kernel": w_shape[:2]}


def _infer_conv(types, attrs):
    expect_arity(types, 2)
    x, w = types
    _check_image(x)
    if w.rank != 4 or w.shape[2] != x.shape[3]:
        raise ShapeError(f"expected a kernel [KH,KW,{x.shape[3]},F], got {w}")
    oh, ow = _geometry(_conv_patch_attrs(attrs, w.shape), x.shape[1], x.shape[2])
    return [x.with_shape((x.shape[0], oh, ow, w.shape[3]))]


def _ref_conv(ctx, args, attrs):
    x, w = args
    (p,) = _ref_extract(ctx, [x], {**_conv_patch_attrs(attrs, w.shape), "value": 0.0})
    return [p @ w.reshape(-1, w.shape[3])]


def _vjp_conv(node, g):
    x, w = node.inputs
    attrs = _conv_patch_attrs(node.attrs, w.shape)
    patches = B.extract_patches(x, **attrs)
    flat = B.reshape(w, (patches.shape[3], w.shape[3]))
    product = B.matmul(patches, flat)
    d_patches, d_flat = get_op("matmul").vjp(product.node, g)
    image = (x.shape[1], x.shape[2])
    return [B.fold_patches(d_patches, image, **attrs), B.reshape(d_flat, w.shape)]


register(
    OpDef(
        "conv2d",
        "window",
        2,
        _infer_conv,
        _ref_conv,
        _vjp_conv,
        doc="direct convolution x[N,H,W,C] * w[KH,KW,C,F] -> [N,OH,OW,F]",
        traits=T.Traits(T.Pattern.PRODUCT),
    )
)
