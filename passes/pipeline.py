"""The standard pipeline, in order. ``KCOMPILE_DISABLE=fuse,...`` skips passes by name
(as XLA's --xla_disable_hlo_passes does), e.g. to measure what fusion buys."""

from __future__ import annotations

import os

from kcompile.passes.batch_rows import batch_rows
from kcompile.passes.dce import eliminate_dead_code
from kcompile.passes.fold import eliminate_common_subexpressions, fold_constants
from kcompile.passes.fuse import fuse
from kcompile.passes.fuse_rows import fuse_rows
from kcompile.passes.int4_products import hold_int4_products
from kcompile.passes.int8_products import hold_integer_products
from kcompile.passes.loops import hoist_from_loops
from kcompile.passes.manager import Pass
from kcompile.passes.memory import plan_memory
from kcompile.passes.narrow import narrow_slices
from kcompile.passes.narrow_floats import hold_narrow_floats, round_in_products
from kcompile.passes.narrow_storage import store_narrow
from kcompile.passes.reductions import simplify_reductions
from kcompile.passes.schedule import schedule
from kcompile.passes.simplify import simplify
from kcompile.passes.sink_reshapes import sink_reshapes


def fuse_and_clean(graph):
    return eliminate_dead_code(fuse(graph))


PIPELINE = [
    Pass("simplify", simplify),
    # Before common subexpressions: the sums it puts in one order are then merged.
    Pass("simplify_reductions", simplify_reductions),
    # Before fusion: a slice still sees the ops that make its operand.
    Pass("narrow_slices", narrow_slices),
    Pass("fold_constants", fold_constants),
    Pass("eliminate_common_subexpressions", eliminate_common_subexpressions),
    Pass("eliminate_dead_code", eliminate_dead_code),
    Pass("hoist_from_loops", hoist_from_loops),
    # Before fusion, so that each rounding joins the kernel of the op it rounds.
    Pass("hold_narrow_floats", hold_narrow_floats),
    # Reads whether the target has a bf16 engine: without one, it moves fewer roundings.
    Pass("round_in_products", round_in_products, ("bf16_engine",)),
    # Before fusion (and the integer products, whose casts it puts next to them): the
    # ops after a projection's split into heads join its epilogue.
    Pass("sink_reshapes", sink_reshapes),
    # Before fusion: the operands' widenings and the rescale join their kernels.
    Pass("hold_integer_products", hold_integer_products),
    # Before fusion: a product of an int4 kernel takes its epilogue like any other.
    Pass("hold_int4_products", hold_int4_products),
    # Row kernels first: what they leave, loop and product-epilogue fusion take.
    Pass("fuse_rows", fuse_rows),
    Pass("fuse", fuse_and_clean),
    # After fusion: it chains whole kernels (products, row kernels) a batch row at a time.
    Pass("batch_rows", batch_rows),
    # After fusion: which kernels make and read a value decides whether it can be bf16.
    Pass("store_narrow", store_narrow, ("bf16_engine",)),
    Pass("schedule", schedule),
    Pass("plan_memory", plan_memory),
]


def default_passes(disable: set[str] | None = None) -> list[Pass]:
    if disable is None:
        text = os.environ.get("KCOMPILE_DISABLE", "")
        disable = {p.strip() for p in text.split(",") if p.strip()}
    unknown = disable - {p.name for p in PIPELINE}
    if unknown:
        raise ValueError(
            f"KCOMPILE_DISABLE names unknown passes {sorted(unknown)}; passes: "
            f"{', '.join(p.name for p in PIPELINE)}"
        )
    return [p for p in PIPELINE if p.name not in disable]
