"""The loop op: ``scan`` runs a body graph once per time step.

    %h, %c, %ys, %ws0, %ws1, %hs, %cs = scan(%h0, %c0, %x, %u)
        {body=graph ..., carries=2, length=28, reverse=false, saved=true, sequences=1,
         workspace=[0, 0]}

Operands: ``carries`` initial carries, then ``sequences`` tensors with time on
axis 1 (axis 0 for rank 1; axis 0 always when ``time_major``), then invariants (read
at every step, e.g. a weight). The body has one input per operand, in that order, with the roles
carry, step (the sequence's slice at step t, its time axis removed) and
invariant; its outputs are the next carries, then the per-step outputs.

Results, in order: the final carries; each per-step output stacked on the
time axis; two workspace buffers that hold the body's memory (``workspace=[fixed
bytes, bytes per batch row]``, sized by ``plan_memory`` and used by codegen, so
a step allocates nothing); and, when ``saved``, the carries that entered each
step, stacked: what the gradient needs. ``reverse`` runs t = T-1 ... 0; stacked
results stay indexed by t, as in jax.lax.scan. With ``time_major`` (optional, false
when absent) every sequence and stacked result holds its steps on axis 0 ([T, N, F]):
a step's slice of a batch's rows is then one contiguous block, which the native
loop reads and writes in place instead of copying row by row.

The gradient is a reverse scan whose body recomputes the forward step from the
saved carries and differentiates it with ``ir.grad``. The step's products and
activations are the exception: the forward scan also stacks them (``residual_k``
per-step outputs: an LSTM's gates, or its recurrent product when the gates would take
too much memory) and the backward body reads them instead of computing them again, so
only the cheap elementwise part of a step is recomputed. The memory kept for the
backward pass is the carries and those residuals, not every intermediate of every
step. A sequence of 200 steps is one node, like one of 20.
"""

from __future__ import annotations

import weakref

import numpy as np

from kcompile.ir import build as B
from kcompile.ir import traits as T
from kcompile.ir.grad import Zero, append_gradients, instantiate
from kcompile.ir.graph import Graph, IRError, Value
from kcompile.ir.interpreter import Interpreter
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import BATCH, DType, ShapeError, TensorType


def time_axis(rank: int, time_major: bool = False) -> int:
    """The axis a per-step value of rank ``rank`` is stacked on."""
    return 0 if time_major else min(1, rank)


def stacked_type(t: TensorType, length: int, time_major: bool = False) -> TensorType:
    a = time_axis(t.rank, time_major)
    return t.with_shape((*t.shape[:a], length, *t.shape[a:]))


def step_type(t: TensorType, time_major: bool = False) -> TensorType:
    a = time_axis(t.rank - 1, time_major)
    return t.with_shape(t.shape[:a] + t.shape[a + 1 :])


def is_time_major(attrs: dict) -> bool:
    return bool(attrs.get("time_major", False))


