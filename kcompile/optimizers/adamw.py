"""Keras's AdamW: Adam with decoupled weight decay (0.004 by default)."""

from __future__ import annotations

from typing import Any

from kcompile.optimizers.adam import Adam


class AdamW(Adam):
    def __init__(
        self, learning_rate: float = 0.001, weight_decay: float = 0.004, **kwargs: Any
    ) -> None:
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)
