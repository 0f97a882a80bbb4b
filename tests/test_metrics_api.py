"""keras.metrics names added for issue 26 (Mean, Sum, the IoU family, R2Score, the
correlations, the cross-entropy metrics, ...) and the eager API of metrics
(update_state / result / reset_state on arrays), against Keras 3.15's numbers
(``keras_fixtures/api_parity.npz``, made by ``make_api_parity_fixtures.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import metrics
from tests import api_parity_cases as C

FIXTURE = np.load(Path(__file__).parent / "keras_fixtures" / "api_parity.npz")


def close(got, want, err_msg=""):
    np.testing.assert_allclose(
        np.asarray(got, np.float32), want, rtol=2e-5, atol=2e-6, equal_nan=True, err_msg=err_msg
    )


@pytest.mark.parametrize(
    "key, cls, kwargs, calls", C.METRIC_CASES, ids=[c[0] for c in C.METRIC_CASES]
)
def test_eager_metric_matches_keras(key, cls, kwargs, calls):
    got = C.run_metric(keras, cls, kwargs, calls)
    for part in ("result", "empty", "again"):
        close(got[part], FIXTURE[f"metric/{key}/{part}"], f"{cls} {part}")


@pytest.mark.parametrize("backend", [None, "reference"])
@pytest.mark.parametrize("kind", list(C.COMPILED_METRICS))
def test_metrics_in_compiled_evaluate_match_keras(kind, backend):
    got = C.run_compiled_metrics(keras, kind, backend)
    want = {
        k.split("/")[-1]: FIXTURE[k] for k in FIXTURE if k.startswith(f"compiled_metric/{kind}/")
    }
    assert set(got) == set(want)
    for name in want:
        close(got[name], want[name], name)


def test_mean_and_sum_docstring_examples():
    m = metrics.Mean()
    m.update_state([1, 3, 5, 7])
    assert m.result() == 4.0
    m.reset_state()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert m.result() == 2.0
    s = metrics.Sum()
    s.update_state([1, 3, 5, 7])
    assert s.result() == 16.0


def test_calling_a_metric_updates_it_and_returns_the_result():
    m = metrics.Mean()
    assert m(3.0) == 3.0
    assert m([1.0, 2.0]) == 2.0  # (3 + 1 + 2) / 3
    acc = metrics.BinaryAccuracy()
    assert acc([[1.0], [0.0]], [[0.9], [0.8]]) == 0.5
    rebuilt = metrics.BinaryAccuracy.from_config(acc.get_config())
    assert rebuilt.get_config() == acc.get_config()


def test_mean_is_not_a_compile_metric():
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", metrics=[metrics.Mean()])
    with pytest.raises(TypeError, match="Mean takes values"):
        model.evaluate(np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32), verbose=0)


def test_iou_rejects_a_target_class_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        metrics.IoU(num_classes=2, target_class_ids=[2])


def test_r2_score_rejects_bad_arguments_and_ranks():
    with pytest.raises(ValueError, match="class_aggregation"):
        metrics.R2Score(class_aggregation="median")
    with pytest.raises(ValueError, match="2D inputs"):
        metrics.R2Score().update_state(np.zeros((4, 2, 2)), np.zeros((4, 2, 2)))


@pytest.mark.parametrize(
    "metric",
    [
        metrics.Mean(name="m"),
        metrics.Sum(),
        metrics.IoU(num_classes=3, target_class_ids=[0], ignore_class=1),
        metrics.BinaryIoU(threshold=0.3),
        metrics.MeanIoU(num_classes=4),
        metrics.OneHotIoU(num_classes=3, target_class_ids=[2]),
        metrics.OneHotMeanIoU(num_classes=3),
        metrics.R2Score(class_aggregation=None),
        metrics.RootMeanSquaredError(),
        metrics.PearsonCorrelation(),
        metrics.BinaryCrossentropy(from_logits=True),
        metrics.SparseCategoricalCrossentropy(),
        metrics.MeanSquaredError(),
        metrics.AUC(num_thresholds=50),
        metrics.PrecisionAtRecall(0.3, num_thresholds=20),
        metrics.SpecificityAtSensitivity(0.6),
    ],
    ids=lambda m: type(m).__name__,
)
def test_serialize_deserialize_get_round_trip(metric):
    config = metrics.serialize(metric)
    assert config["module"] == "keras.metrics"
    assert config["class_name"] == type(metric).__name__
    for rebuilt in (metrics.deserialize(config), metrics.get(config)):
        assert type(rebuilt) is type(metric)
        assert rebuilt.get_config() == metric.get_config()


def test_get_takes_a_config_dict_and_names():
    got = metrics.get({"class_name": "Mean", "config": {"name": "x"}})
    assert isinstance(got, metrics.Mean) and got.name == "x"
    assert isinstance(metrics.get("mean"), metrics.Mean)
    assert isinstance(metrics.get("r2_score"), metrics.R2Score)
    with pytest.raises(ValueError, match="unknown metric class"):
        metrics.get({"class_name": "NoSuchMetric", "config": {}})


def test_loss_functions_are_metric_functions():
    got = metrics.mean_squared_error([[0.0, 1.0]], [[1.0, 1.0]])
    close(got, np.array([0.5], np.float32))
    assert metrics.huber is keras.losses.huber


def test_rates_at_a_constraint_check_their_value():
    with pytest.raises(ValueError, match="`recall` must be in the range"):
        metrics.PrecisionAtRecall(recall=1.5)
    with pytest.raises(NotImplementedError, match="class_id"):
        metrics.SensitivityAtSpecificity(0.5, class_id=1)
