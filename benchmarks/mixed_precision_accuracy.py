"""Issue 28's accuracy target: the example programs trained under ``mixed_bfloat16`` (and
``mixed_float16``) against the same programs in float32, same seed, same data, same
epochs; test accuracy of each and the difference in points.

    python benchmarks/mixed_precision_accuracy.py [--policies mixed_bfloat16 mixed_float16]
        [--only mnist_mlp fashion_cnn encoder_block transformer_classifier]

Each example's ``build_model`` runs under the policy (the layers take it when they are
made, so ``compile`` wraps the optimizer in a loss scale under ``mixed_float16``); the
data are Fashion-MNIST (Debian's ``dataset-fashion-mnist``) or the example's own
synthetic sets. The CPU is printed with the results.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

import kcompile as keras


def _fashion(flat: bool):
    (x, y), (xt, yt) = keras.datasets.fashion_mnist.load_data()
    x, xt = x.astype(np.float32) / 255.0, xt.astype(np.float32) / 255.0
    if not flat:
        x, xt = x[..., None], xt[..., None]
    return (x, y), (xt, yt)


def _mlp():
    import mnist_mlp

    return mnist_mlp.build_model, _fashion(True), {"epochs": 5, "batch_size": 32}


def _cnn():
    import fashion_cnn

    return fashion_cnn.build_model, _fashion(False), {"epochs": 3, "batch_size": 32}


def _encoder():
    import encoder_block

    data = encoder_block.make_data(2048, 1), encoder_block.make_data(512, 2)
    return encoder_block.build_model, data, {"epochs": 2, "batch_size": 32}


def _transformer():
    import transformer_classifier as tc

    data = tc.make_data(4096, 1), tc.make_data(1024, 2)
    return tc.build_model, data, {"epochs": 50, "batch_size": 64}  # as its main() trains


EXAMPLES: dict[str, Callable] = {
    "mnist_mlp": _mlp,
    "fashion_cnn": _cnn,
    "encoder_block": _encoder,
    "transformer_classifier": _transformer,
}


def accuracy(name: str, policy: str) -> tuple[float, float]:
    """(test accuracy, seconds of fit) of example ``name`` trained under ``policy``."""
    build, ((x, y), (xt, yt)), fit = EXAMPLES[name]()
    keras.utils.set_random_seed(1)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    start = time.perf_counter()
    model.fit(x, y, verbose=0, **fit)
    seconds = time.perf_counter() - start
    _, acc = model.evaluate(xt, yt, verbose=0)
    return float(acc), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policies", nargs="+", default=["mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--only", nargs="+", default=list(EXAMPLES), choices=list(EXAMPLES))
    args = parser.parse_args()
    from kcompile.codegen.building.target import host

    print(f"CPU: {platform.processor() or platform.machine()}, LLVM cpu {host().cpu}")
    header = "| example | float32 | " + " | ".join(args.policies) + " |"
    rows = []
    for name in args.only:
        base, base_s = accuracy(name, "float32")
        cells = [f"{100 * base:.2f}% ({base_s:.0f} s)"]
        for policy in args.policies:
            acc, s = accuracy(name, policy)
            cells.append(f"{100 * acc:.2f}% ({100 * (acc - base):+.2f} pt, {s:.0f} s)")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    print(header)
    print("| --- " * (2 + len(args.policies)) + "|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
