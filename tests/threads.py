"""Running the runtime's thread pool on a chosen number of threads for a while."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kcompile.codegen.library.runtime_library import Runtime, runtime


@contextlib.contextmanager
def on_threads(count: int) -> Iterator[Runtime]:
    """The runtime with ``count`` threads taking part in each job; the number it had is
    restored after, whatever happens inside."""
    rt = runtime()
    before = rt.threads()
    rt.set_threads(count)
    try:
        yield rt
    finally:
        rt.set_threads(before)
