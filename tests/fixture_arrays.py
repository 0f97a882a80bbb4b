"""Reading the numbered arrays the fixture scripts write (``<program>/<kind><i>``)."""

from __future__ import annotations

import numpy as np


def numbered(fixtures, name: str, kind: str) -> list[np.ndarray]:
    """``name/kind0``, ``name/kind1``, ... of an ``np.load``-ed fixture, in order."""
    found, i = [], 0
    while f"{name}/{kind}{i}" in fixtures:
        found.append(fixtures[f"{name}/{kind}{i}"])
        i += 1
    return found
