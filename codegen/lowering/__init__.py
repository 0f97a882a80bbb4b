"""Lowering: a planned graph to LLVM IR, a kernel per node (``module``, ``step``), each op
family's emitter (``emitters``, ``fused``, ``products``, ``scan``, ...), and the loops and
math they are written in."""
