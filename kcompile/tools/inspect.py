"""Looking inside a compiled model: every stage of the pipeline, the memory report,
Graphviz, and ``check``, which finds the first pass (or the code generator) that
changes what a step computes."""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcompile.ir import DType, Graph, Interpreter, parse_graph
from kcompile.models import graphs as G
from kcompile.passes import PassManager, default_passes
from kcompile.passes.manager import DUMP_FILE, Pass

STEPS = G.STEPS


def pipeline_stages(
    model, step: str = "train", passes: list[Pass] | None = None, input_shapes: tuple = ()
) -> list[tuple[str, str]]:
    """(stage name, graph text) after tracing, autodiff and every pass of the pipeline;
    ``input_shapes`` sizes the dimensions the model's Inputs leave unknown."""
    from kcompile.runtime.prepared import target_options

    passes = default_passes() if passes is None else passes
    manager = PassManager(passes, keep=True, options=target_options())
    manager.run(G.trace_step(model, step, None, manager.stage, input_shapes).graph)
    return manager.snapshots


def dump_step(model, step: str, folder: str, input_shapes: tuple = ()) -> list[str]:
    """Compile ``step`` (``train``, ``eval`` or ``predict``) as fit, evaluate and predict
    do, dumping into ``folder`` exactly what ``KCOMPILE_DUMP=folder`` writes for it (the
    same pass instrument and codegen dumper write it): ``folder/<graph>/`` (``train_step``,
    ``eval_step``, ``predict``) with ``NNN_<stage>.kir`` after tracing and every pass, then
    ``NNN_llvm.ll``, ``NNN_llvm.opt.ll`` and ``NNN_asm.s``. The paths, in order."""
    from kcompile.runtime import make_executable

    manager = PassManager(default_passes(), dump_dir=folder)
    traced = G.trace_step(model, step, None, manager.stage, input_shapes)
    make_executable(traced.graph, "llvm", manager)
    graph_folder = os.path.join(folder, traced.graph.name)
    names = sorted(n for n in os.listdir(graph_folder) if DUMP_FILE.match(n))
    return [os.path.join(graph_folder, name) for name in names]


def dump_all(model, folder: str, input_shapes: tuple = ()) -> list[str]:
    """``dump_step`` for every step: the tree ``KCOMPILE_DUMP=folder`` writes when fit,
    evaluate and predict each compile. The paths."""
    return [path for step in STEPS for path in dump_step(model, step, folder, input_shapes)]


def stage_names(model, step: str = "train") -> list[str]:
    return [name for name, _ in pipeline_stages(model, step)]


def stage_graph(model, step: str, stage: str, input_shapes: tuple = ()) -> Graph:
    stages = pipeline_stages(model, step, None, input_shapes)
    for name, text in stages:
        if name == stage:
            return parse_graph(text, f"<{step}:{stage}>")
    raise ValueError(
        f"no stage {stage!r} for step {step}; stages: {', '.join(n for n, _ in stages)}"
    )


