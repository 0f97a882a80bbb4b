"""Programs over keras.losses, keras.metrics and keras.optimizers that run the same on
Keras 3 and on kcompile (``lib`` is either module): eager metric and loss calls on arrays
and Python lists, metrics in compiled evaluate steps, losses and optimizers in compiled
train steps. ``make_api_parity_fixtures.py`` stores what Keras computed; the tests
``test_metrics_api.py``, ``test_losses_api.py`` and ``test_optimizers_api.py`` run the
same programs on kcompile and compare."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 20
    labels = rng.integers(0, 3, size=(n,))
    noisy = np.where(rng.random(n) < 0.6, labels, rng.integers(-1, 4, size=(n,)))
    onehot = np.eye(3, dtype=np.float32)[labels]
    binary = rng.integers(0, 2, size=(n, 1)).astype(np.float32)
    regression = rng.normal(size=(n, 2)).astype(np.float32)
    return {
        "labels": labels,
        "noisy": noisy,
        "weights": rng.random(n).astype(np.float32),
        "onehot": onehot,
        "scores": (rng.random((n, 3)) + onehot * rng.random((n, 1))).astype(np.float32),
        "binary": binary,
        "prob": np.clip(binary * 0.4 + rng.random((n, 1)) * 0.6, 0, 1).astype(np.float32),
        "reg_true": regression,
        "reg_pred": (regression + rng.normal(size=(n, 2)) * 0.5).astype(np.float32),
        "mask": rng.integers(0, 2, size=(n, 4)).astype(np.float32),
        "soft": rng.random((n, 4)).astype(np.float32),
    }


D = _data()

# --- metrics, eagerly: (name, class, kwargs, calls); a call is (args..., sample_weight) ---

METRIC_CASES: list[tuple[str, str, dict, list[tuple]]] = [
    ("mean", "Mean", {}, [([1, 3, 5, 7], None), ([[1.0, 2.0], [3, 4]], [1.0, 0.0]), (3.0, None)]),
    ("sum", "Sum", {}, [([1, 3, 5, 7], [1, 1, 0, 0]), ([[1.0, 2.0], [3, 4]], None)]),
    (
        "iou",
        "IoU",
        {"num_classes": 3, "target_class_ids": [0, 2]},
        [(D["labels"], D["noisy"], None), (D["labels"], D["noisy"], D["weights"] * 3)],
    ),
    (
        "iou_float_ignore",
        "IoU",
        {"num_classes": 3, "target_class_ids": [1], "dtype": "float32", "ignore_class": 0},
        [(D["labels"], D["noisy"], D["weights"])],
    ),
    ("mean_iou", "MeanIoU", {"num_classes": 3}, [(D["labels"], D["noisy"], None)]),
    (
        "binary_iou",
        "BinaryIoU",
        {"threshold": 0.3},
        [(D["binary"], D["prob"], None), (D["binary"], D["prob"], D["weights"] * 2)],
    ),
    (
        "one_hot_iou",
        "OneHotIoU",
        {"num_classes": 3, "target_class_ids": [0, 1]},
        [(D["onehot"], D["scores"], None)],
    ),
    ("one_hot_mean_iou", "OneHotMeanIoU", {"num_classes": 3}, [(D["onehot"], D["scores"], None)]),
    (
        "r2",
        "R2Score",
        {},
        [(D["reg_true"], D["reg_pred"], None), (D["reg_true"], D["reg_pred"] * 2, D["weights"])],
    ),
    (
        "r2_weighted_adjusted",
        "R2Score",
        {"class_aggregation": "variance_weighted_average", "num_regressors": 2},
        [(D["reg_true"], D["reg_pred"], None)],
    ),
    ("r2_raw", "R2Score", {"class_aggregation": None}, [(D["reg_true"], D["reg_pred"], None)]),
    (
        "rmse",
        "RootMeanSquaredError",
        {},
        [(D["reg_true"], D["reg_pred"], None), (D["reg_true"], D["reg_pred"], D["weights"])],
    ),
    ("pearson", "PearsonCorrelation", {}, [(D["soft"], D["mask"], None)]),
    ("concordance", "ConcordanceCorrelation", {}, [(D["soft"], D["mask"], D["weights"])]),
    ("bce", "BinaryCrossentropy", {}, [(D["binary"], D["prob"], None)]),
    (
        "bce_logits",
        "BinaryCrossentropy",
        {"from_logits": True, "label_smoothing": 0.1},
        [(D["binary"], D["prob"] * 4 - 2, D["weights"])],
    ),
    ("cce", "CategoricalCrossentropy", {}, [(D["onehot"], D["scores"], None)]),
    ("scce", "SparseCategoricalCrossentropy", {}, [(D["labels"], D["scores"], D["weights"])]),
    ("kld", "KLDivergence", {}, [(D["onehot"], D["scores"] / 2, None)]),
    ("poisson", "Poisson", {}, [(D["reg_true"] ** 2, D["reg_pred"] ** 2, None)]),
    # metrics kcompile had before: their eager API
    ("mse", "MeanSquaredError", {}, [(D["reg_true"], D["reg_pred"], D["weights"])]),
    (
        "accuracy",
        "Accuracy",
        {},
        [(D["labels"], D["noisy"], None), (D["labels"], D["noisy"], D["weights"])],
    ),
    ("auc", "AUC", {}, [(D["binary"], D["prob"], None)]),
    ("precision", "Precision", {}, [(D["binary"], D["prob"], D["weights"])]),
    ("recall", "Recall", {}, [(D["binary"], D["prob"], None)]),
    ("categorical_accuracy", "CategoricalAccuracy", {}, [(D["onehot"], D["scores"], D["weights"])]),
    ("top_k", "TopKCategoricalAccuracy", {"k": 2}, [(D["onehot"], D["scores"], None)]),
    ("hinge", "Hinge", {}, [(D["binary"], D["prob"], None)]),
    (
        "precision_at_recall",
        "PrecisionAtRecall",
        {"recall": 0.6},
        [(D["binary"], D["prob"], None), (D["binary"], D["prob"] ** 2, D["weights"])],
    ),
    (
        "recall_at_precision",
        "RecallAtPrecision",
        {"precision": 0.8},
        [(D["binary"], D["prob"], None)],
    ),
    (
        "sensitivity_at_specificity",
        "SensitivityAtSpecificity",
        {"specificity": 0.7, "num_thresholds": 13},
        [(D["binary"], D["prob"], D["weights"])],
    ),
    (
        "specificity_at_sensitivity",
        "SpecificityAtSensitivity",
        {"sensitivity": 0.9, "num_thresholds": 1},
        [(D["binary"], D["prob"], None)],
    ),
    ("f1", "F1Score", {"threshold": 0.5}, [(D["onehot"], D["scores"] / 2, None)]),
]


def run_metric(lib, cls: str, kwargs: dict, calls: list[tuple]) -> dict[str, np.ndarray]:
    """A metric's result after the calls, after a reset (its empty result), and after the
    calls again."""
    metric = getattr(lib.metrics, cls)(**kwargs)

    def feed():
        for *args, weight in calls:
            metric.update_state(*args, sample_weight=weight)

    feed()
    first = np.asarray(metric.result(), np.float32)
    metric.reset_state()
    empty = np.asarray(metric.result(), np.float32)
    feed()
    return {"result": first, "empty": empty, "again": np.asarray(metric.result(), np.float32)}


def per_sample_squared_error(lib):
    def squared(y_true, y_pred):
        return lib.ops.square(y_true - y_pred)

    return squared


# --- metrics inside compiled steps: evaluate of a fixed model ------------------------

COMPILED_METRICS: dict[str, Callable] = {
    "classifier": lambda lib: [
        lib.metrics.MeanIoU(num_classes=3, sparse_y_pred=False, name="mean_iou"),
        lib.metrics.IoU(num_classes=3, target_class_ids=[1, 2], sparse_y_pred=False, name="iou"),
        lib.metrics.SparseCategoricalCrossentropy(),
    ],
    "binary": lambda lib: [
        lib.metrics.PrecisionAtRecall(0.5, num_thresholds=30, name="p_at_r"),
        lib.metrics.SpecificityAtSensitivity(0.4, name="s_at_s"),
        lib.metrics.BinaryIoU(threshold=0.4, name="biou"),
        lib.metrics.BinaryCrossentropy(),
    ],
    "regressor": lambda lib: [
        lib.metrics.R2Score(),
        lib.metrics.RootMeanSquaredError(),
        lib.metrics.MeanMetricWrapper(per_sample_squared_error(lib), name="squared"),
        lib.metrics.PearsonCorrelation(),
    ],
}


def run_compiled_metrics(lib, kind: str, backend: str | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(21, 5)).astype(np.float32)
    if kind == "classifier":
        model = lib.Sequential([lib.Input(shape=(5,)), lib.layers.Dense(3, activation="softmax")])
        y = rng.integers(0, 3, size=(21,))
        loss = "sparse_categorical_crossentropy"
    elif kind == "binary":
        model = lib.Sequential([lib.Input(shape=(5,)), lib.layers.Dense(1, activation="sigmoid")])
        y = rng.integers(0, 2, size=(21, 1)).astype(np.float32)
        loss = "binary_crossentropy"
    else:
        model = lib.Sequential([lib.Input(shape=(5,)), lib.layers.Dense(2)])
        y = rng.normal(size=(21, 2)).astype(np.float32)
        loss = "mse"
    metrics = COMPILED_METRICS[kind](lib)
    options = {} if backend is None else {"backend": backend}
    model.compile(optimizer="sgd", loss=loss, metrics=metrics, **options)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    logs = model.evaluate(x, y, batch_size=8, return_dict=True, verbose=0)
    return {k: np.float32(v) for k, v in logs.items()}


# --- losses, eagerly -----------------------------------------------------------------

LOSS_CALLS: dict[str, Callable] = {
    "mse_class_weighted": lambda L: L.losses.MeanSquaredError()(
        [[0.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]], sample_weight=[2.0, 1.0]
    ),
    "mse_class_scalar_weight": lambda L: L.losses.MeanSquaredError()(
        [[0.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]], sample_weight=2.0
    ),
    "bce_class_sum_weighted": lambda L: L.losses.BinaryCrossentropy(reduction="sum")(
        D["binary"], D["prob"], sample_weight=D["weights"]
    ),
    "cce_class_none_weighted": lambda L: L.losses.CategoricalCrossentropy(reduction="none")(
        D["onehot"], D["scores"] / 2, sample_weight=D["weights"]
    ),
    "huber_class_weighted": lambda L: L.losses.Huber(delta=0.5)(
        D["reg_true"], D["reg_pred"], sample_weight=D["weights"]
    ),
    "mse_list": lambda L: L.losses.mean_squared_error([[0.0, 1.0]], [[1.0, 1.0]]),
    "huber_list": lambda L: L.losses.huber([[0.0, 1.0], [2.0, 0.5]], [[1.0, 1.0], [0.0, 0.0]]),
    "log_cosh_list": lambda L: L.losses.log_cosh([0.0, 1.0], [1.0, 1.0]),
    "kld_list": lambda L: L.losses.kl_divergence([[0.2, 0.8]], [[0.5, 0.5]]),
    "hinge_list": lambda L: L.losses.hinge([[0.0, 1.0]], [[0.3, -0.2]]),
    "bce_function_options": lambda L: L.losses.binary_crossentropy(
        D["binary"], D["prob"] * 4 - 2, from_logits=True, label_smoothing=0.2
    ),
    "cce_function_list": lambda L: L.losses.categorical_crossentropy(
        [[0.0, 1.0, 0.0]], [[0.2, 0.5, 0.3]]
    ),
    "dice_function": lambda L: L.losses.dice(D["mask"], D["soft"]),
    "dice_function_axis": lambda L: L.losses.dice(D["mask"], D["soft"], axis=-1),
    "dice_class": lambda L: L.losses.Dice()(D["mask"], D["soft"]),
    "dice_class_axis_weighted": lambda L: L.losses.Dice(axis=-1)(
        D["mask"], D["soft"], sample_weight=D["weights"]
    ),
    "tversky_function": lambda L: L.losses.tversky(D["mask"], D["soft"], alpha=0.7, beta=0.3),
    "tversky_class_axis": lambda L: L.losses.Tversky(alpha=0.2, beta=0.8, axis=-1)(
        D["mask"], D["soft"]
    ),
    "gce_function": lambda L: L.losses.categorical_generalized_cross_entropy(
        D["labels"], D["scores"] / 2, q=0.7
    ),
    "gce_class": lambda L: L.losses.CategoricalGeneralizedCrossEntropy(q=0.3)(
        D["labels"], D["scores"] / 2
    ),
}


# --- losses in compiled train steps: weights after a few SGD steps --------------------

TRAINED_LOSSES: dict[str, Callable] = {
    "dice": lambda L: L.losses.Dice(),
    "dice_axis": lambda L: L.losses.Dice(axis=-1),
    "tversky": lambda L: L.losses.Tversky(alpha=0.3, beta=0.7, axis=-1),
    "gce": lambda L: L.losses.CategoricalGeneralizedCrossEntropy(q=0.6),
}


def run_trained_loss(lib, name: str, backend: str | None = None) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(16, 5)).astype(np.float32)
    if name == "gce":
        y = rng.integers(0, 4, size=(16,))
    else:
        y = rng.integers(0, 2, size=(16, 4)).astype(np.float32)
    activation = "softmax" if name == "gce" else "sigmoid"
    model = lib.Sequential([lib.Input(shape=(5,)), lib.layers.Dense(4, activation=activation)])
    options = {} if backend is None else {"backend": backend}
    model.compile(optimizer=lib.optimizers.SGD(0.5), loss=TRAINED_LOSSES[name](lib), **options)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    for i in range(3):
        model.train_on_batch(x[i * 5 : i * 5 + 8], y[i * 5 : i * 5 + 8])
    return model.get_weights()


# --- optimizers in compiled train steps ----------------------------------------------

OPTIMIZERS: dict[str, Callable] = {
    "adafactor": lambda L: L.optimizers.Adafactor(learning_rate=0.05),
    "adafactor_options": lambda L: L.optimizers.Adafactor(
        learning_rate=0.5, beta_2_decay=-0.5, epsilon_2=1e-2, clip_threshold=0.5
    ),
    "adafactor_absolute_step": lambda L: L.optimizers.Adafactor(
        learning_rate=0.02, relative_step=False, weight_decay=0.05
    ),
    "lamb": lambda L: L.optimizers.Lamb(learning_rate=0.05),
    "lamb_options": lambda L: L.optimizers.Lamb(
        learning_rate=0.01, beta_1=0.8, epsilon=1e-4, weight_decay=0.1
    ),
    "loss_scale_adam": lambda L: L.optimizers.LossScaleOptimizer(L.optimizers.Adam(0.05)),
    "loss_scale_sgd_nonfinite": lambda L: L.optimizers.LossScaleOptimizer(
        L.optimizers.SGD(0.1, momentum=0.9)
    ),
}


def run_optimizer(lib, name: str, backend: str | None = None) -> dict[str, np.ndarray]:
    """A Dense layer with a rank-3 kernel path (Adafactor factors the last two axes) and
    a plain one, trained for 5 steps under mean squared error."""
    rng = np.random.default_rng(3)
    inputs = lib.Input(shape=(2, 4))
    hidden = lib.layers.Dense(3)(inputs)
    outputs = lib.layers.Dense(2)(lib.layers.Flatten()(hidden))
    model = lib.Model(inputs, outputs)
    options = {} if backend is None else {"backend": backend}
    model.compile(optimizer=OPTIMIZERS[name](lib), loss="mse", **options)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    for step in range(5):
        x = rng.normal(size=(7, 2, 4)).astype(np.float32)
        y = rng.normal(size=(7, 2)).astype(np.float32)
        if name.endswith("nonfinite") and step == 2:
            y[0, 0] = np.inf  # a step whose gradients are not finite: skipped
        model.train_on_batch(x, y)
    out = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    out["iterations"] = np.int64(int(model.optimizer.iterations))
    return out
