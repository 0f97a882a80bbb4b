"""Products with a loop invariant inside a loop's step, on B packed once per loop.

A recurrent layer's step multiplies its state by the recurrent kernel, ``h·U`` (and
``d·Uᵀ`` in the backward loop), once per step with the same ``U``. Through the
runtime's GEMM each step read ``U`` in place (few rows of C: a packed panel would not
be reused enough to pay for its copy), its rows 2 KB apart, and the product stayed at
62-67% of a core. Here the loop packs ``U`` once, before its first step, into the
GEMM's ``KC x NR`` panels (``codegen.library.gemm``: zero padded on the right, 64-byte
aligned), and every step's product calls the GEMM's micro-kernels on them:

- A is read in place, row-major (the micro-kernels ``kc_ukr_rows{rows}``: one
  pointer per row; packing it cost 7% of the backward product, whose A is 512 deep).
  A ragged tile runs in pieces of power-of-two heights (``_call``).
  Each panel runs for every tile of a group of ``MR``-row tiles, read from L2 once per
  group and from L1 after.
- K deeper than ``BLOCK_DEPTH`` is cut into balanced blocks, each packed as the GEMM
  packs its blocks. A plain product (the backward loop's) runs block by block, adding
  into C; a fused one adds a tile's blocks up in a stack tile of C.
- A fused node's elementwise epilogue (the step's input added, a GRU's recurrent bias)
  runs on each finished tile while it is in L1: the micro-kernel writes the tile into a
  stack tile that only the epilogue reads.

Two products of a step where one's result is read only by the other's epilogue (an
LSTM's projection ``x_t·W + b`` computed in its step, ``passes.loops.project_in_loops``,
and ``h·U`` that adds it) run as one kernel (``paired``): each tile of C gets both
products into two stack tiles, and the epilogue evaluates the first node's epilogue and
feeds it to the second's, so the first result is never stored; the numbers are those of
the two kernels.

The LSTM(128) train step at batch 64, against the GEMM called per step (minimum over
200 interleaved calls, one slice): the forward product 782 -> 697 µs, the backward one
610 -> 564 µs, and the transpose of the recurrent kernel before the backward loop
(80 µs) gone. The product runs on the calling thread: the loop that uses it runs on
slices of the batch, one per thread (``codegen.lowering.scan``). It calls ``codegen.library.gemm``'s
micro-kernels and panel packing (``kc_ukr_rows{rows}``, ``kc_pack_b``) in the runtime
library, which exports them (``codegen.library.runtime_library.shared_kernels``), when the
library's tile is the one packed for; otherwise (a tile set for a test, or an artifact
for another CPU whose library has another tile) it defines copies in the model's module.
Copies cost the LSTM(128) train step 0.5-1.1 s of compile.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from llvmlite import ir

from kcompile.codegen.building.target import host
from kcompile.codegen.library.gemm import Tile, _micro_kernel, _pack_b
from kcompile.codegen.library.runtime_library import PACK_B_FN, UKR_FN
from kcompile.codegen.loops import F32, I8, I32, I64, PTR, for_range, i64
from kcompile.codegen.lowering.fused import evaluate_body
from kcompile.codegen.lowering.kernel import Kernel, Operand
from kcompile.codegen.lowering.mathfn import MathLib
from kcompile.codegen.lowering.step import NodeLowering
from kcompile.ir import DType, Graph, Node, Value
from kcompile.ir.memory import nbytes, size_of
from kcompile.ir.ops.fused import product_of

# K is packed in blocks of at most this depth: a 128 x NR panel (16 KB on AVX-512) and a
# group's A of the same depth stay in L1 together.
BLOCK_DEPTH = 128
# A group of row tiles reads at most this many bytes of A (with a panel, within L1).
A_GROUP_BYTES = 24 * 1024
# Panels up to this size live on the stack of the thread that runs the loop (as the
# GEMM's own packed block does): a fresh allocation of a few hundred KB each call is
# mapped anew, its pages faulted in at every call.
STACK_PANEL_BYTES = 512 * 1024
# Tile override for tests (an AVX2 or SSE tile on this machine); None: the host's.
TILE: Tile | None = None
# On: a tile's epilogue asks for its rows of the next panel's columns of each step input
# of the result's shape (the LSTM step's input projection, read from memory: rows 2 KB
# apart, a few lines each, which no hardware prefetcher follows).
PREFETCH_EPILOGUE = True


# The tile of the runtime library the code will be linked with (an artifact's, for its
# target CPU); None: this host's.
_LINKED: ContextVar[Tile | None] = ContextVar("kcompile_linked_tile", default=None)


def tile() -> Tile:
    return TILE or Tile.for_host(host().has)


@contextmanager
def linked_with(shape: Tile) -> Iterator[None]:
    """Lower for a runtime library of tile ``shape`` (an artifact's for another CPU)."""
    token = _LINKED.set(shape)
    try:
        yield
    finally:
        _LINKED.reset(token)


def _in_library(t: Tile) -> bool:
    """Whether the linked runtime library's micro-kernels and packing are for ``t``."""
    return t == (_LINKED.get() or Tile.for_host(host().has))


@dataclass(frozen=True)
class PackedB:
    """A loop invariant ``B`` of ``depth x width`` (stored ``[width, depth]`` when
    ``transposed``) packed into panels: block ``kb`` (rows ``start .. start + depth_b``)
    at float ``start * panels * NR``, its panel ``p`` ``p * depth_b * NR`` further."""

    value: Value
    depth: int
    width: int
    transposed: bool
    tile: Tile

    @property
    def panels(self) -> int:
        return -(-self.width // self.tile.nr)

    @property
    def floats(self) -> int:
        return self.depth * self.panels * self.tile.nr

    def blocks(self) -> list[tuple[int, int]]:
        """(first row, depth) of each block of K: balanced, as the GEMM cuts them."""
        count = -(-self.depth // min(self.tile.kc, BLOCK_DEPTH))
        step = -(-self.depth // count)
        return [(s, min(step, self.depth - s)) for s in range(0, self.depth, step)]


@dataclass(frozen=True)
class _Product:
    node: Node  # a matmul, or a fused node whose body holds one
    product: Node  # the matmul itself
    a: int  # the node's operand index of A
    b: int  # ... and of B


def packed_products(body: Graph, t: Tile | None = None) -> dict[Value, tuple[PackedB, list]]:
    """The invariants of a loop body that only the B side of row-major products reads
    (``x·B`` or ``x·Bᵀ``, B 2-D of static shape), each with its packing and those
    products. Anything else that reads one (another kernel, an epilogue, a nested loop)
    keeps it unpacked."""
    t = t or tile()
    invariants = {v for v in body.inputs if v.role == "invariant"}
    outputs = {v for _, v in body.outputs}
    found: dict[Value, list[_Product]] = {}
    refused: set[Value] = set(outputs)
    for node in body.nodes:
        product = _as_product(node)
        if product is None or node.inputs[product.b] not in invariants:
            refused.update(node.inputs)
            continue
        refused.update(v for i, v in enumerate(node.inputs) if i != product.b)
        found.setdefault(node.inputs[product.b], []).append(product)
    result = {}
    for value, products in found.items():
        flips = {p.product.attrs["transpose_b"] for p in products}
        if value in refused or len(flips) != 1:
            continue
        (transposed,) = flips
        rows, cols = value.shape
        depth, width = (cols, rows) if transposed else (rows, cols)
        result[value] = (PackedB(value, depth, width, transposed, t), products)
    return result


def _as_product(node: Node) -> _Product | None:
    """``node`` as a product this module lowers: a plain ``matmul``, or a fused one
    whose epilogue is elementwise on results of the product's shape; None otherwise."""
    if node.op == "matmul":
        product, body = node, None
    elif node.op == "fused" and node.attrs["kind"] == "matmul" and not node.attrs.get("pool"):
        body = node.attrs["body"]
        product = product_of(body)
        if product.op != "matmul" or not _plain_epilogue(body, product):
            return None
    else:
        return None
    a, b = product.inputs
    if product.attrs["transpose_a"] or a.rank != 2 or b.rank != 2:
        return None
    if product.attrs.get("round_operands"):
        return None  # its packing does not round: the runtime's product does
    if not all(isinstance(d, int) for d in (*b.shape, a.shape[1])):
        return None
    if body is None:
        return _Product(node, product, 0, 1)
    position = {v: i for i, v in enumerate(body.inputs)}
    if a not in position or b not in position:
        return None
    users = [n for n in body.nodes if b in n.inputs]
    if users != [product]:
        return None
    return _Product(node, product, position[a], position[b])


def _plain_epilogue(body: Graph, product: Node) -> bool:
    """Every result has the product's shape and every other operand the epilogue reads
    has it too, or is one value per column, or one value."""
    shape = product.outputs[0].shape
    if any(v.shape != shape for _, v in body.outputs):
        return False
    if any(n.traits.reduction is not None for n in body.nodes):
        return False
    for n in body.nodes:
        if n is product:
            continue
        for v in n.inputs:
            if v in body.inputs and _strides(v.shape, shape) is None:
                return False
    return True


def _strides(v_shape, shape) -> tuple[bool, bool] | None:
    """(moves with the row, moves with the column) of an epilogue operand, or None."""
    if tuple(v_shape) == tuple(shape):
        return True, True
    if all(d == 1 for d in v_shape):
        return False, False
    if v_shape[-1] == shape[-1] and all(d == 1 for d in v_shape[:-1]):
        return False, True
    return None


# --- packing B, once per loop ------------------------------------------------------------


def _declare(module: ir.Module, name: str, ftype: ir.FunctionType) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ftype, name)


def emit_pack(b: ir.IRBuilder, spec: PackedB, src: ir.Value) -> tuple[ir.Value, bool]:
    """Fill ``spec``'s panels from ``src`` (the invariant as the caller holds it): on the
    stack up to ``STACK_PANEL_BYTES``, else in memory that ``emit_free`` releases.
    Returns the panels and whether they were allocated."""
    module, t = b.module, spec.tile
    pack = module.globals.get("kc_pack_b")
    if pack is None:
        pack = _declare(module, "kc_pack_b", PACK_B_FN) if _in_library(t) else _pack_b(module, t)
    size = -(-spec.floats * 4 // 64) * 64
    allocated = size > STACK_PANEL_BYTES
    if allocated:
        aligned_alloc = _declare(module, "aligned_alloc", ir.FunctionType(PTR, [I64, I64]))
        panels = b.call(aligned_alloc, [i64(64), i64(size)])
    else:
        panels = _stack(b, size // 4, "panels")
    for start, depth in spec.blocks():
        if spec.transposed:  # B[k, j] = W[j, k]: columns of B contiguous
            at, rs, cs = start, 1, spec.depth
        else:
            at, rs, cs = start * spec.width, spec.width, 1
        source = b.gep(src, [i64(at)], inbounds=True, source_etype=F32)
        dst = b.gep(panels, [i64(start * spec.panels * t.nr)], inbounds=True, source_etype=F32)
        b.call(pack, [i64(depth), i64(spec.width), source, i64(rs), i64(cs), dst])
    return panels, allocated


def emit_free(b: ir.IRBuilder, panels: ir.Value) -> None:
    free = _declare(b.module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    b.call(free, [panels])


# --- the product in the step --------------------------------------------------------------


def lowering(product: _Product, spec: PackedB, math: MathLib, ahead: tuple = ()) -> NodeLowering:
    """The lowering of ``product``'s node that reads its B operand as ``spec``'s panels;
    ``ahead``: values (of the loop's own slots, ``codegen.lowering.scan``) that point at memory the
    next step reads or writes, ``rows x`` their type's row bytes, asked for a share per
    tile (a step's prefetches issued at once stalled it on the misses they waited for)."""

    def emit(k: Kernel, outs: list[Operand], ins: list[Operand], extra) -> None:
        regions = [(op, nbytes(v.type).coef) for op, v in zip(extra, ahead)]
        _emit(k, math, product, spec, outs, ins, regions)

    return NodeLowering(emit, tuple(ahead))


def pairs(body: Graph, products: list[_Product], specs: dict[Node, PackedB], slot) -> list:
    """(first, second) pairs of ``products`` (each with its B in ``specs``) where the
    first node's one result is read only by the second node's epilogue, as an operand of
    the product's shape, and nothing runs between them; ``slot`` maps a body value to its
    buffer (the second's results must not overwrite what the first reads)."""
    users = body.users()
    outputs = {v for _, v in body.outputs}
    by_node = {p.node: p for p in products}
    order = {n: i for i, n in enumerate(body.nodes)}
    found, taken = [], set()
    for second in products:
        if second.node is second.product or second.node in taken:
            continue
        shape = second.product.outputs[0].shape
        for i, v in enumerate(second.node.inputs):
            first = by_node.get(v.node)
            if i in (second.a, second.b) or first is None or first.node in taken:
                continue
            if len(first.node.outputs) != 1 or v in outputs or users.get(v) != [second.node]:
                continue
            if v.dtype != DType.f32 or v.shape != shape or first.product.outputs[0].shape != shape:
                continue
            if order[second.node] != order[first.node] + 1:
                continue
            s1, s2 = specs[first.node], specs[second.node]
            if s1.tile != s2.tile or s1.width != s2.width:
                continue
            read = {slot[x] for x in (*first.node.inputs, *second.node.inputs) if x is not v}
            if read & {slot[x] for x in second.node.outputs}:
                continue
            found.append((first, second))
            taken.update((first.node, second.node))
            break
    return found


def paired(
    first: _Product, first_spec: PackedB, second: _Product, spec: PackedB, math: MathLib
) -> dict[Node, NodeLowering]:
    """The lowerings of a pair (``pairs``): the first node's kernel does nothing, the
    second's runs both products and both epilogues, with the first node's operands."""

    def nothing(k: Kernel, outs, ins, extra) -> None:
        pass

    def emit(k: Kernel, outs: list[Operand], ins: list[Operand], extra) -> None:
        _emit_pair(k, math, (first, first_spec, extra), (second, spec, ins), outs)

    return {
        first.node: NodeLowering(nothing),
        second.node: NodeLowering(emit, tuple(first.node.inputs)),
    }


def _emit_pair(k: Kernel, math: MathLib, first, second, outs) -> None:
    b = k.b
    (p1, spec1, ops1), (p2, spec2, ops2) = first, second
    t = spec2.tile
    rows_total = k.value(size_of(p2.node.inputs[p2.a].shape[0]))
    kernels = _kernels(k.module, t)
    tiles = [_stack(b, t.mr * t.nr, "c_first"), _stack(b, t.mr * t.nr, "c_tile")]
    groups = _groups(b, t, rows_total, _group(t, spec1.depth + spec2.depth))
    with (
        groups as (t0, count),
        _tiles(b, t, spec2, rows_total, t0, count) as (jp, j0, nr, i0, rows),
    ):
        for (p, spec, ops), c in zip((first, second), tiles):
            A, Bp = ops[p.a], ops[p.b]
            for index, (start, kc) in enumerate(spec.blocks()):
                a_at = b.add(b.mul(i0, i64(spec.depth)), i64(start))
                a_tile = b.gep(A.ptr, [a_at], inbounds=True, source_etype=F32)
                panel_at = b.add(i64(start * spec.panels * t.nr), b.mul(jp, i64(kc * t.nr)))
                panel = b.gep(Bp.ptr, [panel_at], inbounds=True, source_etype=F32)
                args = [i64(kc), a_tile, i64(spec.depth), panel, i64(t.nr), c, i64(t.nr), nr]
                _call(b, t, kernels, rows, [*args, i64(int(index > 0))])
        _pair_epilogue(k, math, t, (p1, ops1), (p2, ops2), outs, (tiles, i0, j0, rows, nr))


def _operands(p: _Product, ops: list[Operand], shape) -> dict[Value, tuple]:
    """The operands a fused product's epilogue reads: body input -> (operand, strides)."""
    if p.node is p.product:
        return {}
    body: Graph = p.node.attrs["body"]
    read = {v for n in body.nodes if n is not p.product for v in n.inputs}
    return {
        v: (ops[i], _strides(v.shape, shape))
        for i, v in enumerate(body.inputs)
        if i != p.b and v in read
    }


def _pair_epilogue(k: Kernel, math: MathLib, t: Tile, first, second, outs, at) -> None:
    """Both nodes' epilogues on the finished tiles, the first's result handed to the
    second where it read it, stored in the second's results."""
    (c_tiles, i0, j0, rows, nr), b = at, k.b
    (p1, ops1), (p2, ops2) = first, second
    shape = p2.product.outputs[0].shape
    width = shape[-1]
    handed = p2.node.inputs.index(p1.node.outputs[0])
    body2: Graph = p2.node.attrs["body"]
    others1 = _operands(p1, ops1, shape)
    others2 = {v: x for v, x in _operands(p2, ops2, shape).items() if v is not body2.inputs[handed]}
    tile_ops = [Operand(c, DType.f32, []) for c in c_tiles]

    def load(env, others, i, j) -> None:
        for v, (op, (by_row, by_col)) in others.items():
            offset = b.mul(i, i64(width)) if by_row else i64(0)
            env[v] = k.load(op, b.add(offset, j) if by_col else offset)

    def element(r, col) -> None:
        i, j = b.add(i0, r), b.add(j0, col)
        at_tile = b.add(b.mul(r, i64(t.nr)), col)
        env1 = {p1.product.outputs[0]: k.load(tile_ops[0], at_tile)}
        value = env1[p1.product.outputs[0]]
        if p1.node is not p1.product:
            body1: Graph = p1.node.attrs["body"]
            load(env1, others1, i, j)
            evaluate_body(k, math, body1, env1, skip={p1.product})
            value = env1[body1.outputs[0][1]]
        env = {p2.product.outputs[0]: k.load(tile_ops[1], at_tile), body2.inputs[handed]: value}
        load(env, others2, i, j)
        evaluate_body(k, math, body2, env, skip={p2.product})
        flat = b.add(b.mul(i, i64(width)), j)
        for out, (_, v) in zip(outs, body2.outputs):
            k.store(out, flat, env[v])

    _over_tile(b, t, rows, nr, element)


def _kernels(module: ir.Module, t: Tile) -> dict[int, ir.Function]:
    """The GEMM's micro-kernels that read A row-major in place, for MR rows and for each
    power of two below (``_call``): the runtime library's, else defined in this module
    once."""
    linked = _in_library(t)
    kernels = {}
    for rows in _heights(t):
        name = f"kc_ukr_rows{rows}"
        kernels[rows] = module.globals.get(name) or (
            _declare(module, name, UKR_FN) if linked else _micro_kernel(module, t, rows, True)
        )
    return kernels


def _heights(t: Tile) -> list[int]:
    return [t.mr] + [h for h in (8, 4, 2, 1) if h < t.mr]


def _call(b: ir.IRBuilder, t: Tile, kernels, rows, args: list) -> None:
    """``C (+)= A·panel`` for a tile of ``rows`` rows, ``args`` as the micro-kernels take
    them. A ragged tile runs in pieces of power-of-two heights (11 = 8 + 2 + 1): twelve
    kernels, one per height, took as long to compile as the rest of an LSTM's step."""
    kc, a, lda, panel, ldb, c, ldc, nr, beta = args
    with b.if_else(b.icmp_signed("==", rows, i64(t.mr))) as (whole, ragged):
        with whole:
            b.call(kernels[t.mr], args)
        with ragged:
            done = i64(0)
            for height in _heights(t)[1:]:
                take = b.icmp_signed(">=", b.sub(rows, done), i64(height))
                with b.if_then(take):
                    at_a = b.gep(a, [b.mul(done, lda)], inbounds=True, source_etype=F32)
                    at_c = b.gep(c, [b.mul(done, ldc)], inbounds=True, source_etype=F32)
                    piece = [kc, at_a, lda, panel, ldb, at_c, ldc, nr, beta]
                    b.call(kernels[height], piece, attrs=("noinline",))
                done = b.select(take, b.add(done, i64(height)), done)


def _stack(b: ir.IRBuilder, floats: int, name: str) -> ir.Value:
    buffer = b.alloca(ir.ArrayType(F32, floats), name=name)
    buffer.align = 64
    buffer.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque
    return buffer


def _emit(k: Kernel, math: MathLib, p: _Product, spec: PackedB, outs, ins, regions=()) -> None:
    b, t = k.b, spec.tile
    rows_total = k.value(size_of(p.node.inputs[p.a].shape[0]))
    if p.node is p.product and len(spec.blocks()) > 1:
        _blocks_outer(k, p, spec, outs, ins, rows_total, regions)
        return
    spread = _Spread(k, t, spec, rows_total, 1, regions)
    depth, width, panels = spec.depth, spec.width, spec.panels
    kernels = _kernels(k.module, t)
    epilogue = p.node is not p.product
    c_tile = _stack(b, t.mr * t.nr, "c_tile") if epilogue else None
    A, Bp = ins[p.a], ins[p.b]
    groups = _groups(b, t, rows_total, _group(t, depth))
    with groups as (t0, count), _tiles(b, t, spec, rows_total, t0, count) as (jp, j0, nr, i0, rows):
        if epilogue:
            c, ldc = c_tile, i64(t.nr)
        else:
            at = b.add(b.mul(i0, i64(width)), j0)
            c = b.gep(outs[0].ptr, [at], inbounds=True, source_etype=F32)
            ldc = i64(width)
        for index, (start, kc) in enumerate(spec.blocks()):
            a_at = b.add(b.mul(i0, i64(depth)), i64(start))
            a_tile = b.gep(A.ptr, [a_at], inbounds=True, source_etype=F32)
            panel_at = b.add(i64(start * panels * t.nr), b.mul(jp, i64(kc * t.nr)))
            panel = b.gep(Bp.ptr, [panel_at], inbounds=True, source_etype=F32)
            args = [i64(kc), a_tile, i64(depth), panel, i64(t.nr), c, ldc, nr]
            _call(b, t, kernels, rows, [*args, i64(int(index > 0))])
        if epilogue:
            _epilogue(k, math, p, t, outs, ins, (c_tile, i0, j0, rows, nr))
        spread.tile()


def _blocks_outer(k: Kernel, p: _Product, spec: PackedB, outs, ins, rows_total, regions=()) -> None:
    """A plain product over several blocks of K: block by block, each adding into C (the
    result), so that a group's rows of A over one block and a panel of it share L1."""
    b, t = k.b, spec.tile
    depth, width, panels = spec.depth, spec.width, spec.panels
    kernels = _kernels(k.module, t)
    (_, step), *_ = spec.blocks()
    A, Bp, C = ins[p.a], ins[p.b], outs[0]
    spread = _Spread(k, t, spec, rows_total, len(spec.blocks()), regions)
    groups = _groups(b, t, rows_total, _group(t, step))
    with groups as (t0, count), for_range(b, i64(len(spec.blocks())), "kb") as kb:
        start = b.mul(kb, i64(step))
        kc = b.sub(i64(depth), start)
        kc = b.select(b.icmp_signed("<", kc, i64(step)), kc, i64(step))
        beta = b.zext(b.icmp_signed(">", kb, i64(0)), I64)
        block = b.mul(start, i64(panels * t.nr))
        with _tiles(b, t, spec, rows_total, t0, count) as (jp, j0, nr, i0, rows):
            a_at = b.add(b.mul(i0, i64(depth)), start)
            a_tile = b.gep(A.ptr, [a_at], inbounds=True, source_etype=F32)
            panel_at = b.add(block, b.mul(b.mul(jp, kc), i64(t.nr)))
            panel = b.gep(Bp.ptr, [panel_at], inbounds=True, source_etype=F32)
            at = b.add(b.mul(i0, i64(width)), j0)
            c = b.gep(C.ptr, [at], inbounds=True, source_etype=F32)
            args = [kc, a_tile, i64(depth), panel, i64(t.nr), c, i64(width), nr, beta]
            _call(b, t, kernels, rows, args)
            spread.tile()


class _Spread:
    """Prefetches of ``regions`` ((operand, bytes a row) for the kernel's ``n`` rows)
    spread over the kernel's tiles (``blocks`` x row tiles x panels calls): ``tile()``
    after each asks for its share of each region's lines."""

    def __init__(self, k: Kernel, t: Tile, spec: PackedB, rows_total, blocks: int, regions):
        self.k, self.regions = k, list(regions)
        if not self.regions:
            return
        b = k.b
        row_tiles = b.udiv(b.add(rows_total, i64(t.mr - 1)), i64(t.mr))
        self.calls = b.mul(row_tiles, i64(spec.panels * blocks))
        self.counter = b.alloca(I64, name="spread")
        self.counter.type = PTR
        b.store(i64(0), self.counter)
        fn = k.module.globals.get("llvm.prefetch.p0")
        self.fn = fn or ir.Function(k.module, _PREFETCH_FN, "llvm.prefetch.p0")

    def tile(self) -> None:
        if not self.regions:
            return
        k, b = self.k, self.k.b
        index = b.load(self.counter, typ=I64)
        b.store(b.add(index, i64(1)), self.counter)
        hint = [ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)]
        for op, row_bytes in self.regions:
            lines = b.udiv(b.add(b.mul(k.n, i64(row_bytes)), i64(63)), i64(64))
            share = b.udiv(b.add(lines, b.sub(self.calls, i64(1))), self.calls)
            first = b.mul(index, share)
            end = b.add(first, share)
            end = b.select(b.icmp_signed("<", end, lines), end, lines)
            count = b.sub(end, first)
            count = b.select(b.icmp_signed(">", count, i64(0)), count, i64(0))
            with for_range(b, count, "pf") as line:
                at = b.mul(b.add(first, line), i64(64))
                b.call(self.fn, [b.gep(op.ptr, [at], source_etype=I8), *hint])


def _group(t: Tile, depth: int) -> int:
    """Row tiles a panel serves before the next one: their rows of A over ``depth``
    within ``A_GROUP_BYTES``."""
    return max(1, A_GROUP_BYTES // (t.mr * depth * 4))


@contextmanager
def _groups(b: ir.IRBuilder, t: Tile, rows_total, group: int):
    """Loop over groups of ``group`` row tiles; yields (first tile, tiles in the group)."""
    row_tiles = b.udiv(b.add(rows_total, i64(t.mr - 1)), i64(t.mr))
    groups = b.udiv(b.add(row_tiles, i64(group - 1)), i64(group))
    with for_range(b, groups, "g") as g:
        t0 = b.mul(g, i64(group))
        count = b.sub(row_tiles, t0)
        yield t0, b.select(b.icmp_signed("<", count, i64(group)), count, i64(group))


@contextmanager
def _tiles(b: ir.IRBuilder, t: Tile, spec: PackedB, rows_total, t0, count):
    """Panel by panel, each for every tile of the group; yields (panel, its first column,
    its columns, the tile's first row, its rows)."""
    with for_range(b, i64(spec.panels), "p") as jp:
        j0 = b.mul(jp, i64(t.nr))
        nr = b.sub(i64(spec.width), j0)
        nr = b.select(b.icmp_signed("<", nr, i64(t.nr)), nr, i64(t.nr))
        with for_range(b, count, "t") as it:
            i0 = b.mul(b.add(t0, it), i64(t.mr))
            yield jp, j0, nr, i0, _rows(b, t, rows_total, i0)


def _rows(b: ir.IRBuilder, t: Tile, total, i0) -> ir.Value:
    left = b.sub(total, i0)
    return b.select(b.icmp_signed("<", left, i64(t.mr)), left, i64(t.mr))


def _epilogue(k: Kernel, math: MathLib, p: _Product, t: Tile, outs, ins, at) -> None:
    """The fused node's body on the finished tile ``at = (c_tile, i0, j0, rows, nr)``
    (the product's values in ``c_tile``, NR floats a row), stored in every result."""
    c_tile, i0, j0, rows, nr = at
    b = k.b
    body: Graph = p.node.attrs["body"]
    product = p.product
    shape = product.outputs[0].shape
    width = shape[-1]
    results = [v for _, v in body.outputs]
    read = {v for n in body.nodes if n is not product for v in n.inputs}
    others = {
        v: (ins[i], _strides(v.shape, shape))
        for i, v in enumerate(body.inputs)
        if i != p.b and v in read
    }
    tile_op = Operand(c_tile, DType.f32, [])
    if PREFETCH_EPILOGUE:
        outer = dict(zip(body.inputs, p.node.inputs))
        ahead = [
            op
            for v, (op, (by_row, by_col)) in others.items()
            if by_row and by_col and _from_sequence(outer[v])
        ]
        _prefetch_next_panel(k, t, ahead, width, i0, b.add(j0, i64(t.nr)), rows)

    def element(r, col) -> None:
        i, j = b.add(i0, r), b.add(j0, col)
        env = {product.outputs[0]: k.load(tile_op, b.add(b.mul(r, i64(t.nr)), col))}
        for v, (op, (by_row, by_col)) in others.items():
            offset = b.mul(i, i64(width)) if by_row else i64(0)
            env[v] = k.load(op, b.add(offset, j) if by_col else offset)
        evaluate_body(k, math, body, env, skip={product})
        flat = b.add(b.mul(i, i64(width)), j)
        for out, v in zip(outs, results):
            k.store(out, flat, env[v])

    _over_tile(b, t, rows, nr, element)


def _over_tile(b: ir.IRBuilder, t: Tile, rows, nr, element) -> None:
    """``element(r, col)`` over a finished tile's ``rows`` x ``nr``: a whole tile's row is
    a loop of constant count, which LLVM makes whole vectors."""
    whole_width = b.icmp_signed("==", nr, i64(t.nr))
    with for_range(b, rows, "er") as r, b.if_else(whole_width) as (whole, part):
        with whole, for_range(b, i64(t.nr), "ec") as col:
            element(r, col)
        with part, for_range(b, nr, "ep") as col:
            element(r, col)


def _from_sequence(v: Value) -> bool:
    """Whether the step reads ``v`` from its loop's sequence (memory, not a value the step
    just made and left in cache)."""
    return v.node is None and v.role == "step"


def _prefetch_next_panel(k: Kernel, t: Tile, ops: list[Operand], width, i0, j1, rows) -> None:
    """Ask for rows ``i0 ..`` of columns ``j1 .. j1 + NR`` of each operand (``width``
    elements a row) into L1: a line per 64 bytes of the panel's row. Past the last column
    the addresses are still prefetched (a prefetch never faults)."""
    if not ops:
        return
    b = k.b
    fn = k.module.globals.get("llvm.prefetch.p0")
    if fn is None:
        fn = ir.Function(k.module, _PREFETCH_FN, "llvm.prefetch.p0")
    hint = [ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)]  # read, L1, data
    with for_range(b, rows, "pr") as r:
        at = b.add(b.mul(b.add(i0, r), i64(width)), j1)
        for op in ops:
            size = op.dtype.itemsize
            first = b.mul(at, i64(size))
            for line in range(max(1, t.nr * size // 64)):
                where = b.gep(op.ptr, [b.add(first, i64(64 * line))], source_etype=I8)
                b.call(fn, [where, *hint])


# llvm.prefetch(address, write, locality, data)
_PREFETCH_FN = ir.FunctionType(ir.VoidType(), [PTR, I32, I32, I32])
