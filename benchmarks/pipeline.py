"""What the pass pipeline does to the example model's train step, and what fusion buys.

    python benchmarks/pipeline.py [--epochs 2]

Prints: nodes after every stage and the time each stage took, kernels in the
final graph, the arena against the sum of all buffers, and seconds per epoch
on Fashion-MNIST with the whole pipeline and with fusion disabled
(KCOMPILE_DISABLE=fuse), measured in one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

from mlp_backends import epoch_seconds
from mnist_mlp import build_model

import kcompile as keras
from kcompile.ir import parse_graph
from kcompile.passes import PassManager, default_passes
from kcompile.passes.memory import memory_report
from kcompile.tools import inspect

LOOPLESS = {"reshape", "constant", "numel"}


def kernels(graph) -> int:
    """Nodes that run a loop (views, constants and element counts do not)."""
    return sum(1 for n in graph.nodes if n.op not in LOOPLESS)


def pipeline_table() -> None:
    model = build_model()
    manager = PassManager(default_passes(), keep=True)
    from kcompile.models import graphs as G

    model.optimizer.build(model.trainable_weights)
    graph = G.trace_train(
        model,
        model.compiled_steps.config.specs,
        model.default_label_types(),
        model.optimizer,
        manager.stage,
    ).graph
    manager.run(graph)
    print(f"{'stage':<34}{'ms':>9}{'nodes':>8}{'kernels':>9}")
    for (name, seconds, nodes), (_, text) in zip(manager.report.stages, manager.snapshots):
        print(f"{name:<34}{seconds * 1e3:>9.2f}{nodes:>8}{kernels(parse_graph(text)):>9}")
    final = parse_graph(manager.snapshots[-1][1])
    report = memory_report(final)
    print(
        f"arena {report.arena / 1024:.1f} KiB, sum of all buffers "
        f"{report.buffers / 1024:.1f} KiB ({report.arena / report.buffers:.0%})"
    )


def epoch_seconds_without(disable: str, x, y, epochs: int) -> list[float]:
    """Epoch times with the passes named in ``disable`` skipped (KCOMPILE_DISABLE)."""
    os.environ["KCOMPILE_DISABLE"] = disable
    try:
        return epoch_seconds("llvm", x, y, epochs)
    finally:
        del os.environ["KCOMPILE_DISABLE"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    pipeline_table()
    (x, y), _ = keras.datasets.fashion_mnist.load_data()
    x = (x / 255.0).astype(np.float32)
    fused = epoch_seconds_without("", x, y, args.epochs)
    unfused = epoch_seconds_without("fuse_rows,fuse", x, y, args.epochs)
    med = statistics.median
    print(f"epoch with fusion:    {med(fused):.2f} s  (runs {[round(t, 2) for t in fused]})")
    print(f"epoch without fusion: {med(unfused):.2f} s  (runs {[round(t, 2) for t in unfused]})")
    print(f"fusion saves {1 - med(fused) / med(unfused):.0%} of the epoch")
    stages = inspect.stage_names(build_model(), "train")
    print(f"stages: {', '.join(stages)}")


if __name__ == "__main__":
    main()
