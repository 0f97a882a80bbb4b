"""The Fashion-MNIST CNN (``examples/fashion_cnn.py``) in float32, and under
``mixed_bfloat16`` with its convolutions on ``kc_sconv`` (f32) and on ``kc_sconv_bf16``
(the AMX tiles: ``codegen.library.bf16_conv``): predict and train steps, interleaved in one
process (the machine is shared), best of the rounds, CPU time of this process.

    python benchmarks/cnn_mixed_bfloat16.py [--predict-batch 256] [--train-batch 64]

It also serves ``kcompile profile``'s model file (``build_model``):

    python -m kcompile.tools.cli profile benchmarks/cnn_mixed_bfloat16.py --step train
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

import fashion_cnn

import kcompile as keras


def build_model(policy: str = "mixed_bfloat16"):
    keras.mixed_precision.set_global_policy(policy)
    try:
        return fashion_cnn.build_model()
    finally:
        keras.mixed_precision.set_global_policy("float32")


VARIANTS = {  # name: (policy, convolutions on the AMX tiles)
    "float32": ("float32", False),
    "mixed_bfloat16, kc_sconv": ("mixed_bfloat16", False),
    "mixed_bfloat16, kc_sconv_bf16": ("mixed_bfloat16", True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predict-batch", type=int, default=256)
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    os.environ["KCOMPILE_CACHE"] = "0"  # the variants differ in codegen only
    import kcompile.codegen.lowering.products as products

    original = products.has_conv_engine
    rng = np.random.default_rng(0)
    runs = {}
    for name, (policy, engine) in VARIANTS.items():
        products.has_conv_engine = original if engine else (lambda features: False)
        model = build_model(policy)
        xp = rng.random((args.predict_batch, 28, 28, 1)).astype("float32")
        xt = rng.random((args.train_batch, 28, 28, 1)).astype("float32")
        yt = rng.integers(0, 10, args.train_batch)
        model.predict_on_batch(xp)  # compiles
        model.train_on_batch(xt, yt)
        runs[name] = (
            lambda model=model, xp=xp: model.predict_on_batch(xp),
            lambda model=model, xt=xt, yt=yt: model.train_on_batch(xt, yt),
        )
    products.has_conv_engine = original
    best = {(name, step): float("inf") for name in runs for step in ("predict", "train")}
    for _ in range(args.rounds):
        for name, (predict, train) in runs.items():
            for step, fn in (("predict", predict), ("train", train)):
                t0 = time.process_time()
                for _ in range(5):
                    fn()
                best[name, step] = min(best[name, step], (time.process_time() - t0) / 5)
    for step, batch in (("predict", args.predict_batch), ("train", args.train_batch)):
        base = best["float32", step]
        for name in runs:
            t = best[name, step]
            print(f"{step} batch {batch:4d} {name:30s} {t * 1e3:8.3f} ms CPU  {base / t:5.2f}x")


if __name__ == "__main__":
    main()
