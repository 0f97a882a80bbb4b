"""kcompile's graph IR: types, ops, graphs, text form, verifier and reference interpreter.

``ir`` knows nothing of Keras or LLVM; it imports only numpy and networkx.
"""

# Last: registering the ops needs the modules above, and the ops' users need them all.
import kcompile.ir.ops  # noqa: F401
from kcompile.ir.graph import INPUT_ROLES, Graph, IRError, Node, Value
from kcompile.ir.interpreter import FeedError, Interpreter, interpret
from kcompile.ir.parser import IRParseError, parse_graph
from kcompile.ir.printer import print_graph
from kcompile.ir.registry import OpDef, all_ops, get_op
from kcompile.ir.types import BATCH, DType, ShapeError, TensorType, boolean, f32, i32
from kcompile.ir.verify import VerifyError, first_difference, structurally_equal, verify

__all__ = [
    "BATCH",
    "INPUT_ROLES",
    "DType",
    "FeedError",
    "Graph",
    "IRError",
    "IRParseError",
    "Interpreter",
    "Node",
    "OpDef",
    "ShapeError",
    "TensorType",
    "Value",
    "VerifyError",
    "all_ops",
    "boolean",
    "f32",
    "first_difference",
    "get_op",
    "i32",
    "interpret",
    "parse_graph",
    "print_graph",
    "structurally_equal",
    "verify",
]
