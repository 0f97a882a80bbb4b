"""What a fuzzer layer kind is: the shared vocabulary of the catalogue modules.

A family of layers joins the fuzzer by a module (``catalogue_<family>.py``) that builds its
``LayerKind`` entries from these and exports them as ``KINDS``; ``catalogue.py`` gathers
them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

Shape = tuple[int, ...]


class Invalid(ValueError):
    """The layer does not apply to this input with these arguments."""


@dataclass(frozen=True)
class LayerKind:
    name: str  # the class name in kcompile.layers
    ranks: tuple[int, ...]  # input ranks it applies to (without the batch axis)
    draw: Callable[[random.Random, Shape], dict]
    shape: Callable[[dict, Shape], Shape]
    weight: float = 1.0


def window_out(size: int, k: int, stride: int, padding: str, dilation: int = 1) -> int:
    if padding in ("same", "causal"):
        return math.ceil(size / stride)
    span = dilation * (k - 1) + 1
    if size < span:
        raise Invalid(f"window {span} longer than {size}")
    return (size - span) // stride + 1


def pick(rng: random.Random, values):
    return values[rng.randrange(len(values))]


def same(args: dict, s: Shape) -> Shape:
    return s


def no_args(rng: random.Random, shape: Shape) -> dict:
    return {}
