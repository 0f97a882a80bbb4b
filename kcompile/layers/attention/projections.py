"""The EinsumDense projections Keras's attention layers hold (``MultiHeadAttention``'s and
``GroupQueryAttention``'s query, key, value, output and gate), made as Keras makes them."""

from __future__ import annotations

from typing import Any

from kcompile.layers.core.einsum_dense import EinsumDense


def projection(
    layer: Any,
    equation: str,
    output_shape: tuple,
    bias_axes: str,
    name: str,
    activity_regularizer: Any,
    **extra: Any,
) -> EinsumDense:
    """An EinsumDense with ``layer``'s weight arguments: a clone of each initializer (one
    instance would draw the same values for every kernel), its regularizers, constraints
    and dtype policy, ``activity_regularizer`` (Keras passes the attention's to each
    projection), a bias only where ``layer.use_bias``; ``extra``: more of EinsumDense's
    arguments (a gate's activation)."""
    return EinsumDense(
        equation,
        output_shape=output_shape,
        bias_axes=bias_axes if layer.use_bias else None,
        name=name,
        kernel_initializer=layer.kernel_initializer.clone(),
        bias_initializer=layer.bias_initializer.clone(),
        kernel_regularizer=layer.kernel_regularizer,
        bias_regularizer=layer.bias_regularizer,
        activity_regularizer=activity_regularizer,
        kernel_constraint=layer.kernel_constraint,
        bias_constraint=layer.bias_constraint,
        dtype=layer.dtype_policy,
        **extra,
    )
