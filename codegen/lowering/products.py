"""Matrix products: a ``matmul`` node through the runtime's packed GEMM
(``codegen.library.gemm``), every transposition a choice of strides; a ``conv2d`` node through
the runtime's implicit GEMM (``codegen.library.conv``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from llvmlite import ir

from kcompile.codegen.building.target import host
from kcompile.codegen.library.bf16_conv import declare_bconv, has_conv_engine
from kcompile.codegen.library.bf16_conv_filter import declare_bconv_filter
from kcompile.codegen.library.bf16_gemm import (
    A_BF16,
    A_ROUNDED,
    B_BF16,
    B_ROUNDED,
    PORTABLE,
    declare_bgemm,
    has_engine,
)
from kcompile.codegen.library.conv import (
    EXACT,
    GEOMETRY,
    POOLED,
    declare_conv,
    declare_conv_filter,
)
from kcompile.codegen.library.gemm import (
    ACCUMULATE,
    B_I4,
    B_I8,
    COLUMNS_OWNED,
    GEMM,
    INT4_KERNEL,
    INT4_RECORD,
    ROUND_B,
    TILE_C,
    declare_gemm,
    int4_dequantized,
    int4_group,
    int4_value,
)
from kcompile.codegen.library.int8_gemm import declare_igemm
from kcompile.codegen.loops import I64, PTR, for_range, i64
from kcompile.codegen.lowering.emitters import emits
from kcompile.codegen.lowering.kernel import Kernel, Operand
from kcompile.ir import DType, Node
from kcompile.ir.engines import engine_sized, product_dims
from kcompile.ir.memory import numel, size_of

# A product with no C (an epilogue that overwrites its operands in place: an optimizer's
# update) asks kc_sgemm to hand each tile over in a buffer of its own (``TILE_C``)
# rather than a scratch matrix as large as the result.
TILES_FOR_EPILOGUES = True


def call_gemm(
    k: Kernel,
    node: Node,
    a_shape: tuple,
    b_shape: tuple,
    A: Operand,
    B: Operand,
    C: ir.Value,
    epilogue: ir.Value | None = None,
    context: ir.Value | None = None,
    columns_owned: bool = False,
    accumulate: bool = False,
) -> None:
    """``C (+)= op(A) · op(B)`` for a matmul node's attributes, through the runtime's
    packed micro-kernel (``codegen.library.gemm``); transpositions become strides. With
    ``columns_owned`` no two threads compute tiles of one column (an epilogue that
    sums columns needs it)."""
    b = k.b
    rows = k.value(numel(a_shape[:-1]))
    width = k.value(size_of(a_shape[-1]))
    if node.attrs.get("transpose_a"):  # a[L, K]ᵀ · b[L, N]: C is [K, N]
        m, depth, rs_a, cs_a = width, rows, i64(1), width
    else:
        m, depth, rs_a, cs_a = rows, width, width, i64(1)
    if node.attrs.get("transpose_b"):  # b is [N, K]
        n = k.value(size_of(b_shape[0]))
        rs_b, cs_b = i64(1), depth
    else:
        n = k.value(size_of(b_shape[-1]))
        rs_b, cs_b = n, i64(1)
    null = ir.Constant(PTR, None)
    dims = product_dims(node, a_shape, b_shape)
    flags = (COLUMNS_OWNED if columns_owned else 0) | (ACCUMULATE if accumulate else 0)
    flags |= bgemm_flags(node, dims) | _int8_flags(node)
    gemm = declare_igemm(k.module) if integer_operands(node) else gemm_for(k.module, node, dims)
    no_c = isinstance(C, ir.Constant) and C.constant is None
    if TILES_FOR_EPILOGUES and no_c and epilogue is not None and gemm.name == GEMM:
        flags |= TILE_C
    args = [m, n, depth, A.ptr, rs_a, cs_a, B.ptr, rs_b, cs_b, C, n, i64(flags)]
    b.call(gemm, [*args, epilogue or null, context or null])


# The CPU features code is lowered for: the host's unless an artifact for another CPU
# level is being built (``lowering_for``), whose runtime may lack the engines.
_FEATURES: ContextVar[Callable[[str], bool] | None] = ContextVar("features", default=None)


@contextmanager
def lowering_for(features: Callable[[str], bool]) -> Iterator[None]:
    """Lower for a CPU with ``features`` (``HostInfo.has``) instead of the host."""
    token = _FEATURES.set(features)
    try:
        yield
    finally:
        _FEATURES.reset(token)


def target_features() -> Callable[[str], bool]:
    """The features (``HostInfo.has``) of the CPU code is lowered for: ``lowering_for``'s,
    else the host's."""
    return _FEATURES.get() or host().has


