"""Every exception type kcompile raises for a user's mistake, in one module.

Each type is defined beside the code that raises it (the IR's feed checks know nothing
of the front end), and is given its public name here: a traceback reads
``kcompile.errors.FeedError: input 'y' ...``, and ``except kcompile.errors.FeedError``
catches it. Each is a ``ValueError`` or ``TypeError``, so code written for Keras, which
catches those, keeps working. Errors that are not the user's to fix (a memory-check
failure, an artifact failing its self-check, a link failure) are ``RuntimeError``\\s.
"""

from __future__ import annotations

from kcompile.artifact.container import ArtifactError
from kcompile.artifact.elf import ElfError
from kcompile.artifact.loaded import SelfCheckError
from kcompile.backend.symbolic import TraceError
from kcompile.ir.graph import IRError
from kcompile.ir.interpreter import FeedError
from kcompile.ir.parser import IRParseError
from kcompile.ir.types import ShapeError
from kcompile.ir.verify import VerifyError
from kcompile.runtime.guarded import MemoryCheckError

__all__ = [
    "ArtifactError",
    "ElfError",
    "FeedError",
    "IRError",
    "IRParseError",
    "MemoryCheckError",
    "SelfCheckError",
    "ShapeError",
    "TraceError",
    "VerifyError",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
