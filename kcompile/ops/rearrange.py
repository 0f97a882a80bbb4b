"""``keras.ops.rearrange``: Keras's einops-style ``rearrange`` (its
``keras/src/ops/einops.py``), a reshape that splits the grouped input axes, a transpose
and a reshape that merges the grouped output axes, so it runs eagerly, traced and on
the functional API's symbolic tensors like those ops. An axis of unknown size (the
batch) may stand alone or in a group whose other sizes are known.
"""

from __future__ import annotations

import math
import re

import numpy as np

from kcompile.ops import numpy as N

_AXES = r"\w+|\(.*?\)"


def _dims(x) -> tuple:
    """The static shape (None for the batch of a traced or symbolic tensor)."""
    return tuple(getattr(x, "shape", None) or np.shape(x))


def _groups(axes: list[str]) -> list[list[str]]:
    """Each axis of a side of the pattern as its list of names ("(h w)" → [h, w])."""
    out = []
    for axis in axes:
        grouped = re.match(r"\(([\w\s]+)\)", axis)
        out.append(grouped.group(1).split() if grouped else [axis])
    return out


def _sizes(groups: list[list[str]], shape: tuple, lengths: dict) -> dict:
    """Every name's size: given, read from the shape, or inferred (one per group)."""
    sizes = dict(lengths)
    if len(groups) != len(shape):
        raise ValueError(
            f"keras.ops.rearrange: the pattern names {len(groups)} axes, but the tensor has "
            f"rank {len(shape)} (shape {shape})"
        )
    for group, dim in zip(groups, shape):
        if len(group) == 1:
            sizes.setdefault(group[0], dim)
            continue
        unknown = [a for a in group if a not in sizes]
        if len(unknown) > 1:
            raise ValueError(
                f"keras.ops.rearrange: give the lengths of all but one of {unknown} "
                "(e.g. rearrange(x, pattern, h1=2))"
            )
        if unknown:
            known = math.prod(sizes[a] for a in group if a != unknown[0])
            sizes[unknown[0]] = None if dim is None else dim // known
    return sizes


def _shape(groups: list[list[str]], sizes: dict) -> tuple:
    """The shape with each group merged; an unknown size (the batch) becomes -1."""
    shape = []
    for group in groups:
        dims = [sizes[a] for a in group]
        shape.append(-1 if any(d is None for d in dims) else math.prod(dims))
    if shape.count(-1) > 1:
        raise ValueError("keras.ops.rearrange: more than one axis of unknown size")
    return tuple(shape)


def rearrange(tensor, pattern: str, **axes_lengths: int):
    """Rearranges the axes of ``tensor`` by an einops pattern, e.g.
    ``"b h w c -> b c h w"``, ``"b (h1 h) (w1 w) c -> (b h1 w1) h w c"`` (h1=2, w1=2)."""
    try:
        source, target = re.split(r"\s*->\s*", pattern)
    except ValueError:
        raise ValueError(
            f"keras.ops.rearrange: the pattern needs one '->', got {pattern!r}"
        ) from None
    inputs = _groups(re.findall(_AXES, source))
    outputs = _groups(re.findall(_AXES, target))
    shape = _dims(tensor)
    sizes = _sizes(inputs, shape, axes_lengths)
    flat_in = [a for g in inputs for a in g]
    flat_out = [a for g in outputs for a in g]
    if sorted(flat_in) != sorted(flat_out) or len(set(flat_in)) != len(flat_in):
        raise ValueError(
            f"keras.ops.rearrange: the two sides of {pattern!r} must name the same axes, each once"
        )
    split = tuple(-1 if sizes[a] is None else sizes[a] for a in flat_in)
    if split != tuple(-1 if d is None else d for d in shape):
        tensor = N.reshape(tensor, split)
    order = [flat_in.index(a) for a in flat_out]
    if order != list(range(len(order))):
        tensor = N.transpose(tensor, order)
    merged = _shape(outputs, sizes)
    if merged != tuple(-1 if d is None else d for d in _dims(tensor)):
        tensor = N.reshape(tensor, merged)
    return tensor


__all__ = ["rearrange"]
