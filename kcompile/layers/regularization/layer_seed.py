"""The seed of a noise layer (SpatialDropout, GaussianNoise, GaussianDropout): its random
numbers come from the step's counter-based generator (``random_uniform``, and
``kcompile.random.standard_normal`` for normal draws), keyed by this seed, so training is
reproducible."""

from __future__ import annotations

from kcompile.backend import session as backend


def layer_seed(seed: int | None) -> int:
    return backend.draw_seed() if seed is None else int(seed)