def workspace_types(fixed: int, per_row: int) -> list[TensorType]:
    rows = TensorType(DType.f32, (BATCH, per_row // 4)) if per_row else TensorType(DType.f32, (0,))
    return [TensorType(DType.f32, (fixed // 4,)), rows]


def split_operands(attrs: dict, values: list) -> tuple[list, list, list]:
    """(carries, sequences, invariants) of a scan's operands (or body inputs)."""
    c, s = attrs["carries"], attrs["sequences"]
    return values[:c], values[c : c + s], values[c + s :]


def _infer(types, attrs):
    body = attrs.get("body")
    if not isinstance(body, Graph):
        raise ShapeError("scan needs a body graph")
    c, s, length = attrs["carries"], attrs["sequences"], attrs["length"]
    fixed, per_row = attrs["workspace"]
    if len(types) != len(body.inputs) or c + s > len(types):
        raise ShapeError(
            f"scan has {len(types)} operands; its body takes {len(body.inputs)} "
            f"({c} carries, {s} sequences, the rest invariants)"
        )
    if fixed % 4 or per_row % 4:
        raise ShapeError(f"scan workspace {attrs['workspace']} must be whole f32 words")
    carries, sequences, invariants = split_operands(attrs, list(types))
    wanted = (
        [("carry", t) for t in carries]
        + [("step", _sequence_step(t, length, is_time_major(attrs))) for t in sequences]
        + [("invariant", t) for t in invariants]
    )
    for v, (role, t) in zip(body.inputs, wanted):
        if v.role != role or v.type != t:
            raise ShapeError(f"body input %{v.name} must be {t} {role}, got {v.type} {v.role}")
    outs = [v.type for _, v in body.outputs]
    names = [name for name, _ in body.outputs[:c]]
    if names != [v.name for v in body.inputs[:c]]:
        raise ShapeError(f"the body's first {c} outputs must be named as its carries, got {names}")
    if outs[:c] != list(carries):
        shown = ", ".join(str(t) for t in outs[:c])
        raise ShapeError(f"the body's first {c} outputs ({shown}) must match the carries")
    major = is_time_major(attrs)
    result = list(carries) + [stacked_type(t, length, major) for t in outs[c:]]
    result += workspace_types(fixed, per_row)
    if attrs["saved"]:
        result += [stacked_type(t, length, major) for t in carries]
    return result


def _sequence_step(t: TensorType, length: int, time_major: bool) -> TensorType:
    if t.rank == 0 or t.shape[time_axis(t.rank - 1, time_major)] != length:
        raise ShapeError(f"a sequence of {t} does not have {length} steps on its time axis")
    return step_type(t, time_major)


_interpreters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _reference(ctx, args, attrs):
    body: Graph = attrs["body"]
    interpreter = _interpreters.get(body)
    if interpreter is None:
        interpreter = _interpreters[body] = Interpreter(body)
    c, length, major = attrs["carries"], attrs["length"], is_time_major(attrs)
    carries, sequences, invariants = split_operands(attrs, list(args))
    names = [v.name for v in body.inputs]
    per_step: list[list] = [[None] * length for _ in body.outputs[c:]]
    saved: list[list] = [[None] * length for _ in carries]
    order = range(length - 1, -1, -1) if attrs["reverse"] else range(length)
    for t in order:
        for j, value in enumerate(carries):
            saved[j][t] = value
        steps = [np.take(x, t, axis=time_axis(x.ndim - 1, major)) for x in sequences]
        out = interpreter.run(dict(zip(names, carries + steps + invariants)), ctx.float_dtype)
        values = [out[name] for name, _ in body.outputs]
        carries = values[:c]
        for j, y in enumerate(values[c:]):
            per_step[j][t] = y
    stacked = [np.stack(ys, axis=time_axis(ys[0].ndim, major)) for ys in per_step]
    workspace = [
        np.zeros(t.concrete_shape(ctx.batch), np.float32)
        for t in workspace_types(*attrs["workspace"])
    ]
    result = list(carries) + stacked + workspace
    if attrs["saved"]:
        result += [np.stack(xs, axis=time_axis(xs[0].ndim, major)) for xs in saved]
    return result


def _check_differentiable(node, g) -> None:
    attrs = node.attrs
    c = attrs["carries"]
    m = len(attrs["body"].outputs) - c
    if not attrs["saved"]:
        raise IRError("the gradient of a scan needs its saved carries (saved=true)")
    if any(not v.dtype.is_float for v in node.inputs[:c]):
        raise NotImplementedError("scan: gradients through integer carries are not supported")
    if any(not isinstance(d, Zero) for d in g[c + m + 2 :]):
        raise NotImplementedError(
            "scan: second derivatives (through saved carries) are not supported"
        )


def _backward_body(body: Graph, c: int, live_ys: list, float_seq: list, float_inv: list):
    """The body of the backward loop: one step of the forward body inlined, differentiated
    against the incoming carry cotangents and the live per-step output cotangents. Its
    carries are the carry cotangents and the invariants' accumulated gradients."""
    b_carries, b_steps, b_invariants = (
        body.inputs_with_role(role) for role in ("carry", "step", "invariant")
    )
    y_names = [name for name, _ in body.outputs[c:]]
    grad = Graph(f"{body.name}_grad")
    d_carry = [grad.add_input(f"d_{v.name}", v.type, "carry") for v in b_carries]
    d_acc = [
        grad.add_input(f"d_{b_invariants[i].name}", b_invariants[i].type, "carry")
        for i in float_inv
    ]
    carry_in = [grad.add_input(v.name, v.type, "step") for v in b_carries]
    steps = [grad.add_input(v.name, v.type, "step") for v in b_steps]
    d_step_ys = [
        grad.add_input(f"d_out_{y_names[j]}", body.outputs[c + j][1].type, "step") for j in live_ys
    ]
    inv = [grad.add_input(v.name, v.type, "invariant") for v in b_invariants]
    outs = B.inline(grad, body, carry_in + steps + inv)
    # (summed in f32: carries of narrow floats give a loss of one dtype)
    terms = [B.reduce_sum(B.cast(d * y, DType.f32)) for d, y in zip(d_carry, outs[:c])]
    terms += [B.reduce_sum(B.cast(d * outs[c + j], DType.f32)) for d, j in zip(d_step_ys, live_ys)]
    loss = terms[0] if terms else B.const(grad, 0.0)
    for term in terms[1:]:
        loss = loss + term
    wrt = carry_in + [steps[i] for i in float_seq] + [inv[i] for i in float_inv]
    grads = append_gradients(grad, loss, wrt)
    d_carry_in, d_steps, d_inv = (
        grads[:c],
        grads[c : c + len(float_seq)],
        grads[c + len(float_seq) :],
    )
    grad.set_outputs(
        [(f"d_{v.name}", d) for v, d in zip(b_carries, d_carry_in)]
        + [(f"d_{b_invariants[i].name}", a + d) for i, a, d in zip(float_inv, d_acc, d_inv)]
        + [(f"d_{b_steps[i].name}", d) for i, d in zip(float_seq, d_steps)]
    )
    return grad


def _vjp(node, g):
    _check_differentiable(node, g)
    attrs = node.attrs
    body: Graph = attrs["body"]
    graph = node.outputs[0].graph
    c, length = attrs["carries"], attrs["length"]
    m = len(body.outputs) - c
    _, sequences, invariants = split_operands(attrs, list(node.inputs))
    d_final, d_ys = [instantiate(graph, d) for d in g[:c]], g[c : c + m]
    live_ys = [j for j in range(m) if not isinstance(d_ys[j], Zero)]
    float_seq = [i for i, v in enumerate(sequences) if v.dtype.is_float]
    float_inv = [i for i, v in enumerate(invariants) if v.dtype.is_float]
    saved = list(node.outputs[c + m + 2 :])  # before _save_residuals adds results
    grad = _backward_body(body, c, live_ys, float_seq, float_inv)
    residuals = _save_residuals(node, grad, len(invariants))
    operands = (
        d_final
        + [B.zeros(graph, invariants[i].type) for i in float_inv]
        + saved
        + list(sequences)
        + [d_ys[j] for j in live_ys]
        + residuals
        + list(invariants)
    )
    result = graph.emit(
        "scan",
        operands,
        {
            "body": grad,
            "carries": c + len(float_inv),
            "sequences": c + len(sequences) + len(live_ys) + len(residuals),
            "length": length,
            "reverse": not attrs["reverse"],
            "saved": False,
            "workspace": (0, 0),
            **({"time_major": True} if is_time_major(attrs) else {}),
        },
    )
    d_inputs: list = [None] * len(node.inputs)
    d_inputs[:c] = result[:c]
    for k, i in enumerate(float_inv):
        d_inputs[c + len(sequences) + i] = result[c + k]
    first_seq = c + len(float_inv)
    for k, i in enumerate(float_seq):
        d_inputs[c + i] = result[first_seq + k]
    return d_inputs


# The results of these ops are saved for the backward pass rather than recomputed: the
# products, and the transcendental functions whose derivative their result gives
# (an LSTM's gates: the backward step then evaluates no exp at all). The rest of a
# step is cheap to redo from them. All of them are saved while they take at most
# RESIDUAL_LIMIT times the carries' bytes per step, else the products alone.
SAVED_OPS = ("matmul", "conv2d")
SAVED_FUNCTIONS = ("logistic", "tanh", "exp")
RESIDUAL_LIMIT = 16


def _row_size(values) -> int:
    """Elements per batch row (all of them for a value without the batch axis)."""
    return sum(int(np.prod([d for d in v.shape if d != BATCH], dtype=np.int64)) for v in values)


def _residual_cut(copies: list, needed: set, saved_ops: tuple) -> list[Value]:
    """The results of ``saved_ops`` nodes among ``copies`` (the forward step inlined)
    that the gradient reads, directly or through cheap ops recomputed from them: a
    saved result's own operands are then not needed."""
    needed = set(needed)
    chosen = []
    for n in reversed(copies):
        if not any(v in needed for v in n.outputs):
            continue
        if n.op in saved_ops and len(n.outputs) == 1:
            chosen.append(n.outputs[0])
        else:
            needed.update(n.inputs)
    return chosen[::-1]


def _save_residuals(node, grad: Graph, invariants: int) -> list[Value]:
    """Make the forward scan ``node`` also output, stacked, the products and gate
    activations of its step that the backward body ``grad`` needs (an LSTM's
    recurrent product's gates), and give them to ``grad`` as per-step inputs: the
    backward body then recomputes only the cheap elementwise part of the step. ``grad``
    starts with the forward body inlined (``B.inline``, one node per body node, in
    order). Returns the stacked values, the backward scan's extra sequences; none when
    they would take too much memory."""
    body: Graph = node.attrs["body"]
    copies = grad.nodes[: len(body.nodes)]
    original = {
        copy_value: body_value
        for copy, body_node in zip(copies, body.nodes)
        for copy_value, body_value in zip(copy.outputs, body_node.outputs)
    }
    needed = {v for n in grad.nodes[len(body.nodes) :] for v in n.inputs}
    needed |= {v for _, v in grad.outputs}
    limit = RESIDUAL_LIMIT * max(_row_size(body.inputs[: node.attrs["carries"]]), 1)
    chosen = []
    for saved_ops in (SAVED_OPS + SAVED_FUNCTIONS, SAVED_OPS):
        chosen = _residual_cut(copies, needed, saved_ops)
        if _row_size(chosen) <= limit:
            break
        chosen = []
    if not chosen:
        return []
    c, length = node.attrs["carries"], node.attrs["length"]
    first_new = len(body.outputs) - c  # per-step outputs so far
    body.set_outputs(body.outputs + [(f"residual_{k}", original[v]) for k, v in enumerate(chosen)])
    _interpreters.pop(body, None)
    major = is_time_major(node.attrs)
    stacked = [
        Value(node.outputs[0].graph, stacked_type(v.type, length, major), node) for v in chosen
    ]
    outputs = list(node.outputs)
    at = c + first_new
    node.set_results(outputs[:at] + stacked + outputs[at:])
    inputs = [grad.add_input(f"residual_{k}", v.type, "step") for k, v in enumerate(chosen)]
    del grad.inputs[-len(inputs) :]
    first_invariant = len(grad.inputs) - invariants
    grad.inputs[first_invariant:first_invariant] = inputs
    replace = dict(zip(chosen, inputs))
    for n in grad.nodes:
        n.inputs = tuple(replace.get(v, v) for v in n.inputs)
    grad.outputs = [(name, replace.get(v, v)) for name, v in grad.outputs]
    grad.drop_unused_nodes()  # the recomputed products the residuals replace
    return stacked


register(
    OpDef(
        "scan",
        "loop",
        None,
        _infer,
        _reference,
        _vjp,
        traits=T.Traits(T.Pattern.OPAQUE, nested_graph=True),
    )
)
