"""The example models in PyTorch eager and in JAX (``jax.jit`` per step, and the whole
epoch under ``lax.scan``), with the same shapes, batch size and optimizer (Adam,
lr 1e-3, eps 1e-7) as kcompile's examples, as ``Measure``s that ``benchmarks/run.py``'s
workers time in blocks. Each function returns None when its framework is not installed
(the optional ``bench`` extra installs both)."""

from __future__ import annotations

import numpy as np
from timing import Measure

LR, EPS = 1e-3, 1e-7
SEQ, WIDTH, HEADS, FF = 128, 128, 4, 512  # examples/encoder_block.py


def torch_train_step(model, data, labels, autocast: bool = False):
    """One Adam step (lr 1e-3, eps 1e-7) of ``model`` on a batch with cross-entropy, as a
    function of no arguments (torch tensors in). With ``autocast`` the forward pass and
    the loss run under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (oneDNN's bf16
    kernels, AMX where the CPU has it) and the backward pass outside it, as PyTorch's
    mixed-precision recipe has it."""
    import contextlib

    import torch
    from torch import nn

    opt = torch.optim.Adam(model.parameters(), lr=LR, eps=EPS)
    loss_fn = nn.CrossEntropyLoss()

    def context():
        if autocast:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step():
        opt.zero_grad()
        with context():
            loss = loss_fn(model(data), labels)
        loss.backward()
        opt.step()

    return step


def torch_cnn(nn):
    """examples/fashion_cnn.py in PyTorch."""
    return nn.Sequential(
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


def torch_measures(x, y, threads: int) -> dict[str, Measure] | None:
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    loss_fn = nn.CrossEntropyLoss()
    trainer = torch_train_step

    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    mlp_opt = torch.optim.Adam(mlp.parameters(), lr=LR, eps=EPS)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def mlp_epoch():
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), 32):
            index = order[start : start + 32]
            mlp_opt.zero_grad()
            loss_fn(mlp(xt[index]), yt[index]).backward()
            mlp_opt.step()

    one = xt[:1]

    def predict_one():
        with torch.no_grad():
            torch.softmax(mlp(one), 1)

    cnn = torch_cnn(nn)

    class Lstm(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(28, 128, batch_first=True)
            self.head = nn.Linear(128, 10)

        def forward(self, seq):
            return self.head(self.lstm(seq)[0][:, -1])

    images, labels = xt[:64].reshape(64, 1, 28, 28), yt[:64]
    many = xt[:256].reshape(256, 1, 28, 28)

    def cnn_predict():
        with torch.no_grad():
            torch.softmax(cnn(many), 1)

    seqs, classes = (torch.from_numpy(v) for v in encoder_data())
    return {
        "mlp epoch": Measure(mlp_epoch, warmup=1),
        "cnn train step": Measure(trainer(cnn, images, labels), prepare=cnn.train),
        "lstm train step": Measure(trainer(Lstm(), xt[:64], labels)),
        "mlp predict batch 1": Measure(predict_one, group=200),
        "encoder train step": Measure(trainer(torch_encoder(nn), seqs, classes)),
        # Dropout off, as in Keras's predict
        "cnn predict batch 256": Measure(cnn_predict, group=3, prepare=cnn.eval),
    }


def encoder_data() -> tuple[np.ndarray, np.ndarray]:
    """The encoder block's batch (examples/encoder_block.py's task, 32 sequences)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, SEQ, WIDTH)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    x[np.arange(32), :, y] += 0.3
    return x, y.astype(np.int64)


def torch_encoder(nn):
    """examples/encoder_block.py in PyTorch: Keras's LayerNormalization epsilon (1e-3)
    and exact (erf) GELU."""

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(WIDTH, HEADS, batch_first=True)
            self.norm1, self.norm2 = nn.LayerNorm(WIDTH, eps=1e-3), nn.LayerNorm(WIDTH, eps=1e-3)
            self.ff = nn.Sequential(nn.Linear(WIDTH, FF), nn.GELU(), nn.Linear(FF, WIDTH))
            self.head = nn.Linear(WIDTH, 10)

        def forward(self, x):
            x = self.norm1(x + self.attention(x, x, x, need_weights=False)[0])
            x = self.norm2(x + self.ff(x))
            return self.head(x.mean(1))

    return Encoder()


def jax_measures(x, y) -> dict[str, Measure] | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    key = jax.random.PRNGKey(0)
    k1, k2 = jax.random.split(key)
    params = {
        "w1": jax.random.normal(k1, (784, 128)) * 0.05,
        "b1": jnp.zeros(128),
        "w2": jax.random.normal(k2, (128, 10)) * 0.05,
        "b2": jnp.zeros(10),
    }

    def loss(p, xb, yb):
        h = jax.nn.relu(xb.reshape(xb.shape[0], -1) @ p["w1"] + p["b1"])
        logits = h @ p["w2"] + p["b2"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], 1))

    def adam(p, state, g):
        m, v, t = state
        t = t + 1
        m = jax.tree.map(lambda m_, g_: 0.9 * m_ + 0.1 * g_, m, g)
        v = jax.tree.map(lambda v_, g_: 0.999 * v_ + 0.001 * g_ * g_, v, g)
        lr = LR * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        p = jax.tree.map(lambda p_, m_, v_: p_ - lr * m_ / (jnp.sqrt(v_) + EPS), p, m, v)
        return p, (m, v, t)

    def step(carry, batch):
        p, state = carry
        g = jax.grad(loss)(p, *batch)
        return adam(p, state, g), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    state0 = (zeros, zeros, jnp.zeros((), jnp.float32))
    step_jit = jax.jit(lambda carry, xb, yb: step(carry, (xb, yb))[0])
    steps = len(x) // 32
    x_host, y_host = x[: steps * 32], y[: steps * 32].astype(np.int32)
    xs, ys = jnp.asarray(x_host), jnp.asarray(y_host)

    @jax.jit
    def epoch(carry, order):
        batches = (xs[order].reshape(steps, 32, 28, 28), ys[order].reshape(steps, 32))
        return jax.lax.scan(step, carry, batches)[0]

    rng = np.random.default_rng(0)
    carry = (params, state0)

    def per_step_epoch():
        nonlocal carry
        order = rng.permutation(steps * 32)
        for start in range(0, steps * 32, 32):
            index = order[start : start + 32]
            carry = step_jit(carry, x_host[index], y_host[index])
        jax.block_until_ready(carry)

    def scan_epoch():
        nonlocal carry
        carry = jax.block_until_ready(epoch(carry, jnp.asarray(rng.permutation(steps * 32))))

    predict = jax.jit(lambda p, xb: jax.nn.softmax(jax.nn.relu(xb @ p["w1"] + p["b1"]) @ p["w2"]))
    one = jnp.asarray(x[:1].reshape(1, 784))
    cnn_predict = jax_cnn_predict(jnp.asarray(x[:256].reshape(256, 28, 28, 1)))
    encoder_step = _jax_encoder_step(adam)
    return {
        "cnn predict batch 256": Measure(cnn_predict, group=3),
        "encoder train step": Measure(encoder_step),
        "mlp epoch": Measure(scan_epoch, warmup=1),
        "mlp epoch (jit per step)": Measure(per_step_epoch, warmup=1),
        "mlp predict batch 1": Measure(lambda: predict(params, one).block_until_ready(), group=200),
    }


def jax_cnn(k1, b1, k2, b2, w, b):
    """examples/fashion_cnn.py's inference with these weights under jax.jit (XLA: NHWC
    convolutions, reduce_window max pooling)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def conv(h, kernel, bias):
        dims = ("NHWC", "HWIO", "NHWC")
        out = lax.conv_general_dilated(h, kernel, (1, 1), "VALID", dimension_numbers=dims)
        return jax.nn.relu(out + bias)

    def pool(h):
        return lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    @jax.jit
    def predict(h):
        h = pool(conv(pool(conv(h, k1, b1)), k2, b2))
        return jax.nn.softmax(h.reshape(h.shape[0], -1) @ w + b)

    return predict


