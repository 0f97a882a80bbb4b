"""Compile time against sequence length: an LSTM(128) classifier's train step compiled
cold (no cache) for sequences of 20 and 200 steps, and the time of one step.

python benchmarks/loop_compile.py [--lengths 20 200] [--units 128]

The recurrence is one ``scan`` node, so compile time should not depend on the
length; the step time grows linearly with it.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from timing import median_time

import kcompile as keras
from kcompile import layers


def measure(length: int, units: int, batch: int = 64, steps: int = 5) -> tuple[float, float, int]:
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input(shape=(length, 28)), layers.LSTM(units), layers.Dense(10, "softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((batch, length, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    start = time.perf_counter()
    model.train_on_batch(x, y)
    compile_seconds = time.perf_counter() - start
    step = median_time(lambda: model.train_on_batch(x, y), steps)
    nodes = len(model.step_graph("train").nodes)
    return compile_seconds, step, nodes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--units", type=int, default=128)
    args = parser.parse_args()
    os.environ["KCOMPILE_CACHE"] = "0"
    print(f"{'steps':>6}{'first call (compile) s':>24}{'train step ms':>15}{'traced nodes':>14}")
    for length in args.lengths:
        compile_seconds, step, nodes = measure(length, args.units)
        print(f"{length:>6}{compile_seconds:>24.2f}{step * 1e3:>15.1f}{nodes:>14}")


if __name__ == "__main__":
    main()
