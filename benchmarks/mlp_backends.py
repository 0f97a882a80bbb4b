"""The example MLP on Fashion-MNIST, batch 32: the LLVM backend against the reference
interpreter in one run, cold and warm compile times, and predict latency at batch 1.

    python benchmarks/mlp_backends.py [--epochs 1] [--repeats 3]

Times are medians over repeats; ratios are what to compare across machines.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

from mnist_mlp import build_model

import kcompile as keras
from kcompile.codegen import host


def fresh_model(backend: str):
    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    model = build_model()
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer="adam",
        metrics=["accuracy"],
        backend=backend,
    )
    return model


def epoch_seconds(backend: str, x, y, epochs: int) -> list[float]:
    model = fresh_model(backend)
    model.fit(x[:64], y[:64], epochs=1, verbose=0)  # compile outside the timing
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(x, y, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    return times


def compile_seconds(x, y) -> tuple[float, float]:
    """Cold (empty cache) and warm (cache hit) time to build train, eval and predict."""
    results = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["KCOMPILE_CACHE_DIR"] = cache
        for _ in range(2):
            model = fresh_model("llvm")
            start = time.perf_counter()
            model.train_on_batch(x[:32], y[:32])
            model.test_on_batch(x[:32], y[:32])
            model.predict_on_batch(x[:1])
            results.append(time.perf_counter() - start)
        del os.environ["KCOMPILE_CACHE_DIR"]
    return results[0], results[1]


def predict_latency_us(x, calls: int = 2000) -> float:
    model = fresh_model("llvm")
    one = x[:1]
    model.predict_on_batch(one)
    start = time.perf_counter()
    for _ in range(calls):
        model.predict_on_batch(one)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    (x, y), _ = keras.datasets.fashion_mnist.load_data()
    x = (x / 255.0).astype(np.float32)
    info = host()
    print(
        f"machine: {platform.processor() or platform.machine()}, cpu {info.cpu}, "
        f"{os.cpu_count()} cores, numpy {np.__version__}, python {platform.python_version()}"
    )
    native = epoch_seconds("llvm", x, y, args.epochs)
    reference = epoch_seconds("reference", x, y, args.epochs)
    colds, warms = zip(*(compile_seconds(x, y) for _ in range(args.repeats)))
    latency = [predict_latency_us(x) for _ in range(args.repeats)]
    med = statistics.median
    print(f"epoch (1875 steps), llvm:      {med(native):6.2f} s   (runs {native})")
    print(f"epoch (1875 steps), reference: {med(reference):6.2f} s   (runs {reference})")
    print(f"  llvm / reference: {med(native) / med(reference):.2f}x the time")
    print(f"compile train+eval+predict, cold: {med(colds):.2f} s, warm: {med(warms) * 1e3:.0f} ms")
    print(f"predict at batch 1: {med(latency):.1f} us per call")


if __name__ == "__main__":
    main()
