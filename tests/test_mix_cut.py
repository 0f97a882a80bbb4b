"""``MixUp`` and ``CutMix`` (Keras 3.15's batch-mixing augmentations).

kcompile draws from its own counter-based generator, not JAX's, so Keras's numbers are
compared on Keras's draws: the layers' ``mix`` and ``cut`` given the weights, order and
boxes Keras drew reproduce Keras's outputs (recorded below from Keras 3.15.1 on JAX by
``KERAS_SCRIPT``). With kcompile's own draws the tests check what the draws must make:
each output is the formula of its partner in a permutation of the batch, the weights
follow Beta(alpha, alpha), a box lies in its image and weighs the labels by its area.
Compiled code runs the layers as the reference interpreter does.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.ir import BATCH, DType, Graph, Interpreter, TensorType
from kcompile.ir import build as B
from kcompile.ir.printer import print_graph
from kcompile.layers.layer import TraceContext
from kcompile.runtime import make_executable

# What produced the Keras numbers below (run with KERAS_BACKEND=jax in Keras's venv).
KERAS_SCRIPT = """
x = (np.arange(96) * 37 % 101).astype("float32").reshape(4, 4, 6, 1)
y = (np.eye(4) * 0.6 + 0.1).astype("float32")
mix_up = keras.layers.MixUp(alpha=0.7, seed=5)
t = mix_up.get_random_transformation(x[:, :2, :3], training=True)
print(t, mix_up.transform_images(x[:, :2, :3], t), mix_up.transform_labels(y, t))
cut_mix = keras.layers.CutMix(factor=(0.3, 0.9), seed=6)
corners = []  # the box's corners, as _generate_batch_mask receives them
generate = cut_mix._generate_batch_mask
cut_mix._generate_batch_mask = lambda shape, box: generate(shape, corners.extend(box) or box)
t = cut_mix.get_random_transformation(x, training=True)
images = cut_mix.transform_images(x, t)
print(corners, t["permutation_order"], images != x, cut_mix.transform_labels(y, t))
"""
X = (np.arange(96) * 37 % 101).astype("float32").reshape(4, 4, 6, 1)  # distinct values
Y = (np.eye(4) * 0.6 + 0.1).astype("float32")
KERAS_MIX_WEIGHT = [0.3333257, 0.6301975, 0.57604957, 0.04291468]
KERAS_MIX_ORDER = [3, 1, 2, 0]
KERAS_MIX_IMAGES = [
    [25.333622, 62.33362, 31.99952, 45.333622, 82.33362, 51.99952],
    [80.0, 16.0, 53.0, 100.0, 36.0, 73.0],
    [59.0, 96.0, 32.0, 79.0, 15.0, 52.0],
    [1.6307579, 38.630756, 71.29637, 21.630758, 58.63076, 91.29637],
]
KERAS_MIX_LABELS = [
    [0.29999542, 0.1, 0.1, 0.50000453],
    [0.1, 0.7, 0.1, 0.1],
    [0.1, 0.1, 0.7, 0.1],
    [0.6742512, 0.1, 0.1, 0.12574881],
]
KERAS_CUT_BOX = [  # x0, x1, y0, y1 per image
    [0.049518626, 5.972041, 0.016108336, 3.9644566],
    [0.26234487, 5.5947948, 0.20101814, 3.7559845],
    [2.9306502, 3.1326818, 1.9060423, 2.04073],
    [0.008137723, 5.9997997, 0.001347435, 3.995789],
]
KERAS_CUT_ORDER = [3, 0, 1, 2]
_BOX = [[0] * 6, [0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]]
_DOT = [[0] * 6, [0] * 6, [0, 0, 0, 1, 0, 0], [0] * 6]
KERAS_CUT_PASTED = np.array([_BOX, _BOX, _DOT, _BOX], bool)  # Keras's images != x
KERAS_CUT_LABELS = [
    [0.11539546, 0.1, 0.1, 0.6846045],
    [0.57391703, 0.226083, 0.1, 0.1],
    [0.1, 0.10068028, 0.6993197, 0.1],
    [0.1, 0.1, 0.6983336, 0.101666406],
]


def _run(fn, arrays: dict, counter: int = 0) -> dict:
    """``fn(ctx, **values)`` (a dict of outputs) traced at the arrays' shapes and run on
    the reference interpreter, in training, the step counter at ``counter``."""
    g = Graph("mixing")
    values = {}
    for name, a in arrays.items():
        dtype = DType.i32 if a.dtype.kind == "i" else DType.f32
        values[name] = g.add_input(name, TensorType(dtype, a.shape), "data")
    outs = fn(TraceContext(g, training=True), **values)
    g.set_outputs(list(outs.items()))
    return Interpreter(g).run({**arrays, "iterations": np.int32(counter)})


def _draws(layer, x: np.ndarray) -> dict:
    """The draws the layer's last call on ``x`` made (calls on data: counter 0)."""
    return _run(lambda ctx, x: layer.draws(ctx, x), {"x": x})


