"""AUC, FBetaScore and F1Score: metrics whose state is a vector (a count per threshold
or per class), computed in the step, recorded column by column by the epoch loop and
summed by the runtime. Checked against their definitions in numpy, against numbers
Keras 3 printed, and through fit/evaluate and artifacts (the Keras 3 parity program
``confusion_metrics`` checks them inside training)."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile.artifact import load
from kcompile.models import graphs as G

EPS = 1e-7


def _data():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, (64, 3)).astype("float32")
    y_pred = rng.uniform(0, 1, (64, 3)).astype("float32")
    y_pred[0, 0], y_pred[1, 1], y_pred[2, 2] = 0.0, 1.0, 0.5
    weights = rng.uniform(0, 2, (64,)).astype("float32")
    return y_true, y_pred, weights


def _two_batches(metric):
    y_true, y_pred, weights = _data()
    metric.update_state(y_true[:32], y_pred[:32])
    metric.update_state(y_true[32:], y_pred[32:], sample_weight=weights[32:])
    return metric.result()


def _counts(y_true, y_pred, w, thresholds):
    """TP, FP, TN, FN at each threshold: a prediction above it is positive."""
    above = y_pred[..., None] > np.asarray(thresholds, np.float32)
    pos, neg = (y_true * w)[..., None], ((1 - y_true) * w)[..., None]
    flat = tuple(range(y_pred.ndim))
    return [
        (a * b).sum(flat) for a, b in [(above, pos), (above, neg), (~above, neg), (~above, pos)]
    ]


def _roc_auc_by_definition(num_thresholds: int) -> float:
    y_true, y_pred, weights = _data()
    w = np.ones_like(y_true)
    w[32:] *= weights[32:, None]
    inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    tp, fp, tn, fn = _counts(y_true, y_pred, w, [-EPS, *inner, 1 + EPS])
    recall, fpr = tp / (tp + fn), fp / (fp + tn)
    return float(np.sum((fpr[:-1] - fpr[1:]) * (recall[:-1] + recall[1:]) / 2))


@pytest.mark.parametrize("num_thresholds", [200, 7])
def test_roc_auc_is_the_trapezoid_sum_of_the_counts(num_thresholds):
    got = _two_batches(keras.metrics.AUC(num_thresholds=num_thresholds))
    assert got == pytest.approx(_roc_auc_by_definition(num_thresholds), rel=1e-5)


# Printed by Keras 3.15.1 (JAX 0.10.2) for the same two batches: keras.metrics.AUC(**c)
# and F1Score(**c), update_state twice as in _two_batches.
KERAS_AUC = [
    ({}, 0.47631558775901794),
    ({"curve": "PR"}, 0.555938184261322),
    ({"curve": "PR", "summation_method": "majoring"}, 0.5654593110084534),
    ({"curve": "PRGAIN"}, -0.10790015757083893),
    ({"summation_method": "minoring"}, 0.47393202781677246),
    ({"num_thresholds": 7}, 0.48309069871902466),
    ({"thresholds": [0.1, 0.5, 0.77]}, 0.46263766288757324),
    ({"multi_label": True}, 0.4783686101436615),
    ({"multi_label": True, "curve": "PR"}, 0.5647707581520081),
    ({"from_logits": True}, 0.4759938716888428),
    ({"label_weights": [1.0, 2.0, 0.5]}, 0.4572342038154602),
]
KERAS_F1 = [
    ({}, [0.34144484996795654, 0.4747603237628937, 0.49317416548728943]),
    ({"average": "micro"}, 0.43799343705177307),
    ({"average": "macro"}, 0.4364597797393799),
    ({"average": "weighted"}, 0.43691015243530273),
    ({"threshold": 0.6}, [0.48997431993484497, 0.39829984307289124, 0.5581731200218201]),
]


@pytest.mark.parametrize("config,expected", KERAS_AUC)
def test_auc_gives_kerass_numbers(config, expected):
    assert _two_batches(keras.metrics.AUC(**config)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("config,expected", KERAS_F1)
def test_f1_score_gives_kerass_numbers(config, expected):
    got = _two_batches(keras.metrics.F1Score(**config))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_fbeta_is_its_formula():
    y_true, y_pred, _ = _data()
    metric = keras.metrics.FBetaScore(beta=2.0, threshold=0.5)
    metric.update_state(y_true, y_pred)
    p = (y_pred > 0.5).astype("float32")
    tp, fp, fn = (p * y_true).sum(0), (p * (1 - y_true)).sum(0), ((1 - p) * y_true).sum(0)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    expected = 5 * precision * recall / (4 * precision + recall)
    np.testing.assert_allclose(metric.result(), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: keras.metrics.AUC(curve="ABC"), "Invalid AUC curve"),
        (lambda: keras.metrics.AUC(num_thresholds=1), "num_thresholds"),
        (lambda: keras.metrics.AUC(num_labels=3), "multi_label"),
        (lambda: keras.metrics.F1Score(average="mean"), "average"),
        (lambda: keras.metrics.FBetaScore(beta=2), "beta"),
        (lambda: keras.metrics.F1Score(threshold=1.5), "threshold"),
    ],
)
def test_bad_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _classifier():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5)).astype("float32")
    y = (x[:, :3] + 0.7 * rng.normal(size=(300, 3)) > 0).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="sigmoid"),
        ]
    )
    model.compile(
        "adam",
        "binary_crossentropy",
        metrics=[
            "auc",
            keras.metrics.AUC(curve="PR", multi_label=True, name="pr_auc"),
            keras.metrics.F1Score(threshold=0.5),
        ],
    )
    return model, x, y


def test_fit_and_evaluate_report_what_the_metrics_give_on_the_predictions():
    model, x, y = _classifier()
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert {"auc", "pr_auc", "f1_score"} <= set(history.history)
    logs = model.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    predicted = model.predict(x, verbose=0)
    for name, metric in [
        ("auc", keras.metrics.AUC()),
        ("pr_auc", keras.metrics.AUC(curve="PR", multi_label=True)),
        ("f1_score", keras.metrics.F1Score(threshold=0.5)),
    ]:
        metric.update_state(y, predicted)
        np.testing.assert_allclose(logs[name], metric.result(), rtol=1e-5, err_msg=name)
    assert np.shape(logs["f1_score"]) == (3,)  # one score per class, as Keras logs it


def test_the_epoch_loop_records_vector_statistics_element_by_element():
    model, x, y = _classifier()
    exe = model.compiled_steps.executable("train", (G.label_type_for(y.dtype, y.shape),))
    start = model.get_weights()
    names, logs = exe.run_epoch({model.input_names[0]: x, "y": y}, np.arange(300), 100)
    columns = [n for n in names if n.startswith("metric/auc/tp[")]
    assert len(columns) == 200
    again = _classifier()[0]
    again.set_weights(start)
    step = again.compiled_steps.executable("train", (G.label_type_for(y.dtype, y.shape),))
    for s in range(3):
        out = step(
            {again.input_names[0]: x[s * 100 : (s + 1) * 100], "y": y[s * 100 : (s + 1) * 100]}
        )
        for j, name in enumerate(names):
            base, _, index = name.partition("[")
            want = out[base] if not index else np.ravel(out[base])[int(index[:-1])]
            assert logs[s, j] == np.float32(want), name


def test_an_artifact_computes_them_as_the_model_does(tmp_path):
    model, x, y = _classifier()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.export(str(tmp_path / "m.kc"))
    loaded = load(str(tmp_path / "m.kc"))
    want = model.evaluate(x, y, return_dict=True, verbose=0)
    got = loaded.evaluate(x, y, return_dict=True, verbose=0)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)


def test_exporting_a_users_metric_is_refused_naming_it(tmp_path):
    class Total(keras.metrics.Metric):
        def __init__(self, name="total"):
            super().__init__(name=name)
            self.sum = self.add_variable((), name="sum")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.sum.assign_add(keras.ops.sum(y_pred))

        def result(self):
            return self.sum

    model = _classifier()[0]
    model.compile("adam", "binary_crossentropy", metrics=[Total()])
    with pytest.raises(NotImplementedError, match="'total'"):
        model.export(str(tmp_path / "m.kc"))


def test_the_progress_bar_shows_the_mean_of_a_vector(capsys):
    model, x, y = _classifier()
    model.fit(x, y, epochs=1, batch_size=100, verbose=2)
    assert " - f1_score: 0." in capsys.readouterr().out
