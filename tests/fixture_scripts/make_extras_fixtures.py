"""Makes ``tests/keras_fixtures/extras.npz`` with real Keras (3.15.1, JAX backend):
the Muon and ScheduleFreeAdamW weights after five training steps, a fit with
SwapEMAWeights, a model trained under the CTC loss, the outputs of the
ops kcompile added for issue 26 whose numbers are Keras's own (stft/istft, the linalg
factorizations), and the Circle loss's values.

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_extras_fixtures.py

The programs are written against a library argument (``keras`` or ``kcompile``), so
the tests run the same code on kcompile.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

OPTIMIZERS: dict[str, Callable] = {
    "muon": lambda L: L.optimizers.Muon(learning_rate=0.05),
    "muon_options": lambda L: L.optimizers.Muon(
        learning_rate=0.02,
        exclude_layers=["head"],
        nesterov=False,
        rms_rate=None,
        adam_lr_ratio=0.5,
        weight_decay=0.1,
        adam_weight_decay=None,
        ns_steps=3,
    ),
    "schedule_free_adamw": lambda L: L.optimizers.ScheduleFreeAdamW(learning_rate=0.05),
    "schedule_free_adamw_warmup": lambda L: L.optimizers.ScheduleFreeAdamW(
        learning_rate=0.02, warmup_steps=3, weight_decay=0.1, beta_1=0.8
    ),
}


def run_optimizer(lib, name: str, backend: str | None = None) -> dict[str, np.ndarray]:
    """An embedding (AdamW under Muon), a tall and a wide kernel (Muon), biases (AdamW)
    and a head, trained five steps under mean squared error."""
    rng = np.random.default_rng(5)
    inputs = lib.Input(shape=(5,), dtype="int32")
    x = lib.layers.Flatten()(lib.layers.Embedding(10, 4)(inputs))
    x = lib.layers.Dense(9)(lib.layers.Dense(6)(x))
    outputs = lib.layers.Dense(3, name="head")(x)
    model = lib.Model(inputs, outputs)
    options = {} if backend is None else {"backend": backend}
    model.compile(optimizer=OPTIMIZERS[name](lib), loss="mse", **options)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    for _ in range(5):
        x = rng.integers(0, 10, size=(7, 5)).astype(np.int32)
        y = rng.normal(size=(7, 3)).astype(np.float32)
        model.train_on_batch(x, y)
    out = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    out["iterations"] = np.int64(int(model.optimizer.iterations))
    return out


def run_swap_ema(lib, swap_on_epoch: bool) -> dict[str, np.ndarray]:
    """SGD with ``use_ema`` and ``SwapEMAWeights``: three epochs with validation, in
    order; the losses and the final weights."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    model.compile(optimizer=lib.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5), loss="mse")
    model.set_weights([np.full((3, 2), 0.3, np.float32), np.zeros(2, np.float32)])
    swap = lib.callbacks.SwapEMAWeights(swap_on_epoch=swap_on_epoch)
    history = model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0,
                        validation_data=(x, y), callbacks=[swap])  # fmt: skip
    out = {k: np.asarray(v, np.float32) for k, v in history.history.items()}
    out["kernel"], out["bias"] = model.get_weights()
    return out


def run_ctc(lib) -> dict[str, np.ndarray]:
    """A Dense layer's logits over 7 time steps trained three steps under the CTC loss
    (labels padded with the blank, 0); the losses and the final weights."""
    rng = np.random.default_rng(12)
    model = lib.Sequential([lib.Input((7, 3)), lib.layers.Dense(5)])
    model.compile(optimizer=lib.optimizers.SGD(0.1), loss=lib.losses.CTC())
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    x = rng.normal(size=(4, 7, 3)).astype(np.float32)
    y = np.array([[1, 2, 2, 0], [3, 1, 0, 0], [4, 4, 4, 1], [2, 0, 0, 0]], np.int32)
    losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
    kernel, bias = model.get_weights()
    return {"losses": np.asarray(losses, np.float32), "kernel": kernel, "bias": bias}


STFT_CASES = {
    "hann_center": dict(sequence_length=8, sequence_stride=4, fft_length=8),
    "hamming": dict(sequence_length=6, sequence_stride=3, fft_length=8, window="hamming",
                    center=False),
    "no_window": dict(sequence_length=8, sequence_stride=4, fft_length=16, window=None),
    "odd": dict(sequence_length=7, sequence_stride=2, fft_length=9),
}  # fmt: skip


def signal() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(2, 40)).astype(np.float32)


def matrices() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(8)
    a = rng.normal(size=(2, 4, 3)).astype(np.float32)
    square = rng.normal(size=(2, 4, 4)).astype(np.float32)
    rank2 = (rng.normal(size=(5, 2)) @ rng.normal(size=(2, 4))).astype(np.float32)
    b = rng.normal(size=(4, 2)).astype(np.float32)
    return {"a": a, "square": square, "rank2": rank2, "b": b}