def on_bf16_engine(
    node: Node, dims: tuple | None = None, features: Callable[[str], bool] | None = None
) -> bool:
    """Whether a matmul node runs on ``kc_bgemm`` (``codegen.library.bf16_gemm``): one on bf16
    operands (``precision="bf16"``) where the CPU lowered for (``features``, else
    ``target_features()``) has a bf16 engine and its known ``dims`` (``product_dims``; a
    batch_matmul's matrices', ``codegen.lowering.batch_products``) are at least
    ``BGEMM_MIN_DIM``."""
    features = features or target_features()
    return (
        node.attrs.get("precision") == "bf16" and engine_sized(node, dims) and has_engine(features)
    )


def gemm_for(module: ir.Module, node: Node, dims: tuple = ()) -> ir.Function:
    """The runtime's product for a matmul node: ``kc_bgemm`` where ``on_bf16_engine``, where
    an operand is stored in bf16 or where the product rounds its A itself (its portable
    path off the engines, ``bgemm_flags``), else ``kc_sgemm`` (which gives the same
    products of bf16 values, f32 sums, and rounds a B itself: ``ROUND_B``)."""
    if on_bf16_engine(node, dims) or stored_bf16(node) or _rounds_a(node):
        return declare_bgemm(module)
    return declare_gemm(module)


def _rounds_a(node: Node) -> bool:
    """Whether a product rounds its A itself (``round_operands``): off the engines,
    ``kc_bgemm``'s portable path copies it; a B to round ``kc_sgemm`` rounds as it packs
    it (``ROUND_B``)."""
    return 0 in (node.attrs.get("round_operands") or ())


def stored_bf16(node: Node) -> int:
    """The bits of a product's operands stored in bf16 (``passes.narrow_storage``):
    ``A_BF16`` / ``B_BF16`` (``X_BF16`` / ``W_BF16`` and ``DY_BF16`` are the same bits).
    Only the bf16 kernels read them (off the engines, their portable paths)."""
    a, b = node.inputs[:2]
    return (A_BF16 if a.dtype is DType.bf16 else 0) | (B_BF16 if b.dtype is DType.bf16 else 0)


def bgemm_flags(node: Node, dims: tuple) -> int:
    """``kc_bgemm``'s bits beyond ``kc_sgemm``'s: operands stored in bf16; off the engines,
    for a product rounding operands itself or reading bf16 ones, its portable path
    (copying only the operands to round or to widen)."""
    stored = stored_bf16(node)
    if on_bf16_engine(node, dims):
        return stored
    rounds = node.attrs.get("round_operands") or ()
    if not stored and not _rounds_a(node):
        return ROUND_B if 1 in rounds else 0  # kc_sgemm's own bit
    kept = (A_ROUNDED if 0 not in rounds else 0) | (B_ROUNDED if 1 not in rounds else 0)
    return PORTABLE | kept | stored


def integer_operands(node: Node) -> bool:
    """Whether a matmul multiplies int8 operands on ``kc_igemm`` (both in bytes,
    ``precision="i8"``: ``passes.int8_products``)."""
    a, bv = node.inputs[:2]
    return node.attrs.get("precision") == "i8" and a.dtype is bv.dtype is DType.i8


