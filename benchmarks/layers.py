"""The CNN and the LSTM of the layers examples: train-step time at batch 64 and CNN
predict throughput at batch 256, on kcompile's native code and, in the same run, in
PyTorch eager when it is installed (the optional ``bench`` extra), as ratios.

    python benchmarks/layers.py [--steps 20]

kcompile's kernels run on one thread today; PyTorch is measured with one thread and
with its default thread count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

from fashion_cnn import build_model as build_cnn
from fashion_lstm import build_model as build_lstm

import kcompile as keras


def timed(fn, steps: int) -> float:
    """Median seconds of ``fn`` over ``steps`` calls, after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kcompile_times(steps: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    cnn = build_cnn()
    x = rng.random((64, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    big = rng.random((256, 28, 28, 1)).astype(np.float32)
    out = {
        "cnn train step (64)": timed(lambda: cnn.train_on_batch(x, y), steps),
        "cnn predict (256)": timed(lambda: cnn.predict(big, batch_size=256, verbose=0), steps),
    }
    lstm = build_lstm()
    xs = rng.random((64, 28, 28)).astype(np.float32)
    start = time.perf_counter()
    lstm.train_on_batch(xs, y)
    out["lstm first step (compile)"] = time.perf_counter() - start
    out["lstm train step (64)"] = timed(lambda: lstm.train_on_batch(xs, y), steps)
    return out


def torch_times(steps: int, threads: int | None) -> dict[str, float] | None:
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.set_num_threads(threads or os.cpu_count())
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(1600, 10),
    )
    opt = torch.optim.Adam(cnn.parameters(), lr=1e-3, eps=1e-7)
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    big = torch.rand(256, 1, 28, 28)
    loss_fn = nn.CrossEntropyLoss()

    def cnn_step():
        opt.zero_grad()
        loss_fn(cnn(x), y).backward()
        opt.step()

    def cnn_predict():
        with torch.no_grad():
            torch.softmax(cnn.eval()(big), 1)
        cnn.train()

    class Lstm(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(28, 128, batch_first=True)
            self.head = nn.Linear(128, 10)

        def forward(self, seq):
            return self.head(self.lstm(seq)[0][:, -1])

    lstm = Lstm()
    lopt = torch.optim.Adam(lstm.parameters(), lr=1e-3, eps=1e-7)
    xs = torch.rand(64, 28, 28)

    def lstm_step():
        lopt.zero_grad()
        loss_fn(lstm(xs), y).backward()
        lopt.step()

    return {
        "cnn train step (64)": timed(cnn_step, steps),
        "cnn predict (256)": timed(cnn_predict, steps),
        "lstm train step (64)": timed(lstm_step, steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    ours = kcompile_times(args.steps)
    peers = {
        f"torch, {t or os.cpu_count()} thread(s)": torch_times(args.steps, t) for t in (1, None)
    }
    print(f"{'measure':<28}{'kcompile ms':>13}" + "".join(f"{name:>28}" for name in peers))
    for key, value in ours.items():
        row = f"{key:<28}{value * 1e3:>13.1f}"
        for times in peers.values():
            if times is None or key not in times:
                row += f"{'-':>28}"
            else:
                row += f"{times[key] * 1e3:>16.1f} ms ({value / times[key]:.2f}x)"
        print(row)
    if all(t is None for t in peers.values()):
        print("PyTorch is not installed: pip install -e '.[bench]' to compare")


if __name__ == "__main__":
    main()
