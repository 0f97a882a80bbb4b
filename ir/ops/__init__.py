"""Primitive ops, one module per family; importing this package registers them all."""

from kcompile.ir.ops import (  # noqa: F401
    batch_rows,
    constant,
    custom_vjp,
    elementwise,
    fused,
    indexing,
    int4,
    linalg,
    patches,
    random,
    reduce,
    replica,
    row_gather,
    scan,
    shape,
)
