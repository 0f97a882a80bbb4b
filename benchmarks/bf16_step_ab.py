"""A/B of a change to the bf16 kernels on whole steps, in one process: each model compiled
twice, once linked to the current ``kc_bgemm`` / ``kc_sconv_bf16`` /
``kc_sconv_bf16_filter``, once to those older copies of ``codegen/library/bf16_gemm.py`` (and, for
the CNN, ``bf16_conv.py`` and ``bf16_conv_filter.py``) in a folder define (compiled here
under other names by ``benchmarks/bf16_gemm.py``'s and ``bf16_conv.py``'s ``--baseline``).
The steps run interleaved, best of the rounds, CPU time (the machine is shared).

- ``--model mlp``: the 784-512-512-10 MLP under ``mixed_bfloat16``
  (``benchmarks/mlp_mixed_bfloat16.py``'s wide model; ``--width 128`` its example's),
  train step at batch 256.
- ``--model cnn``: the Fashion-MNIST CNN under ``mixed_bfloat16``
  (``benchmarks/cnn_mixed_bfloat16.py``'s), train step at batch 64 and predict at 256.

    python benchmarks/bf16_step_ab.py OLD_FOLDER [--model mlp|cnn] [--rounds 20]
        [--threads 1] [--width 512|128]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from llvmlite import binding as llvm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bf16_conv
import bf16_gemm
import cnn_mixed_bfloat16
import mlp_mixed_bfloat16

from kcompile.codegen.library.bf16_conv import BCONV
from kcompile.codegen.library.bf16_conv_filter import BFILTER
from kcompile.codegen.library.bf16_gemm import BGEMM
from kcompile.codegen.library.runtime_library import runtime

_KEEP: list = []


def _symbols(folder: str, cnn: bool) -> dict[str, dict[str, int]]:
    """Per variant, the address each kernel's symbol is to link to."""
    rt = runtime()
    rt.bgemm_path()  # the piece loaded: its registration of kc_bgemm is done
    old_code, _ = bf16_gemm._baseline(os.path.join(folder, "bf16_gemm.py"))
    _KEEP.append(old_code)
    new = {BGEMM.symbol: rt.address(BGEMM.symbol)}
    old = {BGEMM.symbol: old_code.address("kc_obgemm")}
    if cnn:
        new.update({s.symbol: rt.address(s.symbol) for s in (BCONV, BFILTER)})
        old.update(bf16_conv._baseline(folder))
    return {"new": new, "old": old}


def _steps(args) -> dict[str, dict[str, object]]:
    """Per variant, its steps by name: callables."""
    rng = np.random.default_rng(0)
    variants = {}
    linked = _symbols(args.baseline, args.model == "cnn")
    for name, symbols in linked.items():
        for symbol, address in symbols.items():
            llvm.add_symbol(symbol, address)  # what the model's code links to
        if args.model == "cnn":
            model = cnn_mixed_bfloat16.build_model("mixed_bfloat16")
            xp = rng.random((256, 28, 28, 1)).astype("float32")
            xt = rng.random((64, 28, 28, 1)).astype("float32")
            yt = rng.integers(0, 10, 64)
            steps = {
                "train step batch 64": lambda m=model, x=xt, y=yt: m.train_on_batch(x, y),
                "predict batch 256": lambda m=model, x=xp: m.predict_on_batch(x),
            }
        else:
            if args.width == mlp_mixed_bfloat16.WIDE:
                model = mlp_mixed_bfloat16.build_wide_model("mixed_bfloat16")
            else:
                model = mlp_mixed_bfloat16.build_model()
            x = rng.random((256, *model.input_shape[1:])).astype("float32")
            y = rng.integers(0, 10, 256)
            steps = {"train step batch 256": lambda m=model, x=x, y=y: m.train_on_batch(x, y)}
        for step in steps.values():
            step()  # compiles and links
        variants[name] = steps
    for symbol, address in linked["new"].items():
        llvm.add_symbol(symbol, address)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("baseline", help="a folder of older bf16 kernel files")
    parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="1: a loaded host's fair A/B")
    parser.add_argument("--width", type=int, choices=(128, mlp_mixed_bfloat16.WIDE), default=512)
    args = parser.parse_args()
    os.environ["KCOMPILE_CACHE"] = "0"  # each model compiled here, linked to its kernels
    runtime().set_threads(args.threads)
    variants = _steps(args)
    times = {(v, s): [] for v, steps in variants.items() for s in steps}
    for _ in range(args.rounds):
        for v, steps in variants.items():
            for s, step in steps.items():
                t0 = time.process_time()
                for _ in range(5):
                    step()
                times[v, s].append((time.process_time() - t0) / 5)
    for s in variants["new"]:
        old = min(times["old", s])
        for v in variants:
            best = min(times[v, s])
            print(f"{v}: {s}: best {best * 1e3:.3f} ms ({old / best:.2f}x old)")


if __name__ == "__main__":
    main()
