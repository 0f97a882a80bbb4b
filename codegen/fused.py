"""Kernels for ``fused`` nodes: one loop nest evaluating the whole body per element.

- ``elementwise``: a loop over the common shape; operands are read with
  broadcast strides, every body node is a scalar rule, every result is stored once.
- ``matmul``: a matrix product computed one output row at a time into a stack
  row, then the body's elementwise epilogue (bias, activation, ...) applied to
  that row while it is in L1.
"""

from __future__ import annotations

from llvmlite import ir

from codegen.emitters import emits
from codegen.kernel import (
    Kernel,
    Operand,
    broadcast_strides,
    contiguous_strides,
    dims_of,
)
from codegen.loops import F32, I32, for_range, for_reduce, i64
from codegen.mathfn import MathLib
from codegen.scalar import SCALAR_RULES
from ir import DType, Graph, Node, Value
from ir.memory import numel

_LLVM_CONST = {
    DType.f32: lambda v: ir.Constant(F32, float(v)),
    DType.i32: lambda v: ir.Constant(I32, int(v)),
    DType.bool: lambda v: ir.Constant(ir.IntType(8), int(bool(v))),
}


def evaluate_body(
    k: Kernel, m: MathLib, body: Graph, env: dict[Value, ir.Value], skip: Node | None = None
) -> None:
    """Emit the scalar code of every body node (except ``skip``) into ``env``."""
    for node in body.nodes:
        if node is skip:
            continue
        out = node.outputs[0]
        if node.op == "constant":
            env[out] = _LLVM_CONST[out.dtype](node.attrs["value"])
        elif node.op == "broadcast_to":
            env[out] = env[node.inputs[0]]
        else:
            rule = SCALAR_RULES.get(node.op)
            if rule is None:
                raise NotImplementedError(f"codegen: {node.op} cannot be part of a fused loop")
            dtypes = [v.dtype for v in node.inputs]
            if node.op == "select":
                dtypes = dtypes[1:]
            env[out] = rule(k.b, m, [env[v] for v in node.inputs], dtypes, node.attrs)


@emits("fused")
def fused(k: Kernel, m: MathLib, node: Node, outs: list[Operand], ins: list[Operand]) -> None:
    body: Graph = node.attrs["body"]
    if node.attrs["kind"] == "matmul":
        _matmul_epilogue(k, m, node, body, outs, ins)
        return
    shape = node.outputs[0].shape
    if any(v.shape != shape for v in node.outputs):
        raise NotImplementedError("codegen: a fused loop's results must share one shape")
    out_ops = [Operand(o.ptr, o.dtype, contiguous_strides(shape)) for o in outs]
    in_ops = [
        Operand(op.ptr, op.dtype, broadcast_strides(v.shape, shape))
        for op, v in zip(ins, node.inputs)
    ]
    results = [v for _, v in body.outputs]

    def per_element(offsets):
        env = {
            v: k.load(op, off) for v, op, off in zip(body.inputs, in_ops, offsets[len(out_ops) :])
        }
        evaluate_body(k, m, body, env)
        for v, op, off in zip(results, out_ops, offsets):
            k.store(op, off, env[v])

    k.strided_loop(dims_of(shape), [*out_ops, *in_ops], per_element)


def _row_operand(op: Operand, v_shape, out_shape) -> Operand:
    """An operand of the epilogue seen as [rows, M] of the 2-D output."""
    strides = broadcast_strides(v_shape, out_shape)
    return Operand(op.ptr, op.dtype, strides)


def _matmul_epilogue(k, m, node, body, outs, ins) -> None:
    product = body.nodes[0]
    a_in, b_in = product.inputs
    position = {v: i for i, v in enumerate(body.inputs)}
    a_val, b_val = node.inputs[position[a_in]], node.inputs[position[b_in]]
    A, Bm = ins[position[a_in]], ins[position[b_in]]
    out_shape = node.outputs[0].shape
    rows, kk = numel(a_val.shape[:-1]), a_val.shape[-1]
    transpose_b = product.attrs["transpose_b"]
    mm = b_val.shape[0] if transpose_b else b_val.shape[1]
    b = k.b
    row_op = Operand(b.alloca(F32, size=i64(mm), name="row"), DType.f32, [])
    others = {
        v: _row_operand(op, nv.shape, out_shape) for v, op, nv in zip(body.inputs, ins, node.inputs)
    }
    out_ops = [Operand(o.ptr, o.dtype, contiguous_strides(out_shape)) for o in outs]
    fma = ["contract"]
    with for_range(b, k.value(rows), "i") as i:
        if transpose_b:
            with for_range(b, i64(mm), "j") as j:
                with for_reduce(b, i64(kk), [ir.Constant(F32, 0.0)], "k") as (ki, acc):
                    prod = b.fmul(
                        k.load(A, b.add(b.mul(i, i64(kk)), ki)),
                        k.load(Bm, b.add(b.mul(j, i64(kk)), ki)),
                        flags=fma,
                    )
                    acc[0] = b.fadd(acc[0], prod, flags=["reassoc", "contract"])
                k.store(row_op, j, acc[0])
        else:
            with for_range(b, i64(mm), "z") as j:
                k.store(row_op, j, ir.Constant(F32, 0.0))
            with for_range(b, i64(kk), "k") as ki:
                av = k.load(A, b.add(b.mul(i, i64(kk)), ki))
                with for_range(b, i64(mm), "j") as j:
                    prod = b.fmul(av, k.load(Bm, b.add(b.mul(ki, i64(mm)), j)), flags=fma)
                    k.store(row_op, j, b.fadd(k.load(row_op, j), prod, flags=fma))
        with for_range(b, i64(mm), "e") as j:
            env = {product.outputs[0]: k.load(row_op, j)}
            for v, op in others.items():
                if v in (a_in, b_in) and v not in _epilogue_reads(body, product):
                    continue
                offset = _offset2(k, op, i, j)
                env[v] = k.load(op, offset)
            evaluate_body(k, m, body, env, skip=product)
            flat = b.add(b.mul(i, i64(mm)), j)
            for (_, v), op in zip(body.outputs, out_ops):
                k.store(op, flat, env[v])


def _epilogue_reads(body: Graph, product: Node) -> set[Value]:
    return {v for n in body.nodes if n is not product for v in n.inputs}


def _offset2(k: Kernel, op: Operand, i, j):
    """Offset of element (row i, column j) for strides over the 2-D output."""
    row_stride, col_stride = op.strides
    b = k.b
    offset = i64(0)
    if not row_stride.is_zero:
        offset = b.mul(i, k.value(row_stride))
    if not col_stride.is_zero:
        step = j if col_stride.is_one else b.mul(j, k.value(col_stride))
        offset = b.add(offset, step)
    return offset
