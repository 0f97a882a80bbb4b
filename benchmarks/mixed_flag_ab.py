"""A/B of a module flag on a train step under ``mixed_bfloat16``: the encoder block
(``examples/encoder_block.py``, batch 32), the example MLP (784-128-10), the
784-512-512-10 MLP (``mlp_mixed_bfloat16.build_wide_model``) or the CNN
(``examples/fashion_cnn.py``), both variants compiled in one process and called
alternately, so that a change of the host's load hits both alike.

    python benchmarks/mixed_flag_ab.py MODULE FLAG [--model encoder] [--calls 200]
        [--batch 32]

e.g. ``kcompile.codegen.lowering.batch_products ON_ENGINES`` (attention's products on
``kc_bgemm``); ``MODULE`` ``pass`` and ``FLAG`` a pass's name compare the pipeline without
that pass (False) and with it (True), e.g. ``pass store_narrow``. ``MODULE`` is imported and ``FLAG`` set to False, then True, before each
step is traced and compiled (``KCOMPILE_CACHE=0``: the cache does not see flags).
Reports wall and CPU time per step (min and median) and the kernels that moved most.
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
sys.path[:0] = [str(ROOT), str(ROOT / "examples"), str(ROOT / "benchmarks")]

from timing import alternate, profiled_train_step  # noqa: E402

os.environ["KCOMPILE_CACHE"] = "0"
MODELS = {"encoder": "encoder_block", "mlp": "mnist_mlp", "cnn": "fashion_cnn"}


def _model(name: str):
    import kcompile as keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    if name == "mlp512":
        from mlp_mixed_bfloat16 import build_wide_model

        return build_wide_model("mixed_bfloat16")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        return importlib.import_module(MODELS[name]).build_model()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("module")
    parser.add_argument("flag")
    parser.add_argument("--model", choices=(*MODELS, "mlp512"), default="encoder")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    module = None if args.module == "pass" else importlib.import_module(args.module)
    runs = {}
    for value in (False, True):
        if module is None:  # (read by the pipeline the step is compiled with)
            os.environ["KCOMPILE_DISABLE"] = "" if value else args.flag
        else:
            setattr(module, args.flag, value)
        runs[value] = profiled_train_step(_model(args.model), f"{args.flag}-{value}", args.batch)
    timed = alternate(runs, args.calls)
    wall, cpu, kernels = timed.wall, timed.cpu, timed.kernels
    threads = os.environ.get("KCOMPILE_NUM_THREADS", "default")
    print(f"{args.model} mixed_bfloat16 train step, batch {args.batch}, threads {threads}")
    for value in (False, True):
        w, c = wall[value], cpu[value]
        print(
            f"  {args.flag}={value}: wall min {min(w) * 1e3:.2f} med {statistics.median(w) * 1e3:.2f}"
            f" | cpu min {min(c) * 1e3:.2f} med {statistics.median(c) * 1e3:.2f} ms"
        )
    off, on = kernels[False], kernels[True]
    moved = sorted(
        set(off) | set(on),
        key=lambda n: -abs(min(off.get(n, [0])) - min(on.get(n, [0]))),
    )
    print("  kernels that moved most (µs, min): off -> on")
    for name in moved[:8]:
        before, after = min(off.get(name, [0])), min(on.get(name, [0]))
        print(f"    {name:<28} {before * 1e6:9.1f} -> {after * 1e6:9.1f}")


if __name__ == "__main__":
    main()