def to_dot(graph: Graph) -> str:
    """Graphviz text: inputs as boxes, nodes labelled with op and layer."""
    ids: dict = {}
    lines = [f'digraph "{graph.name}" {{', "  rankdir=TB;", "  node [fontsize=10];"]
    for i, v in enumerate(graph.inputs):
        ids[v] = f"in{i}"
        lines.append(f'  in{i} [shape=box, label="{v.name}\\n{v.type}"];')
    for i, node in enumerate(graph.nodes):
        label = node.op
        if node.traits.kernel_body:
            label += f":{node.attrs['kind']} ({len(node.attrs['body'].nodes)} ops)"
        lines.append(f'  n{i} [label="{label}\\n{node.layer}\\n{node.outputs[0].type}"];')
        for v in node.outputs:
            ids[v] = f"n{i}"
        for v in node.inputs:
            lines.append(f"  {ids[v]} -> n{i};")
    for name, v in graph.outputs:
        lines.append(f'  "out:{name}" [shape=box, style=dashed];')
        lines.append(f'  {ids[v]} -> "out:{name}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- check ----------------------------------------------------------------------


def probe_feeds(model, graph: Graph, batch: int = 7, seed: int = 0) -> dict[str, np.ndarray]:
    """A probe batch for every input: the model's own weights and optimizer state,
    random data, and labels in range for the loss."""
    rng = np.random.default_rng(seed)
    weights = {v.path: v.value for v in model.weights}
    opt = model.optimizer
    state = opt.state_arrays() if opt is not None and opt.built else {}
    classes = [t.shape[-1] for t in model.outputs]
    feeds = {}
    for v in graph.inputs:
        if v.name in weights:
            feeds[v.name] = weights[v.name].copy()
        elif v.name in state:
            feeds[v.name] = np.array(state[v.name])
        else:
            shape = v.type.concrete_shape(batch)
            if v.dtype is DType.i32:
                feeds[v.name] = rng.integers(0, max(classes), shape).astype(np.int32)
            elif v.dtype is DType.bool:
                feeds[v.name] = rng.random(shape) < 0.5
            else:
                feeds[v.name] = rng.random(shape).astype(np.float32)
    return feeds


@dataclass
class CheckResult:
    step: str
    stages: list[str]
    culprit: str | None = None  # the pass (or "codegen") whose results differ
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.culprit is None

    def text(self) -> str:
        if self.ok:
            return (
                f"{self.step}: every stage ({', '.join(self.stages)}) and the compiled code "
                "compute the same as the traced graph"
            )
        return "\n".join([f"{self.step}: results change in {self.culprit}", *self.details])


def _differences(got: dict, want: dict, rtol: float, atol: float) -> list[str]:
    out = []
    for name, expected in want.items():
        actual = np.asarray(got[name], dtype=np.float64)
        expected = np.asarray(expected, dtype=np.float64)
        if actual.shape != expected.shape:
            out.append(f"  output {name}: shape {actual.shape}, expected {expected.shape}")
            continue
        bad = ~np.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
        if bad.any():
            i = np.unravel_index(np.argmax(np.abs(actual - expected) * bad), bad.shape)
            out.append(
                f"  output {name}: {int(bad.sum())} of {bad.size} values differ; at "
                f"{tuple(int(j) for j in i)}: {actual[i]:.6g}, expected "
                f"{expected[i]:.6g}"
            )
    return out


def check(
    model,
    step: str = "train",
    passes: list[Pass] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    backend: bool = True,
) -> CheckResult:
    """Run a probe batch after every stage (reference interpreter) and through the
    compiled code; report the first stage whose results differ from the traced graph."""
    stages = pipeline_stages(model, step, passes)
    # The reference: the complete step as traced (after autodiff for a train step).
    first = [name for name, _ in stages].index("autodiff" if step == "train" else "traced")
    base_text = stages[first][1]
    base = parse_graph(base_text)
    feeds = probe_feeds(model, base)
    want = Interpreter(base).run(feeds)
    result = CheckResult(step, [name for name, _ in stages[first:]])
    previous = base_text
    for name, text in stages[first + 1 :]:
        graph = parse_graph(text, f"<{name}>")
        diffs = _differences(Interpreter(graph).run(feeds), want, rtol, atol)
        if diffs:
            result.culprit = f"pass {name}"
            result.details = [*diffs, "  IR lines the pass changed:", *_ir_diff(previous, text)]
            return result
        previous = text
    if backend:
        from kcompile.runtime.native import NativeExecutable
        from kcompile.version import __version__

        graph = parse_graph(stages[-1][1])
        exe = NativeExecutable(graph, __version__)
        bound = {}
        for v in graph.inputs:
            if v.role != "data":
                bound[v.name] = np.array(feeds[v.name])
                exe.bind(v.name, bound[v.name])
        got = dict(exe({v.name: feeds[v.name] for v in graph.inputs if v.role == "data"}))
        got.update({name: bound[name] for name in want if name in bound})
        diffs = _differences(got, want, rtol, atol)
        if diffs:
            result.culprit = "codegen (compiled code vs the final graph)"
            result.details = diffs
    return result


def _unnumbered(line: str) -> str:
    return re.sub(r"%\d+", "%_", line)


@dataclass(frozen=True)
class IRChange:
    """One run of changed lines between two graph texts: ``removed`` (lines of the text
    before, from its line ``before_at``, counted from 0) replaced by ``added`` (lines of
    the text after, from its line ``after_at``); lines as the texts have them."""

    before_at: int
    after_at: int
    removed: tuple[str, ...]
    added: tuple[str, ...]


def ir_diff(before: str, after: str) -> list[IRChange]:
    """The lines a pass changed, matched with value numbers ignored (an inserted node
    renumbers the rest without changing it), in order."""
    a, b = before.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(
        None, [_unnumbered(x) for x in a], [_unnumbered(x) for x in b], autojunk=False
    )
    return [
        IRChange(i1, j1, tuple(a[i1:i2]), tuple(b[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def ir_diff_lines(changes: list[IRChange]) -> list[str]:
    """``- line`` for each removed line and ``+ line`` for each added one, run by run,
    stripped of their indentation."""
    lines = []
    for change in changes:
        lines += [f"- {x.strip()}" for x in change.removed]
        lines += [f"+ {x.strip()}" for x in change.added]
    return lines


def _ir_diff(before: str, after: str, limit: int = 40) -> list[str]:
    """``check``'s account of the lines a pass changed: at most ``limit``, indented."""
    lines = ir_diff_lines(ir_diff(before, after))
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more changed lines"]
    return ["    " + line for line in lines]


@dataclass
class KernelProfile:
    step: str
    batch: int
    calls: int
    rows: list[tuple[str, str, int, float]]  # kernel, what it computes, calls, seconds
    # kernels of loop bodies (their time is part of their loop's), same fields
    inner: list[tuple[str, str, int, float]] = field(default_factory=list)
    # flops, bytes a call, and the unit its products ran on ("fma", "amx_bf16")
    work: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    machine: Any = None  # kcompile.tools.machine.Machine: the peaks the rates are read against

    def rate(self, name: str, seconds: float) -> str:
        """GFLOP/s of a product (with its share of the peak of the unit it ran on: the
        FMA peak, or AMX's for bf16 products on the tiles, marked "amx"; int8 products,
        marked "i8", against the integer multiply-adds' peak, or the FMAs' when held in
        f32), else GB/s of
        the bytes the kernel reads and writes (with its share of the measured copy
        bandwidth)."""
        flops, nbytes, engine = self.work.get(name, (0.0, 0.0, "fma"))
        per_call = seconds / self.calls
        if not per_call:
            return ""
        if flops:
            rate = flops / per_call / 1e9
            peak = f" {rate / self.machine.engine_peak(engine):>4.0%}" if self.machine else ""
            unit = {"amx_bf16": " amx", "dp_bf16": " bf16", "fma_i8": " i8", "madd_i8": " i8"}
            unit = unit.get(engine, "")
            return f"{rate:7.1f} GFLOP/s{peak}{unit}"
        rate = nbytes / per_call / 1e9
        peak = f" {rate / self.machine.copy_gbs:>4.0%}" if self.machine else ""
        return f"{rate:7.1f} GB/s   {peak}"

    def text(self, top: int = 25) -> str:
        total = sum(r[3] for r in self.rows)
        lines = [
            f"{self.step} step at batch {self.batch}, {self.calls} calls: "
            f"{total / self.calls * 1e6:.1f} µs per call in kernels",
        ]
        if self.machine:
            lines.append(f"machine: {self.machine.describe()}")
        lines.append(f"{'kernel':<24} {'µs/call':>9} {'share':>6}  {'rate (of peak)':<21} computes")
        for name, what, _, seconds in sorted(self.rows, key=lambda r: -r[3])[:top]:
            share = seconds / total if total else 0.0
            rate = self.rate(name, seconds)
            lines.append(
                f"{name:<24} {seconds / self.calls * 1e6:>9.2f} {share:>6.1%}  {rate:<21} {what}"
            )
        if self.inner:
            lines.append("inside loops (µs per step call, share of the step, calls per step call):")
        for name, what, count, seconds in sorted(self.inner, key=lambda r: -r[3])[:top]:
            share = seconds / total if total else 0.0
            lines.append(
                f"{name:<24} {seconds / self.calls * 1e6:>9.2f} {share:>6.1%}  "
                f"x{count // self.calls} {what}"
            )
        return "\n".join(lines)


def _describes(node) -> str:
    if node.traits.kernel_body:  # the ops it runs, constants left out
        inner = " ".join(n.op for n in node.attrs["body"].nodes if n.inputs)
        kind = f"{node.op} {node.attrs['kind']}: {inner}"
    else:
        kind = node.op
    shapes = ", ".join(str(v.type) for v in node.outputs[:2])
    return f"{kind[:70]} -> {shapes}"


def profile_step(model, step: str = "train", batch: int = 32, calls: int = 100) -> KernelProfile:
    """Time each kernel of ``step``'s compiled code over ``calls`` calls on probe data
    (cycle counters around each kernel call in the entry function)."""
    graph = parse_graph(pipeline_stages(model, step)[-1][1])
    return profile_graph(model, graph, step, batch, calls)[0]


def profile_graph(model, graph: Graph, step: str, batch: int, calls: int) -> tuple:
    """(``KernelProfile``, the ``NativeExecutable`` it timed: its compile times, whether
    its code came from the cache) of ``model``'s planned ``graph`` of ``step``, over
    ``calls`` calls on a probe batch of ``batch`` rows after one call to warm up."""
    from kcompile.runtime.native import NativeExecutable
    from kcompile.tools.machine import machine
    from kcompile.version import __version__

    exe = NativeExecutable(graph, version=__version__, capacity=batch, profile=True)
    feeds = probe_feeds(model, graph, batch)
    data = {v.name for v in graph.inputs if v.role == "data"}
    for name, array in feeds.items():
        if name not in data:
            exe.bind(name, array)
    batch_feeds = {name: feeds[name] for name in data}
    exe(batch_feeds)
    exe.compiled.reset_profile()
    for _ in range(calls):
        exe(batch_feeds)
    times = exe.compiled.profile()
    rows = [(k.name, _describes(k.node), k.calls, k.seconds) for k in times if not k.inside]
    inner = [(k.name, _describes(k.node), k.calls, k.seconds) for k in times if k.inside]
    work = {k.name: _work(k.node, batch) for k in times if not k.inside}
    return KernelProfile(step, batch, calls, rows, inner, work, machine()), exe


def _work(node, batch: int) -> tuple[float, float, str]:
    """(floating-point operations of its products, bytes it reads and writes, the unit
    its products run on) of one call of a kernel at ``batch`` rows."""
    from kcompile.codegen.library.bf16_gemm import engine_unit
    from kcompile.codegen.lowering.batch_products import batch_on_bf16_engine
    from kcompile.codegen.lowering.products import (
        conv_on_bf16_engine,
        on_bf16_engine,
        target_features,
    )
    from kcompile.ir.memory import ELEMENT_BYTES

    nodes = node.attrs["body"].nodes if node.traits.kernel_body else [node]
    flops = 0.0
    engine = "fma"
    bf16_unit = engine_unit(target_features())
    for n in nodes:
        if n.op == "matmul" and on_bf16_engine(n):
            engine = bf16_unit
        if n.op in ("conv2d", "conv2d_filter") and conv_on_bf16_engine(n):
            engine = bf16_unit
        if n.op == "batch_matmul" and batch_on_bf16_engine(n):
            engine = bf16_unit
        if n.op == "matmul" and n.attrs.get("precision") == "i8":
            # A quantized layer's int8 product: on kc_igemm's integer multiply-adds when
            # both operands are bytes, else exact in f32 on the FMAs.
            engine = "madd_i8" if n.inputs[0].dtype is DType.i8 else "fma_i8"
        if n.op in ("matmul", "batch_matmul", "matmul_int4"):
            # Every element of A meets each output column once, whichever axes are
            # contracted (a weight gradient contracts the batch with its rows).
            a = n.inputs[0].type.concrete_shape(batch)
            flops += 2.0 * math.prod(a) * n.outputs[0].type.concrete_shape(batch)[-1]
        elif n.op == "conv2d":  # each output meets a window of KH x KW x C
            out = n.outputs[0].type.concrete_shape(batch)
            flops += 2.0 * math.prod(out) * math.prod(n.inputs[1].shape[:3])
        elif n.op == "conv2d_filter":  # each output gradient meets the window's K values
            dy = math.prod(n.inputs[1].type.concrete_shape(batch))
            flops += 2.0 * dy * math.prod(n.outputs[0].shape[:3])
    nbytes = sum(
        math.prod(v.type.concrete_shape(batch)) * ELEMENT_BYTES[v.dtype]
        for v in (*node.inputs, *node.outputs)
    )
    return flops, float(nbytes), engine
