"""Graph -> Graph transforms and the pass manager. ``passes`` imports only ``ir``."""

from passes.autodiff import append_gradients, differentiate
from passes.dce import eliminate_dead_code
from passes.fold import eliminate_common_subexpressions, fold_constants
from passes.fuse import fuse
from passes.manager import Pass, PassManager, PipelineReport
from passes.pipeline import PIPELINE, default_passes
from passes.simplify import simplify

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
