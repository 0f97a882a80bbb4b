"""Ahead-of-time artifacts: ``export`` writes one (needs the compiler), ``load`` reads
one and runs it with numpy and ctypes alone.

Loading an artifact runs the native code inside it: load only artifacts you trust.
"""

from __future__ import annotations

from kcompile.artifact.container import ArtifactError
from kcompile.artifact.loaded import LoadedModel, SelfCheckError, load


def export(model, path: str, **kwargs) -> dict:
    """See ``kcompile.artifact.build.export``."""
    from kcompile.artifact.build import export as build

    return build(model, path, **kwargs)


__all__ = ["ArtifactError", "LoadedModel", "SelfCheckError", "export", "load"]
