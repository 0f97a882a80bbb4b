"""Keras's progress bar, line for line in what it prints.

Where kcompile chooses differently from Keras 3 (``keras/src/utils/progbar.py``):

- ANSI colour codes are written only to a terminal; Keras writes them always.
- The bar is redrawn in place (``\r``) only on a terminal or in a notebook. Written
  anywhere else (a log file, a pipe under ``mpiexec``), ``verbose=1`` prints each bar
  once, when it is finalized (the end of the epoch): no redraws pile up in the log and
  no line shows a count the run has long passed. Keras counts any POSIX system as a
  dynamic display (``"posix" in sys.modules``) and so writes ``\r`` redraws into logs,
  and when it does not, prints every redraw on a line of its own.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np


class Progbar:
    def __init__(
        self,
        target: int | None,
        width: int = 20,
        verbose: int = 1,
        interval: float = 0.05,
        unit_name: str = "step",
        stream=None,
    ) -> None:
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stream = stream or sys.stdout
        self._color = _is_terminal(self.stream)
        # Redrawn in place only where ``\r`` goes back over the line (see the module's
        # docstring); elsewhere a bar is printed once, finalized.
        self._dynamic_display = self._color or "ipykernel" in sys.modules
        self._values: dict[str, list[float]] = {}
        self._values_order: list[str] = []
        self._seen_so_far = 0
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step: float | None = None
        self._prev_total_width = 0

    def _c(self, code: str, text: str) -> str:
        return f"{code}{text}\x1b[0m" if self._color else text

    def update(self, current: int, values: list | None = None, finalize: bool | None = None):
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for k, v in values or []:
            if k not in self._values_order:
                self._values_order.append(k)
            # Every value is averaged over steps while the bar runs (Keras's
            # ProgbarLogger marks none as stateful); the final update shows it as is.
            if finalize:
                self._values[k] = [v, 1]
            else:
                base = max(current - self._seen_so_far, 1)
                if k not in self._values:
                    self._values[k] = [v * base, base]
                else:
                    self._values[k][0] += v * base
                    self._values[k][1] += base
        self._seen_so_far = current
        now = time.time()
        per_unit = self._estimate_step_duration(current, now)
        if self.verbose == 1:
            if not finalize and (
                not self._dynamic_display or now - self._last_update < self.interval
            ):
                return
            self._print_bar(current, now, per_unit, finalize)
        elif self.verbose == 2 and finalize and self.target:
            digits = int(math.log10(self.target)) + 1
            info = f"%{digits}d/%d" % (current, self.target)
            info += f" - {now - self._start:.0f}s -{self._format_time(per_unit)}"
            info += self._format_values(two=True)
            self.stream.write(info + "\n")
            self.stream.flush()
        self._last_update = now

    def _print_bar(self, current: int, now: float, per_unit: float, finalize: bool) -> None:
        message = "\b" * self._prev_total_width + "\r" if self._dynamic_display else ""
        if self.target:
            digits = int(math.log10(self.target)) + 1
            bar = self._c("\x1b[1m", f"%{digits}d/%d" % (current, self.target)) + " "
            filled = int(self.width * current / self.target)
            if filled > 0:
                bar += self._c("\33[32m", "━" * filled)
            bar += self._c("\33[37m", "━" * (self.width - filled))
        else:
            bar = "%7d/Unknown" % current
        if self.target and not finalize:
            eta = per_unit * (self.target - current)
            if eta > 3600:
                text = "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
            elif eta > 60:
                text = "%d:%02d" % (eta // 60, eta % 60)
            else:
                text = "%ds" % eta
        else:
            text = f"{now - self._start:.0f}s"
        info = " " + self._c("\x1b[1m", text) + self._format_time(per_unit)
        info += self._format_values()
        visible = len(_strip(bar)) + len(_strip(info))
        message += bar + info
        if self._prev_total_width > visible:
            message += " " * (self._prev_total_width - visible)
        if finalize:
            message += "\n"
        self.stream.write(message)
        self.stream.flush()
        self._prev_total_width = visible

    def _format_values(self, two: bool = False) -> str:
        info = ""
        for k in self._values_order:
            total, count = self._values[k]
            avg = float(np.mean(total / max(1, count)))  # a vector (F1 per class): its mean
            # Keras's verbose=2 branch compares avg, not |avg|, with 1e-3.
            small = avg <= 1e-3 if two else abs(avg) <= 1e-3
            info += f" - {k}: {avg:.4e}" if small else f" - {k}: {avg:.4f}"
        return info

    def _format_time(self, per_unit: float) -> str:
        if per_unit >= 1 or per_unit == 0:
            return f" {per_unit:.0f}s/{self.unit_name}"
        if per_unit >= 1e-3:
            return f" {per_unit * 1000.0:.0f}ms/{self.unit_name}"
        return f" {per_unit * 1000000.0:.0f}us/{self.unit_name}"

    def _estimate_step_duration(self, current: int, now: float) -> float:
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per_unit


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _strip(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
