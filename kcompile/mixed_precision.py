"""``keras.mixed_precision``: Keras's legacy names for dtype policies."""

from __future__ import annotations

from typing import Any

from kcompile.dtype_policies import DTypePolicy, dtype_policy, set_dtype_policy
from kcompile.optimizers.loss_scale_optimizer import LossScaleOptimizer

Policy = DTypePolicy


def set_global_policy(policy: Any) -> None:
    set_dtype_policy(policy)


def global_policy() -> DTypePolicy:
    return dtype_policy()


__all__ = [
    "DTypePolicy",
    "LossScaleOptimizer",
    "Policy",
    "dtype_policy",
    "global_policy",
    "set_dtype_policy",
    "set_global_policy",
]