def ctc_case() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(13)
    logits = rng.normal(size=(3, 7, 5)).astype(np.float32)
    labels = np.array([[1, 2, 2, 0], [3, 1, 0, 0], [4, 4, 4, 1]], np.int32)
    return logits, labels, np.array([3, 2, 4], np.int32), np.array([7, 5, 7], np.int32)


DECODE_CASES = {
    "default": {},
    "unmerged": dict(merge_repeated=False),
    "blank_2": dict(mask_index=2),
    "blank_last": dict(mask_index=None),
}


def decode_case() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(14).normal(size=(4, 9, 4)).astype(np.float32)
    x[0, :, 1] += 3  # one class throughout: merged into one label
    x[1, 2:5, 2] += 5
    return x, np.array([9, 6, 9, 3], np.int32)


def op_outputs(keras) -> dict[str, np.ndarray]:
    ops = keras.ops
    out: dict[str, np.ndarray] = {}
    x = signal()
    for key, kw in STFT_CASES.items():
        real, imag = ops.stft(x, **kw)
        out[f"stft/{key}/real"], out[f"stft/{key}/imag"] = np.asarray(real), np.asarray(imag)
        args = {k: v for k, v in kw.items()}
        back = ops.istft((real, imag), length=30, **args)
        out[f"istft/{key}"] = np.asarray(back)
    m = matrices()
    out["svd/s"] = np.asarray(ops.svd(m["a"], compute_uv=False))
    out["eigh/w"] = np.asarray(ops.eigh(m["square"] + np.swapaxes(m["square"], -1, -2))[0])
    out["lstsq"] = np.asarray(ops.lstsq(m["a"][0], m["b"]))
    out["pinv"] = np.asarray(ops.pinv(m["rank2"]))
    out["matrix_rank"] = np.asarray(ops.matrix_rank(np.stack([m["rank2"], m["rank2"] * 0])))
    lu, piv = ops.lu_factor(m["square"])
    out["lu_factor/lu"], out["lu_factor/piv"] = np.asarray(lu), np.asarray(piv)
    q, r = ops.qr(m["a"])
    out["qr/q"], out["qr/r"] = np.asarray(q), np.asarray(r)
    logits, labels, label_length, logit_length = ctc_case()
    out["ctc_loss"] = np.asarray(ops.ctc_loss(labels, logits, label_length, logit_length))
    out["ctc_loss/blank_2"] = np.asarray(
        ops.nn.ctc_loss(labels, logits, label_length, logit_length, mask_index=2)
    )
    scores_in, lengths = decode_case()
    for key, kw in DECODE_CASES.items():
        decoded, scores = ops.ctc_decode(scores_in, lengths, **kw)
        out[f"ctc_decode/{key}/decoded"] = np.asarray(decoded)
        out[f"ctc_decode/{key}/scores"] = np.asarray(scores)
    w, _ = ops.eig(m["square"][0])
    out["eig/w"] = np.sort_complex(np.asarray(w))
    return out


CIRCLE_CASES = {
    "default": {},
    "sum": dict(reduction="sum"),
    "none": dict(reduction="none", gamma=10.0, margin=0.25),
    "keep_diagonal": dict(remove_diagonal=False, gamma=5.0),
}


def embeddings() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    e = rng.normal(size=(6, 4)).astype(np.float32)
    return np.array([0, 1, 2, 3, 1, 0]), e / np.linalg.norm(e, axis=1, keepdims=True)


def circle_outputs(keras) -> dict[str, np.ndarray]:
    labels, e = embeddings()
    out = {"circle/function": np.asarray(keras.losses.circle(labels, e))}
    refs = np.random.default_rng(10).normal(size=(3, 4)).astype(np.float32)
    out["circle/refs"] = np.asarray(
        keras.losses.circle(
            labels,
            e,
            ref_labels=np.array([0, 1, 5]),
            ref_embeddings=refs,
            remove_diagonal=False,
            margin=0.3,
        )
    )
    weights = np.arange(6, dtype=np.float32) / 5
    for key, kw in CIRCLE_CASES.items():
        out[f"circle/{key}"] = np.asarray(keras.losses.Circle(**kw)(labels, e))
        out[f"circle/{key}/weighted"] = np.asarray(
            keras.losses.Circle(**kw)(labels, e, sample_weight=weights)
        )
    return out


def main() -> None:
    import keras

    arrays: dict[str, np.ndarray] = {}
    for name in OPTIMIZERS:
        for key, value in run_optimizer(keras, name).items():
            arrays[f"optimizer/{name}/{key}"] = value
    arrays.update(op_outputs(keras))
    arrays.update(circle_outputs(keras))
    for key, value in run_ctc(keras).items():
        arrays[f"ctc/{key}"] = value
    for swap_on_epoch in (False, True):
        for key, value in run_swap_ema(keras, swap_on_epoch).items():
            arrays[f"swap_ema/{swap_on_epoch}/{key}"] = value
    arrays["keras_version"] = np.array(keras.__version__)
    path = Path(__file__).resolve().parents[1] / "keras_fixtures" / "extras.npz"
    np.savez(path, **arrays)
    print(f"wrote {path} ({len(arrays)} arrays)")


if __name__ == "__main__":
    main()