def _int8_flags(node: Node) -> int:
    """``B_I8`` for a product on ``kc_sgemm`` whose B holds int8 values in bytes, ``B_I4``
    for an int4 kernel's (``matmul_int4``); int8
    operands the pass did not mark (an integer product inside a loop's body) are not
    lowered."""
    a, bv = node.inputs[:2]
    if node.op == "matmul_int4":
        return B_I4  # B: the record of ``int4_kernel``
    if node.attrs.get("precision") != "i8" and DType.i8 in (a.dtype, bv.dtype):
        raise NotImplementedError(
            f"codegen: a matmul of int8 operands here ({a.type} · {bv.type}); integer "
            "products are lowered outside loops (passes.int8_products)"
        )
    return B_I8 if bv.dtype is DType.i8 and a.dtype is not DType.i8 else 0


@emits("matmul")
def matmul(k, m, node, outs, ins) -> None:
    a, bv = node.inputs
    call_gemm(k, node, a.shape, bv.shape, ins[0], ins[1], outs[0].ptr)


def int4_kernel(k: Kernel, node: Node, kernel: list[Operand]) -> tuple[tuple, Operand]:
    """A ``matmul_int4``'s B for ``call_gemm``: its shape (K, N) and, as its operand, the
    ``INT4_KERNEL`` record of its kernel's operands (packed[, scale, zero, g_idx]) that
    ``kc_sgemm`` reads under ``B_I4``."""
    b = k.b
    packed_type = node.inputs[1].type
    rows, pairs = packed_type.shape
    columns = node.attrs["columns"]
    grouped = len(kernel) == 4
    pointers = [b.ptrtoint(op.ptr, I64) for op in kernel]
    fields = {
        "packed": pointers[0],
        "row_bytes": i64(pairs),
        "scale": pointers[1] if grouped else i64(0),
        "zero": pointers[2] if grouped else i64(0),
        "g_idx": pointers[3] if grouped else i64(0),
        "first_row": i64(0),
        "columns": i64(columns),
        "groups": i64(node.inputs[2].shape[0] if grouped else 1),
    }
    record = b.alloca(INT4_RECORD, name="int4_kernel")
    record.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    for index, name in enumerate(INT4_KERNEL):
        b.store(fields[name], b.gep(record, [i64(0), i64(index)], source_etype=INT4_RECORD))
    return (rows, columns), Operand(record, DType.i8, [])


@emits("matmul_int4")
def matmul_int4(k, m, node, outs, ins) -> None:
    b_shape, B = int4_kernel(k, node, ins[1:])
    call_gemm(k, node, node.inputs[0].shape, b_shape, ins[0], B, outs[0].ptr)


@emits("dequantize_int4")
def dequantize_int4(k, m, node, outs, ins) -> None:
    """The f32 kernel, element by element: what a graph compiled without
    ``passes.int4_products`` (which makes it ``matmul_int4`` or primitive ops) reads."""
    b = k.b
    rows, pairs = node.inputs[0].shape
    columns = node.attrs["columns"]
    with for_range(b, i64(rows), "r") as r, for_range(b, i64(columns), "c") as c:
        value = int4_value(b, ins[0].ptr, b.mul(r, i64(pairs)), c)
        if len(ins) == 4:  # (q - zero) * scale, the row's group's (clamped, as kc_sgemm)
            last = i64(node.inputs[1].shape[0] - 1)
            at = b.add(b.mul(int4_group(b, k.load(ins[3], r), last), i64(columns)), c)
            value = int4_dequantized(b, value, ins[2].ptr, ins[1].ptr, at, 1)
        k.store(outs[0], b.add(b.mul(r, i64(columns)), c), value)


