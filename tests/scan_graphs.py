"""The attributes of a ``scan`` node as the tests build them by hand."""

from __future__ import annotations

from kcompile.ir import Graph


def scan_attrs(
    body: Graph,
    length: int,
    carries: int = 1,
    sequences: int = 1,
    reverse: bool = False,
    saved: bool = False,
) -> dict:
    """A scan of ``body`` over ``length`` steps (no workspace: the planner sizes it)."""
    return {
        "body": body,
        "carries": carries,
        "sequences": sequences,
        "length": length,
        "reverse": reverse,
        "saved": saved,
        "workspace": (0, 0),
    }