def _one_hot_batch(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(0, 255, size=(n, 5, 7, 3)).astype("float32")
    return x, np.eye(n, dtype="float32")


# --- Keras's numbers on Keras's draws ------------------------------------------------------


def test_mix_up_on_keras_draws_gives_keras_numbers():
    layer = layers.MixUp(alpha=0.7)
    arrays = {
        "x": X[:, :2, :3],
        "y": Y,
        "weight": np.array(KERAS_MIX_WEIGHT, "float32").reshape(4, 1),
        "order": np.array(KERAS_MIX_ORDER, "int32"),
    }

    def mix(ctx, x, y, weight, order):
        images, labels = layer.mix(x, y, weight, order)
        return {"images": images, "labels": labels}

    out = _run(mix, arrays)
    np.testing.assert_allclose(out["images"].reshape(4, 6), KERAS_MIX_IMAGES, rtol=1e-6)
    np.testing.assert_allclose(out["labels"], KERAS_MIX_LABELS, rtol=1e-6)


def test_cut_mix_on_keras_draws_gives_keras_numbers():
    layer = layers.CutMix(factor=(0.3, 0.9))
    box = np.array(KERAS_CUT_BOX, "float32")
    arrays = {"x": X, "y": Y, "order": np.array(KERAS_CUT_ORDER, "int32")}
    arrays.update({name: box[:, i : i + 1] for i, name in enumerate(("x0", "x1", "y0", "y1"))})

    def cut(ctx, x, y, **draws):
        images, labels = layer.cut(x, y, **draws)
        return {"images": images, "labels": labels}

    out = _run(cut, arrays)
    want = np.where(KERAS_CUT_PASTED[..., None], X[KERAS_CUT_ORDER], X)
    np.testing.assert_array_equal(out["images"], want)
    np.testing.assert_allclose(out["labels"], KERAS_CUT_LABELS, rtol=1e-6)


def test_a_batch_of_one_is_mixed_with_itself_as_in_keras():
    """The one deterministic case: a batch of one has the order [0], so whatever the
    weight or box, Keras's layers give the images and labels back (MixUp within a
    rounding of w·x + (1 − w)·x)."""
    for layer in (layers.MixUp(seed=1), layers.CutMix(seed=1)):
        for images, labels in ((X[:1], Y[:1]), (X[0], Y[0])):
            out = layer({"images": images, "labels": labels})
            assert out["images"].shape == images.shape and out["labels"].shape == labels.shape
            np.testing.assert_allclose(out["images"], images, rtol=1e-6)
            np.testing.assert_allclose(out["labels"], labels, rtol=1e-6)


# --- kcompile's draws --------------------------------------------------------------------------


def test_mix_up_mixes_each_image_with_its_partner_in_a_permutation(rng):
    x, y = _one_hot_batch(12, rng)
    layer = layers.MixUp(alpha=1.5, seed=7)
    out = layer({"images": x, "labels": y})
    labels = out["labels"]
    # What the labels say, independently of the layer's draws: the weight is the
    # image's own class, the partner the other class present.
    own = np.diag(labels).copy()
    others = labels - np.diag(own)
    partner = np.where(own < 1.0 - 1e-6, others.argmax(1), np.arange(12))
    assert sorted(partner) == list(range(12)) and (partner != np.arange(12)).any()
    weight = own.reshape(12, 1, 1, 1)
    want = weight * x + (1.0 - weight) * x[partner]
    np.testing.assert_allclose(out["images"], want, rtol=1e-5, atol=1e-3)
    drawn = _draws(layer, x)
    np.testing.assert_array_equal(drawn["order"], partner)
    np.testing.assert_allclose(drawn["weight"][:, 0], own, rtol=1e-6)
    assert own.min() > 0 and own.max() < 1


def test_cut_mix_pastes_a_box_of_its_partner_and_weighs_labels_by_its_area(rng):
    x, y = _one_hot_batch(10, rng)
    layer = layers.CutMix(factor=(0.2, 1.0), seed=8)
    out = layer({"images": x, "labels": y})
    d = _draws(layer, x)
    order = d["order"]
    assert sorted(order) == list(range(10))
    x0, x1, y0, y1 = (d[k][:, 0] for k in ("x0", "x1", "y0", "y1"))
    assert (x0 >= 0).all() and (x0 <= x1).all() and (x1 <= 7 + 1e-5).all()
    assert (y0 >= 0).all() and (y0 <= y1).all() and (y1 <= 5 + 1e-5).all()
    rows, cols = np.arange(5)[None, :, None], np.arange(7)[None, None, :]
    inside = (
        (cols >= x0[:, None, None])
        & (cols < x1[:, None, None])
        & (rows >= y0[:, None, None])
        & (rows < y1[:, None, None])
    )
    assert inside.any(axis=(1, 2)).sum() >= 5  # boxes of several images hold pixels
    np.testing.assert_array_equal(out["images"], np.where(inside[..., None], x[order], x))
    area = (x1 - x0) * (y1 - y0) / 35.0
    weight = (1.0 - area)[:, None]
    np.testing.assert_allclose(out["labels"], weight * y + (1 - weight) * y[order], atol=1e-6)
    # The pixels pasted are about the box's area (a side of length L covers L ± 1 pixels).
    pixels = inside.sum(axis=(1, 2))
    sides = (x1 - x0 + 1) * (y1 - y0 + 1)
    assert (pixels <= sides + 1e-4).all()


def test_weights_follow_beta_alpha_alpha():
    layer = layers.MixUp(seed=2)
    x = np.zeros((1, 1, 1, 1), "float32")
    for alpha in (0.2, 1.5, 1e-6):

        def beta(ctx, x, alpha=alpha):
            return {"w": layer.beta(ctx, x, 0, B.const(x.graph, alpha, shape=(1, 1)), 6000)}

        w = _run(beta, {"x": x})["w"][:, 0]
        assert ((w >= 0) & (w <= 1)).all()
        want_var = 1 / (4 * (2 * alpha + 1))  # Beta(a, a): mean 1/2, var 1/(4(2a + 1))
        np.testing.assert_allclose([w.mean(), w.var()], [0.5, want_var], atol=0.02, rtol=0.06)
    # A tiny alpha: each image kept or replaced (but where the two gammas nearly tie)
    assert ((w > 1e-6) & (w < 1 - 1e-6)).mean() < 0.002


def test_orders_are_uniform_permutations():
    layer = layers.MixUp(seed=3)
    g = Graph("order")
    x = g.add_input("x", TensorType(DType.f32, (4, 1, 1, 1)), "data")
    g.set_outputs([("order", layer.batch_order(TraceContext(g, training=True), x, 0))])
    run = Interpreter(g).run
    zeros = np.zeros((4, 1, 1, 1), "float32")
    seen = [tuple(run({"x": zeros, "iterations": np.int32(c)})["order"]) for c in range(480)]
    counts = {p: seen.count(p) for p in itertools.permutations(range(4))}
    assert set(seen) <= set(counts)
    assert min(counts.values()) >= 6 and max(counts.values()) <= 40  # 20 expected each


def test_channels_first_cut_mix_is_the_channels_last_one_transposed(rng):
    x, y = _one_hot_batch(6, rng)
    last = layers.CutMix(seed=9)({"images": x, "labels": y})
    first = layers.CutMix(seed=9, data_format="channels_first")(
        {"images": x.transpose(0, 3, 1, 2), "labels": y}
    )
    np.testing.assert_array_equal(first["images"], last["images"].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(first["labels"], last["labels"])


def test_seeded_calls_repeat_and_each_call_draws_anew(rng):
    x, y = _one_hot_batch(8, rng)
    for make in (lambda: layers.MixUp(seed=4), lambda: layers.CutMix(seed=4)):
        a, b = make(), make()
        first = a({"images": x, "labels": y})
        np.testing.assert_array_equal(first["images"], b({"images": x, "labels": y})["images"])
        np.testing.assert_array_equal(a(x), b(x))  # images alone: the same draws
        assert not np.array_equal(a(x), first["images"])


# --- inference -------------------------------------------------------------------------------


def test_identity_in_inference():
    for layer in (layers.MixUp(seed=1), layers.CutMix(seed=1)):
        out = layer({"images": X, "labels": Y}, training=False)
        np.testing.assert_array_equal(out["images"], X)
        assert out["labels"] is Y or np.array_equal(out["labels"], Y)
        np.testing.assert_array_equal(layer(X, training=False), X)
    integers = X.astype("int32")
    assert layers.MixUp()(integers, training=False).dtype == np.int32  # Keras's keeps it
    assert layers.CutMix()(integers, training=False).dtype == np.float32  # Keras's casts
    inputs = keras.Input(X.shape[1:])
    model = keras.Model(inputs, layers.CutMix(seed=2)(layers.MixUp(seed=1)(inputs)))
    np.testing.assert_array_equal(model.predict(X, verbose=0), X)


# --- compiled code ---------------------------------------------------------------------------


@pytest.mark.parametrize("layer", [layers.MixUp(alpha=0.4, seed=3), layers.CutMix(seed=4)])
def test_compiled_step_draws_and_mixes_as_the_reference(rng, layer):
    x, y = _one_hot_batch(7, rng)
    g = Graph("mix_step")
    xv = g.add_input("x", TensorType(DType.f32, x.shape), "data")
    yv = g.add_input("y", TensorType(DType.f32, y.shape), "data")
    images, labels = layer.mix_batch(TraceContext(g, training=True), xv, yv)
    g.set_outputs([("images", images), ("labels", labels)])
    exe = make_executable(g, "llvm")
    outs = []
    for counter in (0, 5):
        feeds = {"x": x, "y": y, "iterations": np.int32(counter)}
        got, want = exe(feeds), Interpreter(g).run(feeds)
        np.testing.assert_allclose(got["images"], want["images"], rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(got["labels"], want["labels"], rtol=1e-6, atol=1e-6)
        outs.append(got["labels"].copy())
    assert not np.array_equal(*outs)  # each step draws anew


# --- training --------------------------------------------------------------------------------


class _Mixed(keras.utils.PyDataset):
    """Batches of images and one-hot labels, mixed by MixUp then CutMix, as a Keras
    input pipeline mixes them."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y
        self.mix_up, self.cut_mix = layers.MixUp(seed=1), layers.CutMix(seed=2)

    def __len__(self):
        return 4

    def __getitem__(self, i):
        batch = {"images": self.x[i * 8 : i * 8 + 8], "labels": self.y[i * 8 : i * 8 + 8]}
        batch = self.cut_mix(self.mix_up(batch))
        return batch["images"], batch["labels"]


def test_fit_on_mixed_batches(rng):
    classes = rng.integers(0, 2, 32)
    x = (rng.normal(size=(32, 4, 4, 1)) + 2.0 * classes[:, None, None, None]).astype("float32")
    y = np.eye(2, dtype="float32")[classes]
    data = _Mixed(x, y)
    images, labels = data[0]
    assert images.shape == (8, 4, 4, 1) and not np.array_equal(labels, y[:8])
    np.testing.assert_allclose(labels.sum(1), 1.0, rtol=1e-6)  # mixed labels stay a law
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), layers.Flatten(), layers.Dense(2, activation="softmax")]
    )
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    losses = model.fit(data, epochs=4, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    accuracy = (model.predict(x, verbose=0).argmax(1) == classes).mean()
    assert accuracy > 0.8


def _symbolic_step(layer) -> Graph:
    """The layer's training transform of images and labels of symbolic batch (``N``)."""
    g = Graph("mix_symbolic")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 5, 7, 3)), "data")
    y = g.add_input("y", TensorType(DType.f32, (BATCH, 4)), "data")
    images, labels = layer.mix_batch(TraceContext(g, training=True), x, y)
    g.set_outputs([("images", images), ("labels", labels)])
    return g


