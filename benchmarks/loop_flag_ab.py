"""A/B of a module flag on a recurrent model's train step, both compiled in one process and
called alternately, so that a change of the host's load hits both alike.

    python benchmarks/loop_flag_ab.py MODULE FLAG [--model lstm|gru] [--calls 300]

``MODULE`` is imported (``kcompile.codegen.lowering.scan``) and ``FLAG`` set to False, then True,
before each executable is traced and compiled (``KCOMPILE_CACHE=0`` is set here: the
cache does not see flags). Each call is one sample: the step's wall and CPU time
(``time.process_time``, every thread of the process), and each kernel's own time from
the profile counters; the report gives min and median of each, and for each loop the
time the loop spends outside its body's kernels (copies, packing, waiting for another
slice; on more than one thread the body is counted in the first slice only, so this
also holds the wait for a late thread). Set ``KCOMPILE_NUM_THREADS`` to choose threads.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

from timing import alternate, profiled_train_step  # noqa: E402

os.environ["KCOMPILE_CACHE"] = "0"


def _model(name: str):
    import kcompile as keras
    from kcompile import layers

    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    if name == "lstm":
        return importlib.import_module("fashion_lstm").build_model()
    model = keras.Sequential(
        [keras.Input(shape=(28, 28)), layers.GRU(128), layers.Dense(10, activation="softmax")]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("module")
    parser.add_argument("flag")
    parser.add_argument("--model", default="lstm", choices=["lstm", "gru"])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    module = importlib.import_module(args.module)
    runs = {}
    for value in (False, True):
        setattr(module, args.flag, value)
        runs[value] = profiled_train_step(_model(args.model), f"{args.flag}-{value}", 64)
    timed = alternate(runs, args.calls)
    wall, cpu, kernels = timed.wall, timed.cpu, timed.kernels
    threads = os.environ.get("KCOMPILE_NUM_THREADS", "default")
    print(f"{args.model} train step at batch 64, threads {threads}, {args.calls} calls each")
    for value in runs:
        w, c = wall[value], cpu[value]
        print(
            f"  {args.flag}={value}: wall min {min(w) * 1e3:.2f} med {statistics.median(w) * 1e3:.2f}"
            f" | cpu min {min(c) * 1e3:.2f} med {statistics.median(c) * 1e3:.2f} ms"
        )
    for value in runs:
        k = kernels[value]
        for loop in (name for name in k if name.endswith("_scan")):
            inner = [name for name in k if name.startswith(loop + "_k")]
            rest = [k[loop][i] - sum(k[x][i] for x in inner) for i in range(len(k[loop]))]
            print(
                f"  {args.flag}={value} {loop} outside its body's kernels: min "
                f"{min(rest) * 1e6:.0f} med {statistics.median(rest) * 1e6:.0f} µs"
            )
    for value in runs:
        print(f"  {args.flag}={value}, kernels (µs, min / median):")
        k = kernels[value]
        for name in sorted(k, key=lambda n: -min(k[n]))[:10]:
            print(
                f"    {name:<22} {min(k[name]) * 1e6:8.1f} {statistics.median(k[name]) * 1e6:8.1f}"
            )


if __name__ == "__main__":
    main()