def _geometry(k: Kernel, x_shape, out_shape, kernel, attrs, pool=(1, 1)) -> ir.Value:
    """The i64s of ``codegen.library.conv.GEOMETRY`` for an image, an output, a window and a
    pooling window."""
    b = k.b
    _, h, width, c = x_shape
    _, oh, ow, f = out_shape
    kh, kw = kernel
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilation"]
    pt, _, pl, _ = attrs["padding"]
    values = {"N": k.value(size_of(x_shape[0])), "H": h, "W": width, "C": c, "OH": oh}
    values.update(OW=ow, F=f, KH=kh, KW=kw, SH=sh, SW=sw, DH=dh, DW=dw, PT=pt, PL=pl)
    values.update(PH=pool[0], PW=pool[1])
    geometry = b.alloca(ir.ArrayType(I64, len(GEOMETRY)), name="geometry")
    geometry.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    for i, name in enumerate(GEOMETRY):
        value = values[name]
        value = i64(value) if isinstance(value, int) else value
        b.store(value, b.gep(geometry, [i64(i)], source_etype=I64))
    return geometry


def call_conv(
    k: Kernel,
    node: Node,
    X: Operand,
    W: Operand,
    C: ir.Value,
    epilogue: ir.Value | None = None,
    context: ir.Value | None = None,
    columns_owned: bool = False,
    accumulate: bool = False,
    pool: tuple[int, int] | None = None,
) -> None:
    """``C (+)= conv2d(X, W)`` for a ``conv2d`` node (C seen as [N*OH*OW, F]) through the
    runtime's implicit GEMM; the epilogue and flags as ``call_gemm``'s. With ``pool``
    the rows run window by window and the epilogue gets each tile in a buffer of its
    own (C is not written)."""
    x, w = node.inputs
    out = node.outputs[0].shape
    geometry = _geometry(k, x.shape, out, w.shape[:2], node.attrs, pool or (1, 1))
    null = ir.Constant(PTR, None)
    flags = (COLUMNS_OWNED if columns_owned else 0) | (ACCUMULATE if accumulate else 0)
    flags |= (POOLED if pool else 0) | _bconv_flags(node)
    flags |= EXACT if node.attrs.get("precision") == "i8" else 0
    args = [geometry, X.ptr, W.ptr, C, i64(flags), epilogue or null, context or null]
    conv = declare_bconv(k.module) if _on_bconv(node) else declare_conv(k.module)
    k.b.call(conv, args)


def _on_bconv(node: Node) -> bool:
    """Whether a convolution (or its filter gradient) calls the bf16 kernel: on the
    engine, or off it for operands stored in bf16, which only that kernel reads."""
    return conv_on_bf16_engine(node) or bool(stored_bf16(node))


def _bconv_flags(node: Node) -> int:
    """The bf16 convolutions' bits: operands stored in bf16, and off the engines (where
    only they read such operands) their f32 path."""
    stored = stored_bf16(node)
    return stored | (PORTABLE if stored and not conv_on_bf16_engine(node) else 0)


def conv_on_bf16_engine(node: Node, features: Callable[[str], bool] | None = None) -> bool:
    """Whether a conv2d (conv2d_filter) node runs on ``kc_sconv_bf16``'s
    (``kc_sconv_bf16_filter``'s) AMX path (``codegen.library.bf16_conv``, ``bf16_conv_filter``):
    one on bf16 operands (``precision="bf16"``) at least ``BCONV_MIN_DEPTH`` deep where the
    CPU lowered for (as ``on_bf16_engine``'s) has AMX-BF16."""
    features = features or _FEATURES.get() or host().has
    return (
        node.attrs.get("precision") == "bf16" and engine_sized(node) and has_conv_engine(features)
    )


@emits("conv2d")
def conv2d(k, m, node, outs, ins) -> None:
    call_conv(k, node, ins[0], ins[1], outs[0].ptr)


@emits("conv2d_filter")
def conv2d_filter(k, m, node, outs, ins) -> None:
    """A convolution's kernel gradient, packed from the image (``codegen.library.conv``)."""
    x, dy = node.inputs
    geometry = _geometry(k, x.shape, dy.shape, node.attrs["kernel"], node.attrs)
    args = [geometry, ins[0].ptr, ins[1].ptr, outs[0].ptr, i64(_bconv_flags(node))]
    fn = declare_bconv_filter(k.module) if _on_bconv(node) else declare_conv_filter(k.module)
    k.b.call(fn, args)
