"""Max pooling 2x2 of the example CNN's first convolution output (26x26x32, batch 256):
ms per predict and train step with the pooling lowered as a reduction over a reshaped
view of the image (the default when windows tile it) and as image patches
(``extract_patches``) reduced over the window, interleaved in one process; and numpy's
``reshape(...).max(...)`` of the same tensor (its own subprocess, without the
environment's OpenBLAS overrides) as the baseline.

    python benchmarks/pooling.py [--rounds 5] [--batch 256]
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

SHAPE = (26, 26, 32)


def _model(patches: bool):
    import kcompile as keras
    from kcompile.layers.pooling.max_pooling2d import MaxPooling2D

    class PatchPooling(MaxPooling2D):
        def _tiles(self, x):
            return None  # always the patches' lowering

    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE)
    pool = PatchPooling() if patches else keras.layers.MaxPooling2D()
    h = pool(keras.layers.Conv2D(SHAPE[2], 1)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(h)))
    model.compile("sgd", "mse")
    return model


def _steps(patches: bool, batch: int, rounds: int) -> dict:
    model = _model(patches)
    x = np.random.default_rng(0).normal(size=(batch, *SHAPE)).astype("float32")
    y = np.zeros((batch, 1), np.float32)
    return {
        "predict": samples(lambda: model.predict_on_batch(x), rounds, warmup=2, group=5),
        "train": samples(lambda: model.train_on_batch(x, y), rounds, warmup=2, group=5),
    }


def numpy_worker(batch: int, rounds: int) -> None:
    x = np.random.default_rng(0).normal(size=(batch, *SHAPE)).astype("float32")
    h, w, c = SHAPE

    def pool():
        return x.reshape(batch, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

    print(json.dumps(samples(pool, rounds, warmup=2, group=5)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--numpy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.numpy:
        numpy_worker(args.batch, args.rounds)
        return
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    command = [sys.executable, __file__, "--numpy", "--batch", str(args.batch)]
    command += ["--rounds", str(args.rounds)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    reference = json.loads(done.stdout.strip().splitlines()[-1])
    view, patches = _steps(False, args.batch, args.rounds), _steps(True, args.batch, args.rounds)
    print(f"CPU: {cpu_name()}; Conv2D(1x1) -> MaxPooling2D -> Dense, input {SHAPE}, batch")
    print(f"{args.batch}; ms per step (the convolution and head are the same in both)")
    print("step    | reshaped view   | patches         | ratio")
    for step in ("predict", "train"):
        a, b = view[step], patches[step]
        print(
            f"{step:7s} | {summary(a, 1e3):15s} | {summary(b, 1e3):15s} | "
            f"{np.median(a) / np.median(b):.2f}x"
        )
    print(f"numpy's pooling alone: {summary(reference, 1e3)} ms")


if __name__ == "__main__":
    main()
