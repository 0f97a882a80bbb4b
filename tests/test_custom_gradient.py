"""``keras.ops.custom_gradient``: the IR's ``custom_vjp`` node traced from it, its
gradients against Keras's (``tests/keras_fixtures/custom_gradient.npz``, made by real
Keras 3.15.1 with JAX running ``tests/fixture_scripts/make_custom_gradient_fixtures.py``)
and against central differences where the rule is the true derivative, a model trained
natively against the reference interpreter and Keras, and the errors of a rule that
returns the wrong gradients.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import ops
from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import DType, Graph, ShapeError, TensorType, interpret, parse_graph, print_graph
from kcompile.ir import build as B
from kcompile.ir.build import clone
from kcompile.ir.differences import numeric_gradient
from kcompile.ir.parser import check_round_trip
from kcompile.ir.verify import first_difference
from kcompile.passes import append_gradients
from kcompile.passes.autodiff import differentiate
from kcompile.tools.fuzz.oracle import run_compiled

HERE = Path(__file__).parent
FIXTURE = np.load(HERE / "keras_fixtures" / "custom_gradient.npz")
_spec = importlib.util.spec_from_file_location(
    "make_custom_gradient_fixtures", HERE / "fixture_scripts" / "make_custom_gradient_fixtures.py"
)
program = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(program)


def _graph(fn, inputs: dict[str, tuple], loss) -> Graph:
    """A graph of ``loss(fn(*inputs))`` on data inputs of the given shapes, ``fn`` called
    on traced tensors as a layer's ``call`` calls it; its output ``loss``."""
    g = Graph("probe")
    values = [g.add_input(name, TensorType(DType.f32, s), "data") for name, s in inputs.items()]
    out = fn(*[TracedTensor(v) for v in values])
    g.set_outputs([("loss", loss(g, out))])
    return g


def _weighted_sum(g: Graph, y, weights: np.ndarray):
    c = B.const_array(g, weights.ravel().tolist(), DType.f32, weights.shape)
    return B.reduce_sum(B.mul(y.value, c))


def _with_gradients(g: Graph) -> Graph:
    """A copy of ``g`` that also returns ``grad/<input>`` for every input."""
    return differentiate(clone(g), "loss", role="data")


def _log1pexp_graph(fn) -> Graph:
    return _graph(fn, {"x": program.X.shape}, lambda g, y: _weighted_sum(g, y, program.C))


# --- the docstring's example -------------------------------------------------------------


@pytest.mark.parametrize("form", ["any_backend", "jax_style", "torch_style"])
def test_the_docstring_examples_give_keras_numbers(form):
    """Each of the docstring's three forms (Keras with JAX runs the first two; the third,
    PyTorch's, gets the same numbers) on traced tensors: the value and the gradient are
    Keras's, the gradient finite where autodiff of log(1 + exp(x)) would give nan."""
    fn = program.log1pexp_forms(keras)[form]
    g = _log1pexp_graph(fn)
    graph = _with_gradients(g)
    got = interpret(graph, {"x": program.X})
    np.testing.assert_allclose(got["grad/x"], FIXTURE["any_backend_grad"], rtol=1e-6)
    assert np.all(np.isfinite(got["grad/x"]))
    compiled = run_compiled(clone(graph), {"x": program.X})
    np.testing.assert_allclose(compiled["grad/x"], got["grad/x"], rtol=1e-6)
    value = _graph(fn, {"x": program.X.shape}, lambda g, y: y.value)
    np.testing.assert_allclose(
        interpret(value, {"x": program.X})["loss"], FIXTURE["any_backend_value"], rtol=1e-6
    )
    np.testing.assert_allclose(FIXTURE["jax_style_grad"], FIXTURE["any_backend_grad"])


def test_the_rule_is_the_gradient_autodiff_uses_not_the_derivative_of_the_forward_ops():
    """Plain autodiff of log(1 + exp(x)) is nan at x = 100; with the rule it is 1. Where
    the rule is the true derivative (moderate x), it agrees with central differences."""
    fn = program.log1pexp_forms(keras)["any_backend"]

    def plain(x):
        return ops.log(1 + ops.exp(x))

    big = np.array([[100.0, 1.0, 2.0]], np.float32)

    def gradient(f):
        g = _graph(f, {"x": big.shape}, lambda g, y: B.reduce_sum(y.value))
        return interpret(_with_gradients(g), {"x": big})["grad/x"]

    assert np.isnan(gradient(plain)[0, 0]) and gradient(fn)[0, 0] == 1.0
    moderate = np.array([[-3.0, -0.5, 0.25], [1.0, 2.5, 6.0]])
    g = _log1pexp_graph(fn)
    got = interpret(_with_gradients(g), {"x": moderate}, np.float64)["grad/x"]
    np.testing.assert_allclose(got, numeric_gradient(g, {"x": moderate}, "x"), rtol=1e-6)


