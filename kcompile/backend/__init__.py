"""``keras.backend``: the session's names and random seed, and the tensors and variables that tracing works with."""

from kcompile.backend.session import (
    clear_session,
    draw_seed,
    epsilon,
    rng,
    set_random_seed,
    snake_case,
    unique_name,
)

__all__ = [
    "clear_session",
    "draw_seed",
    "epsilon",
    "rng",
    "set_random_seed",
    "snake_case",
    "unique_name",
]
