"""Image patches (``extract_patches``, im2col) and their adjoint (``fold_patches``): loops
over every window of a channels-last image. (``conv2d`` is an implicit GEMM:
``codegen.lowering.products``.)"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.loops import F32, for_range, i64
from kcompile.codegen.lowering.emitters import emits
from kcompile.codegen.lowering.kernel import Kernel
from kcompile.ir.memory import numel, size_of


def _patch_loops(k: Kernel, attrs: dict, image_shape, patch_shape, visit) -> None:
    """Loops over n, oh, ow, i, j; ``visit(src_row, patch_row)`` gets, when the window
    element (i, j) falls inside the image, the offsets of its C-long runs in the image
    and in the patches (None otherwise)."""
    b = k.b
    _, h, w, c = image_shape
    _, oh, ow, _ = patch_shape
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel"], attrs["strides"], attrs["dilation"]
    pt, _, pl, _ = attrs["padding"]
    with (
        for_range(b, k.value(size_of(image_shape[0])), "n") as n,
        for_range(b, i64(oh), "oh") as y,
        for_range(b, i64(ow), "ow") as x,
        for_range(b, i64(kh), "kh") as i,
        for_range(b, i64(kw), "kw") as j,
    ):
        r = b.sub(b.add(b.mul(y, i64(sh)), b.mul(i, i64(dh))), i64(pt))
        q = b.sub(b.add(b.mul(x, i64(sw)), b.mul(j, i64(dw))), i64(pl))
        inside = b.and_(
            b.and_(b.icmp_signed(">=", r, i64(0)), b.icmp_signed("<", r, i64(h))),
            b.and_(b.icmp_signed(">=", q, i64(0)), b.icmp_signed("<", q, i64(w))),
        )
        pixel = b.add(b.mul(b.add(b.mul(n, i64(h)), r), i64(w)), q)
        cell = b.add(b.mul(b.add(b.mul(n, i64(oh)), y), i64(ow)), x)
        patch = b.mul(b.add(b.mul(cell, i64(kh)), i), i64(kw))
        patch = b.mul(b.add(patch, j), i64(c))
        visit(inside, b.mul(pixel, i64(c)), patch)


@emits("extract_patches")
def extract_patches(k, m, node, outs, ins) -> None:
    b = k.b
    c = node.inputs[0].shape[3]
    pad = ir.Constant(F32, node.attrs["value"])

    def visit(inside, src, dst):
        with b.if_else(inside) as (then, otherwise):
            with then, for_range(b, i64(c), "c") as ch:
                k.store(outs[0], b.add(dst, ch), k.load(ins[0], b.add(src, ch)))
            with otherwise, for_range(b, i64(c), "p") as ch:
                k.store(outs[0], b.add(dst, ch), pad)

    _patch_loops(k, node.attrs, node.inputs[0].shape, node.outputs[0].shape, visit)


@emits("fold_patches")
def fold_patches(k, m, node, outs, ins) -> None:
    b = k.b
    image = node.outputs[0].shape
    k.fill(outs[0], numel(image), ir.Constant(F32, 0.0))
    c = image[3]

    def visit(inside, dst, src):
        with b.if_then(inside), for_range(b, i64(c), "c") as ch:
            offset = b.add(dst, ch)
            value = b.fadd(k.load(outs[0], offset), k.load(ins[0], b.add(src, ch)))
            k.store(outs[0], offset, value)

    _patch_loops(k, node.attrs, image, node.inputs[0].shape, visit)
