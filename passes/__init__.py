"""Graph -> Graph transforms and the pass manager. ``passes`` imports only ``ir``."""

from kcompile.passes.autodiff import append_gradients, differentiate
from kcompile.passes.dce import eliminate_dead_code
from kcompile.passes.fold import eliminate_common_subexpressions, fold_constants
from kcompile.passes.fuse import fuse
from kcompile.passes.manager import Pass, PassManager, PipelineReport
from kcompile.passes.pipeline import PIPELINE, default_passes
from kcompile.passes.simplify import simplify

__all__ = [
    "PIPELINE",
    "Pass",
    "PassManager",
    "PipelineReport",
    "append_gradients",
    "default_passes",
    "differentiate",
    "eliminate_common_subexpressions",
    "eliminate_dead_code",
    "fold_constants",
    "fuse",
    "simplify",
]
