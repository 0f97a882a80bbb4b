"""Issue 29's accuracy target: the example classifiers trained in float32, then
``model.quantize("int8")`` (Keras's: Dense, EinsumDense and Embedding layers), test
accuracy before and after, in points; the int8 model's predictions on the test set
against the float model's (how many change class).

    python benchmarks/int8_accuracy.py [--only mnist_mlp encoder_block transformer_classifier]

The examples train as ``mixed_precision_accuracy.py`` trains them (same seeds, data and
epochs: Fashion-MNIST from Debian's ``dataset-fashion-mnist``, or the example's own
synthetic sets). The CPU is printed with the results.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mixed_precision_accuracy import EXAMPLES
from timing import cpu_name

import kcompile as keras

# The classifiers whose Dense layers Keras quantizes (the CNN's convolutions it leaves
# in float: benchmarks/int8_conv_accuracy.py measures kcompile's opt-in for those).
CLASSIFIERS = ("mnist_mlp", "encoder_block", "transformer_classifier")


def before_and_after(name: str) -> tuple[float, float, float]:
    """(float32 test accuracy, int8's, share of test predictions whose class changed)."""
    build, ((x, y), (xt, yt)), fit = EXAMPLES[name]()
    keras.utils.set_random_seed(1)
    model = build()
    model.fit(x, y, verbose=0, **fit)
    _, base = model.evaluate(xt, yt, verbose=0)
    float_classes = np.argmax(model.predict(xt, verbose=0), -1)
    model.quantize("int8")
    _, quantized = model.evaluate(xt, yt, verbose=0)
    int8_classes = np.argmax(model.predict(xt, verbose=0), -1)
    return float(base), float(quantized), float(np.mean(float_classes != int8_classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=list(CLASSIFIERS), choices=CLASSIFIERS)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}, {len(os.sched_getaffinity(0))} cores")
    print("| example | float32 | int8 | classes changed |")
    print("| --- | --- | --- | --- |")
    for name in args.only:
        base, quantized, changed = before_and_after(name)
        print(
            f"| {name} | {100 * base:.2f}% | {100 * quantized:.2f}% "
            f"({100 * (quantized - base):+.2f} pt) | {100 * changed:.2f}% |",
            flush=True,
        )


if __name__ == "__main__":
    main()
