"""Writing an ahead-of-time artifact from a compiled model (needs the compiler).

The artifact holds, for each step (train, eval, predict, and the train step in two for
data-parallel training: grad and apply): the optimized, planned
graph as text and its native code (a shared library linked with the system C
compiler, or object code when there is none); the weights and optimizer state;
a probe batch with the outputs this machine computed for it; and a manifest
describing all of it.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from kcompile.artifact.container import (
    FORMAT,
    FORMAT_VERSION,
    npz_bytes,
    sha256,
    write_artifact,
)
from kcompile.artifact.cpu import machine_arch, required_flags
from kcompile.artifact.native import STEPS
from kcompile.codegen.aot import find_linker, graph_object, link_shared, runtime_object
from kcompile.codegen.building.cache import codegen_digest
from kcompile.codegen.building.target import for_cpu
from kcompile.ir import print_graph
from kcompile.models import graphs as G
from kcompile.runtime import prepared
from kcompile.trainers import data as D

PROBE_ROWS = 4


def export(
    model, path: str, probe=None, seed: int = 0, batch_size: int = 32, cpu: str = "host"
) -> dict:
    """Write ``model`` (compiled and built) as an artifact at ``path``; returns its
    manifest. ``probe``: an input array (or list/dict, as ``predict`` takes) whose first
    rows become the probe batch; random inputs of the model's signature otherwise.
    ``seed`` makes the shuffling of training with the loaded artifact reproducible.
    ``cpu``: ``"host"`` (this machine's CPU and every feature it has) or an x86-64
    level (``x86-64-v2``, ``-v3``, ``-v4``) for an artifact that loads on any CPU with
    that level."""
    from kcompile.version import __version__

    target = for_cpu(cpu)
    steps = model.compiled_steps
    steps.require_compiled("export")
    if not model.built:
        raise ValueError(f"export: model '{model.name}' is not built; give it an Input")
    started = time.perf_counter()
    xs = _probe_inputs(model, probe)
    shapes = steps.input_shapes(xs)  # an artifact's steps have the probe's shapes
    label_types = tuple(model.default_label_types(shapes))
    # The passes are told of the artifact's CPU (its bf16 engines): where it differs from
    # the host, the steps are prepared anew for it (the model's own stay the host's).
    anew = prepared.target_options(target.has) != prepared.target_options()
    with prepared.preparing_for(target.has):
        exes = {
            kind: steps.executable(kind, () if kind == "predict" else label_types, shapes, anew)
            for kind in STEPS
        }
        # The train step in two, for data-parallel training under mpiexec (kcompile run).
        _, exes["grad"], exes["apply"] = steps.update_parts(label_types, shapes)
    members: dict[str, bytes] = {}
    steps = {}
    for kind, exe in exes.items():
        text = print_graph(exe.graph)
        members[f"graphs/{kind}.kir"] = text.encode()
        steps[kind] = _step_entry(kind, exe.graph, text, target)
    library = _native_code(exes, members, steps, target)
    state = _state(model)
    members["state.npz"] = npz_bytes([array for _, array, _ in state])
    expected = exes["predict"](dict(zip(model.input_names, xs)))
    probe_arrays = [*xs, *(np.array(expected[f"out/{n}"]) for n in model.output_names)]
    members["probe.npz"] = npz_bytes(probe_arrays)
    opt = model.optimizer
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kcompile_version": __version__,
        "codegen": codegen_digest(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": {
            "arch": machine_arch(),
            "triple": target.triple,
            "cpu": target.cpu,
            "features": target.features,
            "requires": required_flags(target.features),
        },
        "library": library,
        "model": {
            "name": model.name,
            "inputs": model.input_names,
            "outputs": model.output_names,
            "labels": G.label_names(model),
            "weights": [v.path for v in model.weights],
            "policy": model.dtype_policy.name,
        },
        "steps": steps,
        "state": [
            {"name": n, "shape": list(a.shape), "dtype": str(a.dtype), "role": r}
            for n, a, r in state
        ],
        "optimizer": {"class": type(opt).__name__, "config": opt.get_config()},
        "metrics": _metric_entries(model),
        "training": {"seed": int(seed), "epochs_done": 0, "batch_size": int(batch_size)},
        "probe": {"rows": len(xs[0]), "inputs": len(xs)},
    }
    manifest = write_artifact(path, manifest, members)
    manifest["build_seconds"] = time.perf_counter() - started
    return manifest


def _step_entry(kind: str, graph, text: str, target) -> dict:
    return {
        "graph": f"graphs/{kind}.kir",
        "graph_sha256": sha256(text.encode()),
        "inputs": [{"name": v.name, "role": v.role, "type": str(v.type)} for v in graph.inputs],
        "outputs": [{"name": name, "type": str(v.type)} for name, v in graph.outputs],
        "memory": _memory_summary(graph),
        "bf16_engine_products": _bf16_engine_products(graph, target),
    }


def _bf16_engine_products(graph, target) -> int:
    """How many of the step's products call ``kc_bgemm`` or ``kc_sconv_bf16`` (bf16
    operands, on AMX-BF16 tiles where ``target`` has them and Linux grants them, else
    their portable paths)."""
    from kcompile.codegen.lowering.batch_products import batch_on_bf16_engine
    from kcompile.codegen.lowering.products import conv_on_bf16_engine, on_bf16_engine

    count = 0
    pending = list(graph.nodes)
    while pending:
        node = pending.pop()
        if node.traits.kernel_body:
            pending += node.attrs["body"].nodes
        elif node.op == "matmul":
            count += on_bf16_engine(node, features=target.has)
        elif node.op in ("conv2d", "conv2d_filter"):
            count += conv_on_bf16_engine(node, features=target.has)
        elif node.op == "batch_matmul":
            count += batch_on_bf16_engine(node, features=target.has)
    return count


def _memory_summary(graph) -> dict:
    """The memory plan's arena at its batch, against one buffer per value."""
    plan = graph.memory
    if plan is None:
        return {}
    total = sum(a.size.at(plan.max_batch) for a in plan.allocations.values())
    return {"batch": plan.max_batch, "arena_bytes": plan.arena_bytes, "unplanned_bytes": total}


