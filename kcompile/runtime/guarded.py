"""The checking mode's buffers (``KCOMPILE_CHECK=1``): every buffer of a step in its own
allocation between two guard zones, sized for exactly the batch being run, and every
bound array (weights, state) copied into such a buffer around each call. Native code
checks the zones after every kernel (``codegen.lowering.guards``); a changed zone raises
``MemoryCheckError`` naming the first kernel that wrote outside its buffers.

It trades the memory plan's sharing for precision: a write past the end of one buffer
cannot land, unseen, in another one.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from kcompile.ir.buffers import GUARD_BYTE, GUARD_BYTES


class MemoryCheckError(RuntimeError):
    """A kernel wrote outside the buffers it was given."""


def checking() -> bool:
    """Whether ``KCOMPILE_CHECK`` asks for the checking mode."""
    return os.environ.get("KCOMPILE_CHECK", "") not in ("", "0")


class GuardedBuffers:
    """Zones around every buffer; the table of zone pointers native code reads."""

    def __init__(self, state_address: int, kernel_names: list[str]) -> None:
        self.state = (ctypes.c_int64 * 3).from_address(state_address)
        self.kernel_names = kernel_names
        self._blocks: list[np.ndarray] = []
        self._bound: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # (user's array, its copy)
        self._table = None
        self._stale = False  # blocks were added since the table native code reads was made

    def reset(self) -> None:
        self._blocks = []
        self._bound = {}
        self._stale = True

    def allocate(self, nbytes: int) -> np.ndarray:
        """``nbytes`` of zeroed storage between two guard zones (64-byte aligned)."""
        raw = np.empty(nbytes + 2 * GUARD_BYTES + 64, np.uint8)
        start = -raw.ctypes.data % 64
        block = raw[start : start + nbytes + 2 * GUARD_BYTES]
        block[:GUARD_BYTES] = GUARD_BYTE
        block[GUARD_BYTES + nbytes :] = GUARD_BYTE
        block[GUARD_BYTES : GUARD_BYTES + nbytes] = 0
        self._blocks.append(block)
        self._stale = True
        return block[GUARD_BYTES : GUARD_BYTES + nbytes]

    def bind(self, key: int, array: np.ndarray) -> np.ndarray:
        """A guarded copy of a bound array, kept in step with it around every call."""
        copy = self.allocate(array.nbytes).view(array.dtype).reshape(array.shape)
        self._bound[key] = (array, copy)
        return copy

    def _publish(self) -> None:
        """The zone table for the blocks as they are now: made once per layout, before
        the first call that uses it."""
        if not self._stale:
            return
        self._stale = False
        zones = []
        for block in self._blocks:
            zones.append(block.ctypes.data)
            zones.append(block.ctypes.data + len(block) - GUARD_BYTES)
        self._table = (ctypes.c_void_p * max(len(zones), 1))(*zones)
        self.state[0] = ctypes.addressof(self._table)
        self.state[1] = len(zones)

    def wrap(self, call):
        """``call`` (an entry or epoch function) with the bound arrays copied in before
        and out after, and the zones' verdict raised."""

        def checked(*args):
            self._publish()
            for array, copy in self._bound.values():
                np.copyto(copy, array)
            self.state[2] = -1
            result = call(*args)
            for array, copy in self._bound.values():
                np.copyto(array, copy)
            self.raise_if_broken()
            return result

        return checked

    def raise_if_broken(self) -> None:
        index = self.state[2]
        if index < 0:
            return
        self.state[2] = -1
        for block in self._blocks:
            block[:GUARD_BYTES] = GUARD_BYTE
            block[-GUARD_BYTES:] = GUARD_BYTE
        name = self.kernel_names[index] if index < len(self.kernel_names) else f"#{index}"
        raise MemoryCheckError(
            f"kernel {name} wrote outside its buffers (a guard zone changed; "
            "KCOMPILE_CHECK=1 is on)"
        )
