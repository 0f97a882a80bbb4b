"""Lowering planned graphs to LLVM IR (llvmlite). Imports only ``ir`` and llvmlite.

The LLVM backend is the subject of the next milestone; until it lands, every
graph runs on the numpy reference interpreter (``compile(backend="reference")``).
"""
