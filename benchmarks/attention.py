"""Self-attention written with ``keras.ops`` (a custom layer: Dense to q, k, v; two
einsums; softmax), in a LayerNormalization residual block, width 128, 4 heads, batch 32:
seconds per train and predict step with the einsums lowered to ``batch_matmul`` (the
default) and to a broadcast product and a sum (the lowering before ``batch_matmul``),
interleaved in one process; and numpy's forward pass of the same block (its own
subprocess, with the environment's OpenBLAS overrides unset) as the predict baseline.

    python benchmarks/attention.py [--lengths 32 128] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.timing import cpu_name, samples, summary

WIDTH, HEADS, BATCH = 128, 4, 32


def _model(length: int):
    import kcompile as keras
    from kcompile import layers, ops

    class SelfAttention(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.qkv, self.out = layers.Dense(3 * WIDTH), layers.Dense(WIDTH)

        def call(self, x):
            d = WIDTH // HEADS
            qkv = ops.reshape(self.qkv(x), (-1, length, 3, HEADS, d))
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
            scores = ops.einsum("bqhd,bkhd->bhqk", q, k) / d**0.5
            mixed = ops.einsum("bhqk,bkhd->bqhd", ops.softmax(scores, axis=-1), v)
            return self.out(ops.reshape(mixed, (-1, length, WIDTH)))

    keras.utils.set_random_seed(0)
    inputs = keras.Input((length, WIDTH))
    h = layers.LayerNormalization(epsilon=1e-5)(inputs + SelfAttention()(inputs))
    model = keras.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling1D()(h)))
    model.compile("adam", "mse")
    return model


def _steps(length: int, broadcast: bool, rounds: int) -> dict:
    from kcompile.ops import numpy as ops_numpy

    original = ops_numpy._einsum_as_batch_matmul
    if broadcast:
        ops_numpy._einsum_as_batch_matmul = lambda *args: None
    try:
        model = _model(length)
        x = np.random.default_rng(0).normal(size=(BATCH, length, WIDTH)).astype("float32")
        y = x[:, 0, :1].copy()
        train = samples(lambda: model.train_on_batch(x, y), rounds, warmup=2, group=5)
        predict = samples(lambda: model.predict_on_batch(x), rounds, warmup=2, group=5)
    finally:
        ops_numpy._einsum_as_batch_matmul = original
    return {"train": train, "predict": predict, "weights": model.get_weights()}


def _numpy_forward(length: int, weights: list, rounds: int) -> list[float]:
    """The block's forward pass in numpy, timed in a subprocess without the
    environment's OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (they slow OpenBLAS here)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "kcompile_attention_weights.npz")
    np.savez(path, *weights)
    command = [sys.executable, __file__, "--numpy", str(length), path, str(rounds)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def numpy_worker(length: int, path: str, rounds: int) -> None:
    with np.load(path) as data:
        qkv_w, qkv_b, out_w, out_b, gamma, beta, head_w, head_b = (
            data[f"arr_{i}"] for i in range(8)
        )
    x = np.random.default_rng(0).normal(size=(BATCH, length, WIDTH)).astype("float32")
    d = WIDTH // HEADS

    def forward():
        qkv = (x @ qkv_w + qkv_b).reshape(BATCH, length, 3, HEADS, d)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / d**0.5
        e = np.exp(scores - scores.max(-1, keepdims=True))
        mixed = (e / e.sum(-1, keepdims=True)) @ v
        h = x + mixed.transpose(0, 2, 1, 3).reshape(BATCH, length, WIDTH) @ out_w + out_b
        mean, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
        h = (h - mean) / np.sqrt(var + 1e-5) * gamma + beta
        return h.mean(1) @ head_w + head_b

    print(json.dumps(samples(forward, rounds, warmup=2, group=5)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--numpy", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.numpy:
        numpy_worker(int(args.numpy[0]), args.numpy[1], int(args.numpy[2]))
        return
    print(f"CPU: {cpu_name()}; width {WIDTH}, {HEADS} heads, batch {BATCH}; ms per step")
    print("length | step    | batch_matmul    | broadcast+sum    | numpy forward  | ratio")
    for length in args.lengths:
        new = _steps(length, False, args.rounds)
        old = _steps(length, True, args.rounds)
        reference = _numpy_forward(length, new["weights"], args.rounds)
        for step in ("train", "predict"):
            a, b = new[step], old[step]
            ratio = np.median(a) / np.median(b)
            line = f"{length:6d} | {step:7s} | {summary(a, 1e3):15s} | {summary(b, 1e3):16s}"
            if step == "predict":
                line += f" | {summary(reference, 1e3):14s} | {ratio:.2f}x old, "
                line += f"{np.median(a) / np.median(reference):.2f}x numpy"
            else:
                line += f" | {'':14s} | {ratio:.2f}x old"
            print(line)


if __name__ == "__main__":
    main()
