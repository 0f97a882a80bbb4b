"""Forking children that compile while this process goes on.

After a fork, every page either process writes is copied first. The garbage collector
writes to the header of every object it examines, so a collection in the parent would
copy most of its heap, one page fault at a time (lowering the CNN's train step took
92 ms instead of 22 beside a child building the runtime library). The collector's
objects are frozen (``gc.freeze``: left alone by collections) while any child lives.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable

_lock = threading.Lock()
_children = 0


def can_fork() -> bool:
    """Whether a child may be forked: forking an interpreter with other threads running
    risks a child stuck on a lock one of them held."""
    return hasattr(os, "fork") and threading.active_count() == 1


def spawn(work: Callable[[], None]) -> int:
    """A forked child that runs ``work`` and leaves without the parent's exit handlers
    (status 0 if ``work`` returned, 1 if it raised); its pid."""
    pid = fork()
    if pid == 0:
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    return pid


def fork() -> int:
    """``os.fork()``, with the collector's objects frozen until ``reaped`` is called for
    the child."""
    global _children
    with _lock:
        gc.freeze()
        _children += 1
    pid = os.fork()
    if pid == 0:
        gc.unfreeze()
    return pid


def reaped() -> None:
    """A child of ``fork`` has ended (waited for): unfreeze once none is left."""
    global _children
    with _lock:
        _children = max(0, _children - 1)
        if _children == 0:
            gc.unfreeze()