def jax_cnn_predict(images):
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    k1 = jax.random.normal(keys[0], (3, 3, 1, 32)) * 0.1
    k2 = jax.random.normal(keys[1], (3, 3, 32, 64)) * 0.05
    w = jax.random.normal(keys[2], (1600, 10)) * 0.02
    predict = jax_cnn(k1, jnp.zeros(32), k2, jnp.zeros(64), w, jnp.zeros(10))
    return lambda: predict(images).block_until_ready()


def _jax_encoder_step(adam):
    """examples/encoder_block.py's train step under jax.jit, with the MLP's Adam."""
    import jax
    import jax.numpy as jnp

    keys = iter(jax.random.split(jax.random.PRNGKey(2), 8))

    def dense(n_in, n_out):
        return {
            "w": jax.random.normal(next(keys), (n_in, n_out)) / n_in**0.5,
            "b": jnp.zeros(n_out),
        }

    params = {
        "q": dense(WIDTH, WIDTH), "k": dense(WIDTH, WIDTH), "v": dense(WIDTH, WIDTH),
        "o": dense(WIDTH, WIDTH), "f1": dense(WIDTH, FF), "f2": dense(FF, WIDTH),
        "head": dense(WIDTH, 10),
        "n1": {"g": jnp.ones(WIDTH), "b": jnp.zeros(WIDTH)},
        "n2": {"g": jnp.ones(WIDTH), "b": jnp.zeros(WIDTH)},
    }  # fmt: skip

    def norm(p, h):
        mean = h.mean(-1, keepdims=True)
        var = ((h - mean) ** 2).mean(-1, keepdims=True)
        return (h - mean) / jnp.sqrt(var + 1e-3) * p["g"] + p["b"]

    def apply(p, h):
        return h @ p["w"] + p["b"]

    def heads(h):
        return h.reshape(h.shape[0], SEQ, HEADS, WIDTH // HEADS)

    def loss(p, h, labels):
        q, k, v = (heads(apply(p[n], h)) for n in "qkv")
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(WIDTH // HEADS)
        mixed = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores), v)
        h = norm(p["n1"], h + apply(p["o"], mixed.reshape(h.shape)))
        ff = apply(p["f2"], jax.nn.gelu(apply(p["f1"], h), approximate=False))
        logits = apply(p["head"], norm(p["n2"], h + ff).mean(1))
        picked = jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1)
        return -jnp.mean(picked)

    @jax.jit
    def step(p, state, h, labels):
        return adam(p, state, jax.grad(loss)(p, h, labels))

    zeros = jax.tree.map(jnp.zeros_like, params)
    carry = [params, (zeros, zeros, jnp.zeros((), jnp.float32))]
    seqs, classes = (jnp.asarray(v) for v in encoder_data())

    def one_step():
        carry[:] = step(*carry, seqs, classes.astype(jnp.int32))
        jax.block_until_ready(carry[0])

    return one_step
