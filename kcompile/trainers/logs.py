"""The running loss and metrics of an epoch, from each step's scalar results.

Keras weights each batch's loss by its batch size; a metric's value is a ratio
of summed statistics (a mean: ``total / count``; a precision: ``tp / (tp + fp)``), or a
summed statistic itself (a count of true positives: nothing below it). A log of a
model's own step that is not a metric's result (``last/<key>``) is its last value.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

_ELEMENT = re.compile(r"(.+)\[(\d+)\]")  # element i of a vector statistic: name[i]

Ratio = tuple[str, tuple[str, ...]]  # numerator statistic, statistics summed below it
MEAN: Ratio = ("total", ("count",))


class RunningLogs:
    def __init__(self, ratios: dict[str, Ratio] | None = None) -> None:
        self.ratios: dict[str, Ratio] = dict(ratios or {})  # metric key -> its ratio
        # A user's metric: its result from its summed statistics (``Metric.result_from``).
        self.results: dict[str, Callable[[dict[str, float]], float]] = {}
        self._acc: dict[str, dict[str, float]] = {}
        # A model's own step's logs that are not metric results: their last value.
        self._last: dict[str, float] = {}

    def reset(self) -> None:
        self._acc = {}
        self._last = {}

    def add(self, names: list[str], values: np.ndarray, sizes: np.ndarray) -> None:
        """Steps' results: ``values[step, j]`` of column ``names[j]``, ``sizes[step]`` rows
        each. A column ``metric/<key>/<stat>[i]`` is element ``i`` of a vector statistic
        (a count per threshold or per class), summed as a vector."""
        columns = values.astype(np.float64)
        sizes = sizes.astype(np.float64)
        vectors: dict[tuple[str, str], list[float]] = {}
        for name, column in zip(names, columns.T):
            if name == "loss" or name.startswith("loss/"):
                key = "loss" if name == "loss" else f"{name[5:]}_loss"
                acc = self._acc.setdefault(key, {"total": 0.0, "count": 0.0})
                acc["total"] += float(column @ sizes)
                acc["count"] += float(sizes.sum())
            elif name.startswith("last/"):
                if len(column):
                    self._last[name[5:]] = float(column[-1])
            elif name.startswith("metric/"):
                _, key, stat = name.split("/")
                element = _ELEMENT.fullmatch(stat)
                if element:
                    vectors.setdefault((key, element[1]), []).append(float(column.sum()))
                    continue
                acc = self._acc.setdefault(key, {})
                acc[stat] = acc.get(stat, 0.0) + float(column.sum())
        for (key, stat), sums in vectors.items():
            acc = self._acc.setdefault(key, {})
            acc[stat] = acc.get(stat, 0.0) + np.array(sums)

    def with_steps(self, names: list[str], values: np.ndarray, sizes: np.ndarray) -> dict:
        """The logs as they would be after ``add(names, values, sizes)``, leaving these
        running logs as they are: what the progress bar shows while an epoch runs."""
        ahead = RunningLogs(self.ratios)
        ahead.results = self.results
        ahead._acc = {key: dict(acc) for key, acc in self._acc.items()}
        ahead._last = dict(self._last)
        ahead.add(names, values, sizes)
        return ahead.logs()

    def logs(self) -> dict[str, float]:
        """Each value as Keras reports it (a float32 rounded to a Python float)."""
        logs = {}
        for key, acc in self._acc.items():
            if key in self.results:
                logs[key] = _reported(self.results[key](acc))
                continue
            numerator, below = self.ratios.get(key, MEAN)
            denominator = sum(acc.get(s, 0.0) for s in below)
            if not below:  # a count (TruePositives): the sum itself
                value = acc.get(numerator, 0.0)
            else:
                value = acc.get(numerator, 0.0) / denominator if denominator else 0.0
            logs[key] = float(np.float32(value))
        logs.update(self._last)
        return dict(sorted(logs.items()))


def _reported(value) -> float | np.ndarray:
    """A metric's result as Keras logs it: a float, or a float32 array (an F1 score per
    class)."""
    value = np.asarray(value, np.float32)
    return float(value) if value.ndim == 0 else value


def step_columns(out: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """One step's results (scalars, and metric statistics that are vectors) as the
    columns of an epoch loop's log: ``names`` and a (1, columns) array."""
    names: list[str] = []
    values: list[float] = []
    for name, value in out.items():
        value = np.asarray(value)
        if value.ndim == 0:
            names.append(name)
            values.append(float(value))
        elif name.startswith("metric/"):
            names += [f"{name}[{i}]" for i in range(value.size)]
            values += [float(v) for v in value.ravel()]
    return names, np.array([values], np.float32)