def _native_code(exes: dict, members: dict[str, bytes], steps: dict, target) -> dict:
    """Object code of every step and of the runtime, linked when a C compiler is there."""
    objects = {kind: graph_object(exe.graph, target) for kind, exe in exes.items()}
    runtime = runtime_object(target)
    linker = find_linker()
    if linker is None:
        members["obj/runtime.o"] = runtime
        for kind, code in objects.items():
            members[f"obj/{kind}.o"] = code
            steps[kind]["code"] = f"obj/{kind}.o"
        return {"kind": "object", "runtime": "obj/runtime.o"}
    libraries = link_shared(linker, runtime, objects)
    for name, data in libraries.items():
        members[f"lib/{name}"] = data
    for kind in objects:
        steps[kind]["code"] = f"lib/{kind}.so"
    runtime_name = next(n for n in libraries if n.startswith("libkc_runtime"))
    return {"kind": "shared", "runtime": f"lib/{runtime_name}", "linker": os.path.basename(linker)}


def _state(model) -> list[tuple[str, np.ndarray, str]]:
    """Every array the steps bind: (name, array, role) for weights, then optimizer state."""
    out = [(v.path, v.value, "weight") for v in model.weights]
    out += [(n, a, "opt") for n, a in model.optimizer.state_arrays().items()]
    return out


def _probe_inputs(model, probe) -> list[np.ndarray]:
    if probe is not None:
        return [a[:PROBE_ROWS] for a in D.prepare_inputs(model, probe)]
    rng = np.random.default_rng(0)
    xs = []
    for t in model.inputs:
        if t.dynamic:
            raise ValueError(
                f"export: input {t.name} of model '{model.name}' has shape {t.shape}; an "
                "artifact's steps are compiled for fixed shapes: pass probe= data of the "
                "shapes to compile for"
            )
        shape = (PROBE_ROWS, *t.shape[1:])
        if np.dtype(t.dtype).kind in "iub":
            xs.append(rng.integers(0, 2, shape).astype(t.dtype))
        else:
            xs.append(rng.normal(size=shape).astype(t.dtype))
    return xs


def _metric_entries(model) -> dict[str, Any]:
    """How the loaded artifact computes each metric from its summed statistics: a ratio
    ``[numerator, [denominators]]``, or a built-in metric's class and config (AUC, F1)."""
    from kcompile.metrics.registry import VECTOR_METRICS

    steps = model.compiled_steps
    entries: dict[str, Any] = {
        key: [num, list(den)] for key, (num, den) in steps.running.ratios.items()
    }
    for key in steps.running.results:
        metric = steps.metric_objects[key]
        if type(metric).__name__ not in VECTOR_METRICS or metric._custom:
            raise NotImplementedError(
                f"export: metric {key!r} is a user's Metric subclass, which an artifact "
                "cannot compute without its Python code; compile without it to export"
            )
        entries[key] = {"class": type(metric).__name__, "config": metric.get_config()}
    return entries
