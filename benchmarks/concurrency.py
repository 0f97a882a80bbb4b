"""What making one model safe to call from several threads costs: ``predict_on_batch`` at
batch 1 of the example MLP with the model's lock and with the lock replaced by nothing
(unsafe, for the comparison only), interleaved in one process; and calls per second from
1, 2 and 4 threads with the lock.

    python benchmarks/concurrency.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.timing import cpu_name, samples, summary


def _model():
    import kcompile as keras
    from kcompile import layers

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input(shape=(784,)), layers.Dense(128, activation="relu"), layers.Dense(10)]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def _throughput(model, x, threads: int, seconds: float = 1.0) -> float:
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def work(i):
        while time.perf_counter() < stop:
            model.predict_on_batch(x)
            counts[i] += 1

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model = _model()
    x = np.random.default_rng(0).normal(size=(1, 784)).astype(np.float32)
    model.predict_on_batch(x)
    exe = model.compiled_steps.executable("predict")
    locked, unlocked = [], []
    for _ in range(args.rounds):
        exe.lock = model.compiled_steps.lock
        locked += samples(lambda: model.predict_on_batch(x), 200, group=20)
        exe.lock = contextlib.nullcontext()
        unlocked += samples(lambda: model.predict_on_batch(x), 200, group=20)
    exe.lock = model.compiled_steps.lock
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    print(f"predict_on_batch, batch 1, with the lock:    {summary(locked, 1e6)} us")
    print(f"predict_on_batch, batch 1, without a lock:   {summary(unlocked, 1e6)} us")
    for threads in (1, 2, 4):
        print(f"calls per second from {threads} thread(s): {_throughput(model, x, threads):,.0f}")


if __name__ == "__main__":
    main()
