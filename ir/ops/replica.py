"""``replica_sum``: a tensor summed over the replicas of a data-parallel job.

Each replica (an MPI rank) computes the op on its own tensor and every one gets the
sum; synchronized BatchNormalization sums its statistics this way. With one replica,
and on the reference interpreter, it is the identity. Its gradient is the same sum of
the incoming gradients: each replica's output depends on every replica's input.
Compiled code calls the runtime library's hook (``codegen.library.replicas``) on the result,
once per step, in graph order, which is the same on every replica.
"""

from __future__ import annotations

import numpy as np

from kcompile.ir import traits as T
from kcompile.ir.ops.common import expect_arity, expect_dtype
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import DType


def _infer(types, attrs):
    expect_arity(types, 1)
    expect_dtype(types[0], DType.f32, "replica_sum")
    return [types[0]]


def _reference(ctx, args, attrs):
    return [np.array(args[0], copy=True)]


def _vjp(node, g):
    from kcompile.ir import build as B

    return [B.replica_sum(g[0])]


register(
    OpDef(
        "replica_sum",
        "replica",
        1,
        _infer,
        _reference,
        _vjp,
        # A collective: its own kernel, never computed at compile time.
        traits=T.Traits(T.Pattern.OPAQUE, folds=False),
    )
)