@pytest.mark.parametrize("make", [lambda: layers.MixUp(0.6, seed=2), lambda: layers.CutMix(seed=3)])
def test_a_symbolic_batch_draws_and_mixes_as_a_known_one(rng, make):
    """Traced at batch ``N``, the layers draw at each batch size what they draw traced at
    that size (each image its partner in a permutation), and compiled code draws alike."""
    layer = make()
    g = _symbolic_step(layer)
    exe = make_executable(g, "llvm")
    for n in (1, 6, 33):
        x = rng.uniform(0, 255, size=(n, 5, 7, 3)).astype("float32")
        y = rng.dirichlet(np.ones(4), size=n).astype("float32")
        feeds = {"x": x, "y": y, "iterations": np.int32(n)}
        want = Interpreter(g).run(feeds)
        known = _run(
            lambda ctx, x, y: dict(zip(("images", "labels"), layer.mix_batch(ctx, x, y))),
            {"x": x, "y": y},
            n,
        )
        got = exe(feeds)
        for key in ("images", "labels"):
            np.testing.assert_array_equal(want[key], known[key], err_msg=f"{key} N={n}")
            np.testing.assert_allclose(
                got[key], want[key], rtol=1e-6, atol=1e-4, err_msg=f"{key} N={n}"
            )
        order = _run(lambda ctx, x: {"order": layer.batch_order(ctx, x, 0)}, {"x": x}, n)["order"]
        assert sorted(order) == list(range(n))


