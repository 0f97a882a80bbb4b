"""The MNIST MLP (``examples/mnist_mlp.py``) under ``mixed_bfloat16``: its train step
with the bf16 products on ``kc_bgemm`` (the matrix engines) against ``kc_sgemm``,
interleaved in one process (the machine is shared), best of the rounds.

    python benchmarks/mlp_mixed_bfloat16.py [--batch 256] [--rounds 30]

It also serves ``kcompile profile``'s model file (``build_model``):

    python -m kcompile.tools.cli profile benchmarks/mlp_mixed_bfloat16.py --step train
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

import mnist_mlp

import kcompile as keras


def build_model():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        return mnist_mlp.build_model()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    os.environ["KCOMPILE_CACHE"] = "0"  # the two variants differ in codegen only
    import kcompile.codegen.products as products

    rng = np.random.default_rng(0)
    models = {}
    for name, engine in (("kc_sgemm", False), ("kc_bgemm", True)):
        products.has_engine = lambda features, engine=engine: engine
        model = build_model()
        x = rng.random((args.batch, *model.input_shape[1:])).astype("float32")
        y = rng.integers(0, 10, args.batch)
        model.train_on_batch(x, y)  # compiles
        models[name] = (model, x, y)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, (model, x, y) in models.items():
            t0 = time.perf_counter()
            for _ in range(10):
                model.train_on_batch(x, y)
            times[name].append((time.perf_counter() - t0) / 10)
    for name, t in times.items():
        print(f"{name}: train step batch {args.batch}: best {min(t) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