def test_on_arrays_the_function_runs_at_once_as_keras_s():
    fn = program.log1pexp_forms(keras)["any_backend"]
    out = fn(program.X)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, FIXTURE["any_backend_value"], rtol=1e-6)


# --- several arguments and outputs -------------------------------------------------------


def _two_graph() -> Graph:
    f = program.two_in_two_out(keras)

    def loss(g, outs):
        scaled, sine = outs
        return B.add(_weighted_sum(g, scaled, program.C), _weighted_sum(g, sine, program.C[::-1]))

    return _graph(f, {"x": program.X.shape, "w": program.W.shape}, loss)


def test_several_arguments_and_outputs_give_keras_numbers_and_the_derivative():
    g = _two_graph()
    feeds = {"x": program.X, "w": program.W}
    got = interpret(_with_gradients(g), feeds)
    np.testing.assert_allclose(got["grad/x"], FIXTURE["two_dx"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["grad/w"], FIXTURE["two_dw"], rtol=1e-6)
    node = next(n for n in g.nodes if n.op == "custom_vjp")
    assert (node.attrs["results"], node.attrs["args"], len(node.outputs)) == (2, 2, 2)
    moderate = {"x": np.array([[0.3, -1.2, 2.0], [0.7, 0.1, -0.4]]), "w": program.W * 1.0}
    autodiff = interpret(_with_gradients(g), moderate, np.float64)
    for name in ("x", "w"):
        np.testing.assert_allclose(
            autodiff[f"grad/{name}"], numeric_gradient(g, moderate, name), rtol=1e-6, atol=1e-9
        )


def test_a_dict_output_a_none_gradient_and_a_number_argument():
    """The upstream gradients come in the output's structure (a dict here); None is a zero
    gradient; a Python number is an argument that gets no gradient."""

    @ops.custom_gradient
    def f(x, y, scale):
        def grad(upstream):
            return upstream["double"] * 2.0 + upstream["same"] * scale, None, None

        return {"double": x * 2.0, "same": x * scale + y}, grad

    g = _graph(
        lambda x, y: f(x, y, 3.0),
        {"x": (2, 3), "y": (2, 3)},
        lambda g, out: B.add(B.reduce_sum(out["double"].value), B.reduce_sum(out["same"].value)),
    )
    feeds = {"x": np.ones((2, 3)), "y": np.ones((2, 3))}
    got = interpret(_with_gradients(g), feeds, np.float64)
    np.testing.assert_allclose(got["grad/x"], np.full((2, 3), 5.0))
    np.testing.assert_array_equal(got["grad/y"], np.zeros((2, 3)))  # its rule gives none
    np.testing.assert_allclose(got["grad/x"], numeric_gradient(g, feeds, "x"), rtol=1e-6)


# --- the IR -------------------------------------------------------------------------------


def test_the_node_prints_its_rule_and_parses_back_to_an_equal_graph():
    for g in (_log1pexp_graph(program.log1pexp_forms(keras)["any_backend"]), _two_graph()):
        check_round_trip(g)
        check_round_trip(_with_gradients(g))
        again = parse_graph(print_graph(g))
        assert first_difference(g, again) is None
    text = print_graph(_log1pexp_graph(program.log1pexp_forms(keras)["any_backend"]))
    assert "custom_vjp(" in text and "fn=any_backend" in text and "graph vjp(" in text
    # What the rule computes from the forward pass alone (1 - 1 / (1 + e)) is a residual;
    # the rule's graph multiplies it by the upstream gradient, and nothing else.
    (node,) = [n for n in parse_graph(text).nodes if n.op == "custom_vjp"]
    rule = node.attrs["vjp"]
    assert [n.op for n in rule.nodes] == ["mul"] and len(rule.inputs) == 2


def test_the_shape_rule_refuses_a_rule_that_does_not_fit_its_node():
    g = Graph("probe")
    x = g.add_input("x", TensorType(DType.f32, (3,)), "data")
    rule = Graph("vjp")
    up = rule.add_input("upstream0", TensorType(DType.f32, (3,)), "data")
    rule.set_outputs([("grad0", B.reduce_sum(up))])
    with pytest.raises(ShapeError, match=r"outputs 0 is f32\[\], expected f32\[3\]"):
        g.emit("custom_vjp", [x, x], {"results": 1, "args": 1, "vjp": rule, "fn": "f"})
    with pytest.raises(ShapeError, match="vjp graph has 1 inputs, expected 2"):
        g.emit("custom_vjp", [x, x, x], {"results": 1, "args": 1, "vjp": rule, "fn": "f"})


def test_the_pipeline_leaves_no_custom_vjp_for_native_code():
    from kcompile.passes import PassManager, default_passes

    graph = _with_gradients(_two_graph())
    optimized = PassManager(default_passes()).run(clone(graph))
    assert not any(n.op in ("custom_vjp", "gradient_via") for n in optimized.nodes)
    feeds = {"x": program.X, "w": program.W}
    np.testing.assert_allclose(
        run_compiled(clone(graph), feeds)["grad/w"], interpret(graph, feeds)["grad/w"], rtol=1e-6
    )


# --- a model trained with fit ------------------------------------------------------------


def _check_against_keras(out: dict) -> None:
    np.testing.assert_allclose(out["history_loss"], FIXTURE["history_loss"], rtol=1e-5)
    np.testing.assert_allclose(out["predict"], FIXTURE["predict"], rtol=1e-5, atol=1e-6)
    for i in range(4):
        np.testing.assert_allclose(
            out[f"final_{i}"], FIXTURE[f"final_{i}"], rtol=1e-5, atol=1e-6, err_msg=f"weight {i}"
        )


def test_rounding_and_reversal_layers_train_as_keras_natively_and_on_the_reference():
    native = program.fit(program.build_model(keras))
    _check_against_keras(native)
    model = program.build_model(keras)
    sgd = keras.optimizers.SGD(learning_rate=0.02)
    model.compile(optimizer=sgd, loss="mse", backend="reference")
    reference = program.fit(model)
    for key, value in reference.items():
        np.testing.assert_allclose(native[key], value, rtol=1e-6, atol=1e-7, err_msg=key)


def test_the_layers_gradients_are_their_rules():
    """d loss / d weights through round (identity backward) and the reversal (-0.5 x
    the gradient), against the same written out with numpy."""
    model = program.build_model(keras)
    x, y, weights = program.fit_data()
    model.set_weights(weights)
    g = model.step_graph("eval")
    params = g.inputs_with_role("param")
    grads = append_gradients(g, g.output("loss"), params)
    g.set_outputs([(p.name, d) for p, d in zip(params, grads)])
    feeds = {v.path: v.value for v in model.weights}
    feeds.update(zip(model.input_names, [x]))
    feeds.update(zip(model.label_names, [y]))
    got = interpret(g, feeds, np.float64)
    w1, b1, w2, b2 = (w.astype(np.float64) for w in weights)
    rounded = np.round(x @ w1 + b1)
    d_out = 2 * (rounded @ w2 + b2 - y) / len(x)
    d_pre = -0.5 * (d_out @ w2.T)  # straight through the rounding, reversed
    want = [x.T @ d_pre, d_pre.sum(0), rounded.T @ d_out, d_out.sum(0)]
    for p, w in zip(params, want):
        np.testing.assert_allclose(got[p.name], w, rtol=1e-9, err_msg=p.name)


def test_inside_a_gradient_tape_custom_train_step():
    class TapeModel(keras.Model):
        def train_step(self, data):
            x, y = data
            with keras.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(y=y, y_pred=y_pred)
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(grads, self.trainable_variables)
            for metric in self.metrics:
                metric.update_state(loss)
            return {m.name: m.result() for m in self.metrics}

    _check_against_keras(program.fit(program.build_model(keras, TapeModel)))


def test_inside_a_value_and_grad_custom_train_step():
    """Keras's JAX guide's ``train_step`` (``stateless_call``, ``value_and_grad``), the one
    ``tests/test_custom_train_step.py`` runs, on this model."""
    spec = importlib.util.spec_from_file_location(
        "custom_steps", HERE / "fixture_scripts" / "make_custom_step_fixtures.py"
    )
    steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(steps)
    steps.build = program.build_model  # (its guide's model class, on this model)
    _check_against_keras(program.fit(steps.jax_style_model(keras, keras.value_and_grad)))


def test_inside_a_recurrent_cell_the_rule_is_differentiated_with_the_loop_body():
    """A cell's custom softplus (its rule the true derivative) in a ``scan`` body: the
    model's gradients are central differences, and it trains natively as on the
    reference."""
    from tests.gradcheck import assert_model_gradients

    @ops.custom_gradient
    def softplus(x):
        return ops.log(1 + ops.exp(x)), lambda upstream: upstream * ops.sigmoid(x)

    class Cell(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = self.state_size = units

        def build(self, input_shape):
            self.k = self.add_weight(shape=(input_shape[-1], self.units))
            self.r = self.add_weight(shape=(self.units, self.units))

        def call(self, x, states):
            h = softplus(ops.matmul(x, self.k) + ops.matmul(states[0], self.r)) * 0.5
            return h, [h]

    def build(backend):
        model = keras.Sequential(
            [keras.Input((5, 3)), keras.layers.RNN(Cell(4)), keras.layers.Dense(1)]
        )
        model.compile(loss="mse", optimizer="sgd", backend=backend)
        return model

    rng = np.random.default_rng(0)
    native, reference = build("llvm"), build("reference")
    assert any(
        n.op == "custom_vjp"
        for scan in native.step_graph("eval").nodes
        if scan.op == "scan"
        for n in scan.attrs["body"].nodes
    )
    assert_model_gradients(native, rng, 3, lambda rng, n: rng.normal(size=(n, 1)))
    reference.set_weights(native.get_weights())
    x = rng.normal(size=(16, 5, 3)).astype(np.float32)
    y = rng.normal(size=(16, 1)).astype(np.float32)
    for model in (native, reference):
        model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(native.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_on_the_functional_api_s_tensors_it_is_a_node_of_the_model():
    fn = program.log1pexp_forms(keras)["any_backend"]
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, fn(inputs))
    np.testing.assert_allclose(
        model.predict(program.X, verbose=0), FIXTURE["any_backend_value"], rtol=1e-6
    )


# --- errors --------------------------------------------------------------------------------


def _trace(fn, shapes=((2, 3),)):
    g = Graph("probe")
    xs = [g.add_input(f"x{i}", TensorType(DType.f32, s), "data") for i, s in enumerate(shapes)]
    return fn(*[TracedTensor(x) for x in xs])


def test_a_rule_with_the_wrong_number_of_gradients_is_refused_naming_what_was_expected():
    @ops.custom_gradient
    def product(x, y):
        return x * y, lambda upstream: upstream * y

    expected = r"product returned 1 gradient\(s\) for 2 argument\(s\) \(x, y\)"
    with pytest.raises(ValueError, match=expected):
        _trace(product, ((2, 3), (2, 3)))


def test_a_gradient_of_the_wrong_shape_is_refused_naming_the_argument():
    @ops.custom_gradient
    def doubled(x):
        return x * 2.0, lambda upstream: ops.sum(upstream)

    with pytest.raises(
        ValueError,
        match=r"doubled returned a gradient of shape \(\) for argument 0 \(x\) of shape \(2, 3\)",
    ):
        _trace(doubled)


def test_a_gradient_of_the_wrong_structure_is_refused():
    @ops.custom_gradient
    def total(pair):
        return pair[0] + pair[1], lambda upstream: (upstream, upstream)

    with pytest.raises(ValueError, match=r"total returned 2 gradient\(s\) for 1 argument"):
        _trace(lambda a, b: total((a, b)), ((3,), (3,)))

    @ops.custom_gradient
    def total3(pair):
        return pair[0] + pair[1], lambda upstream: ((upstream, upstream, upstream),)

    with pytest.raises(ValueError, match=r"3 tensor\(s\) for argument 0 \(pair\), which holds 2"):
        _trace(lambda a, b: total3((a, b)), ((3,), (3,)))


def test_a_function_that_does_not_return_a_pair_is_refused():
    @ops.custom_gradient
    def lonely(x):
        return x * 2.0

    with pytest.raises(TypeError, match=r"lonely must return a pair \(output, grad_fn\)"):
        _trace(lonely)
    with pytest.raises(TypeError, match=r"lonely must return a pair"):
        lonely(np.ones(3, np.float32))
