"""A/B of a module flag on the example MLP's train step (784-128-10, Adam, batch 32), both
compiled in one process and called alternately, so that a change of the host's load hits
both alike.

    python benchmarks/mlp_flag_ab.py MODULE FLAG [--calls 2000] [--batch 32]

``MODULE`` is imported (``kcompile.codegen.lowering.fused``) and ``FLAG`` set to False, then True,
before each executable is traced and compiled (``KCOMPILE_CACHE=0`` is set here: the
cache does not see flags). Reports wall and CPU time (``time.process_time``, every thread)
per step, min and median, and each kernel's min / median from the profile counters.
Set ``KCOMPILE_NUM_THREADS`` to choose threads.
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


def _model():
    import kcompile as keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    return importlib.import_module("mnist_mlp").build_model()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("module")
    parser.add_argument("flag")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reverse", action="store_true", help="compile True first")
    args = parser.parse_args()
    module = importlib.import_module(args.module)
    runs = {}
    for value in (True, False) if args.reverse else (False, True):
        setattr(module, args.flag, value)
        runs[value] = profiled_train_step(_model(), f"{args.flag}-{value}", args.batch)
    timed = alternate(runs, args.calls)
    wall, cpu, kernels = timed.wall, timed.cpu, timed.kernels
    threads = os.environ.get("KCOMPILE_NUM_THREADS", "default")
    print(f"MLP train step at batch {args.batch}, threads {threads}, {args.calls} calls each")
    for value in (False, True):
        w, c = wall[value], cpu[value]
        print(
            f"  {args.flag}={value}: wall min {min(w) * 1e6:.1f} med {statistics.median(w) * 1e6:.1f}"
            f" | cpu min {min(c) * 1e6:.1f} med {statistics.median(c) * 1e6:.1f} µs"
        )
    for value in (False, True):
        print(f"  {args.flag}={value}, kernels (µs, min / median):")
        k = kernels[value]
        for name in sorted(k, key=lambda n: -min(k[n]))[:5]:
            print(
                f"    {name:<22} {min(k[name]) * 1e6:8.1f} {statistics.median(k[name]) * 1e6:8.1f}"
            )


if __name__ == "__main__":
    main()