def _mixing_model(backend: str):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((4, 4, 1))
    h = layers.Conv2D(2, 1, name="conv")(inputs)  # the mixing's gradient reaches its kernel
    h = layers.CutMix(seed=2, name="cutter")(layers.MixUp(0.5, seed=1, name="mixer")(h))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(layers.Flatten()(h)))
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy", backend=backend)
    return model


def test_fit_with_the_layers_in_a_model_trains_as_the_reference_interpreter(rng):
    classes = rng.integers(0, 2, 10)
    x = (rng.normal(size=(10, 4, 4, 1)) + 2.0 * classes[:, None, None, None]).astype("float32")
    y = np.eye(2, dtype="float32")[classes]
    results = []
    for backend in ("llvm", "reference"):
        model = _mixing_model(backend)
        # batches of 4, 4 and 2: one compile serves the short batch
        history = model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
        results.append((history.history["loss"], model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The step gathers rows of its symbolic batch, and scatters the gradient back.
    step = print_graph(_mixing_model("llvm").step_graph("train"))
    assert "scatter_rows(" in step and "{rows=N}" in step
    # Mixing changed what was learned: the same model without the layers learns otherwise.
    keras.utils.set_random_seed(4)
    inputs = keras.Input((4, 4, 1))
    h = layers.Flatten()(layers.Conv2D(2, 1, name="conv")(inputs))
    plain = keras.Model(inputs, layers.Dense(2, activation="softmax")(h))
    plain.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy", backend="reference")
    plain.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    assert not np.allclose(plain.get_weights()[0], results[0][1][0])


# --- Keras's arguments and errors --------------------------------------------------------------

# Keras 3.15's get_config keys (the base layer's, data_format, the layer's arguments).
KERAS_CONFIG_KEYS = {"name", "trainable", "dtype", "data_format", "seed"}


def test_configs_round_trip_with_keras_keys():
    for layer, own in (
        (layers.MixUp(alpha=0.7, seed=5), {"alpha": 0.7}),
        (layers.CutMix(factor=(0.9, 0.3), seed=6), {"factor": (0.3, 0.9)}),
        (layers.CutMix(factor=0.5, data_format="channels_first"), {"factor": (0, 0.5)}),
    ):
        config = layer.get_config()
        assert set(config) == KERAS_CONFIG_KEYS | set(own)
        assert {k: config[k] for k in own} == own
        again = type(layer).from_config(config)
        assert again.get_config() == config
    assert layers.MixUp().get_config()["seed"] is None
    assert layers.CutMix().get_config()["factor"] == (0, 1.0)  # Keras's default


def test_bad_arguments_name_the_layer():
    for alpha in (0, -1.0, "a", True, None):
        with pytest.raises(ValueError, match="MixUp 'm'.*alpha must be a positive number"):
            layers.MixUp(alpha=alpha, name="m")
    for factor in (1.5, -0.2, (0.1,), "a", (2, 3)):
        with pytest.raises(ValueError, match="CutMix 'c'.*`factor` argument"):
            layers.CutMix(factor=factor, name="c")
    with pytest.raises(ValueError, match="MixUp 'm'.*data_format"):
        layers.MixUp(data_format="nchw", name="m")
    layer = layers.CutMix(name="c")
    with pytest.raises(NotImplementedError, match="CutMix 'c'.*'bounding_boxes'"):
        layer({"images": X, "bounding_boxes": {"boxes": np.zeros((4, 1, 4))}})
    with pytest.raises(ValueError, match="CutMix 'c'.*no 'images'"):
        layer({"labels": Y})
    with pytest.raises(ValueError, match="CutMix 'c'.*labels must be .* got shape \\(4,\\)"):
        layer({"images": X, "labels": np.arange(4)})
    with pytest.raises(ValueError, match="CutMix 'c'.*labels must be .* got shape \\(3, 4\\)"):
        layer({"images": X, "labels": Y[:3]})
    with pytest.raises(ValueError, match="MixUp 'm' expects images"):
        layers.MixUp(name="m")({"images": np.zeros((4, 5), "float32")})
