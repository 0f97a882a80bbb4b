"""Session state: unique layer names and the seeded random source.

As in Keras, names are unique per session (``dense``, ``dense_1``, ...) and
``clear_session()`` starts the counts again.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

_name_counts: dict[str, int] = defaultdict(int)
_rng = np.random.default_rng()


def snake_case(name: str) -> str:
    """Keras's to_snake_case: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d, ReLU -> re_lu."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def auto_name(cls: type) -> str:
    """Keras's name for an object of class ``cls`` given none (a layer, an optimizer): the
    class in snake case, numbered in the session (``dense_1``, ``sgd``, ``adam_w``)."""
    return unique_name(snake_case(cls.__name__))


def clear_session() -> None:
    """Forget layer names, as ``keras.backend.clear_session()`` does."""
    _name_counts.clear()


def set_random_seed(seed: int) -> None:
    """Seed everything kcompile draws at random: initializers, dropout seeds, shuffling."""
    global _rng
    _rng = np.random.default_rng(seed)
    np.random.seed(seed % (2**32))


def rng() -> np.random.Generator:
    return _rng


def draw_seed() -> int:
    return int(_rng.integers(0, 2**31 - 1))


def epsilon() -> float:
    """Keras's fuzz factor: clipping bound of probability cross-entropies."""
    return 1e-7
