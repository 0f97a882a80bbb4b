"""The accuracy cost of kcompile's int8 convolutions (``model.quantize("int8",
convolutions=True)``, beyond Keras) on the example CNN, ``examples/fashion_cnn.py``.

    python benchmarks/int8_conv_accuracy.py [--epochs 3] [--seed 1]

Trains the example's model as the example does (its ``build_model``, Adam, batch 32, its
default 3 epochs, seed 1) on Fashion-MNIST (Debian's ``dataset-fashion-mnist``), then
evaluates on the 10,000 test images, with the same trained weights:

- float32, as trained;
- ``quantize("int8")``: Keras's quantization, the Dense layer only (the convolutions stay
  float, with Keras's warning);
- ``quantize("int8", convolutions=True)``: the Dense layer and both Conv2D layers.

Prints the CPU, each test accuracy with its difference from float32 in points, the share
of test images whose predicted class differs from float32's, and the time ``predict``
takes over the test set at batch 256 (median of ``--calls`` calls after a warm-up,
the variants interleaved call by call since the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fashion_cnn
from timing import cpu_name

import kcompile as keras

VARIANTS = {
    "float32": None,
    "int8, Dense only": {},
    "int8, Dense + convolutions": {"convolutions": True},
}


def _variant(weights: list, quantize: dict | None):
    """The example's model with the trained ``weights``, quantized as ``quantize`` says
    (None: left in float32)."""
    model = fashion_cnn.build_model()
    model.set_weights(weights)
    if quantize is not None:
        with warnings.catch_warnings():  # (Keras's "does not have a `quantize` method")
            warnings.simplefilter("ignore")
            model.quantize("int8", **quantize)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3, help="the example's default: 3")
    parser.add_argument("--seed", type=int, default=1, help="the example's default: 1")
    parser.add_argument("--calls", type=int, default=5, help="timed predict calls each")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}", flush=True)
    keras.utils.set_random_seed(args.seed)
    (x, y), (xt, yt) = fashion_cnn.load_images()
    x, xt = x.astype(np.float32), xt.astype(np.float32)
    model = fashion_cnn.build_model()
    start = time.perf_counter()
    model.fit(x, y, epochs=args.epochs, batch_size=32, verbose=0)
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s", flush=True)
    weights = model.get_weights()
    variants = {name: _variant(weights, quantize) for name, quantize in VARIANTS.items()}
    accuracies, labels = {}, {}
    for name, variant in variants.items():
        _, accuracies[name] = variant.evaluate(xt, yt, batch_size=256, verbose=0)
        labels[name] = np.argmax(variant.predict(xt, batch_size=256, verbose=0), axis=-1)
    seconds = {name: [] for name in variants}
    for _ in range(args.calls):
        for name, variant in variants.items():
            start = time.perf_counter()
            variant.predict(xt, batch_size=256, verbose=0)
            seconds[name].append(time.perf_counter() - start)
    base = accuracies["float32"]
    print("| model | test accuracy | vs float32 | predictions changed | predict, 10k images |")
    print("| --- | --- | --- | --- | --- |")
    for name in variants:
        changed = float(np.mean(labels[name] != labels["float32"]))
        print(
            f"| {name} | {100 * accuracies[name]:.2f}% | {100 * (accuracies[name] - base):+.2f} pt "
            f"| {100 * changed:.2f}% | {1000 * statistics.median(seconds[name]):.0f} ms |"
        )


if __name__ == "__main__":
    main()
