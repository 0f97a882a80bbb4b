"""The example models in PyTorch eager and in JAX (``jax.jit`` per step, and the whole
epoch under ``lax.scan``), with the same shapes, batch size and optimizer (Adam,
lr 1e-3, eps 1e-7) as kcompile's examples. Each function returns None when its
framework is not installed (the optional ``bench`` extra installs both)."""

from __future__ import annotations

import numpy as np
from timing import samples

LR, EPS = 1e-3, 1e-7


def torch_times(x, y, repeats: int, threads: int) -> dict[str, list[float]] | None:
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    loss_fn = nn.CrossEntropyLoss()

    def trainer(model, data, labels):
        opt = torch.optim.Adam(model.parameters(), lr=LR, eps=EPS)

        def step():
            opt.zero_grad()
            loss_fn(model(data), labels).backward()
            opt.step()

        return step

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

    class Lstm(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(28, 128, batch_first=True)
            self.head = nn.Linear(128, 10)

        def forward(self, seq):
            return self.head(self.lstm(seq)[0][:, -1])

    images, labels = xt[:64].reshape(64, 1, 28, 28), yt[:64]
    return {
        "mlp epoch": samples(mlp_epoch, repeats, warmup=1),
        "cnn train step": samples(trainer(cnn, images, labels), 20),
        "lstm train step": samples(trainer(Lstm(), xt[:64], labels), 20),
        "mlp predict batch 1": samples(predict_one, 10, group=200),
    }


def jax_times(x, y, repeats: int) -> dict[str, list[float]] | None:
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
    return {
        "mlp epoch": samples(scan_epoch, repeats, warmup=1),
        "mlp epoch (jit per step)": samples(per_step_epoch, repeats, warmup=1),
        "mlp predict batch 1": samples(
            lambda: predict(params, one).block_until_ready(), 10, group=200
        ),
    }
