"""The per-channel scale (gamma) and shift (beta) that Layer- and GroupNormalization
apply after normalizing."""

from __future__ import annotations

from kcompile.ir import Value
from kcompile.layers.layer import Layer, TraceContext


def scale_and_shift(ctx: TraceContext, layer: Layer, y: Value) -> Value:
    """``y · gamma + beta``, each where the layer has it (scale=, center=)."""
    if layer.gamma is not None:
        y = y * ctx.weight(layer.gamma)
    return y + ctx.weight(layer.beta) if layer.beta is not None else y
