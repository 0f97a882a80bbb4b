"""A/B of a module flag on the example MLP's epoch loop (784-128-10, Adam, batch 32,
Fashion-MNIST's 60000 images in a shuffled order): one native call per epoch
(``run_epoch``, rows gathered in native code), both variants compiled in one process and
run alternately, so that a change of the host's load hits both alike.

    python benchmarks/epoch_flag_ab.py MODULE FLAG [--epochs 10] [--steps 1875]

``MODULE`` is imported (``kcompile.codegen.lowering.epoch_loop``) and ``FLAG`` set to False, then
True, before each executable is traced and compiled (``KCOMPILE_CACHE=0`` is set here:
the cache does not see flags). Reports wall and CPU time (``time.process_time``, every
thread) per step, min and median over the epochs, and checks that both variants logged
the same losses. Set ``KCOMPILE_NUM_THREADS`` to choose threads.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

os.environ["KCOMPILE_CACHE"] = "0"


def _data() -> tuple[np.ndarray, np.ndarray]:
    import kcompile as keras

    try:
        (x, y), _ = keras.datasets.fashion_mnist.load_data()
    except (OSError, ValueError):
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (60000, 28, 28)), rng.integers(0, 10, 60000)
    return (x / 255.0).astype(np.float32), y.astype(np.int32)


def _executable(tag: str, batch: int):
    import kcompile as keras
    from kcompile.runtime.native import NativeExecutable
    from kcompile.tools.inspect import parse_graph, pipeline_stages, probe_feeds
    from kcompile.version import __version__

    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    model = importlib.import_module("mnist_mlp").build_model()
    graph = parse_graph(pipeline_stages(model, "train")[-1][1])
    exe = NativeExecutable(graph, version=f"{__version__}-{tag}", capacity=batch)
    feeds = probe_feeds(model, graph, batch)
    data = {v.name for v in graph.inputs if v.role == "data"}
    for key, array in feeds.items():
        if key not in data:
            exe.bind(key, array.copy())
    image = next(v.name for v in graph.inputs if v.role == "data" and v.type.rank == 3)
    return exe, image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("module")
    parser.add_argument("flag")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1875)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    module = importlib.import_module(args.module)
    x, y = _data()
    order = np.random.default_rng(0).permutation(len(x))
    runs = {}
    for value in (False, True):
        setattr(module, args.flag, value)
        runs[value] = _executable(f"{args.flag}-{value}", args.batch)
    wall = {v: [] for v in runs}
    cpu = {v: [] for v in runs}
    losses = {}
    for exe, image in runs.values():  # warm-up: first touches, the pool's threads
        exe.run_epoch({image: x, "y": y}, order, args.batch, steps=50)
    for i in range(args.epochs):
        for value in list(runs) if i % 2 else list(runs)[::-1]:
            exe, image = runs[value]
            w0, c0 = time.perf_counter(), time.process_time()
            _, logs = exe.run_epoch({image: x, "y": y}, order, args.batch, steps=args.steps)
            wall[value].append((time.perf_counter() - w0) / len(logs))
            cpu[value].append((time.process_time() - c0) / len(logs))
            losses.setdefault(value, logs[:, 0].copy())
    threads = os.environ.get("KCOMPILE_NUM_THREADS", "default")
    print(f"MLP epoch loop at batch {args.batch}, threads {threads}, {args.epochs} epochs each")
    for value in runs:
        w, c = wall[value], cpu[value]
        print(
            f"  {args.flag}={value}: per step wall min {min(w) * 1e6:.1f} med "
            f"{statistics.median(w) * 1e6:.1f} | cpu min {min(c) * 1e6:.1f} med "
            f"{statistics.median(c) * 1e6:.1f} µs"
        )
    same = np.array_equal(losses[False], losses[True])
    print(f"  first epoch's losses bit-identical between the variants: {same}")


if __name__ == "__main__":
    main()
